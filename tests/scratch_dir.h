// One scratch directory per process, for tests and fuzz targets that write files.
#pragma once
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

namespace mlamoe::test {

// TMPDIR/PREFIX-XXXXXX, made on first use (later calls return the same directory,
// whatever their prefix), or "" if it cannot be made. It goes when the process exits,
// unless MLAMOE_KEEP_TEST_DIR is set (to look at what a failing run wrote). Only the
// process that made it removes it: a child forked by a test, or a libFuzzer -fork/-jobs
// worker, that reaches exit() must not take it from its parent.
inline std::string process_scratch_dir(const std::string& prefix) {
  static std::string dir;
  static pid_t made_by = 0;
  if (dir.empty()) {
    std::string tmpl = (std::filesystem::temp_directory_path() / (prefix + "-XXXXXX")).string();
    if (!mkdtemp(tmpl.data())) return "";
    dir = tmpl;
    made_by = getpid();
    std::atexit([] {
      if (getpid() != made_by || std::getenv("MLAMOE_KEEP_TEST_DIR")) return;
      std::error_code ignored;
      std::filesystem::remove_all(dir, ignored);
    });
  }
  return dir;
}

}  // namespace mlamoe::test
