// 256-bit kernels shared by the AVX2 and AVX-512 files. The including file defines,
// in an anonymous namespace and before including this header, the integer primitive
// that differs between them:
//   __m256i dpbusd(acc, u, s)             acc + Σ4 u8·s8 per int32 lane
//   __m256i make_scale(int lo, int hi)    a per-lane multiplier: lo for bytes 0-15, hi for 16-31
//   __m256i dpbusd_scaled(acc, u, s, sc)  acc + sc · Σ4 u8·s8 (lane-wise)
//   constexpr int kTokenGroup             tokens sharing one decoded weight block
// AVX2 builds these from vpmaddubsw/vpmaddwd, AVX-512 from VNNI's vpdpbusd.
// Weights are always the unsigned operand (Q4/Q5/Q6 quants are non-negative; Q8_0 uses
// |w| with the sign moved onto the activation), activations in [-127, 127].
#pragma once
#include <immintrin.h>

#include <cstring>

#include "kernels/act_quant.h"
#include "kernels/kernel_table.h"
#include "kernels/tiling.h"

namespace {

using namespace mlamoe;
using namespace mlamoe::kernels;

inline float half(uint16_t h) { return _cvtsh_ss(h); }

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline __m256i nibbles(__m128i v) {  // bytes 0-15: low nibbles, 16-31: high nibbles
  const __m128i m = _mm_set1_epi8(0x0F);
  return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(v, 4), m), _mm_and_si128(v, m));
}

inline __m256i load256(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

template <int T>
inline void finish(const __m256* acc, const float* extra, float* out) {
  for (int t = 0; t < T; ++t) out[t] = hsum(acc[t]) + (extra ? extra[t] : 0.f);
}

// Blocks of 32 carry one float scale each, so every block ends in cvt + fma into the
// token's accumulator. With few tokens that fma chain (4-cycle latency) would be the
// bottleneck, so blocks rotate over kChains<T> independent accumulators per token.
template <int T>
constexpr int kChains = T == 1 ? 4 : T == 2 ? 2 : 1;

template <int T, class Block, class Body>
inline void blocks32(const Block* w, int64_t nb, float* out, Body&& body) {
  constexpr int C = kChains<T>;
  __m256 acc[C][T];
  for (int c = 0; c < C; ++c)
    for (int t = 0; t < T; ++t) acc[c][t] = _mm256_setzero_ps();
  int64_t b = 0;
  for (; b + C <= nb; b += C)
    for (int c = 0; c < C; ++c) body(w[b + c], b + c, acc[c]);
  for (; b < nb; ++b) body(w[b], b, acc[0]);
  for (int c = 1; c < C; ++c)
    for (int t = 0; t < T; ++t) acc[0][t] = _mm256_add_ps(acc[0][t], acc[c][t]);
  finish<T>(acc[0], nullptr, out);
}

struct SimdQ8_0 {
  template <int T>
  static void dot(const uint8_t* wr, int64_t nb, const uint8_t* const* xs, float* out) {
    blocks32<T>(reinterpret_cast<const BlockQ8_0*>(wr), nb, out, [xs](const BlockQ8_0& w, int64_t b, __m256* acc) {
      const __m256i q = load256(w.qs);
      const __m256i u = _mm256_abs_epi8(q);
      const __m256 dw = _mm256_set1_ps(half(w.d));
      for (int t = 0; t < T; ++t) {
        const ActQ8& a = reinterpret_cast<const ActQ8*>(xs[t])[b];
        const __m256i p = dpbusd(_mm256_setzero_si256(), u, _mm256_sign_epi8(load256(a.qs), q));
        acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_mul_ps(dw, _mm256_broadcast_ss(&a.d)), acc[t]);
      }
    });
  }
};

// Q4_0 as signed (q - 8) with the Q8_0 sign trick: every int32 lane then holds an exact
// partial sum of the block's true products, so float rounding stays relative to them
// (subtracting 8·Σx in one lane instead can cancel catastrophically across lanes).
struct SimdQ4_0 {
  template <int T>
  static void dot(const uint8_t* wr, int64_t nb, const uint8_t* const* xs, float* out) {
    const __m256i eight = _mm256_set1_epi8(8);
    blocks32<T>(reinterpret_cast<const BlockQ4_0*>(wr), nb, out, [xs, eight](const BlockQ4_0& w, int64_t b, __m256* acc) {
      const __m256i q = _mm256_sub_epi8(nibbles(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w.qs))), eight);
      const __m256i u = _mm256_abs_epi8(q);
      const __m256 dw = _mm256_set1_ps(half(w.d));
      for (int t = 0; t < T; ++t) {
        const ActQ8& a = reinterpret_cast<const ActQ8*>(xs[t])[b];
        const __m256i p = dpbusd(_mm256_setzero_si256(), u, _mm256_sign_epi8(load256(a.qs), q));
        acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_mul_ps(dw, _mm256_broadcast_ss(&a.d)), acc[t]);
      }
    });
  }
};

// Σ_j m_j · (bsums[2j] + bsums[2j+1]) as 8 int32 lanes: mins repeated per 16-sum.
inline __m256i min_terms(const BlockQ8_K& a, __m256i mins16) {
  return _mm256_madd_epi16(load256(a.bsums), mins16);
}

template <bool kHighBit>
struct SimdQ45_K {
  using Block = std::conditional_t<kHighBit, BlockQ5_K, BlockQ4_K>;
  template <int T>
  static void dot(const uint8_t* wr, int64_t nb, const uint8_t* const* xs, float* out) {
    auto* w = reinterpret_cast<const Block*>(wr);
    __m256 acc[T];
    for (int t = 0; t < T; ++t) acc[t] = _mm256_setzero_ps();
    const __m256i low4 = _mm256_set1_epi8(0x0F), one = _mm256_set1_epi8(1);
    for (int64_t b = 0; b < nb; ++b) {
      uint8_t sc[8], m[8];
      unpack_k_scales(w[b].scales, sc, m);
      __m256i isum[T];
      for (int t = 0; t < T; ++t) isum[t] = _mm256_setzero_si256();
      __m256i hb = _mm256_setzero_si256();
      if constexpr (kHighBit) hb = load256(w[b].qh);
      for (int j = 0; j < 4; ++j) {
        const __m256i v = load256(w[b].qs + 32 * j);
        __m256i u0 = _mm256_and_si256(v, low4), u1 = _mm256_and_si256(_mm256_srli_epi16(v, 4), low4);
        if constexpr (kHighBit) {
          u0 = _mm256_or_si256(u0, _mm256_slli_epi16(_mm256_and_si256(hb, one), 4));
          u1 = _mm256_or_si256(u1, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 1), one), 4));
          hb = _mm256_srli_epi16(hb, 2);
        }
        const __m256i s0 = make_scale(sc[2 * j], sc[2 * j]), s1 = make_scale(sc[2 * j + 1], sc[2 * j + 1]);
        for (int t = 0; t < T; ++t) {
          const int8_t* q = reinterpret_cast<const BlockQ8_K*>(xs[t])[b].qs + 64 * j;
          isum[t] = dpbusd_scaled(isum[t], u0, load256(q), s0);
          isum[t] = dpbusd_scaled(isum[t], u1, load256(q + 32), s1);
        }
      }
      const __m256i mins16 = _mm256_setr_epi16(m[0], m[0], m[1], m[1], m[2], m[2], m[3], m[3], m[4], m[4],
                                               m[5], m[5], m[6], m[6], m[7], m[7]);
      const float d = half(w[b].d), dmin = half(w[b].dmin);
      for (int t = 0; t < T; ++t) {
        const BlockQ8_K& a = reinterpret_cast<const BlockQ8_K*>(xs[t])[b];
        acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[t]), _mm256_set1_ps(d * a.d), acc[t]);
        acc[t] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(min_terms(a, mins16)), _mm256_set1_ps(dmin * a.d), acc[t]);
      }
    }
    finish<T>(acc, nullptr, out);
  }
};

// Q6_K as signed (q - 32) with the sign trick, like Q4_0: lanes hold exact partial
// sums of true products, no "-32·Σx" correction that could cancel across lanes.
struct SimdQ6_K {
  template <int T>
  static void dot(const uint8_t* wr, int64_t nb, const uint8_t* const* xs, float* out) {
    auto* w = reinterpret_cast<const BlockQ6_K*>(wr);
    __m256 acc[T];
    for (int t = 0; t < T; ++t) acc[t] = _mm256_setzero_ps();
    const __m256i low4 = _mm256_set1_epi8(0x0F), low2 = _mm256_set1_epi8(3), m32 = _mm256_set1_epi8(32);
    for (int64_t b = 0; b < nb; ++b) {
      const int8_t* sc = w[b].scales;
      __m256i isum[T];
      for (int t = 0; t < T; ++t) isum[t] = _mm256_setzero_si256();
      for (int h = 0; h < 2; ++h) {
        const __m256i l0 = load256(w[b].ql + 64 * h), l1 = load256(w[b].ql + 64 * h + 32);
        const __m256i qh = load256(w[b].qh + 32 * h);
        const __m256i q[4] = {
            _mm256_or_si256(_mm256_and_si256(l0, low4), _mm256_slli_epi16(_mm256_and_si256(qh, low2), 4)),
            _mm256_or_si256(_mm256_and_si256(l1, low4), _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), low2), 4)),
            _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), low4), _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), low2), 4)),
            _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), low4), _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), low2), 4))};
        for (int k = 0; k < 4; ++k) {
          const __m256i qs = _mm256_sub_epi8(q[k], m32), u = _mm256_abs_epi8(qs);
          const __m256i s = make_scale(sc[8 * h + 2 * k], sc[8 * h + 2 * k + 1]);
          for (int t = 0; t < T; ++t) {
            const int8_t* x = reinterpret_cast<const BlockQ8_K*>(xs[t])[b].qs + 128 * h + 32 * k;
            isum[t] = dpbusd_scaled(isum[t], u, _mm256_sign_epi8(load256(x), qs), s);
          }
        }
      }
      const float d = half(w[b].d);
      for (int t = 0; t < T; ++t) {
        const BlockQ8_K& a = reinterpret_cast<const BlockQ8_K*>(xs[t])[b];
        acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[t]), _mm256_set1_ps(d * a.d), acc[t]);
      }
    }
    finish<T>(acc, nullptr, out);
  }
};

// Float weights: 8 columns per step, converted to float32 in registers. Each token's
// steps rotate over kFloatChains accumulators: one fma chain had held a core to 8.7
// GMAC/s on F32 weights in cache (kernels_bench f32/avx512/n1/t1/hot), below its share
// of the read bandwidth. The chains are the same whatever the number of tokens (taken
// two at a time, each pair loading a weight vector once), so a token's sums do not
// depend on the batch it came in: a prompt's cached rows equal those of the same
// tokens in a longer one (PrefixCacheFile's shared blocks).
constexpr int kFloatChains = 4;
template <__m256 (*Load8)(const uint8_t*, int64_t), float (*Load1)(const uint8_t*, int64_t)>
struct SimdFloat {
  template <int T>
  static void dot(const uint8_t* wr, int64_t cols, const uint8_t* const* xs, float* out) {
    for (int t0 = 0; t0 < T; t0 += 2) {
      if (T - t0 >= 2) dot_tokens<2>(wr, cols, xs + t0, out + t0);
      else dot_tokens<1>(wr, cols, xs + t0, out + t0);
    }
  }

 private:
  template <int T>
  static void dot_tokens(const uint8_t* wr, int64_t cols, const uint8_t* const* xs, float* out) {
    constexpr int C = kFloatChains;
    __m256 acc[C][T];
    for (int k = 0; k < C; ++k)
      for (int t = 0; t < T; ++t) acc[k][t] = _mm256_setzero_ps();
    const auto step = [&](int64_t c, __m256* a) {
      const __m256 wv = Load8(wr, c);
      for (int t = 0; t < T; ++t) a[t] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(reinterpret_cast<const float*>(xs[t]) + c), a[t]);
    };
    int64_t c = 0;
    for (; c + 8 * C <= cols; c += 8 * C)
      for (int k = 0; k < C; ++k) step(c + 8 * k, acc[k]);
    for (; c + 8 <= cols; c += 8) step(c, acc[0]);
    for (int k = 1; k < C; ++k)
      for (int t = 0; t < T; ++t) acc[0][t] = _mm256_add_ps(acc[0][t], acc[k][t]);
    float tail[T] = {};
    for (; c < cols; ++c) {
      const float wv = Load1(wr, c);
      for (int t = 0; t < T; ++t) tail[t] += wv * reinterpret_cast<const float*>(xs[t])[c];
    }
    finish<T>(acc[0], tail, out);
  }
};
__m256 f32x8(const uint8_t* p, int64_t i) { return _mm256_loadu_ps(reinterpret_cast<const float*>(p) + i); }
__m256 f16x8(const uint8_t* p, int64_t i) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 2 * i))); }
__m256 bf16x8(const uint8_t* p, int64_t i) {
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 2 * i))), 16));
}
float f32x1(const uint8_t* p, int64_t i) { float v; std::memcpy(&v, p + 4 * i, 4); return v; }
float f16x1(const uint8_t* p, int64_t i) { uint16_t v; std::memcpy(&v, p + 2 * i, 2); return half(v); }
float bf16x1(const uint8_t* p, int64_t i) {
  uint32_t v = 0;
  std::memcpy(reinterpret_cast<uint8_t*>(&v) + 2, p + 2 * i, 2);
  float f;
  std::memcpy(&f, &v, 4);
  return f;
}

// The read-bandwidth probe's stream. It may prefetch 2 KB ahead like the decode kernel
// (tiled_avx512.cpp): on some hosts a core then keeps more misses in flight, on others
// (AMD Zen 4) its own stream prefetchers do better alone, so the probe takes both.
uint64_t simd_stream_sum(const uint8_t* p, size_t bytes, bool prefetch) {
  __m256i s0 = _mm256_setzero_si256(), s1 = s0, s2 = s0, s3 = s0;
  for (size_t i = 0; i + 128 <= bytes; i += 128) {
    if (prefetch) {
      _mm_prefetch(reinterpret_cast<const char*>(p + i + 2048), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(p + i + 2048 + 64), _MM_HINT_T0);
    }
    s0 = _mm256_add_epi64(s0, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i)));
    s1 = _mm256_add_epi64(s1, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 32)));
    s2 = _mm256_add_epi64(s2, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 64)));
    s3 = _mm256_add_epi64(s3, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 96)));
  }
  alignas(32) uint64_t lanes[4];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), _mm256_add_epi64(_mm256_add_epi64(s0, s1), _mm256_add_epi64(s2, s3)));
  return lanes[0] + lanes[1] + lanes[2] + lanes[3];
}

template <__m256 (*Load8)(const uint8_t*, int64_t), float (*Load1)(const uint8_t*, int64_t)>
void simd_widen(const uint8_t* src, float* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, Load8(src, i));
  for (; i < n; ++i) dst[i] = Load1(src, i);
}

constexpr int G = kTokenGroup;  // from the including file
const KernelTable simd_table{tiled_matmul<SimdQ8_0, G>,
                             tiled_matmul<SimdQ4_0, G>,
                             tiled_matmul<SimdQ45_K<false>, G>,
                             tiled_matmul<SimdQ45_K<true>, G>,
                             tiled_matmul<SimdQ6_K, G>,
                             tiled_matmul<SimdFloat<f16x8, f16x1>, G>,
                             tiled_matmul<SimdFloat<bf16x8, bf16x1>, G>,
                             tiled_matmul<SimdFloat<f32x8, f32x1>, G>,
                             simd_stream_sum,
                             simd_widen<f16x8, f16x1>,
                             simd_widen<bf16x8, bf16x1>};

}  // namespace
