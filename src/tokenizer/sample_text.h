// Deterministic mixed-language text (Chinese-heavy, with English, code, numbers,
// Japanese, Korean, Cyrillic, Greek, Arabic, emoji and odd whitespace) for the
// tokenizer's round-trip tests and its benchmark.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace mlamoe {
std::string mixed_language_sample(size_t approx_bytes, uint32_t seed = 1);
}
