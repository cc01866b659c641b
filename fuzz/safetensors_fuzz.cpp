// libFuzzer target: the safetensors reader (header JSON, dtypes, shapes, offsets) and
// model.safetensors.index.json.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>

#include "format/safetensors_exercise.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string dir =
      (std::filesystem::temp_directory_path() / ("mlamoe-fuzz-safetensors-" + std::to_string(getpid()))).string();
  mlamoe::test::exercise_safetensors(data, size, dir);
  return 0;
}
