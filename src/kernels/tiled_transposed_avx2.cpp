// The transposed product over Tiles16 weights, one token, with AVX2 (the AVX-512 kernel
// and the reasons for its shape are in tiled_transposed_avx512.cpp):
//   y[c] = Σ_r x[r] · W[r][c]
// A 32-byte half of a tile vector is 8 rows × 4 columns. Every row's weight is widened
// to float and multiplied by its coefficient x[r] · scale[r]; a column's rows sit in the
// 8 lanes once its byte is shifted out, and since the rows are summed anyway both halves
// of a tile add into the same lanes. 8 columns accumulate over all tiles in 8 registers
// (16 would leave none for the rest), then one transpose-and-add gives their 8 sums.
// No standard-library templates here (see tiled_avx512.cpp).
#include <immintrin.h>

#include "kernels/tiled.h"
#include "kernels/tiled_avx2.h"

namespace mlamoe::kernels {
namespace {

// The primitives tiled_transposed_simd.h takes.
inline __m256i srli32(__m256i v, int n) { return _mm256_srli_epi32(v, n); }
inline __m256i mask32(__m256i v, int bits) { return _mm256_and_si256(v, _mm256_set1_epi32((1 << bits) - 1)); }
inline __m256 fmadd(__m256 a, __m256 b, __m256 c) { return _mm256_fmadd_ps(a, b, c); }
inline __m256 to_float(__m256i v) { return _mm256_cvtepi32_ps(v); }
}  // namespace
}  // namespace mlamoe::kernels

#include "kernels/tiled_transposed_simd.h"

namespace mlamoe::kernels {
namespace {

// out[j] = Σ lanes of a[j], j < 8.
inline __m256 sum_each(const __m256* a) {
  const __m256 s01 = _mm256_hadd_ps(a[0], a[1]), s23 = _mm256_hadd_ps(a[2], a[3]);
  const __m256 s45 = _mm256_hadd_ps(a[4], a[5]), s67 = _mm256_hadd_ps(a[6], a[7]);
  const __m256 s0123 = _mm256_hadd_ps(s01, s23), s4567 = _mm256_hadd_ps(s45, s67);  // 128-bit half h: a[4k + i] part h
  return _mm256_add_ps(_mm256_permute2f128_ps(s0123, s4567, 0x20), _mm256_permute2f128_ps(s0123, s4567, 0x31));
}

inline float sum_lanes(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}

// x[16 i + 8 h .. + 7] with the rows past `rows` as 0 (the last tile's padding).
inline __m256 half_x(const float* x, int64_t i, int h, int64_t rows) {
  const int64_t r0 = i * kTileRows + h * kHalfRows;
  return _mm256_maskload_ps(x + r0, first_lanes(rows - r0));
}

// y[0..7] = sum_each(acc) − offset · Σ coefficients.
inline void store_columns(const __m256* acc, __m256 coef_sum, float offset, float* y) {
  _mm256_storeu_ps(y, _mm256_sub_ps(sum_each(acc), _mm256_set1_ps(offset * sum_lanes(coef_sum))));
}

// Q4_0 and Q8_0 (32-column tile-blocks, one fp16 scale per row), 8 columns (two groups'
// bytes) at a time. Q8_0's group s holds columns 4s + i as bytes q + 128; Q4_0's group g
// holds columns 4g + i in its low nibbles and 16 + 4g + i in its high ones, as q + 8.
template <bool Q4>
void block32_transposed(const uint8_t* tiles, size_t tile_stride, int64_t n_tiles, int64_t nb, int64_t rows, const float* x, float* y) {
  constexpr size_t block_bytes = kTileScaleBytes + (Q4 ? 4 : 8) * 64;
  constexpr size_t ahead = (kAheadBytes + block_bytes - 1) / block_bytes * block_bytes;
  // Q4_0 is bound by its arithmetic even streamed (half Q8_0's bytes for the same
  // work), and there the prefetches only cost: kernels_bench absorb/*/avx2/16x27x4, µs
  // per head, without / with: q4_0 2.79-2.84 / 3.39-3.58, q8_0 7.99 / 3.66,
  // q6_K 7.73 / 4.41 (hot: 2.7, 2.6, 3.3).
  constexpr bool prefetch = !Q4;
  if (prefetch)
    for (int64_t i = 0; i < n_tiles; ++i) prefetch_lines(tiles + static_cast<size_t>(i) * tile_stride, ahead);
  for (int64_t b = 0; b < nb; ++b)
    for (int part = 0; part < 4; ++part) {  // columns 8 part .. 8 part + 7
      __m256 acc[8];
      for (int j = 0; j < 8; ++j) acc[j] = _mm256_setzero_ps();
      __m256 coef_sum = _mm256_setzero_ps();
      const int group = Q4 ? 2 * (part % 2) : 2 * part;
      for (int64_t i = 0; i < n_tiles; ++i) {
        const uint8_t* tb = tiles + static_cast<size_t>(i) * tile_stride + static_cast<size_t>(b) * block_bytes;
        if (prefetch && part == 0) prefetch_lines(tb + ahead, block_bytes);  // the other parts read the same bytes
        for (int h = 0; h < 2; ++h) {
          const __m256 coef = _mm256_mul_ps(half_x(x, i, h, rows), half_scales(tb, h));
          coef_sum = _mm256_add_ps(coef_sum, coef);
          const uint8_t* q = tb + kTileScaleBytes + 64 * group + 32 * h;
          const __m256i v[2] = {load256(q), load256(q + 64)};
          if constexpr (Q4) {
            if (part < 2) accumulate_fields<0, 4, 2>(v, coef, acc);
            else accumulate_fields<4, 4, 2>(v, coef, acc);
          } else {
            accumulate_fields<0, 8, 2>(v, coef, acc);
          }
        }
      }
      store_columns(acc, coef_sum, Q4 ? 8.f : 128.f, y + 32 * b + 8 * part);
    }
}

// Q6_K (256-column tile-blocks; weight = d · sc_j · (q − 32) in sub-block j of 16
// columns): half a sub-block at a time. Groups A, B, C hold q_0..q_2 in their low 6 bits
// and q_3's three 2-bit fields in their top bits (tiled.h); column 16 j + 4 g + i is
// byte i of q_g.
void q6_k_transposed(const uint8_t* tiles, size_t tile_stride, int64_t n_tiles, int64_t nb, int64_t rows, const float* x, float* y) {
  for (int64_t i = 0; i < n_tiles; ++i)
    prefetch_lines(tiles + static_cast<size_t>(i) * tile_stride, kQ6KTileQuants + kQ6KAheadSubBlocks * kQ6KTileSub);
  for (int64_t b = 0; b < nb; ++b)
    for (int j = 0; j < 16; ++j)
      for (int part = 0; part < 2; ++part) {  // q_0, q_1 or q_2, q_3
        __m256 acc[8];
        for (int k = 0; k < 8; ++k) acc[k] = _mm256_setzero_ps();
        __m256 coef_sum = _mm256_setzero_ps();
        for (int64_t i = 0; i < n_tiles; ++i) {
          const uint8_t* tb = tiles + static_cast<size_t>(i) * tile_stride + static_cast<size_t>(b) * kQ6KTileBytes;
          if (part == 0) prefetch_lines(tb + kQ6KTileQuants + kQ6KTileSub * static_cast<size_t>(j + kQ6KAheadSubBlocks), kQ6KTileSub);
          for (int h = 0; h < 2; ++h) {
            const __m128i sc8 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(tb + kQ6KTileSc + kTileRows * j + kHalfRows * h));
            const __m256 sc = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(sc8));
            const __m256 coef = _mm256_mul_ps(_mm256_mul_ps(half_x(x, i, h, rows), half_scales(tb, h)), sc);
            coef_sum = _mm256_add_ps(coef_sum, coef);
            const uint8_t* q = tb + kQ6KTileQuants + kQ6KTileSub * static_cast<size_t>(j) + 32 * h;
            __m256i v[2];
            if (part == 0) {
              v[0] = load256(q);
              v[1] = load256(q + 64);
            } else {
              const __m256i a = load256(q), bb = load256(q + 64), c = load256(q + 128);
              v[0] = c;
              v[1] = q6_k_top_fields(a, bb, c);
            }
            accumulate_fields<0, 6, 2>(v, coef, acc);
          }
        }
        store_columns(acc, coef_sum, 32.f, y + 256 * b + 16 * j + 8 * part);
      }
}

}  // namespace

TiledTransposedFn avx2_tiled_transposed_kernel(GgmlType t) {
  switch (t) {
    case GgmlType::Q4_0: return block32_transposed<true>;
    case GgmlType::Q8_0: return block32_transposed<false>;
    case GgmlType::Q6_K: return q6_k_transposed;
    default: return nullptr;
  }
}

}  // namespace mlamoe::kernels
