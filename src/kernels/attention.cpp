// Absorbed MLA attention: the scalar reference, the online-softmax merge, and the
// dispatch to the vector paths (attention_simd.h, one copy per ISA).
#include "kernels/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/kernels.h"
#include "kernels/online_softmax.h"

namespace mlamoe::kernels {

void latent_attention_accumulate_avx2(const LatentQueries& q, int64_t j0, int64_t count, const float* c_kv,
                                      const float* k_rope, LatentAttentionState& s, const NextRun<float>& next);
void latent_attention_accumulate_avx512(const LatentQueries& q, int64_t j0, int64_t count, const float* c_kv,
                                        const float* k_rope, LatentAttentionState& s, const NextRun<float>& next);

bool latent_attention_bf16_fits(const LatentQueries& q);
void round_latent_queries_bf16_avx512(const LatentQueries& q, uint16_t* out);
void latent_attention_accumulate_bf16_avx512(const LatentQueries& q, int64_t j0, int64_t count, const uint16_t* c_kv,
                                             const uint16_t* k_rope, LatentAttentionState& s,
                                             const NextRun<uint16_t>& next);

void LatentAttentionState::reset(int64_t rows, int64_t d_c) {
  m.assign(static_cast<size_t>(rows), -std::numeric_limits<float>::infinity());
  l.assign(static_cast<size_t>(rows), 0.f);
  o.assign(static_cast<size_t>(rows * d_c), 0.f);
}

void latent_attention_accumulate(const LatentQueries& q, int64_t j0, int64_t count, const float* c_kv,
                                 const float* k_rope, LatentAttentionState& s, const NextRun<float>& next) {
  switch (active_isa()) {
    case Isa::Avx512: return latent_attention_accumulate_avx512(q, j0, count, c_kv, k_rope, s, next);
    case Isa::AvxVnni:
    case Isa::Avx2: return latent_attention_accumulate_avx2(q, j0, count, c_kv, k_rope, s, next);
    default: return latent_attention_accumulate_reference(q, j0, count, c_kv, k_rope, s);
  }
}

static bool bf16_kernel_for(const LatentQueries& q) {
  static const bool has_bf16 = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512bf16") != 0;
  }();
  return active_isa() == Isa::Avx512 && has_bf16 && latent_attention_bf16_fits(q);
}

bool round_latent_queries_bf16(const LatentQueries& q, uint16_t* out) {
  if (!bf16_kernel_for(q)) return false;
  round_latent_queries_bf16_avx512(q, out);
  return true;
}

void latent_attention_accumulate_bf16(const LatentQueries& q, int64_t j0, int64_t count, const uint16_t* c_kv,
                                      const uint16_t* k_rope, LatentAttentionState& s, const NextRun<uint16_t>& next) {
  if (bf16_kernel_for(q)) return latent_attention_accumulate_bf16_avx512(q, j0, count, c_kv, k_rope, s, next);
  thread_local std::vector<float> c, r;
  c.resize(static_cast<size_t>(count * q.d_c));
  r.resize(static_cast<size_t>(count * q.d_r));
  widen_row(GgmlType::BF16, c_kv, c.data(), count * q.d_c);
  widen_row(GgmlType::BF16, k_rope, r.data(), count * q.d_r);
  latent_attention_accumulate(q, j0, count, c.data(), r.data(), s);
}

void latent_attention_accumulate_reference(const LatentQueries& q, int64_t j0, int64_t count, const float* c_kv,
                                           const float* k_rope, LatentAttentionState& s) {
  for (int64_t i = 0; i < q.rows; ++i) {
    const float* ql = q.q_lat + i * q.d_c;
    const float* qr = q.q_rope + i * q.d_r;
    float* o = s.o.data() + i * q.d_c;
    float& m = s.m[static_cast<size_t>(i)];
    float& l = s.l[static_cast<size_t>(i)];
    for (int64_t j = 0; j < count && j0 + j <= q.last_pos[i]; ++j) {
      const float* c = c_kv + j * q.d_c;
      const float* r = k_rope + j * q.d_r;
      float dot = 0.f;
      for (int64_t d = 0; d < q.d_c; ++d) dot += ql[d] * c[d];
      for (int64_t d = 0; d < q.d_r; ++d) dot += qr[d] * r[d];
      const float score = q.scale * dot;
      online_softmax_add(score, c, q.d_c, m, l, o, [](float a) { return std::exp(a); });
    }
  }
}

void latent_attention_merge(LatentAttentionState& a, const LatentAttentionState& b, int64_t d_c) {
  const float neg_inf = -std::numeric_limits<float>::infinity();
  for (size_t i = 0; i < a.m.size(); ++i) {
    if (b.m[i] == neg_inf) continue;  // b saw no key for this row
    float* oa = a.o.data() + static_cast<int64_t>(i) * d_c;
    const float* ob = b.o.data() + static_cast<int64_t>(i) * d_c;
    const float m = std::max(a.m[i], b.m[i]);
    const float ca = a.m[i] == neg_inf ? 0.f : std::exp(a.m[i] - m), cb = std::exp(b.m[i] - m);
    for (int64_t d = 0; d < d_c; ++d) oa[d] = oa[d] * ca + ob[d] * cb;
    a.l[i] = a.l[i] * ca + b.l[i] * cb;
    a.m[i] = m;
  }
}

void latent_attention_finish(const LatentAttentionState& s, int64_t d_c, float* out) {
  for (size_t i = 0; i < s.m.size(); ++i) {
    const float inv = s.l[i] > 0.f ? 1.f / s.l[i] : 0.f;
    const float* o = s.o.data() + static_cast<int64_t>(i) * d_c;
    float* y = out + static_cast<int64_t>(i) * d_c;
    for (int64_t d = 0; d < d_c; ++d) y[d] = o[d] * inv;
  }
}

}  // namespace mlamoe::kernels
