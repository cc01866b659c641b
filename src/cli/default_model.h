// The model `mlamoe run`/`chat` use when no -m is given: $MLAMOE_MODEL, else the tiny
// model the project ships under models/.
#pragma once
#include <cstdlib>
#include <filesystem>
#include <string>

#include "common/error.h"

namespace mlamoe::cli {

inline std::string default_model_path() {
  if (const char* env = std::getenv("MLAMOE_MODEL")) return env;
  const std::filesystem::path shipped = std::filesystem::path(MLAMOE_SOURCE_DIR) / "models" / "mlamoe-tiny-arith.gguf";
  if (std::filesystem::exists(shipped)) return shipped.string();
  fail("no model given: pass -m MODEL.gguf (or set MLAMOE_MODEL)");
}

}  // namespace mlamoe::cli
