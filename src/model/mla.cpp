// Multi-head Latent Attention (DeepSeek-V2 report, §2.1). Per token:
//   c_kv   = RMSNorm(W_DKV h)              latent, kv_lora_rank wide: all the cache keeps
//   k_rope = RoPE(W_KR h)                  one rotary key shared by every head
//   q      = W_UQ RMSNorm(W_DQ h)  (or W_Q h)   per head: [q_nope | q_rope]
// Naive:    k_nope = W_UK c_kv, v = W_UV c_kv per head, then standard attention.
// Absorbed: q_nope·(W_UK c_kv) = (W_UK^T q_nope)·c_kv, so scores are taken directly
//           against the cached latents, and W_UV is applied once after the weighted sum.
#include <algorithm>
#include <cmath>

#include "kernels/kernels.h"
#include "model/layers.h"
#include "model/ops.h"
#include "model/rope.h"

namespace mlamoe {

namespace {

// Rows [r0, r0+n) of a matrix view.
WeightView rows_of(const WeightView& w, int64_t r0, int64_t n) {
  WeightView v = w;
  v.data = w.row(r0);
  v.rows = n;
  return v;
}

struct Dims {
  int64_t H, d_nope, d_rope, d_qk, d_v, d_c;
  explicit Dims(const ModelConfig& c)
      : H(c.n_heads), d_nope(c.qk_nope_head_dim), d_rope(c.qk_rope_head_dim), d_qk(c.qk_head_dim()),
        d_v(c.v_head_dim), d_c(c.kv_lora_rank) {}
};

// q_lat[t] = W_UK[h]^T q_nope[t] for head h (T × d_c).
void absorb_query(const LayerWeights& L, const Dims& D, int64_t h, const float* q_nope_h, int64_t T, float* q_lat) {
  if (!L.w_uk.empty()) kernels::matmul(L.w_uk[static_cast<size_t>(h)], q_nope_h, T, q_lat);
  else kernels::matmul_transposed(rows_of(L.wkv_b, h * (D.d_nope + D.d_v), D.d_nope), q_nope_h, T, q_lat);
}

// v[t] = W_UV[h] x[t] (T × d_v), x in latent space.
void up_project_value(const LayerWeights& L, const Dims& D, int64_t h, const float* x, int64_t T, float* v) {
  if (!L.w_uv.empty()) kernels::matmul(L.w_uv[static_cast<size_t>(h)], x, T, v);
  else kernels::matmul(rows_of(L.wkv_b, h * (D.d_nope + D.d_v) + D.d_nope, D.d_v), x, T, v);
}

// k_nope[t] = W_UK[h] c_kv[t] (T × d_nope): the naive path's decompressed key.
void up_project_key(const LayerWeights& L, const Dims& D, int64_t h, const float* c_kv, int64_t T, float* k_nope) {
  if (!L.w_uk.empty()) kernels::matmul_transposed(L.w_uk[static_cast<size_t>(h)], c_kv, T, k_nope);
  else kernels::matmul(rows_of(L.wkv_b, h * (D.d_nope + D.d_v), D.d_nope), c_kv, T, k_nope);
}

float dot(const float* a, const float* b, int64_t n) {
  float s = 0.f;
  for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

// Absorbed attention for every (token, head): scores against cached latents, then the
// probability-weighted sum of latents, up-projected by W_UV. Writes T × (H·d_v).
void attend_absorbed(const AttentionContext& ctx, const LayerWeights& L, int64_t layer, const Dims& D,
                     const std::vector<float>& q, int64_t T, float* attn) {
  const float scale = static_cast<float>(ctx.config.softmax_scale());
  std::vector<float> q_nope(static_cast<size_t>(T * D.d_nope)), q_lat(static_cast<size_t>(D.H * T * D.d_c));
  for (int64_t h = 0; h < D.H; ++h) {
    for (int64_t t = 0; t < T; ++t)
      std::copy_n(q.data() + (t * D.H + h) * D.d_qk, D.d_nope, q_nope.data() + t * D.d_nope);
    absorb_query(L, D, h, q_nope.data(), T, q_lat.data() + h * T * D.d_c);
  }
  std::vector<float> ctx_lat(static_cast<size_t>(D.H * T * D.d_c));
#pragma omp parallel for collapse(2) schedule(dynamic, 1) num_threads(kernels::threads())
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t h = 0; h < D.H; ++h) {
      const int32_t seq = ctx.batch.seq_ids[static_cast<size_t>(t)];
      const int64_t n = ctx.batch.positions[static_cast<size_t>(t)] + 1;  // causal: positions 0..pos
      const float* ql = q_lat.data() + (h * T + t) * D.d_c;
      const float* qr = q.data() + (t * D.H + h) * D.d_qk + D.d_nope;
      std::vector<float> p(static_cast<size_t>(n));
      ctx.kv.for_each_run(seq, layer, n, [&](int64_t j0, int64_t cnt, const float* c_kv, const float* k_rope) {
        for (int64_t j = 0; j < cnt; ++j)
          p[static_cast<size_t>(j0 + j)] = (dot(ql, c_kv + j * D.d_c, D.d_c) + dot(qr, k_rope + j * D.d_rope, D.d_rope)) * scale;
      });
      softmax(p.data(), n);
      float* o = ctx_lat.data() + (h * T + t) * D.d_c;
      std::fill(o, o + D.d_c, 0.f);
      ctx.kv.for_each_run(seq, layer, n, [&](int64_t j0, int64_t cnt, const float* c_kv, const float*) {
        for (int64_t j = 0; j < cnt; ++j) {
          const float pj = p[static_cast<size_t>(j0 + j)];
          const float* c = c_kv + j * D.d_c;
          for (int64_t i = 0; i < D.d_c; ++i) o[i] += pj * c[i];
        }
      });
    }
  }
  std::vector<float> v(static_cast<size_t>(T * D.d_v));
  for (int64_t h = 0; h < D.H; ++h) {
    up_project_value(L, D, h, ctx_lat.data() + h * T * D.d_c, T, v.data());
    for (int64_t t = 0; t < T; ++t) std::copy_n(v.data() + t * D.d_v, D.d_v, attn + (t * D.H + h) * D.d_v);
  }
}

// Naive attention: decompress per-head keys and values of every cached position of
// each sequence in the batch, then standard scaled dot-product attention.
void attend_naive(const AttentionContext& ctx, const LayerWeights& L, int64_t layer, const Dims& D,
                  const std::vector<float>& q, int64_t T, float* attn) {
  const float scale = static_cast<float>(ctx.config.softmax_scale());
  std::vector<int32_t> seqs(ctx.batch.seq_ids.begin(), ctx.batch.seq_ids.end());
  std::sort(seqs.begin(), seqs.end());
  seqs.erase(std::unique(seqs.begin(), seqs.end()), seqs.end());
  for (int32_t seq : seqs) {
    int64_t n = 0;
    for (int64_t t = 0; t < T; ++t)
      if (ctx.batch.seq_ids[static_cast<size_t>(t)] == seq) n = std::max<int64_t>(n, ctx.batch.positions[static_cast<size_t>(t)] + 1);
    std::vector<float> c_kv(static_cast<size_t>(n * D.d_c)), k_rope(static_cast<size_t>(n * D.d_rope));
    ctx.kv.for_each_run(seq, layer, n, [&](int64_t j0, int64_t cnt, const float* c, const float* r) {
      std::copy_n(c, cnt * D.d_c, c_kv.data() + j0 * D.d_c);
      std::copy_n(r, cnt * D.d_rope, k_rope.data() + j0 * D.d_rope);
    });
    std::vector<float> k_nope(static_cast<size_t>(D.H * n * D.d_nope)), v(static_cast<size_t>(D.H * n * D.d_v));
    for (int64_t h = 0; h < D.H; ++h) {
      up_project_key(L, D, h, c_kv.data(), n, k_nope.data() + h * n * D.d_nope);
      up_project_value(L, D, h, c_kv.data(), n, v.data() + h * n * D.d_v);
    }
#pragma omp parallel for collapse(2) schedule(dynamic, 1) num_threads(kernels::threads())
    for (int64_t t = 0; t < T; ++t) {
      for (int64_t h = 0; h < D.H; ++h) {
        if (ctx.batch.seq_ids[static_cast<size_t>(t)] != seq) continue;
        const int64_t m = ctx.batch.positions[static_cast<size_t>(t)] + 1;
        const float* qh = q.data() + (t * D.H + h) * D.d_qk;
        std::vector<float> p(static_cast<size_t>(m));
        for (int64_t j = 0; j < m; ++j)
          p[static_cast<size_t>(j)] = (dot(qh, k_nope.data() + (h * n + j) * D.d_nope, D.d_nope) +
                                       dot(qh + D.d_nope, k_rope.data() + j * D.d_rope, D.d_rope)) * scale;
        softmax(p.data(), m);
        float* o = attn + (t * D.H + h) * D.d_v;
        std::fill(o, o + D.d_v, 0.f);
        for (int64_t j = 0; j < m; ++j) {
          const float* vj = v.data() + (h * n + j) * D.d_v;
          for (int64_t i = 0; i < D.d_v; ++i) o[i] += p[static_cast<size_t>(j)] * vj[i];
        }
      }
    }
  }
}

}  // namespace

void mla_attention(const AttentionContext& ctx, const LayerWeights& L, int64_t layer, const float* h, int64_t T,
                   float* out) {
  const ModelConfig& c = ctx.config;
  const Dims D(c);

  // Queries: [q_nope | q_rope] per head, rope rotated.
  std::vector<float> q(static_cast<size_t>(T * D.H * D.d_qk));
  if (!L.wq.empty()) {
    kernels::matmul(L.wq, h, T, q.data());
  } else {
    std::vector<float> c_q(static_cast<size_t>(T * c.q_lora_rank));
    kernels::matmul(L.wq_a, h, T, c_q.data());
    for (int64_t t = 0; t < T; ++t)
      rms_norm(c_q.data() + t * c.q_lora_rank, L.q_a_norm.data(), c.q_lora_rank, c.rms_norm_eps, c_q.data() + t * c.q_lora_rank);
    kernels::matmul(L.wq_b, c_q.data(), T, q.data());
  }
  for (int64_t t = 0; t < T; ++t)
    for (int64_t hd = 0; hd < D.H; ++hd)
      apply_rope(q.data() + (t * D.H + hd) * D.d_qk + D.d_nope, ctx.batch.positions[static_cast<size_t>(t)], ctx.rope_inv_freq);

  // Latent c_kv and shared k_rope: appended to the cache before attending, so a token
  // sees itself and the earlier tokens of its own batch.
  std::vector<float> kv_a(static_cast<size_t>(T * (D.d_c + D.d_rope)));
  kernels::matmul(L.wkv_a, h, T, kv_a.data());
  for (int64_t t = 0; t < T; ++t) {
    float* c_kv = kv_a.data() + t * (D.d_c + D.d_rope);
    float* k_rope = c_kv + D.d_c;
    rms_norm(c_kv, L.kv_a_norm.data(), D.d_c, c.rms_norm_eps, c_kv);
    apply_rope(k_rope, ctx.batch.positions[static_cast<size_t>(t)], ctx.rope_inv_freq);
    ctx.kv.store(ctx.batch.seq_ids[static_cast<size_t>(t)], layer, ctx.batch.positions[static_cast<size_t>(t)], c_kv, k_rope);
  }

  std::vector<float> attn(static_cast<size_t>(T * D.H * D.d_v));
  if (ctx.mode == AttentionMode::Absorbed) attend_absorbed(ctx, L, layer, D, q, T, attn.data());
  else attend_naive(ctx, L, layer, D, q, T, attn.data());
  kernels::matmul(L.wo, attn.data(), T, out);
}

}  // namespace mlamoe
