// AVX-VNNI kernels over Tiles16 weights (tiled.h), for CPUs that have the 256-bit
// vpdpbusd but not AVX-512 (Intel client cores from Alder Lake on, Intel's E-core
// Xeons). They take the tiles as the AVX2 kernels do, half a tile vector (8 rows × 4
// columns) at a time, but one vpdpbusd multiplies it by 4 broadcast activation bytes
// and adds the products into each row's int32 sum: no int16 stage, so no bounds to keep
// and no widening, and Q8_0's q + 128 goes in as it is (−128 Σx is the sum's start).
// The int32 sums, and the float steps after them, are those of the AVX-512 and AVX2
// kernels, so Q4_0, Q8_0, Q4_K and Q5_K give the same bits on all three, and Q6_K on
// AVX2 and AVX-VNNI (matmul_test).
#include <immintrin.h>

#include "kernels/act_quant.h"
#include "kernels/tiled.h"
#include "kernels/tiled_avx2.h"
#include "kernels/tiled_avx2_driver.h"

namespace mlamoe::kernels {
namespace {

inline __m256i dpbusd(__m256i acc, __m256i w, const void* x4) { return _mm256_dpbusd_avx_epi32(acc, w, broadcast4(x4)); }

// Q4_0: q in 0..15 against x, the sum starting at −8 Σx. Low and high nibbles (columns
// 0-15 and 16-31) are two chains per half, and the high nibbles go in unshifted (16q):
// their chain's 16× comes out in one shift. Both halves of a block are taken together,
// so each activation broadcast feeds two vpdpbusd (the loads were the bound: one core,
// kernels_bench GMAC/s, one half at a time → both: n1 hot 89 → 102, n64 131 → 141 with
// 2 tokens; 3 spill, 122).
struct Q4_0Tiles {
  using Act = ActQ8;
  static constexpr size_t kBlockBytes = kTileScaleBytes + 4 * 64;
  static constexpr bool kBothHalves = true;
  static constexpr int kTokens = 2;
  template <int NT>
  static void both_halves(const uint8_t* tb, int64_t b, const ActQ8* const* xs, __m256 (*acc)[NT]) {
    const __m256i low4 = _mm256_set1_epi8(0x0F), high4 = _mm256_set1_epi8(static_cast<char>(0xF0));
    __m256i s0[2][NT], s1[2][NT];
    for (int t = 0; t < NT; ++t)
      for (int h = 0; h < 2; ++h) {
        s0[h][t] = _mm256_set1_epi32(xs[t][b].minus_8_sum);
        s1[h][t] = _mm256_setzero_si256();
      }
    for (int g = 0; g < 4; ++g) {
      const __m256i v0 = load256(tb + kTileScaleBytes + 64 * g), v1 = load256(tb + kTileScaleBytes + 64 * g + 32);
      const __m256i l0 = _mm256_and_si256(v0, low4), l1 = _mm256_and_si256(v1, low4);
      const __m256i h0 = _mm256_and_si256(v0, high4), h1 = _mm256_and_si256(v1, high4);
      for (int t = 0; t < NT; ++t) {
        const __m256i xl = broadcast4(xs[t][b].qs + 4 * g), xh = broadcast4(xs[t][b].qs + 16 + 4 * g);
        s0[0][t] = _mm256_dpbusd_avx_epi32(s0[0][t], l0, xl);
        s0[1][t] = _mm256_dpbusd_avx_epi32(s0[1][t], l1, xl);
        s1[0][t] = _mm256_dpbusd_avx_epi32(s1[0][t], h0, xh);
        s1[1][t] = _mm256_dpbusd_avx_epi32(s1[1][t], h1, xh);
      }
    }
    for (int h = 0; h < 2; ++h) {
      const __m256 dw = half_scales(tb, h);
      for (int t = 0; t < NT; ++t) {
        const __m256i sum = _mm256_add_epi32(s0[h][t], _mm256_srai_epi32(s1[h][t], 4));
        acc[h][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum), _mm256_mul_ps(dw, _mm256_set1_ps(xs[t][b].d)), acc[h][t]);
      }
    }
  }
};

// Q8_0: the tiles' q + 128 against x, the sum starting at −128 Σx (16 × ActQ8's −8 Σx).
// One half at a time: with nothing to unpack, sharing broadcasts between halves lost
// (n64 151 → 117–121 GMAC/s).
struct Q8_0Tiles {
  using Act = ActQ8;
  static constexpr size_t kBlockBytes = kTileScaleBytes + 8 * 64;
  static constexpr bool kBothHalves = false;
  static constexpr int kTokens = 4;
  template <int NT>
  static void block(const uint8_t* tb, int half, int64_t b, const ActQ8* const* xs, __m256* acc) {
    __m256i s0[NT], s1[NT];
    for (int t = 0; t < NT; ++t) {
      s0[t] = _mm256_set1_epi32(16 * xs[t][b].minus_8_sum);
      s1[t] = _mm256_setzero_si256();
    }
    for (int s = 0; s < 8; s += 2) {
      const __m256i w0 = load256(tb + kTileScaleBytes + 64 * s + 32 * half);
      const __m256i w1 = load256(tb + kTileScaleBytes + 64 * (s + 1) + 32 * half);
      for (int t = 0; t < NT; ++t) {
        s0[t] = dpbusd(s0[t], w0, xs[t][b].qs + 4 * s);
        s1[t] = dpbusd(s1[t], w1, xs[t][b].qs + 4 * s + 4);
      }
    }
    const __m256 dw = half_scales(tb, half);
    for (int t = 0; t < NT; ++t)
      acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_add_epi32(s0[t], s1[t])), _mm256_mul_ps(dw, _mm256_set1_ps(xs[t][b].d)), acc[t]);
  }
};

// Q4_K: each 32-column sub-block's Σ q·x in int32, weighted by sc_j in int32; the mins
// are the file's m_j pairs against the activations' pairs of sub-block sums (tiled.h).
// A chunk's bytes hold sub-blocks 2c (low nibbles) and 2c + 1 (high), taken from one
// load; the high nibbles go in unshifted, into their own total, whose 16× comes out in
// one shift: |16 Σ_c sc_j Σ q·x| ≤ 16 · 4 · 63 · 32 · 15 · 127 < 2^28. Both halves
// together, as Q4_0 (n1 hot 83 → 104 GMAC/s, n64 112–125 → 132).
// Q5_K (High): the fifth bits added as 16 (tiled_avx2.h: fifth_bits); 16·31 does not fit
// a byte, so its high nibbles are shifted down.
template <bool High>
struct KQuantTiles {
  using Act = ActQ8K32;
  static constexpr size_t kBlockBytes = High ? kQ5KTileBytes : kQ4KTileBytes;
  static constexpr bool kBothHalves = true;
  static constexpr bool kPackedScales = true;
  static constexpr int kTokens = 2;
  template <int NT>
  static void both_halves(const uint8_t* tb, const uint8_t* scales, int64_t b, const ActQ8K32* const* xs, __m256 (*acc)[NT]) {
    const __m256i low4 = _mm256_set1_epi8(0x0F), high4 = _mm256_set1_epi8(static_cast<char>(0xF0));
    __m256i total_low[2][NT], total_high[2][NT];
    for (int h = 0; h < 2; ++h)
      for (int t = 0; t < NT; ++t) total_low[h][t] = total_high[h][t] = _mm256_setzero_si256();
    for (int c = 0; c < 4; ++c) {
      __m256i low[2][NT], high[2][NT];
      for (int h = 0; h < 2; ++h)
        for (int t = 0; t < NT; ++t) low[h][t] = high[h][t] = _mm256_setzero_si256();
#pragma GCC unroll 8
      for (int g = 0; g < 8; ++g) {
        __m256i w_low[2], w_high[2];  // per half
        for (int h = 0; h < 2; ++h) {
          const __m256i v = load256(tb + k_quant_chunk_at(High, c) + 64 * g + 32 * h);
          w_low[h] = _mm256_and_si256(v, low4);
          w_high[h] = _mm256_and_si256(High ? _mm256_srli_epi16(v, 4) : v, High ? low4 : high4);
          if constexpr (High) {
            w_low[h] = _mm256_add_epi8(w_low[h], fifth_bits(tb, 2 * c, g, h));
            w_high[h] = _mm256_add_epi8(w_high[h], fifth_bits(tb, 2 * c + 1, g, h));
          }
        }
        for (int t = 0; t < NT; ++t) {
          const __m256i xl = broadcast4(xs[t][b].qs + 64 * c + 4 * g), xh = broadcast4(xs[t][b].qs + 64 * c + 32 + 4 * g);
          for (int h = 0; h < 2; ++h) {
            low[h][t] = _mm256_dpbusd_avx_epi32(low[h][t], w_low[h], xl);
            high[h][t] = _mm256_dpbusd_avx_epi32(high[h][t], w_high[h], xh);
          }
        }
      }
      for (int h = 0; h < 2; ++h) {
        const uint8_t* sc = scales + kTileRows * 2 * c + kHalfRows * h;
        const __m256i sc_low = u8_lanes(sc), sc_high = u8_lanes(sc + kTileRows);
        for (int t = 0; t < NT; ++t) {
          total_low[h][t] = _mm256_add_epi32(total_low[h][t], _mm256_mullo_epi32(low[h][t], sc_low));
          total_high[h][t] = _mm256_add_epi32(total_high[h][t], _mm256_mullo_epi32(high[h][t], sc_high));
        }
      }
    }
    for (int h = 0; h < 2; ++h) {
      __m256i mins[NT];
      for (int t = 0; t < NT; ++t) mins[t] = _mm256_setzero_si256();
      for (int p = 0; p < 4; ++p) {
        const __m256i m = min_pairs(scales, h, p);
        for (int t = 0; t < NT; ++t) mins[t] = _mm256_dpwssd_avx_epi32(mins[t], m, broadcast4(xs[t][b].sums + 2 * p));
      }
      const __m256 d = half_scales(tb, h), dmin = half_scales(tb + 2 * kTileRows, h);
      for (int t = 0; t < NT; ++t) {
        const __m256i total = _mm256_add_epi32(total_low[h][t], High ? total_high[h][t] : _mm256_srai_epi32(total_high[h][t], 4));
        acc[h][t] = k_quant_finish(d, dmin, xs[t][b].d, total, mins[t], acc[h][t]);
      }
    }
  }
};

// Q6_K: q in 0..63 against x over each 16-column sub-block, the sum starting at −32 Σx
// (ActQ8S16's half sums), weighted by the signed sc_j in int32. One half at a time: both
// together spilled (n64 97 → 72).
struct Q6KDot {
  static __m256i scales(const uint8_t* sc) { return s8_lanes(sc); }
  static __m256i sub_block(const __m256i* w, const int8_t* q, int16_t sum, __m256i sc) {
    __m256i s01 = dpbusd(_mm256_set1_epi32(-32 * sum), w[0], q), s23 = dpbusd(_mm256_setzero_si256(), w[2], q + 8);
    s01 = dpbusd(s01, w[1], q + 4);
    s23 = dpbusd(s23, w[3], q + 12);
    return _mm256_mullo_epi32(_mm256_add_epi32(s01, s23), sc);
  }
};
using Q6KTiles = Q6KTilesOf<Q6KDot>;

}  // namespace

TiledFn avxvnni_tiled_kernel(GgmlType t, bool decode_prefetch) {
  return tiled_kernel_of<Q4_0Tiles, Q8_0Tiles, KQuantTiles<false>, KQuantTiles<true>, Q6KTiles>(t, decode_prefetch);
}

}  // namespace mlamoe::kernels
