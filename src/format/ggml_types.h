// Tensor element types as GGUF numbers them, and the quant block layouts
// (byte-for-byte the layouts GGUF files use, so weights are read in place).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace mlamoe {

enum class GgmlType : uint32_t {
  F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
  Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15,
  I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28, BF16 = 30,
};

struct TypeTraits {
  const char* name;   // "q4_K" as llama.cpp prints it
  int64_t block_size; // elements per block (1 for plain floats)
  size_t type_size;   // bytes per block
  bool supported;     // mlamoe can compute with it
};

// Traits of a type, or nullptr when the number is not a known type.
const TypeTraits* type_traits(uint32_t type);
inline const TypeTraits* type_traits(GgmlType t) { return type_traits(static_cast<uint32_t>(t)); }
std::string_view type_name(GgmlType t);
// Parses "f32", "q8_0", "Q4_K" ...; returns false if unknown.
bool parse_type_name(std::string_view name, GgmlType* out);
// Bytes of a row of n elements; n must be a multiple of the block size.
size_t row_bytes(GgmlType t, int64_t n);

constexpr int QK4_0 = 32;
constexpr int QK8_0 = 32;
constexpr int QK_K = 256;
constexpr int K_SCALE_SIZE = 12;

#pragma pack(push, 1)
struct BlockQ4_0 {  // x = d * (q - 8), q in 0..15; low nibbles are elements 0..15
  uint16_t d;       // fp16
  uint8_t qs[QK4_0 / 2];
};
struct BlockQ8_0 {  // x = d * q
  uint16_t d;
  int8_t qs[QK8_0];
};
struct BlockQ4_K {  // 8 sub-blocks of 32: x = d*sc*q - dmin*m, 6-bit sc and m packed in scales
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[K_SCALE_SIZE];
  uint8_t qs[QK_K / 2];
};
struct BlockQ5_K {  // as Q4_K with a fifth bit per element in qh
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[K_SCALE_SIZE];
  uint8_t qh[QK_K / 8];
  uint8_t qs[QK_K / 2];
};
struct BlockQ6_K {  // 16 sub-blocks of 16: x = d * scale * (q - 32), q 6 bits (ql low 4, qh high 2)
  uint8_t ql[QK_K / 2];
  uint8_t qh[QK_K / 4];
  int8_t scales[QK_K / 16];
  uint16_t d;
};
struct BlockQ8_K {  // activations for K-quant dot products
  float d;
  int8_t qs[QK_K];
  int16_t bsums[QK_K / 16];
};
#pragma pack(pop)

static_assert(sizeof(BlockQ4_0) == 18);
static_assert(sizeof(BlockQ8_0) == 34);
static_assert(sizeof(BlockQ4_K) == 144);
static_assert(sizeof(BlockQ5_K) == 176);
static_assert(sizeof(BlockQ6_K) == 210);
static_assert(sizeof(BlockQ8_K) == 292);

}  // namespace mlamoe
