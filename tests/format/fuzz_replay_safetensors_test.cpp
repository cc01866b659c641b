// Replays the safetensors fuzz corpus (and its crash regressions) through the fuzz
// target's own code, so plain ctest keeps them fixed without clang.
#include <gtest/gtest.h>

#include "fuzz_inputs.h"
#include "safetensors_exercise.h"
#include "test_paths.h"

namespace mlamoe {
namespace {

TEST(FuzzReplay, SafetensorsCorpusAndRegressions) {
  const std::string dir = test::temp_dir() + "/fuzz-safetensors";
  test::replay_fuzz_inputs("safetensors", "format", 5,
                           [&](const uint8_t* data, size_t size) { test::exercise_safetensors(data, size, dir); });
}

}  // namespace
}  // namespace mlamoe
