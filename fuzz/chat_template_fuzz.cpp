// libFuzzer target: the chat-template renderer (arbitrary Jinja source, fixed messages).
#include <cstddef>
#include <cstdint>

#include "tokenizer/chat_template_exercise.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  mlamoe::test::exercise_chat_template(data, size);
  return 0;
}
