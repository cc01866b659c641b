// Replays the session-file fuzz corpus (and its crash regressions) through the fuzz
// target's own code, so plain ctest keeps them fixed without clang.
#include <gtest/gtest.h>

#include "fuzz_inputs.h"
#include "session_exercise.h"
#include "test_paths.h"

namespace mlamoe {
namespace {

TEST(FuzzReplay, SessionCorpusAndRegressions) {
  const std::string path = test::temp_dir() + "/fuzz.session";
  test::replay_fuzz_inputs("session", "runtime", 5,
                           [&](const uint8_t* data, size_t size) { test::exercise_session(data, size, path); });
}

}  // namespace
}  // namespace mlamoe
