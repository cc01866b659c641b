// libFuzzer target: the session-file loader (load_session into a small paged KV cache).
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>

#include "runtime/session_exercise.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path =
      (std::filesystem::temp_directory_path() / ("mlamoe-fuzz-session-" + std::to_string(getpid()))).string();
  mlamoe::test::exercise_session(data, size, path);
  return 0;
}
