// The transposed product over Tiles16 weights (tiled.h), one token:
//   y[c] = Σ_r x[r] · W[r][c]
// MLA's absorbed query W_UK^T q_nope from a legacy attn_kv_b, whose W_UK rows are tiled
// for the naive path's keys. The scales run along the summed dimension (one per row and
// block, or sub-block), so they go into the coefficients: a[r] = x[r] · scale[r], and
// y[c] = Σ_r a[r] · (q[r][c] − offset). For each run of 16 columns the a[r] of all rows
// are quantized to int8 with one scale (their largest |a| / 127), and vpdpbusd sums 4
// rows of a column per dword lane: a tile vector (16 rows × 4 columns of bytes) is
// transposed within each 128-bit lane by one vpshufb into 4 columns × 4 rows, so one
// instruction does 64 multiply-adds where widening each weight to float did 16 (with a
// convert each). The offset (8, 128, 32) comes off as offset · Σ_r a_q[r].
// Rounding the coefficients to int8 is the one approximation, as in every product's
// quantized activations: |error| ≤ (max_r |a[r]| / 254) · Σ_r |q[r][c] − offset|.
// No standard-library templates here (see tiled_avx512.cpp).
#include <immintrin.h>

#include <cmath>

#include "kernels/tiled.h"
#include "kernels/tiled_avx512.h"
#include "kernels/tiled_transposed_simd.h"

namespace mlamoe::kernels {
namespace {

// x[16 i .. 16 i + 15] with the rows past `rows` as 0 (the last tile's padding).
inline __m512 tile_x(const float* x, int64_t i, int64_t rows) { return _mm512_maskz_loadu_ps(tile_rows(rows, i), x + i * kTileRows); }

inline __m512 tile_scales(const uint8_t* tb) { return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(tb))); }

// Q4_0 and Q8_0: 32-column tile-blocks, one fp16 scale per row; a run is half a block.
// Q8_0's groups 4h..4h+3 hold columns 16h + 4g + i as bytes q + 128; Q4_0's four groups
// hold columns 4g + i in their low nibbles and 16 + 4g + i in their high ones, as q + 8.
template <bool Q4>
struct Block32Runs {
  static constexpr int kRunsPerBlock = 2;
  static constexpr size_t kBlockBytes = kTileScaleBytes + (Q4 ? 4 : 8) * 64;
  static constexpr float kOffset = Q4 ? 8.f : 128.f;
  static constexpr size_t kAhead = (kAheadBytes + kBlockBytes - 1) / kBlockBytes * kBlockBytes;
  static void prefetch_start(const uint8_t* tile) { prefetch_lines(tile, kAhead); }
  static constexpr bool kSubScales = false;
  static constexpr int kRunsPerVisit = 2;  // the whole block (Q4_0's halves are the same bytes)
  static void quants(const uint8_t* tb, int half, __m512i* w) {
    const uint8_t* q = tb + kTileScaleBytes + (Q4 ? 0 : 256 * half);
    const __m512i low4 = _mm512_set1_epi8(0x0F);
    for (int g = 0; g < 4; ++g) {
      const __m512i v = _mm512_loadu_si512(q + 64 * g);
      w[g] = !Q4 ? v : _mm512_and_si512(half ? _mm512_srli_epi16(v, 4) : v, low4);
    }
  }
};

// Q6_K: 256-column tile-blocks, weight = d · sc_j · (q − 32) in sub-block j of 16
// columns, which is a run. Its groups A, B, C hold q_0..q_2 in their low 6 bits and
// q_3's three 2-bit fields in their top bits (tiled.h); column 16 j + 4 g + i is byte i
// of q_g.
struct Q6KRuns {
  static constexpr int kRunsPerBlock = 16;
  static constexpr size_t kBlockBytes = kQ6KTileBytes;
  static constexpr float kOffset = 32.f;
  static void prefetch_start(const uint8_t* tile) { prefetch_lines(tile, kQ6KTileQuants + kQ6KAheadSubBlocks * kQ6KTileSub); }
  static constexpr bool kSubScales = true;
  // A sub-block a visit, as its scales are its own. Visiting 2 or 4 at once (each with
  // its coefficients) streamed slower: kernels_bench absorb/q6_K 16x27x4, µs a head, 1
  // 3.3, 2 3.8-4.0, 4 4.3-4.5 (the same 1.7 hot).
  static constexpr int kRunsPerVisit = 1;
  static __m512 sub_scales(const uint8_t* tb, int j) {  // sc_j of the 16 rows
    const __m128i sc = _mm_loadu_si128(reinterpret_cast<const __m128i*>(tb + kQ6KTileSc + kTileRows * j));
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(sc));
  }
  static void quants(const uint8_t* tb, int j, __m512i* w) { q6_k_sub_block(tb, j, w); }
};

// Tiles summed with one coefficient scale: a W_UK head (128 rows) is one group; taller
// matrices take several, each adding its float sums in.
constexpr int64_t kGroupTiles = 16;

// 16 columns' sums from four accumulators whose dword (lane ℓ, k) holds column 4g + k's
// share of rows 4ℓ..4ℓ+3: add the four 128-bit lanes of each, in column order.
inline __m512i column_sums(const __m512i* acc) {
  const __m512i x01 = _mm512_add_epi32(_mm512_shuffle_i32x4(acc[0], acc[1], 0x44), _mm512_shuffle_i32x4(acc[0], acc[1], 0xEE));
  const __m512i x23 = _mm512_add_epi32(_mm512_shuffle_i32x4(acc[2], acc[3], 0x44), _mm512_shuffle_i32x4(acc[2], acc[3], 0xEE));
  return _mm512_add_epi32(_mm512_shuffle_i32x4(x01, x23, 0x88), _mm512_shuffle_i32x4(x01, x23, 0xDD));
}

// A group's coefficients a = x · scale rounded to int8 with one scale, each tile's 16
// as vpdpbusd operands (dword ℓ, rows 4ℓ..4ℓ+3, across 128-bit lane ℓ).
struct Coefficients {
  __m512i q[kGroupTiles];
  float scale = 0;  // a ≈ scale · q; 0: all zero; NaN: not finite
  int32_t sum = 0;  // Σ q, for the offset
  void quantize(const __m512* a, int64_t n) {
    const __m512 abs_mask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7FFFFFFF));
    const __m512i spread = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
    __m512 amax = _mm512_setzero_ps();
    for (int64_t i = 0; i < n; ++i) amax = _mm512_max_ps(amax, _mm512_and_ps(a[i], abs_mask));
    const float top = _mm512_reduce_max_ps(amax);
    scale = top < INFINITY ? top / 127.f : NAN;
    sum = 0;
    if (!(top > 0.f && top < INFINITY)) {
      for (int64_t i = 0; i < n; ++i) q[i] = _mm512_setzero_si512();
      return;
    }
    const __m512 to_int = _mm512_set1_ps(127.f / top);
    __m512i total = _mm512_setzero_si512();
    for (int64_t i = 0; i < n; ++i) {
      const __m512i ai = _mm512_cvtps_epi32(_mm512_mul_ps(a[i], to_int));
      total = _mm512_add_epi32(total, ai);
      q[i] = _mm512_permutexvar_epi32(spread, _mm512_zextsi128_si512(_mm512_cvtepi32_epi8(ai)));
    }
    sum = _mm512_reduce_add_epi32(total);
  }
  // 16 columns' integer sums (acc as column_sums takes them) added into out.
  __m512 finish(const __m512i* acc, float offset, __m512 out) const {
    if (scale != scale) return _mm512_set1_ps(NAN);  // NaN or infinity in: NaN out, as the float sum gives
    const __m512i off = _mm512_set1_epi32(static_cast<int32_t>(offset) * sum);
    return _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(column_sums(acc), off)), _mm512_set1_ps(scale), out);
  }
};

// Runs run0 .. run0 + R − 1 of a group's tiles, which share the coefficients c: each
// tile is visited once for all R (adjacent bytes; a head's tiles are read side by side).
template <class Runs, int R, class BlockOf>
inline void add_runs(const Coefficients& c, const BlockOf& block_of, int64_t n, int run0, __m512* out) {
  // Byte 4k + i of each 128-bit lane from byte 4i + k: rows 4ℓ..4ℓ+3 of column k per dword.
  const __m512i transpose = _mm512_broadcast_i32x4(_mm_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15));
  __m512i acc[R][4];
  for (int r = 0; r < R; ++r)
    for (int g = 0; g < 4; ++g) acc[r][g] = _mm512_setzero_si512();
  for (int64_t i = 0; i < n; ++i)
    for (int r = 0; r < R; ++r) {
      __m512i w[4];
      Runs::quants(block_of(i), run0 + r, w);
      for (int g = 0; g < 4; ++g) acc[r][g] = _mm512_dpbusd_epi32(acc[r][g], _mm512_shuffle_epi8(w[g], transpose), c.q[i]);
    }
  for (int r = 0; r < R; ++r) out[r] = c.finish(acc[r], Runs::kOffset, out[r]);
}

// A Runs type gives kRunsPerBlock runs of 16 columns per tile-block, visited
// kRunsPerVisit at a time; the runs of a visit share their coefficients: x · d, times the
// run's sub_scales when kSubScales (so a visit is then one run).
template <class Runs>
void transposed_int8(const uint8_t* tiles, size_t tile_stride, int64_t n_tiles, int64_t nb, int64_t rows, const float* x, float* y) {
  constexpr int R = Runs::kRunsPerVisit;
  static_assert(!Runs::kSubScales || R == 1, "runs with scales of their own take their own coefficients");
  for (int64_t i = 0; i < n_tiles; ++i) Runs::prefetch_start(tiles + static_cast<size_t>(i) * tile_stride);
  for (int64_t b = 0; b < nb; ++b) {
    __m512 out[Runs::kRunsPerBlock];
    for (int run = 0; run < Runs::kRunsPerBlock; ++run) out[run] = _mm512_setzero_ps();
    for (int64_t i0 = 0; i0 < n_tiles; i0 += kGroupTiles) {
      const int64_t n = n_tiles - i0 < kGroupTiles ? n_tiles - i0 : kGroupTiles;
      auto block_of = [&](int64_t i) { return tiles + static_cast<size_t>(i0 + i) * tile_stride + static_cast<size_t>(b) * Runs::kBlockBytes; };
      __m512 xd[kGroupTiles];  // x · the block's scale d, per row
      for (int64_t i = 0; i < n; ++i) xd[i] = _mm512_mul_ps(tile_x(x, i0 + i, rows), tile_scales(block_of(i)));
      for (int run0 = 0; run0 < Runs::kRunsPerBlock; run0 += R) {
        Coefficients c;
        if constexpr (Runs::kSubScales) {
          __m512 a[kGroupTiles];
          for (int64_t i = 0; i < n; ++i) a[i] = _mm512_mul_ps(xd[i], Runs::sub_scales(block_of(i), run0));
          c.quantize(a, n);
        } else {
          c.quantize(xd, n);
        }
        add_runs<Runs, R>(c, block_of, n, run0, out + run0);
      }
    }
    for (int run = 0; run < Runs::kRunsPerBlock; ++run) _mm512_storeu_ps(y + (b * Runs::kRunsPerBlock + run) * 16, out[run]);
  }
}

}  // namespace

TiledTransposedFn avx512_tiled_transposed_kernel(GgmlType t) {
  switch (t) {
    case GgmlType::Q4_0: return transposed_int8<Block32Runs<true>>;
    case GgmlType::Q8_0: return transposed_int8<Block32Runs<false>>;
    case GgmlType::Q6_K: return transposed_int8<Q6KRuns>;
    default: return nullptr;
  }
}

}  // namespace mlamoe::kernels
