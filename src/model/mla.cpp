// Multi-head Latent Attention (DeepSeek-V2 report, §2.1). Per token:
//   c_kv   = RMSNorm(W_DKV h)              latent, kv_lora_rank wide: all the cache keeps
//   k_rope = RoPE(W_KR h)                  one rotary key shared by every head
//   q      = W_UQ RMSNorm(W_DQ h)  (or W_Q h)   per head: [q_nope | q_rope]
// Naive:    k_nope = W_UK c_kv, v = W_UV c_kv per head, then standard attention.
// Absorbed: q_nope·(W_UK c_kv) = (W_UK^T q_nope)·c_kv, so scores are taken directly
//           against the cached latents, and W_UV is applied once after the weighted sum.
#include <algorithm>
#include <cmath>

#include "kernels/attention.h"
#include "kernels/kernels.h"
#include "model/layers.h"
#include "model/ops.h"
#include "model/rope.h"

namespace mlamoe {

namespace {

struct Dims {
  int64_t H, d_nope, d_rope, d_qk, d_v, d_c;
  explicit Dims(const ModelConfig& c)
      : H(c.n_heads), d_nope(c.qk_nope_head_dim), d_rope(c.qk_rope_head_dim), d_qk(c.qk_head_dim()),
        d_v(c.v_head_dim), d_c(c.kv_lora_rank) {}
};

// q_lat[t] = W_UK[h]^T q_nope[t] for head h (T × d_c).
void absorb_query(const LayerWeights& L, const Dims& D, int64_t h, const float* q_nope_h, int64_t T, float* q_lat) {
  if (L.w_uk.empty()) {
    kernels::matmul_transposed(kernels::row_slice(L.wkv_b, h * (D.d_nope + D.d_v), D.d_nope), q_nope_h, T, q_lat);
  } else if (!L.w_uk_scale.empty()) {  // built from a legacy attn_kv_b, the file's scales beside it
    const float* scale = L.w_uk_scale.data() + h * (D.d_c / 32) * D.d_nope;
    kernels::matmul_column_scaled(L.w_uk[static_cast<size_t>(h)], scale, q_nope_h, T, q_lat);
  } else {
    kernels::matmul(L.w_uk[static_cast<size_t>(h)], q_nope_h, T, q_lat);
  }
}

// v[t] = W_UV[h] x[t] (T × d_v), x in latent space.
void up_project_value(const LayerWeights& L, const Dims& D, int64_t h, const float* x, int64_t T, float* v) {
  if (!L.w_uv.empty()) kernels::matmul(L.w_uv[static_cast<size_t>(h)], x, T, v);
  else kernels::matmul(kernels::row_slice(L.wkv_b, h * (D.d_nope + D.d_v) + D.d_nope, D.d_v), x, T, v);
}

// k_nope[t] = W_UK[h] c_kv[t] (T × d_nope): the naive path's decompressed key.
void up_project_key(const LayerWeights& L, const Dims& D, int64_t h, const float* c_kv, int64_t T, float* k_nope) {
  if (!L.wkv_b.empty()) kernels::matmul(kernels::row_slice(L.wkv_b, h * (D.d_nope + D.d_v), D.d_nope), c_kv, T, k_nope);
  else kernels::matmul_transposed(L.w_uk[static_cast<size_t>(h)], c_kv, T, k_nope);
}

float dot(const float* a, const float* b, int64_t n) {
  float s = 0.f;
  for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

// Absorbed attention: queries folded into latent space (W_UK^T q_nope), scores and the
// weighted sum taken directly over the cached latents (kernels::latent_attention_*),
// then W_UV applied once per head. Writes T × (H·d_v).
// Threads share (token group, key range) items: a group is up to kGroupTokens tokens of
// one sequence with all their heads, so each cached run is read once for all of them;
// when there are few groups (decode) each is also cut into key ranges whose
// online-softmax states are merged in order afterwards. The cut depends only on the
// batch, the context length and the thread count, never on how the cache stores blocks.
void attend_absorbed(const AttentionContext& ctx, const LayerWeights& L, int64_t layer, const Dims& D,
                     const std::vector<float>& q, int64_t T, float* attn) {
  constexpr int64_t kGroupTokens = 4, kKeyRange = 1024;
  const float scale = static_cast<float>(ctx.config.softmax_scale());
  const auto& seq_ids = ctx.batch.seq_ids;
  const auto& positions = ctx.batch.positions;

  // Tokens ordered by sequence (stable); row k·H + h is head h of token order[k].
  std::vector<int64_t> order(static_cast<size_t>(T)), slot(static_cast<size_t>(T));
  for (int64_t t = 0; t < T; ++t) order[static_cast<size_t>(t)] = t;
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return seq_ids[static_cast<size_t>(a)] < seq_ids[static_cast<size_t>(b)]; });
  for (int64_t k = 0; k < T; ++k) slot[static_cast<size_t>(order[static_cast<size_t>(k)])] = k;

  const int64_t rows = T * D.H;
  std::vector<float> q_lat(static_cast<size_t>(rows * D.d_c)), q_rope(static_cast<size_t>(rows * D.d_rope));
  std::vector<int64_t> last_pos(static_cast<size_t>(rows));
  // One parallel pass over the heads (each head's W_UK^T is too small to split).
#pragma omp parallel num_threads(kernels::threads())
  {
    std::vector<float> q_nope(static_cast<size_t>(T * D.d_nope)), q_lat_h(static_cast<size_t>(T * D.d_c));
#pragma omp for schedule(static)
    for (int64_t h = 0; h < D.H; ++h) {
      for (int64_t t = 0; t < T; ++t)
        std::copy_n(q.data() + (t * D.H + h) * D.d_qk, D.d_nope, q_nope.data() + t * D.d_nope);
      absorb_query(L, D, h, q_nope.data(), T, q_lat_h.data());
      for (int64_t t = 0; t < T; ++t) {
        const int64_t row = slot[static_cast<size_t>(t)] * D.H + h;
        std::copy_n(q_lat_h.data() + t * D.d_c, D.d_c, q_lat.data() + row * D.d_c);
        std::copy_n(q.data() + (t * D.H + h) * D.d_qk + D.d_nope, D.d_rope, q_rope.data() + row * D.d_rope);
        last_pos[static_cast<size_t>(row)] = positions[static_cast<size_t>(t)];
      }
    }
  }

  struct Group {
    int32_t seq;
    int64_t row0, rows, n;  // n: keys the group needs (its last position + 1)
  };
  std::vector<Group> groups;
  for (int64_t k = 0; k < T;) {
    const int32_t seq = seq_ids[static_cast<size_t>(order[static_cast<size_t>(k)])];
    Group g{seq, k * D.H, 0, 0};
    int64_t m = 0;
    for (; k < T && m < kGroupTokens && seq_ids[static_cast<size_t>(order[static_cast<size_t>(k)])] == seq; ++k, ++m)
      g.n = std::max<int64_t>(g.n, positions[static_cast<size_t>(order[static_cast<size_t>(k)])] + 1);
    g.rows = m * D.H;
    groups.push_back(g);
  }
  struct Item {
    size_t group;
    int64_t from, to;
  };
  std::vector<Item> items;
  const bool split = static_cast<int64_t>(groups.size()) < 4 * kernels::threads();
  for (size_t gi = 0; gi < groups.size(); ++gi) {
    const int64_t step = split ? kKeyRange : groups[gi].n;
    for (int64_t from = 0; from < groups[gi].n; from += step)
      items.push_back({gi, from, std::min(groups[gi].n, from + step)});
  }

  // Read-ahead hint for each sequence's whole sweep (threads then take ranges of it);
  // with one group (decode) every cached position is read exactly once.
  for (size_t gi = 0; gi < groups.size(); ++gi) {
    if (gi > 0 && groups[gi - 1].seq == groups[gi].seq) continue;
    int64_t n = 0;
    size_t gj = gi;
    for (; gj < groups.size() && groups[gj].seq == groups[gi].seq; ++gj) n = std::max(n, groups[gj].n);
    ctx.kv.will_read(groups[gi].seq, layer, n, /*single_pass=*/gj == gi + 1);
  }

  std::vector<kernels::LatentAttentionState> states(items.size());
#pragma omp parallel for schedule(dynamic, 1) num_threads(kernels::threads())
  for (size_t i = 0; i < items.size(); ++i) {
    const Item& it = items[i];
    const Group& g = groups[it.group];
    kernels::LatentQueries lq;
    lq.q_lat = q_lat.data() + g.row0 * D.d_c;
    lq.q_rope = q_rope.data() + g.row0 * D.d_rope;
    lq.last_pos = last_pos.data() + g.row0;
    lq.rows = g.rows;
    lq.d_c = D.d_c;
    lq.d_r = D.d_rope;
    lq.scale = scale;
    states[i].reset(g.rows, D.d_c);
    ctx.kv.for_each_run_in(g.seq, layer, it.from, it.to, [&](int64_t j0, int64_t cnt, const float* c_kv, const float* k_rope) {
      kernels::latent_attention_accumulate(lq, j0, cnt, c_kv, k_rope, states[i]);
    });
  }

  // Merge each group's key ranges in order; the latent context per row.
  std::vector<float> ctx_lat(static_cast<size_t>(rows * D.d_c));
  for (size_t i = 0; i < items.size();) {
    size_t j = i + 1;
    for (; j < items.size() && items[j].group == items[i].group; ++j) kernels::latent_attention_merge(states[i], states[j], D.d_c);
    kernels::latent_attention_finish(states[i], D.d_c, ctx_lat.data() + groups[items[i].group].row0 * D.d_c);
    i = j;
  }

#pragma omp parallel num_threads(kernels::threads())
  {
    std::vector<float> x(static_cast<size_t>(T * D.d_c)), v(static_cast<size_t>(T * D.d_v));
#pragma omp for schedule(static)
    for (int64_t h = 0; h < D.H; ++h) {
      for (int64_t t = 0; t < T; ++t)
        std::copy_n(ctx_lat.data() + (slot[static_cast<size_t>(t)] * D.H + h) * D.d_c, D.d_c, x.data() + t * D.d_c);
      up_project_value(L, D, h, x.data(), T, v.data());
      for (int64_t t = 0; t < T; ++t) std::copy_n(v.data() + t * D.d_v, D.d_v, attn + (t * D.H + h) * D.d_v);
    }
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

  // Queries: [q_nope | q_rope] per head, rope rotated; the latent c_kv and shared k_rope
  // (W_DKV h) come from the same input in the same pass.
  std::vector<float> q(static_cast<size_t>(T * D.H * D.d_qk)), kv_a(static_cast<size_t>(T * (D.d_c + D.d_rope)));
  if (!L.wq.empty()) {
    const kernels::Product p[] = {{&L.wq, q.data()}, {&L.wkv_a, kv_a.data()}};
    kernels::matmul_same_input(p, 2, h, T);
  } else {
    std::vector<float> c_q(static_cast<size_t>(T * c.q_lora_rank));
    const kernels::Product p[] = {{&L.wq_a, c_q.data()}, {&L.wkv_a, kv_a.data()}};
    kernels::matmul_same_input(p, 2, h, T);
    for (int64_t t = 0; t < T; ++t)
      rms_norm(c_q.data() + t * c.q_lora_rank, L.q_a_norm.data(), c.q_lora_rank, c.rms_norm_eps, c_q.data() + t * c.q_lora_rank);
    kernels::matmul(L.wq_b, c_q.data(), T, q.data());
  }
  for (int64_t t = 0; t < T; ++t)
    for (int64_t hd = 0; hd < D.H; ++hd)
      apply_rope(q.data() + (t * D.H + hd) * D.d_qk + D.d_nope, ctx.batch.positions[static_cast<size_t>(t)], ctx.rope_inv_freq);

  // Latent c_kv and shared k_rope: appended to the cache before attending, so a token
  // sees itself and the earlier tokens of its own batch.
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
