// The transposed product over Tiles16 weights (tiled.h), one token:
//   y[c] = Σ_r x[r] · W[r][c]
// MLA's absorbed query W_UK^T q_nope from a legacy attn_kv_b, whose W_UK rows are tiled
// for the naive path's keys. Here the scales run along the summed dimension (one per row
// and block), so no integer dot product can take the sum: each weight is widened to
// float and multiplied by its row's coefficient x[r] · scale[r] (an axpy over rows, in
// float, with no quantization of x). A tile vector is 16 rows × 4 columns, so a column's
// 16 rows sit in the lanes of one register once its byte is shifted out; 16 columns
// accumulate over all tiles in 16 registers, and one transpose-and-add turns them into
// 16 sums. The unsigned offset (8, 128, 32) comes off each column as
// offset · Σ_r coefficient.
// No standard-library templates here (see tiled_avx512.cpp).
#include <immintrin.h>

#include "kernels/tiled.h"
#include "kernels/tiled_avx512.h"

namespace mlamoe::kernels {
namespace {

// The primitives tiled_transposed_simd.h takes.
inline __m512i srli32(__m512i v, int n) { return _mm512_srli_epi32(v, n); }
inline __m512i mask32(__m512i v, int bits) { return _mm512_and_si512(v, _mm512_set1_epi32((1 << bits) - 1)); }
inline __m512 fmadd(__m512 a, __m512 b, __m512 c) { return _mm512_fmadd_ps(a, b, c); }
inline __m512 to_float(__m512i v) { return _mm512_cvtepi32_ps(v); }
}  // namespace
}  // namespace mlamoe::kernels

#include "kernels/tiled_transposed_simd.h"

namespace mlamoe::kernels {
namespace {

// out[j] = Σ lanes of a[j], j < 16: four rounds of shuffles and adds.
inline __m512 sum_each(const __m512* a) {
  __m512 x[8], y[4], z[2];
  for (int k = 0; k < 8; ++k)  // lanes 0-7: a[2k], 8-15: a[2k+1]
    x[k] = _mm512_add_ps(_mm512_shuffle_f32x4(a[2 * k], a[2 * k + 1], 0x44), _mm512_shuffle_f32x4(a[2 * k], a[2 * k + 1], 0xEE));
  for (int m = 0; m < 4; ++m)  // 128-bit quarter k: a[4m + k]
    y[m] = _mm512_add_ps(_mm512_shuffle_f32x4(x[2 * m], x[2 * m + 1], 0x88), _mm512_shuffle_f32x4(x[2 * m], x[2 * m + 1], 0xDD));
  for (int p = 0; p < 2; ++p)  // quarter k, elements 0-1: a[8p + k], 2-3: a[8p + 4 + k]
    z[p] = _mm512_add_ps(_mm512_shuffle_ps(y[2 * p], y[2 * p + 1], 0x44), _mm512_shuffle_ps(y[2 * p], y[2 * p + 1], 0xEE));
  // quarter k, element i: a[4i + k]
  const __m512 t = _mm512_add_ps(_mm512_shuffle_ps(z[0], z[1], 0x88), _mm512_shuffle_ps(z[0], z[1], 0xDD));
  return _mm512_permutexvar_ps(_mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15), t);
}

inline float sum_lanes(__m512 v) { return _mm512_reduce_add_ps(v); }

// x[16 i .. 16 i + 15] with the rows past `rows` as 0 (the last tile's padding).
inline __m512 tile_x(const float* x, int64_t i, int64_t rows) { return _mm512_maskz_loadu_ps(tile_rows(rows, i), x + i * kTileRows); }

inline __m512 tile_scales(const uint8_t* tb) { return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(tb))); }

// y[16 j .. 16 j + 15] = sum_each(acc) − offset · Σ coefficients.
inline void store_columns(const __m512* acc, __m512 coef_sum, float offset, float* y) {
  _mm512_storeu_ps(y, _mm512_sub_ps(sum_each(acc), _mm512_set1_ps(offset * sum_lanes(coef_sum))));
}

// Q4_0 and Q8_0 (32-column tile-blocks, one fp16 scale per row): 16 columns at a time,
// half a block. Q8_0's groups 4h..4h+3 hold columns 16h + 4g + i as bytes q + 128;
// Q4_0's four groups hold columns 4g + i in their low nibbles and 16 + 4g + i in their
// high ones, as q + 8.
template <bool Q4>
void block32_transposed(const uint8_t* tiles, size_t tile_stride, int64_t n_tiles, int64_t nb, int64_t rows, const float* x, float* y) {
  constexpr size_t block_bytes = kTileScaleBytes + (Q4 ? 4 : 8) * 64;
  constexpr size_t ahead = (kAheadBytes + block_bytes - 1) / block_bytes * block_bytes;
  for (int64_t i = 0; i < n_tiles; ++i) prefetch_lines(tiles + static_cast<size_t>(i) * tile_stride, ahead);
  for (int64_t b = 0; b < nb; ++b)
    for (int half = 0; half < 2; ++half) {
      __m512 acc[16];
      for (int j = 0; j < 16; ++j) acc[j] = _mm512_setzero_ps();
      __m512 coef_sum = _mm512_setzero_ps();
      for (int64_t i = 0; i < n_tiles; ++i) {
        const uint8_t* tb = tiles + static_cast<size_t>(i) * tile_stride + static_cast<size_t>(b) * block_bytes;
        const __m512 coef = _mm512_mul_ps(tile_x(x, i, rows), tile_scales(tb));
        coef_sum = _mm512_add_ps(coef_sum, coef);
        const uint8_t* q = tb + kTileScaleBytes + (Q4 ? 0 : 256 * half);
        if (Q4) {
          if (half == 0) prefetch_lines(tb + ahead, block_bytes);  // the second half reads the same bytes
        } else {
          prefetch_lines(tb + (half ? kTileScaleBytes + 256 : 0) + ahead, half ? 256 : kTileScaleBytes + 256);
        }
        __m512i v[4];
        for (int g = 0; g < 4; ++g) v[g] = _mm512_loadu_si512(q + 64 * g);
        if constexpr (Q4) {
          if (half == 0) accumulate_fields<0, 4, 4>(v, coef, acc);
          else accumulate_fields<4, 4, 4>(v, coef, acc);
        } else {
          accumulate_fields<0, 8, 4>(v, coef, acc);
        }
      }
      store_columns(acc, coef_sum, Q4 ? 8.f : 128.f, y + 32 * b + 16 * half);
    }
}

// Q6_K (256-column tile-blocks; weight = d · sc_j · (q − 32) in sub-block j of 16
// columns): sub-block j at a time. Its groups A, B, C hold q_0..q_2 in their low 6 bits
// and q_3's three 2-bit fields in their top bits (tiled.h); column 16 j + 4 g + i is
// byte i of q_g.
constexpr int64_t kQ6KTileCols = 256;

void q6_k_transposed(const uint8_t* tiles, size_t tile_stride, int64_t n_tiles, int64_t nb, int64_t rows, const float* x, float* y) {
  for (int64_t i = 0; i < n_tiles; ++i)
    prefetch_lines(tiles + static_cast<size_t>(i) * tile_stride, kQ6KTileQuants + kQ6KAheadSubBlocks * kQ6KTileSub);
  for (int64_t b = 0; b < nb; ++b)
    for (int j = 0; j < 16; ++j) {
      __m512 acc[16];
      for (int k = 0; k < 16; ++k) acc[k] = _mm512_setzero_ps();
      __m512 coef_sum = _mm512_setzero_ps();
      for (int64_t i = 0; i < n_tiles; ++i) {
        const uint8_t* tb = tiles + static_cast<size_t>(i) * tile_stride + static_cast<size_t>(b) * kQ6KTileBytes;
        const __m512 sc = _mm512_cvtepi32_ps(
            _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(tb + kQ6KTileSc + kTileRows * j))));
        const __m512 coef = _mm512_mul_ps(_mm512_mul_ps(tile_x(x, i, rows), tile_scales(tb)), sc);
        coef_sum = _mm512_add_ps(coef_sum, coef);
        const uint8_t* q = tb + kQ6KTileQuants + kQ6KTileSub * static_cast<size_t>(j);
        prefetch_lines(q + kQ6KAheadSubBlocks * kQ6KTileSub, kQ6KTileSub);
        __m512i v[4];
        for (int g = 0; g < 3; ++g) v[g] = _mm512_loadu_si512(q + 64 * g);
        v[3] = q6_k_top_fields(v[0], v[1], v[2]);  // its top 2 bits go with the field's mask
        accumulate_fields<0, 6, 4>(v, coef, acc);
      }
      store_columns(acc, coef_sum, 32.f, y + kQ6KTileCols * b + 16 * j);
    }
}

}  // namespace

TiledTransposedFn avx512_tiled_transposed_kernel(GgmlType t) {
  switch (t) {
    case GgmlType::Q4_0: return block32_transposed<true>;
    case GgmlType::Q8_0: return block32_transposed<false>;
    case GgmlType::Q6_K: return q6_k_transposed;
    default: return nullptr;
  }
}

}  // namespace mlamoe::kernels
