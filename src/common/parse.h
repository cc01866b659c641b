// Parsing of user-typed values: token lists, byte sizes with suffixes.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace mlamoe {

std::vector<int32_t> parse_token_list(const std::string& s);  // "1,2,3" (spaces allowed)
uint64_t parse_byte_size(const std::string& s);                // "256MiB", "1GiB", "4096", "2G"

}  // namespace mlamoe
