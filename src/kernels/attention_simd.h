// Absorbed MLA attention over one run of cached latents, written once for any vector
// width V (struct with Vec, kWidth, kMaxRows (query rows per group: what its registers
// hold), zero, load, store, set1, mul, fmadd, keep (pins a value to a register),
// lane_sums and vec_exp2.h's ops). Included
// by each ISA's file inside an anonymous namespace, so each gets its own copy compiled
// with its flags (like tiling.h). Keys are taken in tiles of kKeyTile and query rows
// in groups of up to V::kMaxRows: a tile is read once per group while the group's queries and
// outputs stay in registers/L1. Every (row, key) score has its own accumulator and
// every output element the same sequence of operations whatever the tiling, so results
// do not depend on how the caller cuts the keys into runs.
// No standard-library templates or inline functions: a copy compiled with AVX-512 flags
// could be the one the linker keeps for the whole program (builtins and local helpers
// only).
#pragma once
#include <cstdint>

#include "kernels/attention.h"
#include "kernels/key_prefetch.h"
#include "kernels/vec_exp2.h"

namespace {

using mlamoe::kernels::LatentAttentionState;
using mlamoe::kernels::LatentQueries;
using mlamoe::kernels::NextRun;

inline int64_t min_of(int64_t a, int64_t b) { return a < b ? a : b; }
inline int64_t clamp_to(int64_t v, int64_t lo, int64_t hi) { return v < lo ? lo : v > hi ? hi : v; }

constexpr int64_t kKeyTile = 32;

// dot(q_lat_i, c_kv_k) + dot(q_rope_i, k_rope_k) for R rows × K keys into S[i·kKeyTile + k].
// `ahead`, when set, is K keys further on (key_prefetch.h; null entries: none): one
// line of each is prefetched per step, as far into its row as this step reads of the
// current ones.
template <class V, int R, int K>
void scores(const float* const* ql, const float* const* qr, const float* c, const float* r, int64_t d_c, int64_t d_r,
            float* S, const float* const* ahead) {
  typename V::Vec acc[R][K];
  for (int i = 0; i < R; ++i)
    for (int k = 0; k < K; ++k) acc[i][k] = V::zero();
  int64_t dc = 0;
  for (; dc + V::kWidth <= d_c; dc += V::kWidth) {
    if (ahead)
      for (int k = 0; k < K; ++k)
        if (ahead[k]) KeyLookahead<float>::prefetch(ahead[k] + dc);
    typename V::Vec kv[K];
    for (int k = 0; k < K; ++k) kv[k] = V::load(c + k * d_c + dc);
    for (int i = 0; i < R; ++i) {
      // Once in a register for the K keys: compilers fold it into each FMA as a memory
      // operand, and the reloads had made this loop load-bound (1.2-1.3x slower).
      typename V::Vec qv = V::load(ql[i] + dc);
      V::keep(qv);
      for (int k = 0; k < K; ++k) acc[i][k] = V::fmadd(qv, kv[k], acc[i][k]);
    }
  }
  int64_t dr = 0;
  for (; dr + V::kWidth <= d_r; dr += V::kWidth) {
    typename V::Vec kv[K];
    for (int k = 0; k < K; ++k) kv[k] = V::load(r + k * d_r + dr);
    for (int i = 0; i < R; ++i) {
      const typename V::Vec qv = V::load(qr[i] + dr);
      for (int k = 0; k < K; ++k) acc[i][k] = V::fmadd(qv, kv[k], acc[i][k]);
    }
  }
  // All R·K horizontal sums in one transposing reduction (R·K <= kWidth; the unused
  // inputs are zeros). Each sum is added in the same order wherever it sits, so a key
  // scored in a pair or alone gets the same bits.
  typename V::Vec all[V::kWidth];
  for (int t = 0; t < V::kWidth; ++t) all[t] = t < R * K ? acc[t / K][t % K] : V::zero();
  alignas(64) float sums[V::kWidth];
  V::store(sums, V::lane_sums(all));
  for (int i = 0; i < R; ++i)
    for (int k = 0; k < K; ++k) {
      float s = sums[i * K + k];
      for (int64_t d = dc; d < d_c; ++d) s = __builtin_fmaf(ql[i][d], c[k * d_c + d], s);
      for (int64_t d = dr; d < d_r; ++d) s = __builtin_fmaf(qr[i][d], r[k * d_r + d], s);
      S[i * kKeyTile + k] = s;
    }
}

// o_i = o_i · corr_ik (only where some row's max grew at key k) + p_ik · c_kv_k, over
// keys k < nk in order, for R rows.
template <class V, int R>
void accumulate_out(float* const* o, const float (*p)[kKeyTile], const float (*corr)[kKeyTile], const uint8_t* rescale,
                    const float* c, int64_t nk, int64_t d_c) {
  constexpr int64_t W = V::kWidth;
  int64_t d = 0;
  for (; d + 2 * W <= d_c; d += 2 * W) {
    typename V::Vec a[R][2];
    for (int i = 0; i < R; ++i) {
      a[i][0] = V::load(o[i] + d);
      a[i][1] = V::load(o[i] + d + W);
    }
    for (int64_t k = 0; k < nk; ++k) {
      if (rescale[k])
        for (int i = 0; i < R; ++i) {
          const typename V::Vec cr = V::set1(corr[i][k]);
          a[i][0] = V::mul(a[i][0], cr);
          a[i][1] = V::mul(a[i][1], cr);
        }
      const typename V::Vec c0 = V::load(c + k * d_c + d), c1 = V::load(c + k * d_c + d + W);
      for (int i = 0; i < R; ++i) {
        const typename V::Vec pv = V::set1(p[i][k]);
        a[i][0] = V::fmadd(pv, c0, a[i][0]);
        a[i][1] = V::fmadd(pv, c1, a[i][1]);
      }
    }
    for (int i = 0; i < R; ++i) {
      V::store(o[i] + d, a[i][0]);
      V::store(o[i] + d + W, a[i][1]);
    }
  }
  for (; d + W <= d_c; d += W) {
    typename V::Vec a[R];
    for (int i = 0; i < R; ++i) a[i] = V::load(o[i] + d);
    for (int64_t k = 0; k < nk; ++k) {
      if (rescale[k])
        for (int i = 0; i < R; ++i) a[i] = V::mul(a[i], V::set1(corr[i][k]));
      const typename V::Vec c0 = V::load(c + k * d_c + d);
      for (int i = 0; i < R; ++i) a[i] = V::fmadd(V::set1(p[i][k]), c0, a[i]);
    }
    for (int i = 0; i < R; ++i) V::store(o[i] + d, a[i]);
  }
  for (; d < d_c; ++d)
    for (int i = 0; i < R; ++i) {
      float v = o[i][d];
      for (int64_t k = 0; k < nk; ++k) {
        if (rescale[k]) v *= corr[i][k];
        v = __builtin_fmaf(p[i][k], c[k * d_c + d], v);
      }
      o[i][d] = v;
    }
}

// One group of R query rows (starting at row r0) against keys [k0, k0 + nk) of the call;
// the first group prefetches keys further on (`ahead`, k0 counted from the run's start).
template <class V, int R>
void row_group(const LatentQueries& q, int64_t r0, int64_t key_pos, int64_t nk, const float* c, const float* r,
               LatentAttentionState& st, const KeyLookahead<float>& ahead, int64_t k0) {
  const float neg_inf = -__builtin_inff();
  int64_t visible[R], max_visible = 0;
  for (int i = 0; i < R; ++i) {
    visible[i] = clamp_to(q.last_pos[r0 + i] - key_pos + 1, 0, nk);
    max_visible = visible[i] > max_visible ? visible[i] : max_visible;
  }
  if (max_visible == 0) return;
  const float* ql[R];
  const float* qr[R];
  float* o[R];
  for (int i = 0; i < R; ++i) {
    ql[i] = q.q_lat + (r0 + i) * q.d_c;
    qr[i] = q.q_rope + (r0 + i) * q.d_r;
    o[i] = st.o.data() + (r0 + i) * q.d_c;
  }
  alignas(64) float S[R][kKeyTile], p[R][kKeyTile], corr[R][kKeyTile];
  int64_t k = 0;
  const int64_t distance = ahead.distance();
  for (; k + 2 <= max_visible; k += 2) {
    const float* further[2] = {nullptr, nullptr};
    if (r0 == 0) ahead.start_pair(k0 + k + distance, further);
    scores<V, R, 2>(ql, qr, c + k * q.d_c, r + k * q.d_r, q.d_c, q.d_r, &S[0][k], r0 == 0 ? further : nullptr);
  }
  if (k < max_visible)
    scores<V, R, 1>(ql, qr, c + k * q.d_c, r + k * q.d_r, q.d_c, q.d_r, &S[0][k], nullptr);

  // Online softmax, key by key: the running max in a scalar pass that leaves the
  // exponents (score − max, and old max − new max where the max grew: 0, so 2^0 = 1
  // exactly, where it did not), all of them through exp2_of in whole vectors, then
  // each row's denominator in key order. Libm's expf per (row, key) had cost ~8 %.
  constexpr int64_t W = V::kWidth;
  const int64_t padded = (max_visible + W - 1) / W * W;
  uint8_t rescale[kKeyTile] = {};
  for (int i = 0; i < R; ++i) {
    float m = st.m[static_cast<size_t>(r0 + i)];
    for (int64_t j = 0; j < max_visible; ++j) {
      corr[i][j] = 0.f;
      if (j >= visible[i]) {
        p[i][j] = neg_inf;
        continue;
      }
      const float score = q.scale * S[i][j];
      if (score > m) {
        corr[i][j] = m - score;  // −inf at the first key: nothing to rescale
        rescale[j] = 1;
        m = score;
        p[i][j] = 0.f;
      } else {
        p[i][j] = score - m;
      }
    }
    for (int64_t j = max_visible; j < padded; ++j) p[i][j] = corr[i][j] = 0.f;
    st.m[static_cast<size_t>(r0 + i)] = m;
  }
  const typename V::Vec log2e = V::set1(kLog2e);
  for (int i = 0; i < R; ++i)
    for (int64_t j = 0; j < padded; j += W) {
      V::store(&p[i][j], exp2_of<V>(V::mul(V::load(&p[i][j]), log2e)));
      V::store(&corr[i][j], exp2_of<V>(V::mul(V::load(&corr[i][j]), log2e)));
    }
  for (int i = 0; i < R; ++i) {
    float l = st.l[static_cast<size_t>(r0 + i)];
    for (int64_t j = 0; j < max_visible; ++j) {
      if (rescale[j]) l *= corr[i][j];
      l += p[i][j];
    }
    st.l[static_cast<size_t>(r0 + i)] = l;
  }
  accumulate_out<V, R>(o, p, corr, rescale, c, max_visible, q.d_c);
}

template <class V>
void accumulate_runs(const LatentQueries& q, int64_t j0, int64_t count, const float* c_kv, const float* k_rope,
                     LatentAttentionState& s, const NextRun<float>& next) {
  const KeyLookahead<float> ahead(c_kv, k_rope, count, next, q.d_c, q.d_r);
  for (int64_t k0 = 0; k0 < count; k0 += kKeyTile) {
    const int64_t nk = min_of(kKeyTile, count - k0);
    const float* c = c_kv + k0 * q.d_c;
    const float* r = k_rope + k0 * q.d_r;
    for (int64_t r0 = 0; r0 < q.rows; r0 += V::kMaxRows) {
      switch (min_of(V::kMaxRows, q.rows - r0)) {
        case 8: row_group<V, 8>(q, r0, j0 + k0, nk, c, r, s, ahead, k0); break;
        case 7: row_group<V, 7>(q, r0, j0 + k0, nk, c, r, s, ahead, k0); break;
        case 6: row_group<V, 6>(q, r0, j0 + k0, nk, c, r, s, ahead, k0); break;
        case 5: row_group<V, 5>(q, r0, j0 + k0, nk, c, r, s, ahead, k0); break;
        case 4: row_group<V, 4>(q, r0, j0 + k0, nk, c, r, s, ahead, k0); break;
        case 3: row_group<V, 3>(q, r0, j0 + k0, nk, c, r, s, ahead, k0); break;
        case 2: row_group<V, 2>(q, r0, j0 + k0, nk, c, r, s, ahead, k0); break;
        default: row_group<V, 1>(q, r0, j0 + k0, nk, c, r, s, ahead, k0); break;
      }
    }
  }
}

}  // namespace
