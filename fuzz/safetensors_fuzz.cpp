// libFuzzer target: the safetensors reader (header JSON, dtypes, shapes, offsets) and
// model.safetensors.index.json.
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_paths.h"
#include "format/safetensors_exercise.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string dir = mlamoe::fuzz::scratch_dir("safetensors") + "/shards";
  mlamoe::test::exercise_safetensors(data, size, dir);
  return 0;
}
