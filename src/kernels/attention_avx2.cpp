// Absorbed MLA attention, AVX2 + FMA (compiled with per-file ISA flags; only called
// after the dispatch point has checked the CPU). Keys are taken in tiles of kKeyTile
// and query rows in groups of up to 4: a tile is read once per group while the group's
// queries and outputs stay in registers/L1. Every (row, key) score has its own
// accumulator and every output element the same sequence of operations whatever the
// tiling, so results do not depend on how the caller cuts the keys into runs.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "kernels/attention.h"

namespace mlamoe::kernels {
namespace {

constexpr int64_t kKeyTile = 32;
constexpr int kMaxRows = 4;

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// dot(q_lat_i, c_kv_k) + dot(q_rope_i, k_rope_k) for R rows × K keys into S[i·kKeyTile + k].
template <int R, int K>
void scores(const float* const* ql, const float* const* qr, const float* c, const float* r, int64_t d_c, int64_t d_r,
            float* S) {
  __m256 acc[R][K];
  for (int i = 0; i < R; ++i)
    for (int k = 0; k < K; ++k) acc[i][k] = _mm256_setzero_ps();
  int64_t dc = 0;
  for (; dc + 8 <= d_c; dc += 8) {
    __m256 kv[K];
    for (int k = 0; k < K; ++k) kv[k] = _mm256_loadu_ps(c + k * d_c + dc);
    for (int i = 0; i < R; ++i) {
      const __m256 qv = _mm256_loadu_ps(ql[i] + dc);
      for (int k = 0; k < K; ++k) acc[i][k] = _mm256_fmadd_ps(qv, kv[k], acc[i][k]);
    }
  }
  int64_t dr = 0;
  for (; dr + 8 <= d_r; dr += 8) {
    __m256 kv[K];
    for (int k = 0; k < K; ++k) kv[k] = _mm256_loadu_ps(r + k * d_r + dr);
    for (int i = 0; i < R; ++i) {
      const __m256 qv = _mm256_loadu_ps(qr[i] + dr);
      for (int k = 0; k < K; ++k) acc[i][k] = _mm256_fmadd_ps(qv, kv[k], acc[i][k]);
    }
  }
  for (int i = 0; i < R; ++i)
    for (int k = 0; k < K; ++k) {
      float s = hsum(acc[i][k]);
      for (int64_t d = dc; d < d_c; ++d) s = std::fma(ql[i][d], c[k * d_c + d], s);
      for (int64_t d = dr; d < d_r; ++d) s = std::fma(qr[i][d], r[k * d_r + d], s);
      S[i * kKeyTile + k] = s;
    }
}

// o_i = o_i · corr_ik (only where some row's max grew at key k) + p_ik · c_kv_k, over
// keys k < nk in order, for R rows.
template <int R>
void accumulate_out(float* const* o, const float (*p)[kKeyTile], const float (*corr)[kKeyTile], const uint8_t* rescale,
                    const float* c, int64_t nk, int64_t d_c) {
  int64_t d = 0;
  for (; d + 16 <= d_c; d += 16) {
    __m256 a[R][2];
    for (int i = 0; i < R; ++i) {
      a[i][0] = _mm256_loadu_ps(o[i] + d);
      a[i][1] = _mm256_loadu_ps(o[i] + d + 8);
    }
    for (int64_t k = 0; k < nk; ++k) {
      if (rescale[k])
        for (int i = 0; i < R; ++i) {
          const __m256 cr = _mm256_set1_ps(corr[i][k]);
          a[i][0] = _mm256_mul_ps(a[i][0], cr);
          a[i][1] = _mm256_mul_ps(a[i][1], cr);
        }
      const __m256 c0 = _mm256_loadu_ps(c + k * d_c + d), c1 = _mm256_loadu_ps(c + k * d_c + d + 8);
      for (int i = 0; i < R; ++i) {
        const __m256 pv = _mm256_set1_ps(p[i][k]);
        a[i][0] = _mm256_fmadd_ps(pv, c0, a[i][0]);
        a[i][1] = _mm256_fmadd_ps(pv, c1, a[i][1]);
      }
    }
    for (int i = 0; i < R; ++i) {
      _mm256_storeu_ps(o[i] + d, a[i][0]);
      _mm256_storeu_ps(o[i] + d + 8, a[i][1]);
    }
  }
  for (; d + 8 <= d_c; d += 8) {
    __m256 a[R];
    for (int i = 0; i < R; ++i) a[i] = _mm256_loadu_ps(o[i] + d);
    for (int64_t k = 0; k < nk; ++k) {
      if (rescale[k])
        for (int i = 0; i < R; ++i) a[i] = _mm256_mul_ps(a[i], _mm256_set1_ps(corr[i][k]));
      const __m256 c0 = _mm256_loadu_ps(c + k * d_c + d);
      for (int i = 0; i < R; ++i) a[i] = _mm256_fmadd_ps(_mm256_set1_ps(p[i][k]), c0, a[i]);
    }
    for (int i = 0; i < R; ++i) _mm256_storeu_ps(o[i] + d, a[i]);
  }
  for (; d < d_c; ++d)
    for (int i = 0; i < R; ++i) {
      float v = o[i][d];
      for (int64_t k = 0; k < nk; ++k) {
        if (rescale[k]) v *= corr[i][k];
        v = std::fma(p[i][k], c[k * d_c + d], v);
      }
      o[i][d] = v;
    }
}

// One group of R query rows (starting at row r0) against keys [k0, k0 + nk) of the call.
template <int R>
void row_group(const LatentQueries& q, int64_t r0, int64_t key_pos, int64_t nk, const float* c, const float* r,
               LatentAttentionState& st) {
  const float neg_inf = -std::numeric_limits<float>::infinity();
  int64_t visible[R], max_visible = 0;
  for (int i = 0; i < R; ++i) {
    visible[i] = std::clamp<int64_t>(q.last_pos[r0 + i] - key_pos + 1, 0, nk);
    max_visible = std::max(max_visible, visible[i]);
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
  alignas(32) float S[R][kKeyTile], p[R][kKeyTile], corr[R][kKeyTile];
  int64_t k = 0;
  for (; k + 2 <= max_visible; k += 2)
    scores<R, 2>(ql, qr, c + k * q.d_c, r + k * q.d_r, q.d_c, q.d_r, &S[0][k]);
  if (k < max_visible)
    scores<R, 1>(ql, qr, c + k * q.d_c, r + k * q.d_r, q.d_c, q.d_r, &S[0][k]);

  // Online softmax, key by key (scalar: one exp per (row, key)).
  uint8_t rescale[kKeyTile] = {};
  for (int i = 0; i < R; ++i) {
    float m = st.m[static_cast<size_t>(r0 + i)], l = st.l[static_cast<size_t>(r0 + i)];
    for (int64_t j = 0; j < max_visible; ++j) {
      corr[i][j] = 1.f;
      if (j >= visible[i]) {
        p[i][j] = 0.f;
        continue;
      }
      const float score = q.scale * S[i][j];
      if (score > m) {
        corr[i][j] = m == neg_inf ? 0.f : std::exp(m - score);
        rescale[j] = 1;
        l *= corr[i][j];
        m = score;
        p[i][j] = 1.f;
      } else {
        p[i][j] = std::exp(score - m);
      }
      l += p[i][j];
    }
    st.m[static_cast<size_t>(r0 + i)] = m;
    st.l[static_cast<size_t>(r0 + i)] = l;
  }
  accumulate_out<R>(o, p, corr, rescale, c, max_visible, q.d_c);
}

}  // namespace

void latent_attention_accumulate_avx2(const LatentQueries& q, int64_t j0, int64_t count, const float* c_kv,
                                      const float* k_rope, LatentAttentionState& s) {
  for (int64_t k0 = 0; k0 < count; k0 += kKeyTile) {
    const int64_t nk = std::min(kKeyTile, count - k0);
    const float* c = c_kv + k0 * q.d_c;
    const float* r = k_rope + k0 * q.d_r;
    for (int64_t r0 = 0; r0 < q.rows; r0 += kMaxRows) {
      switch (std::min<int64_t>(kMaxRows, q.rows - r0)) {
        case 4: row_group<4>(q, r0, j0 + k0, nk, c, r, s); break;
        case 3: row_group<3>(q, r0, j0 + k0, nk, c, r, s); break;
        case 2: row_group<2>(q, r0, j0 + k0, nk, c, r, s); break;
        default: row_group<1>(q, r0, j0 + k0, nk, c, r, s); break;
      }
    }
  }
}

}  // namespace mlamoe::kernels
