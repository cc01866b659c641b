#include "kernels/act_quant.h"

#include <cmath>
#include <cstring>

#include "common/error.h"
#include "kernels/kernels.h"

namespace mlamoe::kernels {

// act_quant_avx2.cpp
int64_t quantize_q8_blocks_avx2(const float* x, ActQ8* b, int64_t n);
int64_t quantize_q8k32_blocks_avx2(const float* x, ActQ8K32* b, int64_t n);

ActFormat activation_format(GgmlType t) {
  switch (t) {
    case GgmlType::Q8_0:
    case GgmlType::Q4_0: return ActFormat::Q8;
    case GgmlType::Q4_K:
    case GgmlType::Q5_K:
    case GgmlType::Q6_K: return ActFormat::Q8K;
    default: return ActFormat::F32;
  }
}

size_t activation_row_bytes(ActFormat f, int64_t cols) {
  switch (f) {
    case ActFormat::Q8:
    case ActFormat::Q8S16: return static_cast<size_t>(cols / 32) * sizeof(ActQ8);
    case ActFormat::Q8K: return static_cast<size_t>(cols / QK_K) * sizeof(BlockQ8_K);
    case ActFormat::Q8K32: return static_cast<size_t>(cols / QK_K) * sizeof(ActQ8K32);
    default: return static_cast<size_t>(cols) * sizeof(float);
  }
}

// Symmetric int8 quantization of n values: returns d with x ≈ d*q. The reciprocal is
// taken in double so that tiny (denormal) blocks do not overflow it.
static float quantize_block(const float* x, int n, int8_t* q) {
  float amax = 0.f;
  for (int i = 0; i < n; ++i) amax = std::fmax(amax, std::fabs(x[i]));
  if (!(amax > 0.f) || !std::isfinite(amax)) {
    std::memset(q, 0, static_cast<size_t>(n));
    return amax > 0.f ? amax : 0.f;  // inf/nan stay visible in d instead of vanishing
  }
  if (amax >= 1e-30f) {
    const float id = 127.f / amax;
    for (int i = 0; i < n; ++i) q[i] = static_cast<int8_t>(std::nearbyint(x[i] * id));
  } else {
    const double id = 127.0 / amax;
    for (int i = 0; i < n; ++i) q[i] = static_cast<int8_t>(std::nearbyint(x[i] * id));
  }
  return static_cast<float>(static_cast<double>(amax) / 127.0);
}

void quantize_activation_row(ActFormat f, const float* x, void* dst, int64_t cols) {
  switch (f) {
    case ActFormat::Q8: {
      if (cols % 32) fail("activation row of ", cols, " values is not a multiple of 32");
      auto* b = static_cast<ActQ8*>(dst);
      int64_t i = 0;
      // The vector path stops at the first block it leaves to this loop, which then
      // finishes the row (such blocks are rare: zeros, inf/nan, denormal scales).
      if (active_isa() != Isa::Scalar) i = quantize_q8_blocks_avx2(x, b, cols / 32);
      for (x += 32 * i; i < cols / 32; ++i, x += 32) {
        b[i].d = quantize_block(x, 32, b[i].qs);
        int32_t s = 0;
        for (int j = 0; j < 32; ++j) s += b[i].qs[j];
        b[i].minus_8_sum = -8 * s;
      }
      return;
    }
    case ActFormat::Q8S16: {  // the Q8 bytes (every ISA's), then the sum split in halves
      quantize_activation_row(ActFormat::Q8, x, dst, cols);
      auto* b = static_cast<ActQ8S16*>(dst);
      for (int64_t i = 0; i < cols / 32; ++i)
        for (int h = 0; h < 2; ++h) {
          int s = 0;
          for (int j = 0; j < 16; ++j) s += b[i].qs[16 * h + j];
          b[i].sums[h] = static_cast<int16_t>(s);
        }
      return;
    }
    case ActFormat::Q8K: {
      if (cols % QK_K) fail("activation row of ", cols, " values is not a multiple of ", QK_K);
      auto* b = static_cast<BlockQ8_K*>(dst);
      for (int64_t i = 0; i < cols / QK_K; ++i, x += QK_K) {
        b[i].d = quantize_block(x, QK_K, b[i].qs);
        for (int g = 0; g < QK_K / 16; ++g) {
          int s = 0;
          for (int j = 0; j < 16; ++j) s += b[i].qs[g * 16 + j];
          b[i].bsums[g] = static_cast<int16_t>(s);
        }
      }
      return;
    }
    case ActFormat::Q8K32: {
      if (cols % QK_K) fail("activation row of ", cols, " values is not a multiple of ", QK_K);
      auto* b = static_cast<ActQ8K32*>(dst);
      int64_t i = 0;
      if (active_isa() != Isa::Scalar) i = quantize_q8k32_blocks_avx2(x, b, cols / QK_K);
      for (x += QK_K * i; i < cols / QK_K; ++i, x += QK_K) {
        b[i].d = quantize_block(x, QK_K, b[i].qs);
        for (int j = 0; j < 8; ++j) {
          int s = 0;
          for (int k = 0; k < 32; ++k) s += b[i].qs[32 * j + k];
          b[i].sums[j] = static_cast<int16_t>(s);
        }
      }
      return;
    }
    default: std::memcpy(dst, x, static_cast<size_t>(cols) * sizeof(float));
  }
}

// Blocks of 256 values with one scale d and quants qs (BlockQ8_K, ActQ8K32).
template <class Block>
static void dequantize_super_blocks(const Block* b, float* x, int64_t cols) {
  for (int64_t i = 0; i < cols; ++i) x[i] = b[i / QK_K].d * b[i / QK_K].qs[i % QK_K];
}

void dequantize_activation_row(ActFormat f, const void* src, float* x, int64_t cols) {
  switch (f) {
    case ActFormat::Q8:
    case ActFormat::Q8S16: {  // d and qs sit at the same places in both
      auto* b = static_cast<const ActQ8*>(src);
      for (int64_t i = 0; i < cols; ++i) x[i] = b[i / 32].d * b[i / 32].qs[i % 32];
      return;
    }
    case ActFormat::Q8K: return dequantize_super_blocks(static_cast<const BlockQ8_K*>(src), x, cols);
    case ActFormat::Q8K32: return dequantize_super_blocks(static_cast<const ActQ8K32*>(src), x, cols);
    default: std::memcpy(x, src, static_cast<size_t>(cols) * sizeof(float));
  }
}

}  // namespace mlamoe::kernels
