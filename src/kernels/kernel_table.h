// What each ISA file provides to the dispatch point (kernels.cpp). Internal header.
#pragma once
#include <cstddef>
#include <cstdint>

#include "format/ggml_types.h"

namespace mlamoe::kernels {

// y[t * ldy + r] = dot(weight row r, activation row t) for r < nrows, t < ntok.
// Weight rows are `w_stride` bytes apart and hold `nb` blocks (for float types nb is
// the column count); activation rows (in the type's ActFormat) are `x_stride` bytes
// apart. Each kernel tiles rows × tokens so a weight block is decoded once per
// group of tokens and stays in L1 across the groups.
using MatFn = void (*)(const uint8_t* w, size_t w_stride, int64_t nrows, int64_t nb,
                       const uint8_t* x, size_t x_stride, int64_t ntok, float* y, size_t ldy);

struct KernelTable {
  MatFn q8_0, q4_0, q4_k, q5_k, q6_k, f16, bf16, f32;
  // Sums a buffer of `bytes` (a multiple of 64) with wide loads: the bandwidth probe.
  // With `prefetch`, also asks for the lines 2 KB ahead, as the decode kernel may.
  uint64_t (*stream_sum)(const uint8_t* p, size_t bytes, bool prefetch);
  // dst[i] = the n F16 or BF16 values at src, as float32 (the KV cache's narrow rows).
  void (*widen_f16)(const uint8_t* src, float* dst, int64_t n);
  void (*widen_bf16)(const uint8_t* src, float* dst, int64_t n);
  MatFn get(GgmlType t) const {
    switch (t) {
      case GgmlType::Q8_0: return q8_0;
      case GgmlType::Q4_0: return q4_0;
      case GgmlType::Q4_K: return q4_k;
      case GgmlType::Q5_K: return q5_k;
      case GgmlType::Q6_K: return q6_k;
      case GgmlType::F16: return f16;
      case GgmlType::BF16: return bf16;
      case GgmlType::F32: return f32;
      default: return nullptr;
    }
  }
};

const KernelTable& scalar_kernels();
const KernelTable& avx2_kernels();
const KernelTable& avx512_kernels();

// Unpacks the 6-bit sub-block scales and mins of a Q4_K/Q5_K block (ggml's packing:
// sub-blocks 0-3 in the low 6 bits of bytes 0-3 / 4-7, sub-blocks 4-7 split over
// byte 8-11 nibbles and the top 2 bits of bytes 0-7).
inline void unpack_k_scales(const uint8_t* s, uint8_t sc[8], uint8_t m[8]) {
  for (int j = 0; j < 4; ++j) {
    sc[j] = s[j] & 63;
    m[j] = s[j + 4] & 63;
  }
  for (int j = 4; j < 8; ++j) {
    sc[j] = static_cast<uint8_t>((s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4));
    m[j] = static_cast<uint8_t>((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
  }
}

}  // namespace mlamoe::kernels
