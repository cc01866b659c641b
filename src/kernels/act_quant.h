// Activations quantized on the fly, so integer weights are dotted with integers:
// int8 products summed in int32 (VNNI / maddubs), one float multiply per block.
//   ActQ8   — 32 values per block, for Q8_0 and Q4_0 weights (a Q8_0 block plus the
//             sum of its quants, which folds Q4_0's "-8" offset into one subtraction).
//   ActQ8S16 — ActQ8's bytes with the sum split into the sums of the two 16-value
//             halves, for tiled Q6_K weights (their "-32" offset and int8 scales are
//             per 16 columns).
//   BlockQ8_K — 256 values, sums per 16, for the K-quants (their per-sub-block mins and
//             Q6_K's "-32" offset are applied through these sums).
//   ActQ8K32 — 256 values with one scale and sums per 32, for tiled Q4_K weights: one
//             scale per super-block lets the kernel weight each sub-block's int32 sum by
//             its 6-bit scale in int32, and the per-32 sums meet the 6-bit mins in one
//             int16 pair product per two sub-blocks.
// Float weights (F32/F16/BF16) are dotted with the float activations directly.
#pragma once
#include <cstddef>
#include <cstdint>

#include "format/ggml_types.h"

namespace mlamoe::kernels {

#pragma pack(push, 1)
struct ActQ8 {
  float d;        // x ≈ d * qs
  int32_t minus_8_sum;  // −8 Σ qs: Q4_0's offset term (weights q − 8), ready to load as
                        // the int32 sum's start (Q8_0's −128 Σ qs is 16× it)
  int8_t qs[32];
};
#pragma pack(pop)
static_assert(sizeof(ActQ8) == 40);

#pragma pack(push, 1)
struct ActQ8S16 {
  float d;
  int16_t sums[2];  // sums of qs[0..15] and qs[16..31]
  int8_t qs[32];
};
#pragma pack(pop)
static_assert(sizeof(ActQ8S16) == sizeof(ActQ8));

#pragma pack(push, 1)
struct ActQ8K32 {
  float d;          // x ≈ d * qs, all 256
  int16_t sums[8];  // sums of qs[32j..32j+31]; sums[2p], sums[2p+1] are one dword
  int8_t qs[256];
};
#pragma pack(pop)
static_assert(sizeof(ActQ8K32) == 276);

enum class ActFormat { F32, Q8, Q8K, Q8S16, Q8K32 };

// The activation format the kernels use with weights of `weight_type`.
ActFormat activation_format(GgmlType weight_type);
// Bytes of one activation row of `cols` values in `f`.
size_t activation_row_bytes(ActFormat f, int64_t cols);
// Quantizes one row (cols a multiple of the format's block; F32 copies). Quants lie in
// [-127, 127] and d = max|x| / 127 per block, so |x - d*q| <= d/2.
void quantize_activation_row(ActFormat f, const float* x, void* dst, int64_t cols);
// The values the kernels actually multiply with (for tests and reference checks).
void dequantize_activation_row(ActFormat f, const void* src, float* x, int64_t cols);

}  // namespace mlamoe::kernels
