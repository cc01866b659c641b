// Where a fuzz target finds the shared fixtures: ../shared beside the project root
// (MLAMOE_SHARED overrides), the convention of tests/test_paths.h.
#pragma once
#include <cstdlib>
#include <filesystem>
#include <string>

namespace mlamoe::fuzz {

inline std::string shared_dir() {
  if (const char* s = std::getenv("MLAMOE_SHARED")) return s;
  const std::filesystem::path root = std::filesystem::path(__FILE__).parent_path().parent_path();
  return (root.parent_path() / "shared").string();
}

}  // namespace mlamoe::fuzz
