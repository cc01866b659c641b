// Multi-head Latent Attention (DeepSeek-V2 report, §2.1). Per token:
//   c_kv   = RMSNorm(W_DKV h)              latent, kv_lora_rank wide: all the cache keeps
//   k_rope = RoPE(W_KR h)                  one rotary key shared by every head
//   q      = W_UQ RMSNorm(W_DQ h)  (or W_Q h)   per head: [q_nope | q_rope]
// Naive:    k_nope = W_UK c_kv, v = W_UV c_kv per head, then standard attention.
// Absorbed: q_nope·(W_UK c_kv) = (W_UK^T q_nope)·c_kv, so scores are taken directly
//           against the cached latents, and W_UV is applied once after the weighted sum.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <map>

#include "kernels/attention.h"
#include "kernels/attention_dense.h"
#include "kernels/kernels.h"
#include "kernels/phase_profile.h"
#include "kernels/work_queue.h"
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

// W_UK of head h (d_nope rows × d_c) of a legacy attn_kv_b: tiled if the load kept it
// so (w_uk_rows), else the file's rows.
WeightView legacy_w_uk_rows(const LayerWeights& L, const Dims& D, int64_t h) {
  return L.w_uk_rows.empty() ? kernels::row_slice(L.wkv_b, h * (D.d_nope + D.d_v), D.d_nope) : L.w_uk_rows[static_cast<size_t>(h)];
}

// q_lat[t] = W_UK[h]^T q_nope[t] for head h (T × d_c).
void absorb_query(const LayerWeights& L, const Dims& D, int64_t h, const float* q_nope_h, int64_t T, float* q_lat) {
  if (L.w_uk.empty()) {
    kernels::matmul_transposed(legacy_w_uk_rows(L, D, h), q_nope_h, T, q_lat);
  } else {
    kernels::matmul(L.w_uk[static_cast<size_t>(h)], q_nope_h, T, q_lat);
  }
}

// v[t] = W_UV[h] x[t] (T × d_v), x in latent space.
void up_project_value(const LayerWeights& L, const Dims& D, int64_t h, const float* x, int64_t T, float* v) {
  if (!L.w_uv.empty()) kernels::matmul(L.w_uv[static_cast<size_t>(h)], x, T, v);
  else kernels::matmul(kernels::row_slice(L.wkv_b, h * (D.d_nope + D.d_v) + D.d_nope, D.d_v), x, T, v);
}

// The buffers of attend_absorbed, kept from call to call by each thread that calls it.
// Fresh ones every layer came from memory malloc had just given back: zeroing them was
// ~1 % of a V2-Lite Q4_K_M decode's samples (perf, 2 threads), half that once kept.
struct AbsorbedBuffers {
  std::vector<float> q_lat, q_rope, ctx_lat;
  std::vector<int64_t> last_pos;
  std::vector<kernels::LatentAttentionState> states;
};

// Absorbed attention: queries folded into latent space (W_UK^T q_nope), scores and the
// weighted sum taken directly over the cached latents (kernels::latent_attention_*),
// then W_UV applied once per head. Writes T × (H·d_v).
// Threads share (token group, key range) items: a group is up to kGroupTokens tokens of
// one sequence with all their heads, so each cached run is read once for all of them;
// when there are few groups (decode) each is also cut into key ranges of equal length
// (about 8 per thread, kMinKeys/2 to kMaxKeys keys each) whose online-softmax states are
// merged in order afterwards; whole 1024-key ranges left a 1-token decode over a shorter
// cache to one thread, and 2 ranges a thread left the faster vCPU waiting 14–16 % of
// the phase at 4,096 keys (2–4 % with 8). With fewer ranges than threads (at most kMinKeys keys on 2
// threads) the group's heads are shared out instead: one range had left the other thread
// waiting half the phase. The cut depends only on the batch, the context length and the
// thread count, never on how the cache stores blocks.
void attend_absorbed(const AttentionContext& ctx, const LayerWeights& L, int64_t layer, const Dims& D,
                     const std::vector<float>& q, int64_t T, float* attn) {
  constexpr int64_t kGroupTokens = 4, kMinKeys = 64, kMaxKeys = 1024;
  static thread_local AbsorbedBuffers buffers;
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
  // Every row of these is written before it is read: no need to clear them.
  std::vector<float>& q_lat = buffers.q_lat;
  std::vector<float>& q_rope = buffers.q_rope;
  std::vector<int64_t>& last_pos = buffers.last_pos;
  q_lat.resize(static_cast<size_t>(rows * D.d_c));
  q_rope.resize(static_cast<size_t>(rows * D.d_rope));
  last_pos.resize(static_cast<size_t>(rows));
  // One parallel pass over the heads (each head's W_UK^T is too small to split). Each
  // thread takes the heads of its own half one at a time, so consecutive heads' weights
  // are one stream, and the faster core then takes heads from the back of the other's
  // half (a static half stalled it behind the slower; heads dealt out in turn had each
  // core jump to a new 70 KB stream every head).
  kernels::SplitQueue absorb_heads(D.H, kernels::threads(), 1);
#pragma omp parallel num_threads(kernels::threads())
  {
    kernels::PhaseTimer phase(kernels::Phase::AbsorbQuery);
    std::vector<float> q_nope(static_cast<size_t>(T * D.d_nope)), q_lat_h(static_cast<size_t>(T * D.d_c));
    absorb_heads.for_each_unit(omp_get_thread_num(), [&](int64_t h) {
      for (int64_t t = 0; t < T; ++t)
        std::copy_n(q.data() + (t * D.H + h) * D.d_qk, D.d_nope, q_nope.data() + t * D.d_nope);
      absorb_query(L, D, h, q_nope.data(), T, q_lat_h.data());
      for (int64_t t = 0; t < T; ++t) {
        const int64_t row = slot[static_cast<size_t>(t)] * D.H + h;
        std::copy_n(q_lat_h.data() + t * D.d_c, D.d_c, q_lat.data() + row * D.d_c);
        std::copy_n(q.data() + (t * D.H + h) * D.d_qk + D.d_nope, D.d_rope, q_rope.data() + row * D.d_rope);
        last_pos[static_cast<size_t>(row)] = positions[static_cast<size_t>(t)];
      }
    });
    phase.end_of_region();
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
    int64_t row0, rows;  // the group's rows this item takes (all, or a share of its heads)
    int64_t from, to;
  };
  std::vector<Item> items;
  const int nt = kernels::threads();
  const bool split = static_cast<int64_t>(groups.size()) < 4 * nt;
  for (size_t gi = 0; gi < groups.size(); ++gi) {
    const Group& g = groups[gi];
    const int64_t per_item = (g.n + 8 * nt - 1) / (8 * nt);
    const int64_t step = split ? std::clamp(per_item, kMinKeys, kMaxKeys) : g.n;
    // Ranges of equal length (within a key): cut every `step` keys, the short last one
    // left a thread waiting (decode at 65–127 keys: 64 against 1–63; 18 % of the phase
    // was spent at its barrier in tg128).
    const int64_t ranges = (g.n + step - 1) / step;
    // Too few keys to give every thread a range (a decode step early in a sequence):
    // the heads are shared out instead, each part over all the keys.
    const int64_t parts = split && ranges < nt ? std::min<int64_t>(nt, g.rows) : 1;
    for (int64_t p = 0; p < parts; ++p) {
      const int64_t r0 = g.rows * p / parts, r1 = g.rows * (p + 1) / parts;
      for (int64_t k = 0; k < ranges; ++k) items.push_back({gi, g.row0 + r0, r1 - r0, g.n * k / ranges, g.n * (k + 1) / ranges});
    }
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

  std::vector<kernels::LatentAttentionState>& states = buffers.states;
  if (states.size() < items.size()) states.resize(items.size());  // reset below reuses their storage
#pragma omp parallel num_threads(kernels::threads())
  {
    kernels::PhaseTimer phase(kernels::Phase::LatentAttention);
#pragma omp for schedule(dynamic, 1) nowait
    for (size_t i = 0; i < items.size(); ++i) {
      const Item& it = items[i];
      const Group& g = groups[it.group];
      kernels::LatentQueries lq;
      lq.q_lat = q_lat.data() + it.row0 * D.d_c;
      lq.q_rope = q_rope.data() + it.row0 * D.d_rope;
      lq.last_pos = last_pos.data() + it.row0;
      lq.rows = it.rows;
      lq.d_c = D.d_c;
      lq.d_r = D.d_rope;
      lq.scale = scale;
      states[i].reset(it.rows, D.d_c);
      ctx.kv.for_each_run_in(
          g.seq, layer, it.from, it.to,
          [&](int64_t j0, int64_t cnt, const float* c_kv, const float* k_rope, const KvCache::Run& next) {
            const kernels::NextRun<float> ahead{next.c_kv, next.k_rope, next.count};
            kernels::latent_attention_accumulate(lq, j0, cnt, c_kv, k_rope, states[i], ahead);
          },
          [&](int64_t j0, int64_t cnt, const uint16_t* c_kv, const uint16_t* k_rope, const KvCache::Run& next) {
            if (!lq.q_bf16) {  // the item's queries rounded once, not once per run
              thread_local std::vector<uint16_t> rounded;
              rounded.resize(static_cast<size_t>(lq.rows * kernels::kLatentQueryBf16Stride));
              if (kernels::round_latent_queries_bf16(lq, rounded.data())) lq.q_bf16 = rounded.data();
            }
            const kernels::NextRun<uint16_t> ahead{static_cast<const uint16_t*>(next.c_kv_raw),
                                                   static_cast<const uint16_t*>(next.k_rope_raw), next.count};
            kernels::latent_attention_accumulate_bf16(lq, j0, cnt, c_kv, k_rope, states[i], ahead);
          });
    }
    phase.end_of_region();
  }

  // Merge each group's key ranges (of the same rows) in order; the latent context per row.
  std::vector<float>& ctx_lat = buffers.ctx_lat;
  ctx_lat.resize(static_cast<size_t>(rows * D.d_c));
  for (size_t i = 0; i < items.size();) {
    size_t j = i + 1;
    for (; j < items.size() && items[j].row0 == items[i].row0; ++j) kernels::latent_attention_merge(states[i], states[j], D.d_c);
    kernels::latent_attention_finish(states[i], D.d_c, ctx_lat.data() + items[i].row0 * D.d_c);
    i = j;
  }

  kernels::SplitQueue value_heads(D.H, kernels::threads(), 1);  // as the absorbing pass
#pragma omp parallel num_threads(kernels::threads())
  {
    kernels::PhaseTimer phase(kernels::Phase::ValueUp);
    std::vector<float> x(static_cast<size_t>(T * D.d_c)), v(static_cast<size_t>(T * D.d_v));
    value_heads.for_each_unit(omp_get_thread_num(), [&](int64_t h) {
      for (int64_t t = 0; t < T; ++t)
        std::copy_n(ctx_lat.data() + (slot[static_cast<size_t>(t)] * D.H + h) * D.d_c, D.d_c, x.data() + t * D.d_c);
      up_project_value(L, D, h, x.data(), T, v.data());
      for (int64_t t = 0; t < T; ++t) std::copy_n(v.data() + t * D.d_v, D.d_v, attn + (t * D.H + h) * D.d_v);
    });
    phase.end_of_region();
  }
  // Kept for decode steps and small batches; a long prompt's (MBs) are given back.
  constexpr int64_t kKeepTokens = 16;
  if (T > kKeepTokens) buffers = AbsorbedBuffers{};
}

// The per-head W_UV views as one matrix (H·d_v rows × d_c) when they lie back to back
// in memory, as attn_v_b's heads do (and their tiled copies, made one after another);
// empty otherwise.
WeightView stacked_heads(const std::vector<WeightView>& w) {
  const WeightView& w0 = w.front();
  const size_t head_bytes = w0.layout == kernels::Layout::Tiles16 ? static_cast<size_t>(w0.rows / 16) * w0.tile_stride
                                                                   : static_cast<size_t>(w0.rows) * w0.row_stride;
  if (w0.layout == kernels::Layout::Tiles16 && w0.rows % 16) return {};
  for (size_t h = 1; h < w.size(); ++h)
    if (w[h].data != w0.data + h * head_bytes || w[h].type != w0.type || w[h].layout != w0.layout ||
        w[h].rows != w0.rows || w[h].cols != w0.cols || w[h].row_stride != w0.row_stride || w[h].tile_stride != w0.tile_stride)
      return {};
  WeightView all = w0;
  all.rows = w0.rows * static_cast<int64_t>(w.size());
  return all;
}

// Decompressed keys and values of cnt cached positions for every head: k_nope = W_UK c_kv
// and v = W_UV c_kv. A legacy attn_kv_b is [H·(d_nope + d_v)] × d_c, so one product
// gives both for all heads; attn_k_b stores W_UK transposed per head, rebuilt once per
// layer call (start_layer) as float32 rows of all heads; attn_v_b's heads are one
// matrix when back to back.
struct DecompressedKv {
  std::vector<float> k_buf, v_buf, w_uk_rows;
  bool w_uk_rows_ready = false;
  void start_layer() { w_uk_rows_ready = false; }
  const float* k_nope0 = nullptr;
  const float* v0 = nullptr;
  int64_t k_head = 0, k_stride = 0, v_head = 0, v_stride = 0;  // head h, row j: base + h·head + j·stride
  const float* k_nope(int64_t h) const { return k_nope0 + h * k_head; }
  const float* v(int64_t h) const { return v0 + h * v_head; }

  void decompress(const LayerWeights& L, const Dims& D, const float* c_kv, int64_t cnt) {
    const WeightView v_all = L.w_uv.empty() ? WeightView{} : stacked_heads(L.w_uv);
    if (!L.wkv_b.empty() && !v_all.empty()) {
      // Legacy attn_kv_b whose W_UV and W_UK rows were re-laid out for the int8 kernels
      // (w_uv, w_uk_rows; without the repack, the file's rows): one quantization of c_kv
      // for all heads' keys and values. pp512 perf: the file's W_UK rows had taken 4%.
      k_buf.resize(static_cast<size_t>(D.H * cnt * D.d_nope));
      v_buf.resize(static_cast<size_t>(cnt * D.H * D.d_v));
      std::vector<WeightView> w_uk(static_cast<size_t>(D.H));
      std::vector<kernels::Product> products;
      for (int64_t h = 0; h < D.H; ++h) {
        w_uk[static_cast<size_t>(h)] = legacy_w_uk_rows(L, D, h);
        products.push_back({&w_uk[static_cast<size_t>(h)], k_buf.data() + h * cnt * D.d_nope});
      }
      products.push_back({&v_all, v_buf.data()});
      kernels::matmul_same_input(products.data(), static_cast<int>(products.size()), c_kv, cnt);
      k_nope0 = k_buf.data();
      k_head = cnt * D.d_nope;
      k_stride = D.d_nope;
      v0 = v_buf.data();
      v_head = D.d_v;
      v_stride = D.H * D.d_v;
      return;
    }
    if (!L.wkv_b.empty()) {
      k_buf.resize(static_cast<size_t>(cnt * D.H * (D.d_nope + D.d_v)));
      kernels::matmul(L.wkv_b, c_kv, cnt, k_buf.data());
      k_nope0 = k_buf.data();
      v0 = k_buf.data() + D.d_nope;
      k_head = v_head = D.d_nope + D.d_v;
      k_stride = v_stride = D.H * (D.d_nope + D.d_v);
      return;
    }
    // attn_k_b holds W_UK^T per head: turned back into W_UK rows of all heads (float32,
    // exact) so one product gives every head's keys; the scalar transposed product per
    // head cost 5x the attention itself (perf, pp512).
    if (!w_uk_rows_ready) {
      w_uk_rows.resize(static_cast<size_t>(D.H * D.d_nope * D.d_c));
#pragma omp parallel num_threads(kernels::threads())
      {
        std::vector<float> row(static_cast<size_t>(D.d_nope));
#pragma omp for schedule(static)
        for (int64_t h = 0; h < D.H; ++h)
          for (int64_t c = 0; c < D.d_c; ++c) {
            kernels::get_row(L.w_uk[static_cast<size_t>(h)], c, row.data());
            for (int64_t d = 0; d < D.d_nope; ++d)
              w_uk_rows[static_cast<size_t>((h * D.d_nope + d) * D.d_c + c)] = row[static_cast<size_t>(d)];
          }
      }
      w_uk_rows_ready = true;
    }
    const WeightView w_uk_all{GgmlType::F32, reinterpret_cast<const uint8_t*>(w_uk_rows.data()), D.H * D.d_nope, D.d_c,
                              static_cast<size_t>(D.d_c) * sizeof(float)};
    k_buf.resize(static_cast<size_t>(cnt * D.H * D.d_nope));
    v_buf.resize(static_cast<size_t>(D.H * cnt * D.d_v));
    kernels::matmul(w_uk_all, c_kv, cnt, k_buf.data());
    k_nope0 = k_buf.data();
    k_head = D.d_nope;
    k_stride = D.H * D.d_nope;
    v0 = v_buf.data();
    if (!v_all.empty()) {
      kernels::matmul(v_all, c_kv, cnt, v_buf.data());
      v_head = D.d_v;
      v_stride = D.H * D.d_v;
    } else {
      for (int64_t h = 0; h < D.H; ++h) up_project_value(L, D, h, c_kv, cnt, v_buf.data() + h * cnt * D.d_v);
      v_head = cnt * D.d_v;
      v_stride = D.d_v;
    }
  }
};

// Naive attention: decompress per-head keys and values of the cached positions, then
// standard scaled dot-product attention (kernels::dense_attention_*). Per sequence,
// keys go in chunks of kKeyChunk positions (bounded memory: ~16 MB of K/V for
// V2-Lite), each chunk decompressed for all heads at once; threads share (head,
// query tile) items, each folding the chunk into its rows' online-softmax state.
void attend_naive(const AttentionContext& ctx, const LayerWeights& L, int64_t layer, const Dims& D,
                  const std::vector<float>& q, int64_t T, float* attn) {
  constexpr int64_t kKeyChunk = 1024, kQueryTile = 32;
  const auto& seq_ids = ctx.batch.seq_ids;
  const auto& positions = ctx.batch.positions;
  std::vector<int32_t> seqs(seq_ids.begin(), seq_ids.end());
  std::sort(seqs.begin(), seqs.end());
  seqs.erase(std::unique(seqs.begin(), seqs.end()), seqs.end());
  // Grown once per calling thread, not per layer. A reference: inside the parallel
  // regions below the name must mean this thread's buffers, not each worker's own.
  static thread_local DecompressedKv kv_buffers;
  DecompressedKv& kv = kv_buffers;
  kv.start_layer();
  for (int32_t seq : seqs) {
    // This sequence's tokens (in batch order, so positions ascend) and their queries.
    std::vector<int64_t> tokens, last_pos;
    for (int64_t t = 0; t < T; ++t)
      if (seq_ids[static_cast<size_t>(t)] == seq) {
        tokens.push_back(t);
        last_pos.push_back(positions[static_cast<size_t>(t)]);
      }
    const int64_t rows = static_cast<int64_t>(tokens.size()), n = *std::max_element(last_pos.begin(), last_pos.end()) + 1;
    const int64_t row_width = D.H * D.d_qk;
    std::vector<float> qs(static_cast<size_t>(rows * row_width));
    for (int64_t i = 0; i < rows; ++i)
      std::copy_n(q.data() + tokens[static_cast<size_t>(i)] * row_width, row_width, qs.data() + i * row_width);

    // Items: (query tile, head), the latest tiles (most keys) first.
    const int64_t tiles = (rows + kQueryTile - 1) / kQueryTile;
    std::vector<kernels::DenseAttentionState> states(static_cast<size_t>(tiles * D.H));
    auto queries = [&](int64_t item) {
      const int64_t tile = tiles - 1 - item / D.H, h = item % D.H, r0 = tile * kQueryTile;
      kernels::DenseQueries dq;
      dq.q = qs.data() + r0 * row_width + h * D.d_qk;
      dq.last_pos = last_pos.data() + r0;
      dq.rows = std::min(kQueryTile, rows - r0);
      dq.q_stride = row_width;
      dq.d_nope = D.d_nope;
      dq.d_rope = D.d_rope;
      dq.d_v = D.d_v;
      dq.scale = static_cast<float>(ctx.config.softmax_scale());
      return dq;
    };
    for (int64_t i = 0; i < tiles * D.H; ++i) states[static_cast<size_t>(i)].reset(queries(i).rows, D.d_v);

    ctx.kv.will_read(seq, layer, n, /*single_pass=*/true);
    std::vector<float> c_kv, k_rope;
    for (int64_t j0 = 0; j0 < n; j0 += kKeyChunk) {
      const int64_t cnt = std::min(kKeyChunk, n - j0);
      c_kv.resize(static_cast<size_t>(cnt * D.d_c));
      k_rope.resize(static_cast<size_t>(cnt * D.d_rope));
      ctx.kv.for_each_run_in(seq, layer, j0, j0 + cnt, [&](int64_t p, int64_t m, const float* c, const float* r) {
        std::copy_n(c, m * D.d_c, c_kv.data() + (p - j0) * D.d_c);
        std::copy_n(r, m * D.d_rope, k_rope.data() + (p - j0) * D.d_rope);
      });
      kv.decompress(L, D, c_kv.data(), cnt);
#pragma omp parallel for schedule(dynamic, 1) num_threads(kernels::threads())
      for (int64_t i = 0; i < tiles * D.H; ++i) {
        const int64_t h = i % D.H;
        kernels::DenseKeys dk;
        dk.k_nope = kv.k_nope(h);
        dk.k_rope = k_rope.data();
        dk.v = kv.v(h);
        dk.k_stride = kv.k_stride;
        dk.r_stride = D.d_rope;
        dk.v_stride = kv.v_stride;
        dk.pos0 = j0;
        dk.count = cnt;
        kernels::dense_attention_accumulate(queries(i), dk, states[static_cast<size_t>(i)]);
      }
    }

    // Outputs: head h of row i at (i·H + h)·d_v, then back to the tokens' batch rows.
    std::vector<float> out(static_cast<size_t>(rows * D.H * D.d_v));
    for (int64_t i = 0; i < tiles * D.H; ++i) {
      const int64_t tile = tiles - 1 - i / D.H, h = i % D.H;
      kernels::dense_attention_finish(states[static_cast<size_t>(i)], D.d_v, out.data() + (tile * kQueryTile * D.H + h) * D.d_v,
                                      D.H * D.d_v);
    }
    for (int64_t i = 0; i < rows; ++i)
      std::copy_n(out.data() + i * D.H * D.d_v, D.H * D.d_v, attn + tokens[static_cast<size_t>(i)] * D.H * D.d_v);
  }
}

// Whether the naive path is the cheaper one for a sequence with `rows` queries in the
// batch and `keys` cached positions to attend over. Per (query, key) it does
// d_nope + d_rope + d_v MACs against the absorbed path's 2·d_c + d_rope (320 vs 1088
// on V2-Lite), and it skips absorbing each query (W_UK^T q_nope) and up-projecting each
// output (W_UV): H·(d_nope + d_v)·d_c MACs per query, exactly what it pays per key to
// decompress K and V. So when the batch brings about as many queries as there are
// keys (a prompt, or its first chunks) decompression is paid for and the attention is
// ~3x cheaper; decode (one query over many keys) is the absorbed path's case.
// Measured (BENCHMARKS.md, "Prefill attention: naive vs absorbed"; 27-layer V2-Lite
// shape, Q4_0, 2 threads, a prompt from an empty cache, pp tok/s naive vs absorbed):
//   attn_kv_b (legacy): pp16 76.9 vs 67.5, pp32 100.8 vs 87.5, pp64 102.7 vs 105.6,
//                       pp128 132.1 vs 109.4, pp512 159.7 vs 129.1
//   attn_k_b:           pp16 57.3 vs 52.1, pp32 79.1 vs 89.9, pp64 105.5 vs 108.9,
//                       pp128 124.1 vs 123.4, pp512 160.6 vs 142.8
// attn_k_b pays more per key (W_UK rebuilt as float32 rows each layer, keys from the
// float32 product): behind at 32 and 64, even at 128 (its pp16 lead is inside the
// absorbed runs' spread, max 61.5); a legacy attn_kv_b is ahead from 16 (pp64 inside
// the spread). Below 16 queries was not measured, nor a chunk over a
// longer cache: there each extra cached key costs a decompression that only `rows`
// queries share, so the rule keeps to one cache as long again (keys <= 2·rows).
bool naive_is_cheaper(const LayerWeights& L, int64_t rows, int64_t keys) { return naive_attention_pays(!L.wkv_b.empty(), rows, keys); }

// AttentionMode::Auto: each sequence of the batch takes the path naive_is_cheaper picks
// for its number of queries (a server batch may hold one prompt chunk and many decodes).
void attend_by_cost(const AttentionContext& ctx, const LayerWeights& L, int64_t layer, const Dims& D,
                    const std::vector<float>& q, int64_t T, float* attn) {
  const auto& seq_ids = ctx.batch.seq_ids;
  std::map<int32_t, std::pair<int64_t, int64_t>> rows_keys;  // per sequence: queries, keys (last position + 1)
  for (int64_t t = 0; t < T; ++t) {
    auto& [rows, keys] = rows_keys[seq_ids[static_cast<size_t>(t)]];
    rows += 1;
    keys = std::max<int64_t>(keys, ctx.batch.positions[static_cast<size_t>(t)] + 1);
  }
  std::vector<uint8_t> naive(static_cast<size_t>(T));
  int64_t n_naive = 0;
  for (int64_t t = 0; t < T; ++t) {
    const auto& [rows, keys] = rows_keys[seq_ids[static_cast<size_t>(t)]];
    naive[static_cast<size_t>(t)] = naive_is_cheaper(L, rows, keys);
    n_naive += naive[static_cast<size_t>(t)];
  }
  if (n_naive == 0) return attend_absorbed(ctx, L, layer, D, q, T, attn);
  if (n_naive == T) return attend_naive(ctx, L, layer, D, q, T, attn);
  // Mixed: each path gets its own sub-batch (queries gathered, outputs scattered back).
  for (uint8_t path : {uint8_t{0}, uint8_t{1}}) {
    Batch sub;
    std::vector<int64_t> tokens;
    for (int64_t t = 0; t < T; ++t)
      if (naive[static_cast<size_t>(t)] == path) {
        tokens.push_back(t);
        sub.add(ctx.batch.tokens[static_cast<size_t>(t)], ctx.batch.positions[static_cast<size_t>(t)], seq_ids[static_cast<size_t>(t)]);
      }
    const int64_t n = static_cast<int64_t>(tokens.size()), q_row = D.H * D.d_qk, out_row = D.H * D.d_v;
    std::vector<float> q_sub(static_cast<size_t>(n * q_row)), out(static_cast<size_t>(n * out_row));
    for (int64_t i = 0; i < n; ++i) std::copy_n(q.data() + tokens[static_cast<size_t>(i)] * q_row, q_row, q_sub.data() + i * q_row);
    const AttentionContext sub_ctx{ctx.config, sub, ctx.kv, ctx.rope_inv_freq, ctx.mode};
    if (path) attend_naive(sub_ctx, L, layer, D, q_sub, n, out.data());
    else attend_absorbed(sub_ctx, L, layer, D, q_sub, n, out.data());
    for (int64_t i = 0; i < n; ++i) std::copy_n(out.data() + i * out_row, out_row, attn + tokens[static_cast<size_t>(i)] * out_row);
  }
}

}  // namespace

// The figures behind it are above naive_is_cheaper.
bool naive_attention_pays(bool legacy_kv_b, int64_t queries, int64_t keys) {
  constexpr int64_t kMinRowsKvB = 16, kMinRowsKB = 128, kMaxKeysPerRow = 2;
  return queries >= (legacy_kv_b ? kMinRowsKvB : kMinRowsKB) && keys <= kMaxKeysPerRow * queries;
}

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
  // Rope on every head's q_rope and on the shared k_rope; the latent c_kv and k_rope
  // (W_DKV h) are appended to the cache before attending, so a token sees itself and
  // the earlier tokens of its own batch.
  RopeRotation rotation;
  for (int64_t t = 0; t < T; ++t) {
    rotation.set(ctx.batch.positions[static_cast<size_t>(t)], ctx.rope_inv_freq);
    for (int64_t hd = 0; hd < D.H; ++hd) rotation.apply(q.data() + (t * D.H + hd) * D.d_qk + D.d_nope);
    float* c_kv = kv_a.data() + t * (D.d_c + D.d_rope);
    float* k_rope = c_kv + D.d_c;
    rms_norm(c_kv, L.kv_a_norm.data(), D.d_c, c.rms_norm_eps, c_kv);
    rotation.apply(k_rope);
    ctx.kv.store(ctx.batch.seq_ids[static_cast<size_t>(t)], layer, ctx.batch.positions[static_cast<size_t>(t)], c_kv, k_rope);
  }

  std::vector<float> attn(static_cast<size_t>(T * D.H * D.d_v));
  if (ctx.mode == AttentionMode::Absorbed) attend_absorbed(ctx, L, layer, D, q, T, attn.data());
  else if (ctx.mode == AttentionMode::Naive) attend_naive(ctx, L, layer, D, q, T, attn.data());
  else attend_by_cost(ctx, L, layer, D, q, T, attn.data());
  kernels::matmul(L.wo, attn.data(), T, out);
}

}  // namespace mlamoe
