// Absorbed MLA attention over latents cached in bf16 (--kv-type bf16), on AVX-512 BF16.
// At long contexts the latent attention is a decode step's largest part and it is
// bound by multiply-adds, not bytes (V2-Lite at 4,096 keys: 16 heads × 1,088 per key
// and layer, 1.9 G a token, ~55 % of the step in fp32). vdpbf16ps does two bf16
// products per float lane, twice an fp32 FMA's work per instruction, on keys read at
// half the bytes:
//   scores  q · k over 576 values: the query rounded to bf16 once per sweep, 32 values
//           of a key per instruction, R rows × 2 keys of sums, one transposing reduction;
//   output  Σ_k p_k c_kv_k: keys taken in pairs, (p_k, p_k+1) in bf16 against the two
//           rows interleaved (vpunpck[lh]wd), so each lane adds both keys' products; the
//           interleave puts channels in a fixed permuted order, undone when stored.
// The softmax is per tile of 32 keys (the tile's max, one rescale of the output per
// row and tile), as flash attention does; p is rounded to bf16 and the denominator
// sums the rounded values, so weights and denominator agree. Unlike the fp32 kernel the
// bits depend on where runs start (tiles and pairs begin at a run's first key); the
// tests bound the error against softmax in double instead.
#include <immintrin.h>

#include <cstdint>

#include "kernels/attention.h"
#include "kernels/key_prefetch.h"
#include "kernels/vec_avx512.h"
#include "kernels/vec_exp2.h"

namespace {

using mlamoe::kernels::LatentAttentionState;
using mlamoe::kernels::LatentQueries;
using mlamoe::kernels::NextRun;

constexpr int kTile = 32;        // keys per tile
constexpr int kRows = 8;         // query rows per group: 16 output accumulators
constexpr int kChunkRows = 16;   // query rows rounded to bf16 at a time (32 KB of stack)
// A rounded query row's stride (attention.h): a constant, so the rows of a group are one
// base register plus constant offsets.
constexpr int64_t kStride = mlamoe::kernels::kLatentQueryBf16Stride;

inline __m512bh bh(__m512i v) { return reinterpret_cast<__m512bh>(v); }
inline void keep(__m512i& v) { __asm__("" : "+v"(v)); }
// The first n (≥ 32: all) of a vector's 32 bf16 values.
inline __mmask32 words(int64_t n) { return n >= 32 ? 0xFFFFFFFFu : static_cast<__mmask32>((1ull << n) - 1); }
// Of the first n values, those among the 16 float lanes from `from` on.
inline __mmask16 lanes_of_first(int64_t n, int64_t from) {
  return Avx512Lanes::first(n - from < 0 ? 0 : n - from > 16 ? 16 : n - from);
}

// n floats → bf16 (round to nearest even).
inline void round_to_bf16(const float* x, uint16_t* y, int64_t n) {
  for (int64_t i = 0; i < n; i += 32) {
    const int64_t left = n - i;
    const __m512bh v = _mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(lanes_of_first(left, 16), x + i + 16),
                                           _mm512_maskz_loadu_ps(lanes_of_first(left, 0), x + i));
    _mm512_mask_storeu_epi16(y + i, words(left), reinterpret_cast<__m512i>(v));
  }
}

// R rows × K keys of q · k (c_kv and k_rope parts) into S[i][k0 + k]; the rows' query
// parts at qb + i·kStride (q_lat) and + d_c (q_rope). `ahead`, when set, is K keys'
// c_kv further on (key_prefetch.h; null entries: none), one line of each prefetched per
// step.
template <int R, int K>
void scores(const uint16_t* qb, const uint16_t* c, const uint16_t* r, int64_t d_c, int64_t d_r, float (*S)[kTile], int k0,
            const uint16_t* const* ahead) {
  __m512 acc[R][K];
  for (int i = 0; i < R; ++i)
    for (int k = 0; k < K; ++k) acc[i][k] = _mm512_setzero_ps();
  const uint16_t* qp = qb;
  for (int64_t d = 0; d < d_c; d += 32, qp += 32) {
    // Opaque each step, so the R rows are qp plus constants: left alone, GCC keeps a
    // register per row and spills accumulators for them.
    __asm__("" : "+r"(qp));
    if (ahead)
      for (int k = 0; k < K; ++k)
        if (ahead[k]) KeyLookahead<uint16_t>::prefetch(ahead[k] + d);
    __m512i kv[K];
    for (int k = 0; k < K; ++k) kv[k] = _mm512_loadu_si512(c + k * d_c + d);
    for (int i = 0; i < R; ++i) {
      __m512i qv = _mm512_loadu_si512(qp + i * kStride);
      keep(qv);  // one load for the K keys, not one folded into each
      for (int k = 0; k < K; ++k) acc[i][k] = _mm512_dpbf16_ps(acc[i][k], bh(qv), bh(kv[k]));
    }
  }
  const uint16_t* qr = qb + d_c;
  for (int64_t d = 0; d < d_r; d += 32) {  // the rotary part: any width, its tail masked
    const __mmask32 m = words(d_r - d);
    __m512i kv[K];
    for (int k = 0; k < K; ++k) kv[k] = _mm512_maskz_loadu_epi16(m, r + k * d_r + d);
    for (int i = 0; i < R; ++i)
      for (int k = 0; k < K; ++k)
        acc[i][k] = _mm512_dpbf16_ps(acc[i][k], bh(_mm512_maskz_loadu_epi16(m, qr + i * kStride + d)), bh(kv[k]));
  }
  __m512 all[16];
  for (int t = 0; t < 16; ++t) all[t] = t < R * K ? acc[t / K][t % K] : _mm512_setzero_ps();
  alignas(64) float sums[16];
  _mm512_store_ps(sums, Avx512Lanes::lane_sums(all));
  for (int i = 0; i < R; ++i)
    for (int k = 0; k < K; ++k) S[i][k0 + k] = sums[i * K + k];
}

// Lane j of unpacklo(a, b) (as 16 dword pairs) holds channel 8·(j/4) + j%4 of a 32-wide
// chunk, unpackhi's channel 4 more. kLow/kHigh gather an fp32 chunk (A = channels
// 0-15, B = 16-31) into that order; kBackA/kBackB scatter it back.
constexpr int permuted_channel(int lane, bool high) { return 8 * (lane / 4) + lane % 4 + (high ? 4 : 0); }
constexpr int lane_of_channel(int ch) { return (ch % 8 < 4 ? 0 : 16) + 4 * (ch / 8) + ch % 4; }
inline __m512i gather_index(bool high) {
  alignas(64) int32_t idx[16];
  for (int j = 0; j < 16; ++j) idx[j] = permuted_channel(j, high);
  return _mm512_load_si512(idx);
}
inline __m512i scatter_index(int first_channel) {
  alignas(64) int32_t idx[16];
  for (int j = 0; j < 16; ++j) idx[j] = lane_of_channel(first_channel + j);
  return _mm512_load_si512(idx);
}

// o_i ← o_i · corr_i + Σ_k p_ik · c_kv_k over the tile's nk keys, for R rows.
template <int R>
void accumulate_out(float* const* o, const uint16_t (*pb)[kTile], const float* corr, const uint16_t* c, int nk,
                    int64_t d_c) {
  const __m512i low_idx = gather_index(false), high_idx = gather_index(true);
  const __m512i back_a = scatter_index(0), back_b = scatter_index(16);
  for (int64_t d = 0; d < d_c; d += 32) {
    __m512 lo[R], hi[R];
    for (int i = 0; i < R; ++i) {
      const __m512 a = _mm512_loadu_ps(o[i] + d), b = _mm512_loadu_ps(o[i] + d + 16), cr = _mm512_set1_ps(corr[i]);
      lo[i] = _mm512_mul_ps(_mm512_permutex2var_ps(a, low_idx, b), cr);
      hi[i] = _mm512_mul_ps(_mm512_permutex2var_ps(a, high_idx, b), cr);
    }
    for (int k = 0; k < nk; k += 2) {
      const __m512i a = _mm512_loadu_si512(c + k * d_c + d);
      const __m512i b = k + 1 < nk ? _mm512_loadu_si512(c + (k + 1) * d_c + d) : _mm512_setzero_si512();
      const __m512i pairs_lo = _mm512_unpacklo_epi16(a, b), pairs_hi = _mm512_unpackhi_epi16(a, b);
      for (int i = 0; i < R; ++i) {
        int32_t pk;
        __builtin_memcpy(&pk, &pb[i][k], 4);  // (p_k, p_k+1): p is padded to the tile
        const __m512i pv = _mm512_set1_epi32(pk);
        lo[i] = _mm512_dpbf16_ps(lo[i], bh(pairs_lo), bh(pv));
        hi[i] = _mm512_dpbf16_ps(hi[i], bh(pairs_hi), bh(pv));
      }
    }
    for (int i = 0; i < R; ++i) {
      _mm512_storeu_ps(o[i] + d, _mm512_permutex2var_ps(lo[i], back_a, hi[i]));
      _mm512_storeu_ps(o[i] + d + 16, _mm512_permutex2var_ps(lo[i], back_b, hi[i]));
    }
  }
}

// Rows [r0, r0 + R) (their bf16 queries at qb, row stride kStride) against one tile,
// which starts k0 keys into the run; `ahead` set: prefetch keys further on.
template <int R>
void row_group(const LatentQueries& q, const uint16_t* qb, int64_t r0, int64_t key_pos, int nk, const uint16_t* c,
               const uint16_t* r, LatentAttentionState& st, const KeyLookahead<uint16_t>* ahead, int64_t k0) {
  int visible[R], max_visible = 0;
  for (int i = 0; i < R; ++i) {
    const int64_t v = q.last_pos[r0 + i] - key_pos + 1;
    visible[i] = v < 0 ? 0 : v > nk ? nk : static_cast<int>(v);
    max_visible = visible[i] > max_visible ? visible[i] : max_visible;
  }
  if (max_visible == 0) return;
  float* o[R];
  for (int i = 0; i < R; ++i) o[i] = st.o.data() + (r0 + i) * q.d_c;
  alignas(64) float S[R][kTile] = {};  // keys past max_visible stay 0 (then masked)
  int k = 0;
  const int64_t distance = ahead ? ahead->distance() : 0;
  for (; k + 2 <= max_visible; k += 2) {
    const uint16_t* further[2] = {nullptr, nullptr};
    if (ahead) ahead->start_pair(k0 + k + distance, further);
    scores<R, 2>(qb, c + k * q.d_c, r + k * q.d_r, q.d_c, q.d_r, S, k, ahead ? further : nullptr);
  }
  if (k < max_visible) scores<R, 1>(qb, c + k * q.d_c, r + k * q.d_r, q.d_c, q.d_r, S, k, nullptr);

  // Per row: the tile's max, the rescale of what came before, p = e^(score − max) in
  // bf16 (zero past the row's last visible key and to the tile's end).
  alignas(64) uint16_t pb[R][kTile];
  float corr[R];
  const __m512 log2e = _mm512_set1_ps(kLog2e), scale = _mm512_set1_ps(q.scale), neg_inf = _mm512_set1_ps(-__builtin_inff());
  for (int i = 0; i < R; ++i) {
    if (visible[i] == 0) {  // nothing seen in this tile: weights 0, the row's state as it was
      _mm512_store_si512(&pb[i][0], _mm512_setzero_si512());
      corr[i] = 1.f;
      continue;
    }
    const __m512 s0 = _mm512_mask_mul_ps(neg_inf, lanes_of_first(visible[i], 0), _mm512_loadu_ps(&S[i][0]), scale);
    const __m512 s1 = _mm512_mask_mul_ps(neg_inf, lanes_of_first(visible[i], 16), _mm512_loadu_ps(&S[i][16]), scale);
    float& m = st.m[static_cast<size_t>(r0 + i)];
    float& l = st.l[static_cast<size_t>(r0 + i)];
    const float tile_max = _mm512_reduce_max_ps(_mm512_max_ps(s0, s1));
    const float m_new = tile_max > m ? tile_max : m;
    corr[i] = _mm512_cvtss_f32(exp2_of<Avx512Lanes>(_mm512_set1_ps((m - m_new) * kLog2e)));  // m = −inf: 0
    const __m512 mv = _mm512_set1_ps(m_new);
    const __m512 p0 = exp2_of<Avx512Lanes>(_mm512_mul_ps(_mm512_sub_ps(s0, mv), log2e));
    const __m512 p1 = exp2_of<Avx512Lanes>(_mm512_mul_ps(_mm512_sub_ps(s1, mv), log2e));
    const __m512i rounded = reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(p1, p0));
    _mm512_store_si512(&pb[i][0], rounded);
    // the rounded weights back in fp32 (bf16 is fp32's top half) for the denominator
    const __m512 w0 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm512_castsi512_si256(rounded)), 16));
    const __m512 w1 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64(rounded, 1)), 16));
    l = l * corr[i] + _mm512_reduce_add_ps(_mm512_add_ps(w0, w1));
    m = m_new;
  }
  accumulate_out<R>(o, pb, corr, c, max_visible, q.d_c);
}

}  // namespace

namespace mlamoe::kernels {

bool latent_attention_bf16_fits(const LatentQueries& q) {
  return q.d_c > 0 && q.d_c % 32 == 0 && q.d_c + (q.d_r + 31) / 32 * 32 <= kStride;
}

void round_latent_queries_bf16_avx512(const LatentQueries& q, uint16_t* out) {
  for (int64_t i = 0; i < q.rows; ++i) {
    round_to_bf16(q.q_lat + i * q.d_c, out + i * kStride, q.d_c);
    round_to_bf16(q.q_rope + i * q.d_r, out + i * kStride + q.d_c, q.d_r);
  }
}

void latent_attention_accumulate_bf16_avx512(const LatentQueries& q, int64_t j0, int64_t count, const uint16_t* c_kv,
                                             const uint16_t* k_rope, LatentAttentionState& s,
                                             const NextRun<uint16_t>& next) {
  const KeyLookahead<uint16_t> lookahead(c_kv, k_rope, count, next, q.d_c, q.d_r);
  alignas(64) uint16_t chunk[kChunkRows * kStride];  // the queries, when the caller did not round them
  for (int64_t c0 = 0; c0 < q.rows; c0 += kChunkRows) {
    const int64_t rows = q.rows - c0 < kChunkRows ? q.rows - c0 : kChunkRows;
    const uint16_t* qb = q.q_bf16 ? q.q_bf16 + c0 * kStride : chunk;
    if (!q.q_bf16) {
      LatentQueries part = q;
      part.q_lat += c0 * q.d_c;
      part.q_rope += c0 * q.d_r;
      part.rows = rows;
      round_latent_queries_bf16_avx512(part, chunk);
    }
    for (int64_t k0 = 0; k0 < count; k0 += kTile) {
      const int nk = static_cast<int>(count - k0 < kTile ? count - k0 : kTile);
      const uint16_t* c = c_kv + k0 * q.d_c;
      const uint16_t* r = k_rope + k0 * q.d_r;
      for (int64_t g = 0; g < rows; g += kRows) {
        const uint16_t* qg = qb + g * kStride;
        const int64_t r0 = c0 + g;
        const KeyLookahead<uint16_t>* ahead = c0 + g == 0 ? &lookahead : nullptr;  // the first group prefetches
        switch (rows - g < kRows ? rows - g : kRows) {
          case 8: row_group<8>(q, qg, r0, j0 + k0, nk, c, r, s, ahead, k0); break;
          case 7: row_group<7>(q, qg, r0, j0 + k0, nk, c, r, s, ahead, k0); break;
          case 6: row_group<6>(q, qg, r0, j0 + k0, nk, c, r, s, ahead, k0); break;
          case 5: row_group<5>(q, qg, r0, j0 + k0, nk, c, r, s, ahead, k0); break;
          case 4: row_group<4>(q, qg, r0, j0 + k0, nk, c, r, s, ahead, k0); break;
          case 3: row_group<3>(q, qg, r0, j0 + k0, nk, c, r, s, ahead, k0); break;
          case 2: row_group<2>(q, qg, r0, j0 + k0, nk, c, r, s, ahead, k0); break;
          default: row_group<1>(q, qg, r0, j0 + k0, nk, c, r, s, ahead, k0); break;
        }
      }
    }
  }
}

}  // namespace mlamoe::kernels
