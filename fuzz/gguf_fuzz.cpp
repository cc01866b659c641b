// libFuzzer target: the GGUF reader (header, metadata, tensor infos, tensor bytes).
#include <cstddef>
#include <cstdint>

#include "format/gguf_exercise.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  mlamoe::test::exercise_gguf(data, size);
  return 0;
}
