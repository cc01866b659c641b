// Int8 VNNI kernels over Tiles16 weights (tiled.h). One vpdpbusd multiplies 16 rows ×
// 4 columns of unsigned weight bytes by 4 activation bytes broadcast to every row, so a
// 32-column block of 16 rows is 8 instructions per token; the block's fp16 scales become
// one vector of 16 floats, and the unsigned offset (8 or 128) is taken out exactly in
// int32 by starting the sum at −offset · Σx. Weights are unpacked once per tile-block and
// reused by the tokens held in registers: up to 8 against one tile, or, in prefill, 5
// (Q4_0/Q8_0: tile_group_dot) or 4 (Q4_K: Q4KTiles::dot_group) against two tiles at once.
// No standard-library templates here: an instantiation compiled with AVX-512 flags could
// be the copy the linker keeps for the whole program.
#include <immintrin.h>

#include <cstring>

#include "kernels/act_quant.h"
#include "kernels/dispatch.h"
#include "kernels/tile_prefetch.h"
#include "kernels/tiled.h"
#include "kernels/tiled_avx512.h"

namespace mlamoe::kernels {
namespace {

struct UnpackQ4_0 {
  static constexpr GgmlType kType = GgmlType::Q4_0;
  static constexpr int kOffset = 8;
  static constexpr size_t kBlockBytes = kTileScaleBytes + 4 * 64;
  // w[s] = 16 rows × columns 4s..4s+3
  static inline void unpack(const uint8_t* q, __m512i* w) {
    const __m512i low4 = _mm512_set1_epi8(0x0F);
    for (int g = 0; g < 4; ++g) {
      const __m512i v = load_once(q + 64 * g);
      w[g] = _mm512_and_si512(v, low4);
      w[g + 4] = _mm512_and_si512(_mm512_srli_epi16(v, 4), low4);
    }
  }
  // Group-column s alone (w[s] of unpack), for kernels that cannot hold all eight.
  static inline __m512i unpack_one(const uint8_t* q, int s) {
    const __m512i v = _mm512_loadu_si512(q + 64 * (s % 4));
    return _mm512_and_si512(s < 4 ? v : _mm512_srli_epi16(v, 4), _mm512_set1_epi8(0x0F));
  }
  // Decode's cheaper form: the high nibbles stay in place (worth 16× their value), which
  // saves the shifts; the products of w[4..7] are then taken out by kHighShift.
  static constexpr int kHighShift = 4;
  static inline void unpack_high_in_place(const uint8_t* q, __m512i* w) {
    const __m512i low4 = _mm512_set1_epi8(0x0F), high4 = _mm512_set1_epi8(static_cast<char>(0xF0));
    for (int g = 0; g < 4; ++g) {
      const __m512i v = load_once(q + 64 * g);
      w[g] = _mm512_and_si512(v, low4);
      w[g + 4] = _mm512_and_si512(v, high4);
    }
  }
};

struct UnpackQ8_0 {
  static constexpr GgmlType kType = GgmlType::Q8_0;
  static constexpr int kOffset = 128;
  static constexpr size_t kBlockBytes = kTileScaleBytes + 8 * 64;
  static inline void unpack(const uint8_t* q, __m512i* w) {
    for (int s = 0; s < 8; ++s) w[s] = _mm512_loadu_si512(q + 64 * s);
  }
  static inline __m512i unpack_one(const uint8_t* q, int s) { return _mm512_loadu_si512(q + 64 * s); }
  static constexpr int kHighShift = 0;
  static inline void unpack_high_in_place(const uint8_t* q, __m512i* w) { unpack(q, w); }
};

// Each kind of tile as the driver below sees it: dot (NT ≥ 2 tokens) and dot_decode.
// (dot's and dot_group's last argument, the K-quants' unpacked scales, is unused here.)
template <class U>
struct Block32Tiles {
  using Act = ActQ8;
  template <int NT>
  static void dot(const uint8_t* tile, int64_t nb, const ActQ8* const* xs, float* const* ys, __mmask16 rows, const uint8_t*);
  template <bool Prefetch>
  static void dot_decode(const uint8_t* tile, int64_t nb, const ActQ8* x, float* y, __mmask16 rows);
  // Prefill's register block: 2 tiles × 5 tokens (20 accumulators, 2 weight vectors).
  // One tile × 8 tokens keeps only 8 dpbusd chains in flight, and a Zen 5 core needs
  // ~12 to issue 2 per cycle (bench/dpbusd_chains_bench: 8 chains 7.4–7.5 G/s, 12 8.3); it
  // also spends a broadcast per dpbusd. kernels_bench GMAC/s, t2, 3 alternating rounds:
  // q8_0 n64 581–610 → 686–705, n512 593–620 → 694–710; q4_0 n64 622–641 → 680–716;
  // 2×6 and 3×4 measured close behind 2×5, 3×3 lower.
  static constexpr int kGroupTiles = 2, kGroupTokens = 5;
  template <int NT>
  static void dot_group(const uint8_t* const* tiles, int64_t nb, const ActQ8* const* xs, float* const* ys, __mmask16 last_rows,
                        const uint8_t* const*);
};

inline __m512i broadcast4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

// acc + w · (the 4 activation bytes at p, broadcast to every row), the broadcast taken
// from memory inside the instruction ({1to16}); from broadcast4 GCC emits a separate
// vpbroadcastd. For Q4_0/Q8_0 decode only: Q4_0's tile-block loop went from 45 to 37
// instructions, and a streamed decode is bound by how far ahead of its loads the core
// can look, not by arithmetic (cache-resident tiles run 3× faster), so fewer
// instructions per byte read faster: decode_vs_loads_bench q4_0 kernel/loads 0.90–0.91
// → 0.93–0.96 (Zen 5, old and new alternating). Measured worse elsewhere, so not used
// there: Q6_K decode 0.84–0.85 → 0.81, Q4_K 0.91–0.93 → 0.89–0.91, and the
// compute-bound prefill kernels (q4_0/q8_0 n64 and n512: 3–8 % fewer GMAC/s).
inline __m512i dpbusd_x4(__m512i acc, __m512i w, const int8_t* p) {
  asm("vpdpbusd %2%{1to16%}, %1, %0" : "+v"(acc) : "v"(w), "m"(*reinterpret_cast<const AliasedInt32*>(p)));
  return acc;
}

// Independent dpbusd chains per token: with few tokens one chain of 8 would wait on
// the instruction's latency, with many the tokens interleave on their own.
template <int NT>
constexpr int kChains = NT <= 3 ? 2 : 1;

// One tile (16 rows, nb blocks) against NT ≥ 2 tokens, each block unpacked once for all.
template <class U, int NT>
void tile_dot(const uint8_t* tile, int64_t nb, const ActQ8* const* xs, float* const* ys, __mmask16 rows) {
  constexpr int C = kChains<NT>;
  __m512 acc[NT];
  for (int t = 0; t < NT; ++t) acc[t] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* tb = tile + static_cast<size_t>(b) * U::kBlockBytes;
    const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(tb)));
    __m512i w[8];
    U::unpack(tb + kTileScaleBytes, w);
    __m512i isum[NT][C];
    for (int t = 0; t < NT; ++t) {
      isum[t][0] = _mm512_set1_epi32(U::kOffset / 8 * xs[t][b].minus_8_sum);
      for (int c = 1; c < C; ++c) isum[t][c] = _mm512_setzero_si512();
    }
    for (int s = 0; s < 8; ++s)
      for (int t = 0; t < NT; ++t)
        isum[t][s % C] = _mm512_dpbusd_epi32(isum[t][s % C], w[s], broadcast4(xs[t][b].qs + 4 * s));
    for (int t = 0; t < NT; ++t) {
      __m512i sum = isum[t][0];
      for (int c = 1; c < C; ++c) sum = _mm512_add_epi32(sum, isum[t][c]);
      acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), _mm512_mul_ps(dw, _mm512_set1_ps(xs[t][b].d)), acc[t]);
    }
  }
  for (int t = 0; t < NT; ++t) _mm512_mask_storeu_ps(ys[t], rows, acc[t]);
}

// TT tiles (16·TT rows) against NT tokens: each activation broadcast feeds the TT tiles'
// dpbusd, and TT·NT chains are in flight. Kept out of line: inlined into tiled_chunk its
// loop came out 7-10 % slower (q8_0 n64/n512, t1/t2, alternating runs).
template <class U, int TT, int NT>
__attribute__((noinline)) void tile_group_dot(const uint8_t* const* tiles, int64_t nb, const ActQ8* const* xs, float* const* ys, __mmask16 last_rows) {
  __m512 acc[TT][NT];
  for (int k = 0; k < TT; ++k)
    for (int t = 0; t < NT; ++t) acc[k][t] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const size_t at = static_cast<size_t>(b) * U::kBlockBytes;
    __m512i isum[TT][NT];
    for (int t = 0; t < NT; ++t) {
      const __m512i init = _mm512_set1_epi32(U::kOffset / 8 * xs[t][b].minus_8_sum);
      for (int k = 0; k < TT; ++k) isum[k][t] = init;
    }
#pragma GCC unroll 8
    for (int s = 0; s < 8; ++s) {
      __m512i w[TT];
      for (int k = 0; k < TT; ++k) w[k] = U::unpack_one(tiles[k] + at + kTileScaleBytes, s);
      for (int t = 0; t < NT; ++t) {
        const __m512i x = broadcast4(xs[t][b].qs + 4 * s);
        for (int k = 0; k < TT; ++k) isum[k][t] = _mm512_dpbusd_epi32(isum[k][t], w[k], x);
      }
    }
    for (int k = 0; k < TT; ++k) {
      const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(tiles[k] + at)));
      for (int t = 0; t < NT; ++t)
        acc[k][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[k][t]), _mm512_mul_ps(dw, _mm512_set1_ps(xs[t][b].d)), acc[k][t]);
    }
  }
  for (int t = 0; t < NT; ++t)
    for (int k = 0; k < TT; ++k) _mm512_mask_storeu_ps(ys[t] + k * kTileRows, k + 1 < TT ? 0xFFFF : last_rows, acc[k][t]);
}

// One tile against one token (decode): streams the tile once, so it prefetches, and
// spends as few instructions per block as it can while the next lines arrive: two
// dpbusd chains (columns 0-15 and 16-31), Q4_0's high nibbles unshifted and the sum's
// 16× taken out with one shift of the chain.
template <class U, bool Prefetch>
void tile_dot_decode(const uint8_t* tile, int64_t nb, const ActQ8* x, float* y, __mmask16 rows) {
  __m512 acc = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* tb = tile + static_cast<size_t>(b) * U::kBlockBytes;
    // Ask for the lines a few blocks ahead so the core keeps misses in flight while it
    // computes, instead of alternating the two.
    prefetch_ahead<Prefetch>(tb, U::kBlockBytes);
    const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(tb)));
    __m512i w[8];
    U::unpack_high_in_place(tb + kTileScaleBytes, w);
    __m512i low = _mm512_set1_epi32(U::kOffset / 8 * x[b].minus_8_sum), high = _mm512_setzero_si512();
    for (int s = 0; s < 4; ++s) {
      low = dpbusd_x4(low, w[s], x[b].qs + 4 * s);
      high = dpbusd_x4(high, w[s + 4], x[b].qs + 16 + 4 * s);
    }
    if constexpr (U::kHighShift > 0) high = _mm512_srai_epi32(high, U::kHighShift);
    acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(low, high)), _mm512_mul_ps(dw, _mm512_set1_ps(x[b].d)), acc);
  }
  _mm512_mask_storeu_ps(y, rows, acc);
}

constexpr int kTokenGroup = 8;
constexpr int64_t kTokenChunk = 64;  // 160 KB of activations: an L2 slice (1 MB) holds them

// Q4_K super-blocks (tiled.h) against ActQ8K32 activations (one scale dx per super-block):
// per sub-block j the vpdpbusd give Σ q·x of 16 rows in int32, weighted by sc_j in int32
// (vpmulld) and summed over the super-block; the mins Σ_j m_j · Σx_j are two sub-blocks
// per vpdpwssd (tiled.h's m pairs against the activations' pairs of sums). So a
// super-block ends in two int32 sums per row and two float multiply-adds:
// d·dx·Σ sc_j Σq·x − dmin·dx·Σ m_j Σx, where the per-32 scaled form spent a convert, two
// scalings and a fused add per sub-block on the sum and as many on the min: kernels_bench
// q4_K/avx512-tiled/n64/t2 (prefill) 1.79–2.13 → 2.20–2.67 GB/s of weights, alternating
// runs. The one-token kernel gained little from it (it was bound by its loads: load_once).
// Q5_K (High) is the same with each sub-block's fifth bits added as 16 under their byte
// mask (tiled.h), one vpaddb per vector: q in 0..31, still unsigned bytes.
template <bool High>
struct KQuantTiles {
  using Act = ActQ8K32;
  static constexpr size_t kBytes = High ? kQ5KTileBytes : kQ4KTileBytes;
  // Group g of sub-block j with its fifth bits, if any: w (q's low 4 bits) + 16 where
  // bit g of the sub-block's plane is set.
  static inline __m512i with_fifth(__m512i w, const uint8_t* tb, int j, int g) {
    if constexpr (!High) return w;
    const __m512i plane = _mm512_loadu_si512(tb + q5_k_plane_at(j));
    const __mmask64 fifth = _mm512_test_epi8_mask(plane, _mm512_set1_epi8(static_cast<char>(1 << g)));
    return _mm512_mask_add_epi8(w, fifth, w, _mm512_set1_epi8(16));
  }
  // (the zero-masked form: GCC 12 warns of the plain one's undefined pass-through here)
  static inline __m512 d_of(const uint8_t* tb, size_t at) {
    return _mm512_maskz_cvtph_ps(0xFFFF, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(tb + at)));
  }
  // The tile-block's scales unpacked (tiled.h) into `scales` (kQ4KScalesBytes): four
  // quarters, each 2-4 operations on the packed vectors.
  static inline void unpack_scales(const uint8_t* tb, uint8_t* scales) {
    const uint8_t* packed = tb + kQ4KTileScales;
    const __m512i p0 = load_once(packed), p1 = load_once(packed + 64), top = load_once(packed + 128);
    // 4 bits from `nibbles`, the 2 at bits 4-5 of `top_bits` above them (16-bit shifts
    // bring neighbouring bits along: the selects and the mask drop them).
    const auto quarter = [](__m512i nibbles, __m512i top_bits) {
      return _mm512_and_si512(_mm512_ternarylogic_epi32(_mm512_set1_epi8(0x0F), nibbles, top_bits, 0xCA), _mm512_set1_epi8(0x3F));
    };
    _mm512_store_si512(scales, quarter(p0, _mm512_slli_epi16(top, 4)));
    _mm512_store_si512(scales + 64, quarter(_mm512_srli_epi16(p0, 4), _mm512_slli_epi16(top, 2)));
    _mm512_store_si512(scales + 128, quarter(p1, top));
    _mm512_store_si512(scales + 192, quarter(_mm512_srli_epi16(p1, 4), _mm512_srli_epi16(top, 2)));
  }
  // sc_j of the 16 rows as int32, from unpack_scales' bytes.
  static inline __m512i sc(const uint8_t* scales, int j) {
    return _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(scales + kTileRows * j)));
  }
  // m_2p, m_2p+1 of the 16 rows as int16 pairs.
  static inline __m512i min_pair(const uint8_t* scales, int p) {
    return _mm512_cvtepu8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(scales + kQ4KScalesMin + 32 * p)));
  }
  static inline __m512i sums_pair(const ActQ8K32& x, int p) {
    int32_t v;
    std::memcpy(&v, x.sums + 2 * p, 4);
    return _mm512_set1_epi32(v);
  }
  // acc += d·dx·total − dmin·dx·mins for one super-block.
  static inline __m512 finish(const uint8_t* tb, float dx, __m512i total, __m512i mins, __m512 acc) {
    const __m512 vdx = _mm512_set1_ps(dx);
    acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(total), _mm512_mul_ps(d_of(tb, 0), vdx), acc);
    return _mm512_fnmadd_ps(_mm512_cvtepi32_ps(mins), _mm512_mul_ps(d_of(tb, 2 * kTileRows), vdx), acc);
  }

  // Two or more tokens: `tile_scales` holds the tile's blocks' scales, unpacked once for
  // all its token groups (tiled_chunk).
  template <int NT>
  static void dot(const uint8_t* tile, int64_t nb, const ActQ8K32* const* xs, float* const* ys, __mmask16 rows,
                  const uint8_t* tile_scales) {
    constexpr int C = kChains<NT>;
    const __m512i low4 = _mm512_set1_epi8(0x0F);
    __m512 acc[NT];
    for (int t = 0; t < NT; ++t) acc[t] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
      const uint8_t* tb = tile + static_cast<size_t>(b) * kBytes;
      const uint8_t* scales = tile_scales + static_cast<size_t>(b) * kQ4KScalesBytes;
      __m512i total[NT];
      for (int t = 0; t < NT; ++t) total[t] = _mm512_setzero_si512();
      for (int j = 0; j < 8; ++j) {  // sub-block j: nibbles of chunk j/2, low for even j
        const uint8_t* q = tb + k_quant_chunk_at(High, j / 2);
        __m512i w[8];
        for (int g = 0; g < 8; ++g) {
          const __m512i v = _mm512_loadu_si512(q + 64 * g);
          w[g] = with_fifth(_mm512_and_si512(j % 2 ? _mm512_srli_epi16(v, 4) : v, low4), tb, j, g);
        }
        __m512i isum[NT][C];
        for (int t = 0; t < NT; ++t)
          for (int c = 0; c < C; ++c) isum[t][c] = _mm512_setzero_si512();
        for (int g = 0; g < 8; ++g)
          for (int t = 0; t < NT; ++t)
            isum[t][g % C] = _mm512_dpbusd_epi32(isum[t][g % C], w[g], broadcast4(xs[t][b].qs + 32 * j + 4 * g));
        const __m512i sc_j = sc(scales, j);
        for (int t = 0; t < NT; ++t) {
          __m512i sum = isum[t][0];
          for (int c = 1; c < C; ++c) sum = _mm512_add_epi32(sum, isum[t][c]);
          total[t] = _mm512_add_epi32(total[t], _mm512_mullo_epi32(sum, sc_j));
        }
      }
      __m512i m[4];
      for (int p = 0; p < 4; ++p) m[p] = min_pair(scales, p);
      for (int t = 0; t < NT; ++t) {
        __m512i mins = _mm512_setzero_si512();
        for (int p = 0; p < 4; ++p) mins = _mm512_dpwssd_epi32(mins, m[p], sums_pair(xs[t][b], p));
        acc[t] = finish(tb, xs[t][b].d, total[t], mins, acc[t]);
      }
    }
    for (int t = 0; t < NT; ++t) _mm512_mask_storeu_ps(ys[t], rows, acc[t]);
  }

  // Prefill's register block, as Block32Tiles': 2 tiles × 4 tokens (each sub-block's
  // sums, the super-block's totals and the accumulators: 24 registers).
  static constexpr int kGroupTiles = 2, kGroupTokens = 4;
  template <int NT>
  __attribute__((noinline)) static void dot_group(const uint8_t* const* tiles, int64_t nb, const ActQ8K32* const* xs,
                                                  float* const* ys, __mmask16 last_rows, const uint8_t* const* tile_scales) {
    constexpr int TT = kGroupTiles;
    const __m512i low4 = _mm512_set1_epi8(0x0F);
    __m512 acc[TT][NT];
    for (int k = 0; k < TT; ++k)
      for (int t = 0; t < NT; ++t) acc[k][t] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
      const size_t at = static_cast<size_t>(b) * kBytes;
      const uint8_t* scales[TT];
      for (int k = 0; k < TT; ++k) scales[k] = tile_scales[k] + static_cast<size_t>(b) * kQ4KScalesBytes;
      __m512i total[TT][NT];
      for (int k = 0; k < TT; ++k)
        for (int t = 0; t < NT; ++t) total[k][t] = _mm512_setzero_si512();
      for (int j = 0; j < 8; ++j) {  // sub-block j: nibbles of chunk j/2, low for even j
        const size_t q = at + k_quant_chunk_at(High, j / 2);
        __m512i isum[TT][NT];
        for (int k = 0; k < TT; ++k)
          for (int t = 0; t < NT; ++t) isum[k][t] = _mm512_setzero_si512();
#pragma GCC unroll 8
        for (int g = 0; g < 8; ++g) {
          __m512i w[TT];
          for (int k = 0; k < TT; ++k) {
            const __m512i v = _mm512_loadu_si512(tiles[k] + q + 64 * g);
            w[k] = with_fifth(_mm512_and_si512(j % 2 ? _mm512_srli_epi16(v, 4) : v, low4), tiles[k] + at, j, g);
          }
          for (int t = 0; t < NT; ++t) {
            const __m512i x = broadcast4(xs[t][b].qs + 32 * j + 4 * g);
            for (int k = 0; k < TT; ++k) isum[k][t] = _mm512_dpbusd_epi32(isum[k][t], w[k], x);
          }
        }
        for (int k = 0; k < TT; ++k) {
          const __m512i sc_j = sc(scales[k], j);
          for (int t = 0; t < NT; ++t) total[k][t] = _mm512_add_epi32(total[k][t], _mm512_mullo_epi32(isum[k][t], sc_j));
        }
      }
      for (int k = 0; k < TT; ++k) {
        const uint8_t* tb = tiles[k] + at;
        for (int t = 0; t < NT; ++t) {
          __m512i mins = _mm512_setzero_si512();
          for (int p = 0; p < 4; ++p) mins = _mm512_dpwssd_epi32(mins, min_pair(scales[k], p), sums_pair(xs[t][b], p));
          acc[k][t] = finish(tb, xs[t][b].d, total[k][t], mins, acc[k][t]);
        }
      }
    }
    for (int t = 0; t < NT; ++t)
      for (int k = 0; k < TT; ++k) _mm512_mask_storeu_ps(ys[t] + k * kTileRows, k + 1 < TT ? 0xFFFF : last_rows, acc[k][t]);
  }

  // One token: prefetches as Block32Tiles' decode does; each 64-byte group feeds both
  // sub-blocks of its chunk, Q4_K's high nibbles unshifted (16× their value, exact in
  // int32, so their weighted sum is shifted back once per super-block; Q5_K's fifth bit
  // would not fit above them, so its high nibbles are shifted down).
  template <bool Prefetch>
  static void dot_decode(const uint8_t* tile, int64_t nb, const ActQ8K32* x, float* y, __mmask16 rows) {
    const __m512i low4 = _mm512_set1_epi8(0x0F), high4 = _mm512_set1_epi8(static_cast<char>(0xF0));
    __m512 acc = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
      const uint8_t* tb = tile + static_cast<size_t>(b) * kBytes;
      prefetch_ahead<Prefetch>(tb, kBytes);
      alignas(64) uint8_t scales[kQ4KScalesBytes];
      unpack_scales(tb, scales);
      const ActQ8K32& xb = x[b];
      __m512i total_low = _mm512_setzero_si512(), total_high = total_low;  // even, odd sub-blocks
      for (int c = 0; c < 4; ++c) {
        const uint8_t* q = tb + k_quant_chunk_at(High, c);
        const int8_t *x_low = xb.qs + 64 * c, *x_high = x_low + 32;
        __m512i low[2] = {_mm512_setzero_si512(), _mm512_setzero_si512()}, high[2] = {low[0], low[0]};
        for (int g = 0; g < 8; ++g) {
          const __m512i v = load_once(q + 64 * g);
          const __m512i w_low = with_fifth(_mm512_and_si512(v, low4), tb, 2 * c, g);
          const __m512i w_high = High ? with_fifth(_mm512_and_si512(_mm512_srli_epi16(v, 4), low4), tb, 2 * c + 1, g)
                                      : _mm512_and_si512(v, high4);
          low[g % 2] = _mm512_dpbusd_epi32(low[g % 2], w_low, broadcast4(x_low + 4 * g));
          high[g % 2] = _mm512_dpbusd_epi32(high[g % 2], w_high, broadcast4(x_high + 4 * g));
        }
        total_low = _mm512_add_epi32(total_low, _mm512_mullo_epi32(_mm512_add_epi32(low[0], low[1]), sc(scales, 2 * c)));
        total_high = _mm512_add_epi32(total_high, _mm512_mullo_epi32(_mm512_add_epi32(high[0], high[1]), sc(scales, 2 * c + 1)));
      }
      __m512i mins = _mm512_setzero_si512();
      for (int p = 0; p < 4; ++p) mins = _mm512_dpwssd_epi32(mins, min_pair(scales, p), sums_pair(xb, p));
      acc = finish(tb, xb.d, _mm512_add_epi32(total_low, High ? total_high : _mm512_srai_epi32(total_high, 4)), mins, acc);
    }
    _mm512_mask_storeu_ps(y, rows, acc);
  }
};
using Q4KTiles = KQuantTiles<false>;
using Q5KTiles = KQuantTiles<true>;

// Q6_K super-blocks (tiled.h): sub-block j's 16 columns of 16 rows are 4 vectors of
// 6-bit q: three are a mask of the groups A, B, C, the fourth is the three top fields
// gathered. Each chain of 4 vpdpbusd starts at −32·Σx over the 16 columns (ActQ8S16's
// half sums), which takes the offset out exactly in int32, and is weighted by
// d·sc_j · dx.
struct Q6KTiles {
  using Act = ActQ8;  // read as ActQ8S16 (the same bytes with the sum split)
  static inline const ActQ8S16& act(const ActQ8* x) { return *reinterpret_cast<const ActQ8S16*>(x); }
  static inline void unpack(const uint8_t* tb, int j, __m512i* w) { q6_k_sub_block(tb, j, w); }
  // d · sc_j of the 16 rows (sc_j signed).
  static inline __m512 scaled(__m512 d, const uint8_t* tb, int j) {
    const __m128i sc = _mm_loadu_si128(reinterpret_cast<const __m128i*>(tb + kQ6KTileSc + kTileRows * j));
    return _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(sc)));
  }

  // Sub-block j of one tile-block against NT tokens.
  template <int NT>
  static inline void sub_block(const uint8_t* tb, __m512 d, int64_t b, int j, const ActQ8* const* xs, __m512* acc) {
    constexpr int C = kChains<NT>;
    const int p = j % 2;
    __m512i w[4];
    unpack(tb, j, w);
    const __m512 ds = scaled(d, tb, j);
    const int64_t xb = 8 * b + j / 2;
    __m512i isum[NT][C];
    for (int t = 0; t < NT; ++t) {
      isum[t][0] = _mm512_set1_epi32(-32 * act(&xs[t][xb]).sums[p]);
      for (int c = 1; c < C; ++c) isum[t][c] = _mm512_setzero_si512();
    }
    for (int g = 0; g < 4; ++g)
      for (int t = 0; t < NT; ++t)
        isum[t][g % C] = _mm512_dpbusd_epi32(isum[t][g % C], w[g], broadcast4(xs[t][xb].qs + 16 * p + 4 * g));
    for (int t = 0; t < NT; ++t) {
      __m512i sum = isum[t][0];
      for (int c = 1; c < C; ++c) sum = _mm512_add_epi32(sum, isum[t][c]);
      acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), _mm512_mul_ps(ds, _mm512_set1_ps(xs[t][xb].d)), acc[t]);
    }
  }

  template <int NT>
  static void dot(const uint8_t* tile, int64_t nb, const ActQ8* const* xs, float* const* ys, __mmask16 rows, const uint8_t*) {
    __m512 acc[NT];
    for (int t = 0; t < NT; ++t) acc[t] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
      const uint8_t* tb = tile + static_cast<size_t>(b) * kQ6KTileBytes;
      const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(tb)));
      for (int j = 0; j < 16; ++j) sub_block<NT>(tb, d, b, j, xs, acc);
    }
    for (int t = 0; t < NT; ++t) _mm512_mask_storeu_ps(ys[t], rows, acc[t]);
  }

  // One token: prefetches as Block32Tiles' decode does; the two sub-blocks of an
  // activation block are two chains.
  template <bool Prefetch>
  static void dot_decode(const uint8_t* tile, int64_t nb, const ActQ8* x, float* y, __mmask16 rows) {
    __m512 acc = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
      const uint8_t* tb = tile + static_cast<size_t>(b) * kQ6KTileBytes;
      prefetch_ahead<Prefetch>(tb, kQ6KTileBytes);
      const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(tb)));
      for (int i = 0; i < 8; ++i) {
        const ActQ8S16& xb = act(x + 8 * b + i);
        __m512i w0[4], w1[4];
        unpack(tb, 2 * i, w0);
        unpack(tb, 2 * i + 1, w1);
        __m512i s0 = _mm512_set1_epi32(-32 * xb.sums[0]), s1 = _mm512_set1_epi32(-32 * xb.sums[1]);
        for (int g = 0; g < 4; ++g) {
          s0 = _mm512_dpbusd_epi32(s0, w0[g], broadcast4(xb.qs + 4 * g));
          s1 = _mm512_dpbusd_epi32(s1, w1[g], broadcast4(xb.qs + 16 + 4 * g));
        }
        const __m512 dx = _mm512_set1_ps(xb.d);
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s0), _mm512_mul_ps(scaled(d, tb, 2 * i), dx), acc);
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s1), _mm512_mul_ps(scaled(d, tb, 2 * i + 1), dx), acc);
      }
    }
    _mm512_mask_storeu_ps(y, rows, acc);
  }
};

template <class U>
template <int NT>
void Block32Tiles<U>::dot(const uint8_t* tile, int64_t nb, const ActQ8* const* xs, float* const* ys, __mmask16 rows, const uint8_t*) {
  tile_dot<U, NT>(tile, nb, xs, ys, rows);
}
template <class U>
template <bool Prefetch>
void Block32Tiles<U>::dot_decode(const uint8_t* tile, int64_t nb, const ActQ8* x, float* y, __mmask16 rows) {
  tile_dot_decode<U, Prefetch>(tile, nb, x, y, rows);
}

template <class U>
template <int NT>
void Block32Tiles<U>::dot_group(const uint8_t* const* tiles, int64_t nb, const ActQ8* const* xs, float* const* ys,
                                __mmask16 last_rows, const uint8_t* const*) {
  tile_group_dot<U, kGroupTiles, NT>(tiles, nb, xs, ys, last_rows);
}

template <class K, int NT>
void tile_group_dot_n(int nt, const uint8_t* const* tiles, int64_t nb, const typename K::Act* const* xs, float* const* ys,
                      __mmask16 last_rows, const uint8_t* const* scales) {
  if constexpr (NT > 1) {
    if (nt < NT) return tile_group_dot_n<K, NT - 1>(nt, tiles, nb, xs, ys, last_rows, scales);
  }
  K::template dot_group<NT>(tiles, nb, xs, ys, last_rows, scales);
}

template <class K, bool Prefetch, int NT>
void tile_dot_n(int nt, const uint8_t* tile, int64_t nb, const typename K::Act* const* xs, float* const* ys, __mmask16 rows,
                const uint8_t* scales) {
  if constexpr (NT > 1) {
    if (nt < NT) return tile_dot_n<K, Prefetch, NT - 1>(nt, tile, nb, xs, ys, rows, scales);
  }
  if constexpr (NT == 1) K::template dot_decode<Prefetch>(tile, nb, xs[0], ys[0], rows);
  else K::template dot<NT>(tile, nb, xs, ys, rows, scales);
}

inline int64_t smaller(int64_t a, int64_t b) { return a < b ? a : b; }  // (std::min: see the top)

// Kernels whose tile-blocks carry packed scales (Q4_K, Q5_K): with two or more tokens
// they are unpacked once per tile, not once per token group.
template <class K>
concept UnpacksScales = requires(const uint8_t* tb, uint8_t* out) { K::unpack_scales(tb, out); };

// Tiles a kernel sweeps together for two or more tokens: K::kGroupTiles where it has a
// group kernel, else 1.
template <class K>
constexpr int group_tiles() {
  if constexpr (requires { K::kGroupTiles; }) return K::kGroupTiles;
  else return 1;
}

template <class K, bool Prefetch>
void tiled_chunk(const uint8_t* tiles, size_t tile_stride, int64_t n_tiles, int64_t nb, int64_t valid_rows,
                 const uint8_t* x, size_t x_stride, int64_t c0, int64_t c1, float* y, size_t ldy) {
  using Act = typename K::Act;
  // Tokens t0 .. t0+nt-1 as the kernels take them: their activations, and their outputs
  // from tile i on.
  const auto tokens = [&](int64_t t0, int nt, int64_t i, const Act** xs, float** ys) {
    for (int t = 0; t < nt; ++t) {
      xs[t] = reinterpret_cast<const Act*>(x + static_cast<size_t>(t0 + t) * x_stride);
      ys[t] = y + static_cast<size_t>(t0 + t) * ldy + static_cast<size_t>(i * kTileRows);
    }
  };
  for (int64_t i = 0; i < n_tiles;) {
    const int64_t tt = c1 - c0 > 1 && i + group_tiles<K>() <= n_tiles ? group_tiles<K>() : 1;
    const uint8_t* tile = tiles + static_cast<size_t>(i) * tile_stride;
    if (c0 == 0 && c1 > 1 && i + tt < n_tiles) {
      // The next tiles come from memory while these are swept by every token group
      // (decode prefetches inside its kernel; later chunks find the tiles in L2). MoE
      // phase of pp512 on the 27-layer Q4_0 file, 6 alternating runs each, medians:
      // 2.37 s without, 2.21 s with (pp512 125 -> 135 tok/s).
      const size_t ahead = static_cast<size_t>(smaller(tt, n_tiles - i - tt)) * tile_stride;
      for (size_t o = 0; o < ahead; o += 64) _mm_prefetch(reinterpret_cast<const char*>(tile + tt * tile_stride + o), _MM_HINT_T1);
    }
    const uint8_t* scales[group_tiles<K>()] = {};
    if constexpr (UnpacksScales<K>) {
      if (c1 - c0 > 1) {
        uint8_t* buffer = unpacked_tile_scratch(static_cast<size_t>(tt * nb) * kQ4KScalesBytes);
        for (int64_t k = 0; k < tt; ++k) {
          scales[k] = buffer + static_cast<size_t>(k * nb) * kQ4KScalesBytes;
          for (int64_t b = 0; b < nb; ++b)
            K::unpack_scales(tile + k * tile_stride + static_cast<size_t>(b) * K::kBytes, buffer + static_cast<size_t>(k * nb + b) * kQ4KScalesBytes);
        }
      }
    }
    if constexpr (group_tiles<K>() > 1) {
      if (tt > 1) {
        constexpr int TT = group_tiles<K>(), NT = K::kGroupTokens;
        const uint8_t* group[TT];
        for (int k = 0; k < TT; ++k) group[k] = tile + k * tile_stride;
        for (int64_t t0 = c0; t0 < c1; t0 += NT) {
          const int nt = static_cast<int>(smaller(NT, c1 - t0));
          const Act* xs[NT] = {};
          float* ys[NT] = {};
          tokens(t0, nt, i, xs, ys);
          tile_group_dot_n<K, NT>(nt, group, nb, xs, ys, tile_rows(valid_rows, i + TT - 1), scales);
        }
        i += TT;
        continue;
      }
    }
    for (int64_t t0 = c0; t0 < c1; t0 += kTokenGroup) {
      const int nt = static_cast<int>(smaller(kTokenGroup, c1 - t0));
      const Act* xs[kTokenGroup] = {};
      float* ys[kTokenGroup] = {};
      tokens(t0, nt, i, xs, ys);
      tile_dot_n<K, Prefetch, kTokenGroup>(nt, tile, nb, xs, ys, tile_rows(valid_rows, i), scales[0]);
    }
    ++i;
  }
}

template <class K, bool Prefetch>
void tiled_matmul(const uint8_t* tiles, size_t tile_stride, int64_t n_tiles, int64_t nb, int64_t valid_rows,
                  const uint8_t* x, size_t x_stride, int64_t ntok, float* y, size_t ldy) {
  // Tokens in chunks whose activations stay in L2 while every tile of the call sweeps
  // them (the tiles come back from L2 for the next chunk). Without it a 512-token
  // batch's activations (1.3 MB) spill to L3 once per tile: kernels_bench
  // q4_0/avx512-tiled/n512/t2 went from 462 to 568 GMAC/s (n64: 508 → 551).
  for (int64_t c0 = 0; c0 < ntok; c0 += kTokenChunk) {
    const int64_t c1 = ntok - c0 < kTokenChunk ? ntok : c0 + kTokenChunk;
    tiled_chunk<K, Prefetch>(tiles, tile_stride, n_tiles, nb, valid_rows, x, x_stride, c0, c1, y, ldy);
  }
}

template <bool Prefetch>
TiledFn tiled_kernel(GgmlType t) {
  switch (t) {
    case GgmlType::Q4_0: return tiled_matmul<Block32Tiles<UnpackQ4_0>, Prefetch>;
    case GgmlType::Q8_0: return tiled_matmul<Block32Tiles<UnpackQ8_0>, Prefetch>;
    case GgmlType::Q4_K: return tiled_matmul<Q4KTiles, Prefetch>;
    case GgmlType::Q5_K: return tiled_matmul<Q5KTiles, Prefetch>;
    case GgmlType::Q6_K: return tiled_matmul<Q6KTiles, Prefetch>;
    default: return nullptr;
  }
}

}  // namespace

TiledFn avx512_tiled_kernel(GgmlType t, bool decode_prefetch) {
  return decode_prefetch ? tiled_kernel<true>(t) : tiled_kernel<false>(t);
}

}  // namespace mlamoe::kernels
