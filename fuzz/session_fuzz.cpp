// libFuzzer target: the session-file loader (load_session into a small paged KV cache).
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_paths.h"
#include "runtime/session_exercise.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = mlamoe::fuzz::scratch_dir("session") + "/session";
  mlamoe::test::exercise_session(data, size, path);
  return 0;
}
