// libFuzzer target: the server's request parser (arbitrary /v1/chat/completions and
// /v1/completions bodies).
#include <cstddef>
#include <cstdint>

#include "server/request_exercise.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  mlamoe::test::exercise_request(data, size);
  return 0;
}
