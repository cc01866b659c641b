#include "common/parse.h"

#include <cctype>
#include <cstdlib>

#include "common/error.h"

namespace mlamoe {

std::vector<int32_t> parse_token_list(const std::string& s) {
  std::vector<int32_t> out;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && (s[i] == ',' || std::isspace(static_cast<unsigned char>(s[i])))) ++i;
    if (i >= s.size()) break;
    size_t j = i;
    if (s[j] == '-') ++j;
    while (j < s.size() && std::isdigit(static_cast<unsigned char>(s[j]))) ++j;
    if (j == i || (j == i + 1 && s[i] == '-') ||
        (j < s.size() && s[j] != ',' && !std::isspace(static_cast<unsigned char>(s[j]))))
      fail("invalid token list '", s, "': expected comma-separated integers");
    long long v = std::strtoll(s.c_str() + i, nullptr, 10);
    if (v < INT32_MIN || v > INT32_MAX || j - i > 11) fail("token id out of range in '", s, "'");
    out.push_back(static_cast<int32_t>(v));
    i = j;
  }
  return out;
}

uint64_t parse_byte_size(const std::string& s) {
  size_t i = 0;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
  if (i == 0 || i > 18) fail("invalid size '", s, "': expected a number with optional KiB/MiB/GiB/K/M/G suffix");
  uint64_t v = std::strtoull(s.substr(0, i).c_str(), nullptr, 10);
  std::string suf = s.substr(i);
  for (auto& c : suf) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  uint64_t mul = 1;
  if (suf.empty() || suf == "b") mul = 1;
  else if (suf == "k" || suf == "kib" || suf == "kb") mul = suf == "kb" ? 1000ull : 1024ull;
  else if (suf == "m" || suf == "mib" || suf == "mb") mul = suf == "mb" ? 1000000ull : 1048576ull;
  else if (suf == "g" || suf == "gib" || suf == "gb") mul = suf == "gb" ? 1000000000ull : 1073741824ull;
  else fail("invalid size suffix in '", s, "': use B, KiB, MiB or GiB");
  if (v > UINT64_MAX / mul) fail("size '", s, "' is too large");
  return v * mul;
}

}  // namespace mlamoe
