// Where a fuzz target finds the shared fixtures: ../shared beside the project root
// (MLAMOE_SHARED overrides), the convention of tests/test_paths.h; and where it writes.
#pragma once
#include <cstdlib>
#include <filesystem>
#include <string>

#include "scratch_dir.h"

namespace mlamoe::fuzz {

inline std::string shared_dir() {
  if (const char* s = std::getenv("MLAMOE_SHARED")) return s;
  const std::filesystem::path root = std::filesystem::path(__FILE__).parent_path().parent_path();
  return (root.parent_path() / "shared").string();
}

// A scratch directory for a target that writes files (/tmp/mlamoe-fuzz-NAME-XXXXXX),
// removed when the fuzzer exits (tests/scratch_dir.h; -fork and -jobs workers make their own).
inline std::string scratch_dir(const std::string& name) {
  const std::string dir = test::process_scratch_dir("mlamoe-fuzz-" + name);
  if (dir.empty()) std::abort();  // nowhere to write: the run would test nothing
  return dir;
}

}  // namespace mlamoe::fuzz
