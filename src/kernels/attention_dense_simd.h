// Standard MLA attention (attention_dense.h) written once for any vector width V: the
// ops of attention_simd.h's V plus add, sub, max, round (to nearest), scale2 (p·2^n for
// integral n) and blend_lt (a < b ? x : y lanewise). Included by each ISA's attention
// file inside an anonymous namespace, so each gets its own copy compiled with its flags.
// Query rows sit in the vector lanes (a group of V::kWidth rows): queries are
// transposed once per call, keys and values are broadcast one element at a time, so a
// tile's scores, its max, the exponentials and the rescale are whole vectors and no
// horizontal sum is needed. Softmax runs in base 2 (queries pre-scaled by log2 e).
// Same rule as attention_simd.h: builtins and local helpers only, no std templates.
#pragma once
#include <cstdint>

#include "kernels/attention_dense.h"
#include "kernels/vec_exp2.h"

namespace {

using mlamoe::kernels::DenseAttentionState;
using mlamoe::kernels::DenseKeys;
using mlamoe::kernels::DenseQueries;

// Keys per online-softmax step; the caller's scratch holds (d_qk + d_v + kDenseKeyTile)
// vectors of up to 16 floats (attention_dense.cpp).
constexpr int64_t kDenseKeyTile = 32;

inline int64_t dense_min(int64_t a, int64_t b) { return a < b ? a : b; }

// S[kk] (one vector: the group's rows) = Qt · [k_nope | k_rope] of keys j … j+K-1.
template <class V, int K>
void dense_scores(const float* Qt, const DenseKeys& k, int64_t j, int64_t d_nope, int64_t d_rope, float* S) {
  constexpr int64_t W = V::kWidth;
  typename V::Vec acc[K];
  const float* kn[K];
  const float* kr[K];
  for (int kk = 0; kk < K; ++kk) {
    acc[kk] = V::zero();
    kn[kk] = k.k_nope + (j + kk) * k.k_stride;
    kr[kk] = k.k_rope + (j + kk) * k.r_stride;
  }
  for (int64_t d = 0; d < d_nope; ++d) {
    const typename V::Vec qv = V::load(Qt + d * W);
    for (int kk = 0; kk < K; ++kk) acc[kk] = V::fmadd(qv, V::set1(kn[kk][d]), acc[kk]);
  }
  for (int64_t d = 0; d < d_rope; ++d) {
    const typename V::Vec qv = V::load(Qt + (d_nope + d) * W);
    for (int kk = 0; kk < K; ++kk) acc[kk] = V::fmadd(qv, V::set1(kr[kk][d]), acc[kk]);
  }
  for (int kk = 0; kk < K; ++kk) V::store(S + kk * W, acc[kk]);
}

// Ot[d] = Ot[d]·corr + Σ_j P[j]·v_j[d] for d in [d0, d0 + D) over the tile's nk keys.
template <class V, int D>
void dense_values(float* Ot, const float* P, typename V::Vec corr, const DenseKeys& k, int64_t t0, int64_t nk, int64_t d0) {
  constexpr int64_t W = V::kWidth;
  typename V::Vec acc[D];
  for (int dd = 0; dd < D; ++dd) acc[dd] = V::mul(V::load(Ot + (d0 + dd) * W), corr);
  for (int64_t j = 0; j < nk; ++j) {
    const typename V::Vec pj = V::load(P + j * W);
    const float* v = k.v + (t0 + j) * k.v_stride + d0;
    for (int dd = 0; dd < D; ++dd) acc[dd] = V::fmadd(pj, V::set1(v[dd]), acc[dd]);
  }
  for (int dd = 0; dd < D; ++dd) V::store(Ot + (d0 + dd) * W, acc[dd]);
}

// Rows [r0, r0 + kWidth) (fewer at the end: padded lanes see no key) against the keys.
template <class V>
void dense_row_group(const DenseQueries& q, int64_t r0, const DenseKeys& k, DenseAttentionState& st, float* scratch) {
  constexpr int64_t W = V::kWidth;
  static_assert(W <= 16, "scratch is sized for 16 lanes");
  using Vec = typename V::Vec;
  const float neg_inf = -__builtin_inff();
  const int64_t nr = dense_min(W, q.rows - r0), d_qk = q.d_nope + q.d_rope, d_v = q.d_v;
  alignas(64) float last[W], mb[W], lb[W];
  int64_t last_max = -1, last_min = k.pos0 + k.count;
  for (int64_t i = 0; i < W; ++i) {
    const int64_t lp = i < nr ? q.last_pos[r0 + i] : -1;
    last[i] = static_cast<float>(lp);
    last_max = lp > last_max ? lp : last_max;
    last_min = lp < last_min ? lp : last_min;
  }
  int64_t visible = last_max - k.pos0 + 1;
  visible = visible < 0 ? 0 : visible > k.count ? k.count : visible;
  if (visible == 0) return;

  float* Qt = scratch;
  float* Ot = Qt + d_qk * W;
  float* P = Ot + d_v * W;
  const float qscale = q.scale * kLog2e;
  for (int64_t i = 0; i < W; ++i) {
    const float* qi = q.q + (r0 + i) * q.q_stride;
    const float* oi = st.o.data() + (r0 + i) * d_v;
    for (int64_t d = 0; d < d_qk; ++d) Qt[d * W + i] = i < nr ? qi[d] * qscale : 0.f;
    for (int64_t d = 0; d < d_v; ++d) Ot[d * W + i] = i < nr ? oi[d] : 0.f;
    mb[i] = i < nr ? st.m[static_cast<size_t>(r0 + i)] : neg_inf;
    lb[i] = i < nr ? st.l[static_cast<size_t>(r0 + i)] : 0.f;
  }
  Vec m = V::load(mb), l = V::load(lb);
  const Vec last_v = V::load(last), minus_inf = V::set1(neg_inf), none_seen = V::set1(-1e30f);

  for (int64_t t0 = 0; t0 < visible; t0 += kDenseKeyTile) {
    const int64_t nk = dense_min(kDenseKeyTile, visible - t0);
    int64_t j = 0;
    for (; j + 8 <= nk; j += 8) dense_scores<V, 8>(Qt, k, t0 + j, q.d_nope, q.d_rope, P + j * W);
    for (; j < nk; ++j) dense_scores<V, 1>(Qt, k, t0 + j, q.d_nope, q.d_rope, P + j * W);
    // Causal edge: a row whose last position is before a key gets -inf there (positions
    // compared as floats: exact below 2^24).
    if (k.pos0 + t0 + nk - 1 > last_min)
      for (j = 0; j < nk; ++j)
        V::store(P + j * W, V::blend_lt(last_v, V::set1(static_cast<float>(k.pos0 + t0 + j)), minus_inf, V::load(P + j * W)));
    Vec tile_max = V::load(P);
    for (j = 1; j < nk; ++j) tile_max = V::max(tile_max, V::load(P + j * W));
    const Vec m_new = V::max(m, tile_max);
    // A row that has seen no key yet keeps m = -inf; 0 stands in so no -inf - -inf.
    const Vec m_ref = V::blend_lt(m_new, none_seen, V::zero(), m_new);
    const Vec corr = exp2_of<V>(V::sub(m, m_ref));
    Vec sum = V::zero();
    for (j = 0; j < nk; ++j) {
      const Vec p = exp2_of<V>(V::sub(V::load(P + j * W), m_ref));
      V::store(P + j * W, p);
      sum = V::add(sum, p);
    }
    l = V::fmadd(l, corr, sum);
    m = m_new;
    int64_t d = 0;
    for (; d + 8 <= d_v; d += 8) dense_values<V, 8>(Ot, P, corr, k, t0, nk, d);
    for (; d < d_v; ++d) dense_values<V, 1>(Ot, P, corr, k, t0, nk, d);
  }

  V::store(mb, m);
  V::store(lb, l);
  for (int64_t i = 0; i < nr; ++i) {
    float* oi = st.o.data() + (r0 + i) * d_v;
    for (int64_t d = 0; d < d_v; ++d) oi[d] = Ot[d * W + i];
    st.m[static_cast<size_t>(r0 + i)] = mb[i];
    st.l[static_cast<size_t>(r0 + i)] = lb[i];
  }
}

template <class V>
void dense_accumulate(const DenseQueries& q, const DenseKeys& k, DenseAttentionState& s, float* scratch) {
  for (int64_t r0 = 0; r0 < q.rows; r0 += V::kWidth) dense_row_group<V>(q, r0, k, s, scratch);
}

}  // namespace
