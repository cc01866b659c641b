// What a tokenizer fuzz input goes through, shared by fuzz/tokenizer_fuzz.cpp and the
// ctest replay (tests/tokenizer/fuzz_replay_test.cpp): encode arbitrary bytes (with and
// without control-token parsing), check every id is in the vocabulary, decode, and for
// valid UTF-8 require decode(encode(x)) == x; streaming decode must agree with decode.
// A broken invariant traps so that both libFuzzer and gtest report it.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace mlamoe::test {

inline void check_tokenizer(bool ok) {
  if (!ok) __builtin_trap();
}

inline void exercise_tokenizer(const Tokenizer& tok, const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const bool valid = utf8::is_valid(text);
  for (const bool parse_special : {false, true}) {
    const std::vector<int32_t> ids = tok.encode(text, {.add_special = false, .parse_special = parse_special});
    for (const int32_t id : ids) check_tokenizer(id >= 0 && id < tok.n_vocab());
    // Control tokens decode to their own text only with special = true.
    const std::string back = tok.decode(ids, /*special=*/parse_special);
    if (valid) check_tokenizer(back == text);
    StreamDecoder stream(tok, /*special=*/parse_special);
    std::string streamed;
    for (const int32_t id : ids) streamed += stream.push(id);
    streamed += stream.flush();
    check_tokenizer(streamed == back);
  }
  // Arbitrary ids (pairs of input bytes) decode without reading outside the vocabulary.
  std::vector<int32_t> ids;
  for (size_t i = 0; i + 1 < size && ids.size() < 64; i += 2)
    ids.push_back(static_cast<int32_t>((data[i] | data[i + 1] << 8) % tok.n_vocab()));
  StreamDecoder stream(tok, true);
  std::string streamed;
  for (const int32_t id : ids) streamed += stream.push(id);
  streamed += stream.flush();
  check_tokenizer(streamed == tok.decode(ids, true));
}

}  // namespace mlamoe::test
