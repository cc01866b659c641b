// Small vocabularies and GGUF files built in memory for the tokenizer tests.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

// tiny_byte_vocab(): 256 byte tokens (token i is byte i, in GPT-2 byte-unicode text)
// followed by control tokens <｜begin▁of▁sentence｜>, <｜end▁of▁sentence｜>, <|User|>,
// <|Assistant|>, <think>, </think>; no merges; BOS added.
// gguf_with_metadata(): a GGUF v3 file with string metadata and, if given, a
// tokenizer.ggml.tokens array.
namespace mlamoe::test {


inline Tokenizer::Vocab tiny_byte_vocab() {
  Tokenizer::Vocab v;
  for (int b = 0; b < 256; ++b) {
    const char c = static_cast<char>(b);
    v.tokens.push_back(utf8::bytes_to_token_text(std::string_view(&c, 1)));
    v.types.push_back(TokenType::Normal);
  }
  for (const char* s : {"<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<|User|>", "<|Assistant|>", "<think>", "</think>"}) {
    v.tokens.push_back(s);
    v.types.push_back(TokenType::Control);
  }
  v.pre = "deepseek-v3";
  v.bos = 256;
  v.eos = 257;
  v.add_bos = true;
  return v;
}

namespace fixture_detail {
inline void put_u32(std::vector<uint8_t>& b, uint32_t x) {
  for (int i = 0; i < 4; ++i) b.push_back(static_cast<uint8_t>(x >> (8 * i)));
}
inline void put_u64(std::vector<uint8_t>& b, uint64_t x) {
  for (int i = 0; i < 8; ++i) b.push_back(static_cast<uint8_t>(x >> (8 * i)));
}
inline void put_str(std::vector<uint8_t>& b, const std::string& s) {
  put_u64(b, s.size());
  b.insert(b.end(), s.begin(), s.end());
}
}  // namespace fixture_detail

inline std::vector<uint8_t> gguf_with_metadata(const std::vector<std::pair<std::string, std::string>>& strings,
                                               const std::vector<std::string>& tokens = {}) {
  using namespace fixture_detail;
  std::vector<uint8_t> b;
  put_u32(b, 0x46554747);  // "GGUF"
  put_u32(b, 3);
  put_u64(b, 0);  // tensors
  put_u64(b, strings.size() + (tokens.empty() ? 0 : 1));
  for (const auto& [k, v] : strings) {
    put_str(b, k);
    put_u32(b, 8);  // STRING
    put_str(b, v);
  }
  if (!tokens.empty()) {
    put_str(b, "tokenizer.ggml.tokens");
    put_u32(b, 9);  // ARRAY
    put_u32(b, 8);  // of STRING
    put_u64(b, tokens.size());
    for (const auto& t : tokens) put_str(b, t);
  }
  while (b.size() % 32) b.push_back(0);
  return b;
}

}  // namespace mlamoe::test
