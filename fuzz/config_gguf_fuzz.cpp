// libFuzzer target: ModelConfig::from_gguf on top of the GGUF reader, then every number
// derived from an accepted config (parameter counts, KV sizes, scales).
#include "format/config_exercise.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  mlamoe::test::exercise_config_gguf(data, size);
  return 0;
}
