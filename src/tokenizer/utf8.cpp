#include "tokenizer/utf8.h"

#include <array>

namespace mlamoe::utf8 {

void append(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// Structural decode with llama.cpp's leniency: the lead byte and continuation bytes
// must be well formed; overlongs and surrogates are decoded as they stand.
static bool decode_lenient(std::string_view s, size_t& pos, uint32_t& cp) {
  const auto b = [&](size_t i) { return static_cast<uint8_t>(s[i]); };
  const uint8_t lead = b(pos);
  int n;
  if (lead < 0x80) {
    cp = lead;
    pos += 1;
    return true;
  } else if ((lead & 0xE0) == 0xC0) {
    n = 2, cp = lead & 0x1F;
  } else if ((lead & 0xF0) == 0xE0) {
    n = 3, cp = lead & 0x0F;
  } else if ((lead & 0xF8) == 0xF0) {
    n = 4, cp = lead & 0x07;
  } else {
    pos += 1;
    return false;
  }
  if (pos + n > s.size()) {
    pos += 1;
    return false;
  }
  for (int i = 1; i < n; ++i) {
    if ((b(pos + i) & 0xC0) != 0x80) {
      pos += 1;
      return false;
    }
    cp = (cp << 6) | (b(pos + i) & 0x3F);
  }
  pos += n;
  return true;
}

bool decode(std::string_view s, size_t& pos, uint32_t& cp) { return decode_lenient(s, pos, cp); }

static bool is_scalar_value(uint32_t cp) { return cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF); }

static size_t encoded_length(uint32_t cp) { return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4; }

bool is_valid(std::string_view s) {
  size_t pos = 0;
  while (pos < s.size()) {
    // ASCII fast path, eight bytes at a time.
    while (pos + 8 <= s.size()) {
      uint64_t w;
      __builtin_memcpy(&w, s.data() + pos, 8);
      if (w & 0x8080808080808080ull) break;
      pos += 8;
    }
    if (pos >= s.size()) break;
    const size_t start = pos;
    uint32_t cp;
    if (!decode_lenient(s, pos, cp)) return false;
    if (!is_scalar_value(cp) || encoded_length(cp) != pos - start) return false;
  }
  return true;
}

std::string sanitize(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 16);
  size_t pos = 0;
  while (pos < s.size()) {
    uint32_t cp;
    if (!decode_lenient(s, pos, cp) || !is_scalar_value(cp)) cp = 0xFFFD;
    append(out, cp);
  }
  return out;
}

size_t complete_prefix(std::string_view s) {
  // Look back at most 3 bytes for a lead byte whose sequence is not yet complete.
  const size_t n = s.size();
  for (size_t back = 1; back <= 3 && back <= n; ++back) {
    const uint8_t c = static_cast<uint8_t>(s[n - back]);
    if ((c & 0xC0) == 0x80) continue;  // continuation byte: keep looking for the lead
    const int need = sequence_length(c);
    if (c >= 0x80 && need > static_cast<int>(back)) return n - back;  // incomplete tail
    return n;
  }
  return n;
}

namespace {
struct ByteMap {
  std::array<uint32_t, 256> to_cp{};
  std::array<int16_t, 324> from_cp{};  // every mapped code point is below 0x144
  ByteMap() {
    from_cp.fill(-1);
    // Printable Latin-1 bytes map to themselves; the other 68 bytes are shifted to
    // U+0100 and up, in byte order (the table of OpenAI's GPT-2 encoder).
    uint32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      to_cp[b] = printable ? static_cast<uint32_t>(b) : next++;
      from_cp[to_cp[b]] = static_cast<int16_t>(b);
    }
  }
};
const ByteMap& byte_map() {
  static const ByteMap m;
  return m;
}
}  // namespace

uint32_t byte_to_codepoint(uint8_t b) { return byte_map().to_cp[b]; }

int codepoint_to_byte(uint32_t cp) { return cp < byte_map().from_cp.size() ? byte_map().from_cp[cp] : -1; }

std::string bytes_to_token_text(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) append(out, byte_to_codepoint(c));
  return out;
}

}  // namespace mlamoe::utf8
