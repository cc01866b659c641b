// UTF-8 helpers and the GPT-2 byte <-> unicode map. Byte-level BPE vocabularies store
// every token as text in which each raw byte is one printable code point (space is
// "Ġ" U+0120, newline "Ċ" U+010A, printable ASCII maps to itself), so a token's bytes
// are recovered by mapping each of its code points back to one byte.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace mlamoe::utf8 {

// Length of the sequence a lead byte announces (1 for ASCII and for stray bytes).
inline int sequence_length(uint8_t lead) {
  if (lead < 0x80) return 1;
  if ((lead & 0xE0) == 0xC0) return 2;
  if ((lead & 0xF0) == 0xE0) return 3;
  if ((lead & 0xF8) == 0xF0) return 4;
  return 1;
}

void append(std::string& out, uint32_t cp);

// Decodes one code point at s[pos]; advances pos. Returns false on a malformed sequence
// (pos then advances by one byte).
bool decode(std::string_view s, size_t& pos, uint32_t& cp);

// True if s is strictly valid UTF-8 (no overlongs, no surrogates, <= U+10FFFF).
bool is_valid(std::string_view s);

// Makes arbitrary bytes valid UTF-8 the way llama.cpp's tokenizer does: every byte that
// does not start a well-formed sequence becomes U+FFFD; overlong forms are re-encoded as
// their shortest form. (Surrogates and code points above U+10FFFF, which llama.cpp passes
// through, also become U+FFFD here: PCRE2 cannot match them.) See docs/tokenizer.md.
std::string sanitize(std::string_view s);

// Length of the longest prefix of s that does not end inside an incomplete (but so far
// well-formed) UTF-8 sequence. Used by the streaming decoder.
size_t complete_prefix(std::string_view s);

// The GPT-2 byte -> code point table and its inverse (-1 for code points not in it).
uint32_t byte_to_codepoint(uint8_t b);
int codepoint_to_byte(uint32_t cp);

// "Hello world" -> "HelloĠworld": the token text of raw bytes.
std::string bytes_to_token_text(std::string_view bytes);

}  // namespace mlamoe::utf8
