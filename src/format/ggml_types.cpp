#include "format/ggml_types.h"

#include <cctype>
#include <string>

#include "common/error.h"

namespace mlamoe {

namespace {
struct Entry {
  uint32_t id;
  TypeTraits traits;
};
constexpr Entry kTypes[] = {
    {0, {"f32", 1, 4, true}},        {1, {"f16", 1, 2, true}},
    {2, {"q4_0", 32, 18, true}},     {3, {"q4_1", 32, 20, false}},
    {6, {"q5_0", 32, 22, false}},    {7, {"q5_1", 32, 24, false}},
    {8, {"q8_0", 32, 34, true}},     {9, {"q8_1", 32, 36, false}},
    {10, {"q2_K", 256, 84, false}},  {11, {"q3_K", 256, 110, false}},
    {12, {"q4_K", 256, 144, true}},  {13, {"q5_K", 256, 176, true}},
    {14, {"q6_K", 256, 210, true}},  {15, {"q8_K", 256, 292, false}},
    {24, {"i8", 1, 1, false}},       {25, {"i16", 1, 2, false}},
    {26, {"i32", 1, 4, false}},      {27, {"i64", 1, 8, false}},
    {28, {"f64", 1, 8, false}},      {30, {"bf16", 1, 2, true}},
};
}  // namespace

const TypeTraits* type_traits(uint32_t type) {
  for (const auto& e : kTypes)
    if (e.id == type) return &e.traits;
  return nullptr;
}

std::string_view type_name(GgmlType t) {
  const TypeTraits* tr = type_traits(t);
  return tr ? tr->name : "unknown";
}

bool parse_type_name(std::string_view name, GgmlType* out) {
  std::string lower(name);
  for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (const auto& e : kTypes) {
    std::string n(e.traits.name);
    for (auto& c : n) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (n == lower) {
      *out = static_cast<GgmlType>(e.id);
      return true;
    }
  }
  return false;
}

size_t row_bytes(GgmlType t, int64_t n) {
  const TypeTraits* tr = type_traits(t);
  if (!tr) fail("unknown tensor type ", static_cast<uint32_t>(t));
  if (n % tr->block_size != 0)
    fail("row of ", n, " elements is not a multiple of the ", tr->name, " block size ", tr->block_size);
  return static_cast<size_t>(n / tr->block_size) * tr->type_size;
}

}  // namespace mlamoe
