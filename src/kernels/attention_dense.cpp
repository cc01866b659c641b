// Standard MLA attention (the naive path): the scalar reference, the finish, and the
// dispatch to the vector paths (attention_dense_simd.h, one copy per ISA file).
#include "kernels/attention_dense.h"

#include <cmath>
#include <limits>

#include "kernels/kernels.h"
#include "kernels/online_softmax.h"

namespace mlamoe::kernels {

void dense_attention_accumulate_avx2(const DenseQueries& q, const DenseKeys& k, DenseAttentionState& s, float* scratch);
void dense_attention_accumulate_avx512(const DenseQueries& q, const DenseKeys& k, DenseAttentionState& s,
                                       float* scratch);

void DenseAttentionState::reset(int64_t rows, int64_t d_v) {
  m.assign(static_cast<size_t>(rows), -std::numeric_limits<float>::infinity());
  l.assign(static_cast<size_t>(rows), 0.f);
  o.assign(static_cast<size_t>(rows * d_v), 0.f);
}

void dense_attention_accumulate(const DenseQueries& q, const DenseKeys& k, DenseAttentionState& s) {
  const Isa isa = active_isa();
  if (isa == Isa::Scalar) return dense_attention_accumulate_reference(q, k, s);
  // Transposed queries, outputs and one key tile's scores: (d_qk + d_v + 32) vectors of
  // up to 16 lanes (kDenseKeyTile in attention_dense_simd.h).
  thread_local std::vector<float> scratch;
  scratch.resize(static_cast<size_t>((q.d_nope + q.d_rope + q.d_v + 32) * 16));
  if (isa == Isa::Avx512) dense_attention_accumulate_avx512(q, k, s, scratch.data());
  else dense_attention_accumulate_avx2(q, k, s, scratch.data());
}

// Key by key in position order, base-2 online softmax (the same state as the vector
// paths: m is a running max of score·log2 e).
void dense_attention_accumulate_reference(const DenseQueries& q, const DenseKeys& k, DenseAttentionState& s) {
  const float qscale = q.scale * 1.44269504088896341f;
  for (int64_t i = 0; i < q.rows; ++i) {
    const float* qn = q.q + i * q.q_stride;
    const float* qr = qn + q.d_nope;
    float* o = s.o.data() + i * q.d_v;
    float& m = s.m[static_cast<size_t>(i)];
    float& l = s.l[static_cast<size_t>(i)];
    for (int64_t j = 0; j < k.count && k.pos0 + j <= q.last_pos[i]; ++j) {
      const float* kn = k.k_nope + j * k.k_stride;
      const float* kr = k.k_rope + j * k.r_stride;
      const float* v = k.v + j * k.v_stride;
      float dot = 0.f;
      for (int64_t d = 0; d < q.d_nope; ++d) dot += qn[d] * kn[d];
      for (int64_t d = 0; d < q.d_rope; ++d) dot += qr[d] * kr[d];
      const float x = qscale * dot;
      online_softmax_add(x, v, q.d_v, m, l, o, [](float a) { return std::exp2(a); });
    }
  }
}

void dense_attention_finish(const DenseAttentionState& s, int64_t d_v, float* out, int64_t out_stride) {
  for (size_t i = 0; i < s.m.size(); ++i) {
    const float inv = s.l[i] > 0.f ? 1.f / s.l[i] : 0.f;
    const float* o = s.o.data() + static_cast<int64_t>(i) * d_v;
    float* y = out + static_cast<int64_t>(i) * out_stride;
    for (int64_t d = 0; d < d_v; ++d) y[d] = o[d] * inv;
  }
}

}  // namespace mlamoe::kernels
