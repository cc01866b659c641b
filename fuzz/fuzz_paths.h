// Where a fuzz target finds the shared fixtures: ../shared beside the project root
// (MLAMOE_SHARED overrides), the convention of tests/test_paths.h; and where it writes.
#pragma once
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

namespace mlamoe::fuzz {

inline std::string shared_dir() {
  if (const char* s = std::getenv("MLAMOE_SHARED")) return s;
  const std::filesystem::path root = std::filesystem::path(__FILE__).parent_path().parent_path();
  return (root.parent_path() / "shared").string();
}

// A scratch directory for a target that writes files (/tmp/mlamoe-fuzz-NAME-XXXXXX),
// removed when the fuzzer exits. Only the process that made it removes it: libFuzzer's
// -fork and -jobs workers make their own.
inline std::string scratch_dir(const std::string& name) {
  static std::string dir;
  static pid_t made_by = 0;
  if (dir.empty()) {
    std::string tmpl = (std::filesystem::temp_directory_path() / ("mlamoe-fuzz-" + name + "-XXXXXX")).string();
    if (!mkdtemp(tmpl.data())) std::abort();  // nowhere to write: the run would test nothing
    dir = tmpl;
    made_by = getpid();
    std::atexit([] {
      if (getpid() != made_by) return;
      std::error_code ignored;
      std::filesystem::remove_all(dir, ignored);
    });
  }
  return dir;
}

}  // namespace mlamoe::fuzz
