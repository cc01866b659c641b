// Replays the request-parser fuzz corpus (and its crash regressions) through the fuzz
// target's own code, so plain ctest keeps them fixed without clang.
#include <gtest/gtest.h>

#include "fuzz_inputs.h"
#include "request_exercise.h"

namespace mlamoe {
namespace {

TEST(FuzzReplay, RequestCorpusAndRegressions) {
  test::replay_fuzz_inputs("server_request", "server", 5, test::exercise_request);
}

}  // namespace
}  // namespace mlamoe
