// What a chat-template fuzz input goes through, shared by fuzz/chat_template_fuzz.cpp
// and the ctest replay (tests/tokenizer/fuzz_replay_test.cpp): the input is Jinja
// source, rendered over a fixed conversation. Error is the only acceptable failure.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "common/error.h"
#include "tokenizer/chat_template.h"

namespace mlamoe::test {

inline void exercise_chat_template(const uint8_t* data, size_t size) {
  static const std::vector<ChatMessage> messages = {
      {"system", "You are helpful."},
      {"user", "Hi <think>\xe4\xbd\xa0\xe5\xa5\xbd</think>"},
      {"assistant", "Hello! {{ not a template }}"},
      {"user", "2+2?"},
  };
  try {
    ChatTemplate tmpl(std::string(reinterpret_cast<const char*>(data), size), "<bos>", "<eos>");
    (void)tmpl.apply(messages, true);
    (void)tmpl.apply(messages, false);
  } catch (const Error&) {
  }
}

}  // namespace mlamoe::test
