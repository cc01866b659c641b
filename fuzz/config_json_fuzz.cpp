// libFuzzer target: ModelConfig::from_hf_json_text (a Hugging Face config.json), then
// every number derived from an accepted config.
#include "format/config_exercise.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  mlamoe::test::exercise_config_json(data, size);
  return 0;
}
