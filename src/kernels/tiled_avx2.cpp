// AVX2 kernels over Tiles16 weights (tiled.h), for CPUs without AVX-512. A 64-byte group
// of a tile is 16 rows × 4 columns, so its two 32-byte halves are 8 rows × 4 columns each:
// one vpmaddubsw multiplies them by 4 activation bytes broadcast to every row, giving each
// row's two pair sums in int16. Those int16 sums are added across a whole 32-column block
// (Q4_0, Q4_K) or two 4-column groups (Q6_K) before one vpmaddwd widens them to int32,
// so a block of 8 rows × 32 columns is ~22 operations, against ~18 per row × 32 columns
// in the file's rows (simd_kernels.h), where every block ends in its own scale. The
// bounds that make the int16 sums exact are at each kernel.
// A tile is taken 8 rows (one half) at a time, except by one token, which takes both
// halves of a block together: its bytes are then read once, in order.
// No standard-library templates here (see tiled_avx512.cpp).
#include <immintrin.h>

#include <cstring>

#include "kernels/act_quant.h"
#include "kernels/tiled.h"
#include "kernels/tiled_avx2.h"
#include "kernels/tiled_avx2_driver.h"

namespace mlamoe::kernels {
namespace {

// sum + (each row's pair sums of w against the 4 activation bytes at p), in int16: the
// broadcast, product and sum of one step in one asm statement. From the intrinsics GCC
// 12 hoisted every token's broadcast to the top of a group and copied or spilled the
// sums to make room (bench/dpbusd_chains_bench maddubs/*: these three instructions
// alone run at 5.3–5.9 G a second on one Zen 4 core, 170–188 GMAC/s).
inline void maddubs_add(__m256i& sum, __m256i w, const int8_t* p) {
  __m256i x;
  asm("vpbroadcastd %2, %1\n\tvpmaddubsw %1, %3, %1\n\tvpaddw %1, %0, %0"
      : "+x"(sum), "=&x"(x)
      : "m"(*reinterpret_cast<const AliasedInt32*>(p)), "x"(w));
}

// Each row's two int16 pair sums added into one int32.
inline __m256i widen(__m256i sums16) { return _mm256_madd_epi16(sums16, _mm256_set1_epi16(1)); }

// 8 unsigned bytes (one per row) as int32 lanes holding the value in both int16 halves:
// vpmaddwd against them scales both of a row's pair sums and adds them.
inline __m256i scale_pairs_u8(const uint8_t* p) {
  const __m256i v = u8_lanes(p);
  return _mm256_or_si256(v, _mm256_slli_epi32(v, 16));
}
// The same for signed bytes (blend: the low int16 of each lane from v, the high from v << 16).
inline __m256i scale_pairs_s8(const uint8_t* p) {
  const __m256i v = s8_lanes(p);
  return _mm256_blend_epi16(v, _mm256_slli_epi32(v, 16), 0xAA);
}

// Q4_0: q in 0..15, so a vpmaddubsw pair is at most 2·15·127 = 3810 in magnitude and the
// 8 of a 32-column block add to ≤ 30480 in int16. The offset (q − 8) is taken out in
// int32 by the activations' −8·Σx.
struct Q4_0Tiles {
  using Act = ActQ8;
  static constexpr size_t kBlockBytes = kTileScaleBytes + 4 * 64;
  static constexpr bool kBothHalves = false;
  // Tokens sharing each unpacked weight vector in prefill. kernels_bench
  // */avx2-tiled/n64/t1 GMAC/s with 4 / 3 / 2 tokens: q4_0 112-115 / 100-104 / 92-96,
  // q4_K 100-102 / 99-100 / 108-117 (128 in this build), q6_K 87-88 / 83 / 71-78 (Zen 5,
  // session 19). Zen 4, session 24, 4 → 6 tokens: q4_0 97.7 → 98.7–99.0, q8_0
  // 61.4–61.7 → 64.4–64.8 (n512 alike).
  static constexpr int kTokens = 6;
  // Block b (at tb) of half `half` against NT tokens, into acc[t].
  template <int NT>
  static void block(const uint8_t* tb, int half, int64_t b, const ActQ8* const* xs, __m256* acc) {
    // One weight vector live at a time, the low nibbles' four, then the high nibbles'
    // four, each feeding every token's sum: holding all eight (as before) spilled them
    // around the tokens' steps (kernels_bench q4_0/avx2-tiled/n64/t1, GMAC/s,
    // alternating: 85–91 → 99–112; V2-Lite Q4_0 pp512 under AVX2 66.6–70.0 → 75.3–80.9
    // tok/s, Zen 4, session 26).
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    const uint8_t* quants = tb + kTileScaleBytes + 32 * half;
    asm("" : "+r"(quants));  // one pointer, the groups at constant offsets (as Q4_K's chunks)
    __m256i sum[NT];
    for (int t = 0; t < NT; ++t) sum[t] = _mm256_setzero_si256();
    for (int g = 0; g < 4; ++g) {  // columns 4g..4g+3: the low nibbles
      const __m256i w = _mm256_and_si256(load256(quants + 64 * g), low4);
      for (int t = 0; t < NT; ++t) maddubs_add(sum[t], w, xs[t][b].qs + 4 * g);
    }
    for (int g = 0; g < 4; ++g) {  // columns 16+4g..16+4g+3: the high nibbles
      const __m256i w = _mm256_and_si256(_mm256_srli_epi16(load256(quants + 64 * g), 4), low4);
      for (int t = 0; t < NT; ++t) maddubs_add(sum[t], w, xs[t][b].qs + 16 + 4 * g);
    }
    const __m256 dw = half_scales(tb, half);
    for (int t = 0; t < NT; ++t) {
      const __m256i total = _mm256_add_epi32(widen(sum[t]), _mm256_set1_epi32(xs[t][b].minus_8_sum));
      acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(total), _mm256_mul_ps(dw, _mm256_set1_ps(xs[t][b].d)), acc[t]);
    }
  }
};

// Q8_0: the tiles hold q + 128, whose products with x would overflow vpmaddubsw's int16
// pairs, so each vector goes back to signed q and takes the sign trick (|q| against x with
// q's sign): a pair is then ≤ 2·128·127 = 32512 and is widened at once.
struct Q8_0Tiles {
  using Act = ActQ8;
  static constexpr size_t kBlockBytes = kTileScaleBytes + 8 * 64;
  static constexpr bool kBothHalves = false;
  static constexpr int kTokens = 6;  // as Q4_0's
  // Block b (at tb) of half `half` against NT tokens, into acc[t].
  template <int NT>
  static void block(const uint8_t* tb, int half, int64_t b, const ActQ8* const* xs, __m256* acc) {
    const __m256i bias = _mm256_set1_epi8(static_cast<char>(0x80));
    __m256i sum[NT];
    for (int t = 0; t < NT; ++t) sum[t] = _mm256_setzero_si256();
    for (int s = 0; s < 8; ++s) {  // columns 4s..4s+3: signed q and |q|
      const __m256i q = _mm256_xor_si256(load256(tb + kTileScaleBytes + 64 * s + 32 * half), bias), u = _mm256_abs_epi8(q);
      for (int t = 0; t < NT; ++t)
        sum[t] = _mm256_add_epi32(sum[t], widen(_mm256_maddubs_epi16(u, _mm256_sign_epi8(broadcast4(xs[t][b].qs + 4 * s), q))));
    }
    const __m256 dw = half_scales(tb, half);
    for (int t = 0; t < NT; ++t)
      acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum[t]), _mm256_mul_ps(dw, _mm256_set1_ps(xs[t][b].d)), acc[t]);
  }
};

// Q4_K: q in 0..15 as in Q4_0, so a 32-column sub-block's 8 products add in int16, and
// one vpmaddwd against sc_j (≤ 63) both widens and scales them. The mins are the file's
// m_j pairs against the activations' pairs of sub-block sums (tiled.h).
// Q5_K (High): q in 0..31 (the fifth bits added as 16), so a pair is ≤ 2·31·127 = 7874
// and only 4 add in int16 (31496): two vpmaddwd per sub-block.
// Q5_K's prefill unpacks each tile once (unpack_half; the driver's UnpacksOnce) and its
// tokens, 3 at a time, read the unpacked bytes: unpacked again for every pair of tokens,
// its 5 operations per vector outweighed the pair's 3 each. kernels_bench
// q5_K/avx2-tiled/n64/t1, weight GB/s, two rounds (Zen 4): 0.711 before, 0.850–0.854
// with 2 tokens, 0.977–0.985 with 3, 0.967–0.969 with 4. Q4_K's unpacking (one or two
// operations) is cheaper than reading twice the bytes back: 0.78 → 0.63–0.74.
template <bool High>
struct KQuantTiles {
  using Act = ActQ8K32;
  static constexpr size_t kBlockBytes = High ? kQ5KTileBytes : kQ4KTileBytes;
  static constexpr bool kUnpackOnce = High;
  static constexpr bool kPackedScales = true;
  static constexpr size_t kUnpackedHalfBytes = 8 * 8 * 32;  // sub-block j, group g at 32 (8j + g)
  static constexpr int kInt16Sums = High ? 4 : 8;  // products added before widening
  static constexpr bool kBothHalves = false;
  // Tokens per pass in prefill: a token keeps its sums, totals and mins live. Q4_K,
  // kernels_bench q4_K/avx2-tiled/n64/t1 on Zen 4, weight GB/s with 2 / 3 / 4 tokens:
  // 0.782–0.784 / 0.833–0.867 / 0.872–0.880 (n512 alike; V2-Lite Q4_K_M pp512 +4–8 %).
  // 4 → 5 in session 24: 98.3–99.7 → 103.5–103.8 GMAC/s (6: 104.2; n512 alike), with
  // the Q4_0/Q8_0 downs at 6, V2-Lite Q4_K_M pp512 63.1, 64.5 → 65.0, 68.4 tok/s.
  // Zen 5 favoured 2 in session 19 (Q4_0Tiles' figures), before a pass kept one
  // sub-block's sums at a time; not measured there since.
  static constexpr int kTokens = High ? 3 : 5;
  // Group g of sub-block j, half `half`: 8 rows × 4 columns, q in 0..15 (0..31). Odd:
  // j % 2 (the high nibbles) known at compile time (1 or 0), or not (-1).
  template <int Odd = -1>
  static inline __m256i weights(const uint8_t* tb, int half, int j, int g) {
    // One pointer per chunk, the groups at constant offsets from it: left to itself GCC
    // kept a pointer per group and, short of registers, reloaded them from the stack.
    const uint8_t* chunk = tb + k_quant_chunk_at(High, j / 2) + 32 * half;
    asm("" : "+r"(chunk));
    const __m256i v = load256(chunk + 64 * g);
    const bool odd = Odd < 0 ? j % 2 != 0 : Odd != 0;
    __m256i w = _mm256_and_si256(odd ? _mm256_srli_epi16(v, 4) : v, _mm256_set1_epi8(0x0F));
    if constexpr (High) w = _mm256_add_epi8(w, fifth_bits(tb, j, g, half));
    return w;
  }
  static void unpack_half(const uint8_t* tb, int half, uint8_t* out) {
#pragma GCC unroll 2
    for (int j = 0; j < 8; ++j)
#pragma GCC unroll 8
      for (int g = 0; g < 8; ++g)
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 32 * (8 * j + g)), weights(tb, half, j, g));
  }
  // Block b (at tb, its scales unpacked at `scales`) of half `half` against NT tokens,
  // into acc[t]; the weights from `unpacked` (unpack_half's bytes) when it is not null.
  template <int NT>
  static void block(const uint8_t* tb, const uint8_t* scales, const uint8_t* unpacked, int half, int64_t b, const ActQ8K32* const* xs,
                    __m256* acc) {
    if (unpacked) block_from<NT, true>(tb, scales, unpacked, half, b, xs, acc);
    else block_from<NT, false>(tb, scales, nullptr, half, b, xs, acc);
  }

 private:
  template <int NT, bool Unpacked>
  static void block_from(const uint8_t* tb, const uint8_t* scales, const uint8_t* unpacked, int half, int64_t b,
                         const ActQ8K32* const* xs, __m256* acc) {
    __m256i total[NT], mins[NT];
    for (int t = 0; t < NT; ++t) total[t] = mins[t] = _mm256_setzero_si256();
    // One sub-block at a time keeps NT int16 sums live, not 2·NT (which spilled at 4
    // tokens), and the scales are unpacked after the sums, not held across them. GCC
    // keeps j % 2 a branch per group even in a loop unrolled by two, so the sub-blocks
    // go in pairs with the parity fixed (kernels_bench */avx2-tiled/n1/t1 hot, GMAC/s,
    // alternating: q4_K 52.9–53.9 → 56.9, q5_K 35.9–36.1 → 38.9–39.1). Several tokens
    // lost that way (q4_K n64/t1 97 → 81 at 4) until each step was one asm statement
    // (maddubs_add): GCC had spilled their sums around the longer body. With it, q4_K
    // n64/t1 at 5 tokens 103.7–107.1 → 113.7–115.6 GMAC/s (Zen 4, session 26).
    for (int c = 0; c < 4; ++c) {
      sub_block<NT, Unpacked, 0>(tb, scales, unpacked, half, b, 2 * c, xs, total);
      sub_block<NT, Unpacked, 1>(tb, scales, unpacked, half, b, 2 * c + 1, xs, total);
    }
    for (int p = 0; p < 4; ++p) {
      const __m256i m = min_pairs(scales, half, p);
      for (int t = 0; t < NT; ++t) mins[t] = _mm256_add_epi32(mins[t], _mm256_madd_epi16(m, broadcast4(xs[t][b].sums + 2 * p)));
    }
    const __m256 d = half_scales(tb, half), dmin = half_scales(tb + 2 * kTileRows, half);
    for (int t = 0; t < NT; ++t) acc[t] = k_quant_finish(d, dmin, xs[t][b].d, total[t], mins[t], acc[t]);
  }
  // Sub-block j of the block against NT tokens, added into total[t] (Odd: weights').
  template <int NT, bool Unpacked, int Odd>
  __attribute__((always_inline)) static inline void sub_block(const uint8_t* tb, const uint8_t* scales, const uint8_t* unpacked, int half,
                                                              int64_t b, int j, const ActQ8K32* const* xs, __m256i* total) {
    __m256i sums[NT];
#pragma GCC unroll 8
    for (int g = 0; g < 8; ++g) {
      const __m256i w = Unpacked ? load256(unpacked + 32 * (8 * j + g)) : weights<Odd>(tb, half, j, g);
      for (int t = 0; t < NT; ++t) {
        if (g % kInt16Sums == 0) sums[t] = _mm256_setzero_si256();
        maddubs_add(sums[t], w, xs[t][b].qs + 32 * j + 4 * g);
      }
      if (g % kInt16Sums == kInt16Sums - 1) {
        const __m256i sc = scale_pairs_u8(scales + kTileRows * j + kHalfRows * half);
        for (int t = 0; t < NT; ++t) total[t] = _mm256_add_epi32(total[t], _mm256_madd_epi16(sums[t], sc));
      }
    }
  }
};

// Q6_K: q in 0..63, so a vpmaddubsw pair is ≤ 2·63·127 = 16002 and two add in int16.
// Each sub-block's two such sums are widened and scaled by the signed sc_j in one
// vpmaddwd each; the offset −32·sc_j·Σx is sc_j against −16·Σx in both int16 halves
// (|16·Σx| ≤ 16·16·127 = 32512).
struct Q6KDot {
  static __m256i scales(const uint8_t* sc) { return scale_pairs_s8(sc); }
  static __m256i sub_block(const __m256i* w, const int8_t* q, int16_t sum, __m256i sc) {
    const __m256i s01 = _mm256_add_epi16(_mm256_maddubs_epi16(w[0], broadcast4(q)), _mm256_maddubs_epi16(w[1], broadcast4(q + 4)));
    const __m256i s23 = _mm256_add_epi16(_mm256_maddubs_epi16(w[2], broadcast4(q + 8)), _mm256_maddubs_epi16(w[3], broadcast4(q + 12)));
    const __m256i offset = _mm256_set1_epi16(static_cast<int16_t>(-16 * sum));
    return _mm256_add_epi32(_mm256_add_epi32(_mm256_madd_epi16(s01, sc), _mm256_madd_epi16(s23, sc)), _mm256_madd_epi16(sc, offset));
  }
};
using Q6KTiles = Q6KTilesOf<Q6KDot>;

}  // namespace

TiledFn avx2_tiled_kernel(GgmlType t, bool decode_prefetch) {
  return tiled_kernel_of<Q4_0Tiles, Q8_0Tiles, KQuantTiles<false>, KQuantTiles<true>, Q6KTiles>(t, decode_prefetch);
}

}  // namespace mlamoe::kernels
