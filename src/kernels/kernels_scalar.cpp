// Portable kernels: the same integer arithmetic the SIMD files vectorize (quantized
// activations, int32 sums per block, one float scale per block), written plainly.
// They are the fallback on CPUs without AVX2 and the readable spec of the SIMD code.
#include <cstring>

#include "format/quant.h"
#include "kernels/act_quant.h"
#include "kernels/kernel_table.h"
#include "kernels/tiling.h"

namespace mlamoe::kernels {
namespace {

struct Q8_0 {
  template <int T>
  static void dot(const uint8_t* wr, int64_t nb, const uint8_t* const* xs, float* out) {
    auto* w = reinterpret_cast<const BlockQ8_0*>(wr);
    float acc[T] = {};
    for (int64_t b = 0; b < nb; ++b) {
      const float dw = fp16_to_fp32(w[b].d);
      for (int t = 0; t < T; ++t) {
        const ActQ8& a = reinterpret_cast<const ActQ8*>(xs[t])[b];
        int32_t s = 0;
        for (int j = 0; j < 32; ++j) s += w[b].qs[j] * a.qs[j];
        acc[t] += static_cast<float>(s) * (dw * a.d);
      }
    }
    for (int t = 0; t < T; ++t) out[t] = acc[t];
  }
};

struct Q4_0 {  // (q - 8) · x = q · x - 8 Σx
  template <int T>
  static void dot(const uint8_t* wr, int64_t nb, const uint8_t* const* xs, float* out) {
    auto* w = reinterpret_cast<const BlockQ4_0*>(wr);
    float acc[T] = {};
    for (int64_t b = 0; b < nb; ++b) {
      const float dw = fp16_to_fp32(w[b].d);
      for (int t = 0; t < T; ++t) {
        const ActQ8& a = reinterpret_cast<const ActQ8*>(xs[t])[b];
        int32_t s = 0;
        for (int j = 0; j < 16; ++j) s += (w[b].qs[j] & 0xF) * a.qs[j] + (w[b].qs[j] >> 4) * a.qs[j + 16];
        acc[t] += static_cast<float>(s + a.minus_8_sum) * (dw * a.d);
      }
    }
    for (int t = 0; t < T; ++t) out[t] = acc[t];
  }
};

// Q4_K and Q5_K: x = d*sc_j*q - dmin*m_j per 32-element sub-block j; the min term is
// dmin * Σ_j m_j * (sum of the activation quants of sub-block j).
template <bool kHighBit>
struct Q45_K {
  using Block = std::conditional_t<kHighBit, BlockQ5_K, BlockQ4_K>;
  template <int T>
  static void dot(const uint8_t* wr, int64_t nb, const uint8_t* const* xs, float* out) {
    auto* w = reinterpret_cast<const Block*>(wr);
    float acc[T] = {};
    for (int64_t b = 0; b < nb; ++b) {
      uint8_t sc[8], m[8], q[QK_K];
      unpack_k_scales(w[b].scales, sc, m);
      for (int j = 0; j < 4; ++j)
        for (int l = 0; l < 32; ++l) {
          uint8_t v = w[b].qs[32 * j + l];
          q[64 * j + l] = v & 0xF;
          q[64 * j + 32 + l] = v >> 4;
          if constexpr (kHighBit) {
            q[64 * j + l] |= ((w[b].qh[l] >> (2 * j)) & 1) << 4;
            q[64 * j + 32 + l] |= ((w[b].qh[l] >> (2 * j + 1)) & 1) << 4;
          }
        }
      const float d = fp16_to_fp32(w[b].d), dmin = fp16_to_fp32(w[b].dmin);
      for (int t = 0; t < T; ++t) {
        const BlockQ8_K& a = reinterpret_cast<const BlockQ8_K*>(xs[t])[b];
        int32_t isum = 0, msum = 0;
        for (int j = 0; j < 8; ++j) {
          int32_t s = 0;
          for (int l = 0; l < 32; ++l) s += q[32 * j + l] * a.qs[32 * j + l];
          isum += sc[j] * s;
          msum += m[j] * (a.bsums[2 * j] + a.bsums[2 * j + 1]);
        }
        acc[t] += static_cast<float>(isum) * (d * a.d) - static_cast<float>(msum) * (dmin * a.d);
      }
    }
    for (int t = 0; t < T; ++t) out[t] = acc[t];
  }
};

struct Q6_K {  // x = d * sc_g * (q - 32) per 16-element group g
  template <int T>
  static void dot(const uint8_t* wr, int64_t nb, const uint8_t* const* xs, float* out) {
    auto* w = reinterpret_cast<const BlockQ6_K*>(wr);
    float acc[T] = {};
    for (int64_t b = 0; b < nb; ++b) {
      uint8_t q[QK_K];
      for (int h = 0; h < 2; ++h) {
        const uint8_t* ql = w[b].ql + 64 * h;
        const uint8_t* qh = w[b].qh + 32 * h;
        uint8_t* o = q + 128 * h;
        for (int l = 0; l < 32; ++l) {
          o[l] = (ql[l] & 0xF) | ((qh[l] & 3) << 4);
          o[l + 32] = (ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4);
          o[l + 64] = (ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4);
          o[l + 96] = (ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4);
        }
      }
      const float d = fp16_to_fp32(w[b].d);
      for (int t = 0; t < T; ++t) {
        const BlockQ8_K& a = reinterpret_cast<const BlockQ8_K*>(xs[t])[b];
        int32_t isum = 0;
        for (int g = 0; g < 16; ++g) {
          int32_t s = 0;
          for (int l = 0; l < 16; ++l) s += q[16 * g + l] * a.qs[16 * g + l];
          isum += w[b].scales[g] * (s - 32 * a.bsums[g]);
        }
        acc[t] += static_cast<float>(isum) * (d * a.d);
      }
    }
    for (int t = 0; t < T; ++t) out[t] = acc[t];
  }
};

template <float (*Load)(const uint8_t*, int64_t)>
struct FloatRow {
  template <int T>
  static void dot(const uint8_t* wr, int64_t cols, const uint8_t* const* xs, float* out) {
    float acc[T] = {};
    for (int64_t c = 0; c < cols; ++c) {
      const float wv = Load(wr, c);
      for (int t = 0; t < T; ++t) acc[t] += wv * reinterpret_cast<const float*>(xs[t])[c];
    }
    for (int t = 0; t < T; ++t) out[t] = acc[t];
  }
};
float load_f32(const uint8_t* p, int64_t i) { float v; std::memcpy(&v, p + 4 * i, 4); return v; }
float load_f16(const uint8_t* p, int64_t i) { uint16_t v; std::memcpy(&v, p + 2 * i, 2); return fp16_to_fp32(v); }
float load_bf16(const uint8_t* p, int64_t i) { uint16_t v; std::memcpy(&v, p + 2 * i, 2); return bf16_to_fp32(v); }

uint64_t stream_sum(const uint8_t* p, size_t bytes, bool /*prefetch*/) {
  uint64_t s = 0;
  for (size_t i = 0; i < bytes; i += 8) {
    uint64_t v;
    std::memcpy(&v, p + i, 8);
    s += v;
  }
  return s;
}

template <float (*Load)(const uint8_t*, int64_t)>
void widen(const uint8_t* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = Load(src, i);
}

}  // namespace

const KernelTable& scalar_kernels() {
  static const KernelTable table{
      tiled_matmul<Q8_0>,          tiled_matmul<Q4_0>,
      tiled_matmul<Q45_K<false>>,  tiled_matmul<Q45_K<true>>,
      tiled_matmul<Q6_K>,          tiled_matmul<FloatRow<load_f16>>,
      tiled_matmul<FloatRow<load_bf16>>, tiled_matmul<FloatRow<load_f32>>,
      stream_sum, widen<load_f16>, widen<load_bf16>};
  return table;
}

}  // namespace mlamoe::kernels
