#include "planner/kernel_probe.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstdio>
#include <map>
#include <random>
#include <vector>

#include "common/error.h"
#include "format/gguf.h"
#include "format/quant.h"
#include "kernels/attention.h"
#include "kernels/attention_dense.h"
#include "kernels/kernels.h"

namespace mlamoe::planner {

double MeasuredKernels::matmul_gmacs_at(const std::string& type, double tokens) const {
  auto it = matmul_gmacs.find(type);
  if (it == matmul_gmacs.end() || it->second.empty()) fail("no measured matmul rate for weight type ", type);
  const auto& pts = it->second;  // tokens -> GMAC/s, ascending
  if (tokens <= double(pts.begin()->first)) return pts.begin()->second;
  if (tokens >= double(pts.rbegin()->first)) return pts.rbegin()->second;
  auto hi = pts.lower_bound(int64_t(std::ceil(tokens)));
  auto lo = std::prev(hi);
  const double x0 = std::log(double(lo->first)), x1 = std::log(double(hi->first));
  const double w = x1 > x0 ? (std::log(tokens) - x0) / (x1 - x0) : 0;
  return lo->second + w * (hi->second - lo->second);
}

WeightTypeMix weight_type_mix(const std::string& gguf_path) {
  auto f = GgufFile::open(gguf_path);
  std::map<GgmlType, double> bytes;
  double total = 0;
  for (const GgufTensor& t : f->tensors()) {
    if (t.ne.size() < 2) continue;  // norms, biases: not matrices
    bytes[t.type] += double(t.nbytes);
    total += double(t.nbytes);
  }
  WeightTypeMix mix;
  std::vector<std::pair<double, GgmlType>> sorted;
  for (auto& [type, b] : bytes) sorted.push_back({b, type});
  std::sort(sorted.rbegin(), sorted.rend());
  for (auto& [b, type] : sorted) {
    char part[64];
    std::snprintf(part, sizeof part, "%s%s %.1f%%", mix.summary.empty() ? "" : ", ",
                  std::string(type_name(type)).c_str(), 100.0 * b / total);
    mix.summary += part;
  }
  if (!sorted.empty()) {
    mix.dominant = sorted.front().second;
    mix.dominant_share = sorted.front().first / total;
  }
  return mix;
}

namespace {

using Clock = std::chrono::steady_clock;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

// Seconds per call of fn: calls repeated until a run lasts >= 20 ms, the median of 3 runs.
// The median, as `mlamoe bench` reports: the plan predicts the typical run on this
// machine, not its best moment (best-of-3 per pass and then the best pass had put the
// plan's matmul rates ~10-20% above what a whole prompt sustains), while one burst of
// other work still spoils a single run only.
template <class Fn>
double seconds_per_call(Fn&& fn) {
  fn();  // warm-up: grows scratch buffers, brings the operands into cache
  int calls = 1;
  for (;;) {
    auto t0 = Clock::now();
    for (int i = 0; i < calls; ++i) fn();
    if (std::chrono::duration<double>(Clock::now() - t0).count() >= 0.02 || calls >= (1 << 20)) break;
    calls *= 2;
  }
  std::vector<double> runs;
  for (int r = 0; r < 3; ++r) {
    auto t0 = Clock::now();
    for (int i = 0; i < calls; ++i) fn();
    runs.push_back(std::chrono::duration<double>(Clock::now() - t0).count() / calls);
  }
  return median(runs);
}

// A rows × cols matrix of `type` as Model::load leaves it: quantized from N(0, 0.02)
// floats, then re-laid out into tiles when the active ISA's int8 kernels take them.
struct SyntheticMatrix {
  std::vector<uint8_t> rows_bytes, tiles;
  kernels::WeightView view;
  // distinct_rows: rows quantized from fresh randoms; further rows repeat them (a
  // matrix far larger than the caches streams the same whatever its values).
  SyntheticMatrix(GgmlType type, int64_t rows, int64_t cols, int64_t distinct_rows = INT64_MAX) {
    const size_t rb = row_bytes(type, cols);
    rows_bytes.resize(rb * size_t(rows));
    std::mt19937 rng(7);
    std::normal_distribution<float> normal(0.f, 0.02f);
    std::vector<float> row(static_cast<size_t>(cols));
    for (int64_t r = 0; r < rows; ++r) {
      if (r >= distinct_rows) {
        std::copy_n(rows_bytes.data() + rb * size_t(r % distinct_rows), rb, rows_bytes.data() + rb * size_t(r));
        continue;
      }
      for (auto& v : row) v = normal(rng);
      quantize_row(type, row.data(), rows_bytes.data() + rb * size_t(r), cols);
    }
    view = kernels::WeightView{type, rows_bytes.data(), rows, cols, rb};
    if (size_t n = kernels::tiled_bytes(view)) {
      tiles.resize(n + 64);
      uint8_t* aligned = tiles.data() + (64 - reinterpret_cast<uintptr_t>(tiles.data()) % 64) % 64;
      view = kernels::tile_weights(view, aligned);
      std::vector<uint8_t>().swap(rows_bytes);  // the tiles are all the kernels read
    }
  }
  size_t bytes() const { return tiles.empty() ? rows_bytes.size() : tiles.size(); }
};

// Matrices of the experts' shape cycled call after call, together 96 MiB (3x a 32 MiB
// last-level cache): an MoE step reads each selected expert's weights from memory once
// per batch, so a probe that kept one matrix in cache timed a rate the engine never
// saw (600 GMAC/s at 64 tokens against ~500 inside the MoE pass, session 4). The
// one-token rate stays a rate of arithmetic (one matrix, in cache): a decode step's
// memory time is the stream probe's, and the step is the larger of the two.
std::map<int64_t, double> matmul_rates(GgmlType type, int64_t rows, int64_t cols) {
  std::vector<SyntheticMatrix> ws;
  ws.emplace_back(type, rows, cols, /*distinct_rows=*/64);
  const size_t count = std::max<size_t>(4, (size_t(96) << 20) / std::max<size_t>(1, ws.front().bytes()));
  while (ws.size() < count) ws.emplace_back(type, rows, cols, /*distinct_rows=*/64);
  std::mt19937 rng(11);
  std::normal_distribution<float> normal(0.f, 1.f);
  std::map<int64_t, double> out;
  size_t next = 0;
  for (int64_t n : kProbeTokens) {
    std::vector<float> x(static_cast<size_t>(n * cols)), y(static_cast<size_t>(n * rows));
    for (auto& v : x) v = normal(rng);
    const double s = seconds_per_call([&] {
      kernels::matmul(ws[next].view, x.data(), n, y.data());
      if (n > 1) next = (next + 1) % ws.size();
    });
    out[n] = double(rows) * double(cols) * double(n) / s / 1e9;
  }
  return out;
}

// GB/s of weights a one-token matmul consumes from a 256 MiB matrix (8× this machine's
// last-level cache and more on most): each call streams it from memory once. The matrix
// is built once and timed on every pass.
struct DecodeStreamProbe {
  int64_t rows;
  SyntheticMatrix w;
  std::vector<float> x, y;
  DecodeStreamProbe(GgmlType type, int64_t cols)
      : rows(int64_t((size_t(256) << 20) / row_bytes(type, cols)) / 16 * 16),
        w(type, rows, cols, /*distinct_rows=*/64),
        x(static_cast<size_t>(cols), 0.5f),
        y(static_cast<size_t>(rows)) {
    // With or without software prefetch, as the engine would choose at load.
    const kernels::WeightView* views[] = {&w.view};
    kernels::tune_decode_prefetch(views, 1);
  }
  double gbps() {
    const double s = seconds_per_call([&] { kernels::matmul(w.view, x.data(), 1, y.data()); });
    return double(w.view.rows) * double(w.view.row_stride) / s / 1e9;
  }
};

// Vectors of N(0, 1) floats from one seeded stream: the attention probes' operands.
struct NormalFloats {
  std::mt19937 rng;
  std::normal_distribution<float> normal{0.f, 1.f};
  explicit NormalFloats(unsigned seed) : rng(seed) {}
  std::vector<float> operator()(int64_t n) {
    std::vector<float> v(static_cast<size_t>(n));
    for (auto& x : v) x = normal(rng);
    return v;
  }
};

// GFLOP/s of the absorbed-attention kernel: `rows` query rows over `keys` cached
// latents, on `threads` threads each with its own rows (as the engine shares items).
double attention_rate(const ModelShape& m, int64_t rows, int64_t keys, int threads) {
  const int64_t d_c = m.kv_lora_rank, d_r = m.qk_rope_head_dim;
  NormalFloats randoms(13);
  const std::vector<float> c_kv = randoms(keys * d_c), k_rope = randoms(keys * d_r);
  std::vector<std::vector<float>> q_lat, q_rope;
  for (int t = 0; t < threads; ++t) q_lat.push_back(randoms(rows * d_c)), q_rope.push_back(randoms(rows * d_r));
  const std::vector<int64_t> last_pos(static_cast<size_t>(rows), keys - 1);
  std::vector<kernels::LatentAttentionState> states(static_cast<size_t>(threads));
  const float scale = 1.0f / std::sqrt(float(m.qk_nope_head_dim + d_r));
  auto sweep = [&](int t) {
    kernels::LatentQueries q;
    q.q_lat = q_lat[size_t(t)].data();
    q.q_rope = q_rope[size_t(t)].data();
    q.last_pos = last_pos.data();
    q.rows = rows;
    q.d_c = d_c;
    q.d_r = d_r;
    q.scale = scale;
    states[size_t(t)].reset(rows, d_c);
    kernels::latent_attention_accumulate(q, 0, keys, c_kv.data(), k_rope.data(), states[size_t(t)]);
  };
  const double s = seconds_per_call([&] {
    if (threads == 1) {
      sweep(0);
    } else {
#pragma omp parallel num_threads(threads)
      sweep(omp_get_thread_num());
    }
  });
  return double(threads) * double(rows) * double(keys) * 2.0 * double(2 * d_c + d_r) / s / 1e9;
}

// GFLOP/s of the naive path's attention kernel as the engine shares it out: every
// thread folds `keys` decompressed keys into its own tile of `rows` queries of one head.
double dense_attention_rate(const ModelShape& m, int64_t rows, int64_t keys, int threads) {
  const int64_t d_nope = m.qk_nope_head_dim, d_rope = m.qk_rope_head_dim, d_v = m.v_head_dim, d_qk = d_nope + d_rope;
  NormalFloats randoms(17);
  const std::vector<float> k_nope = randoms(keys * d_nope), k_rope = randoms(keys * d_rope), v = randoms(keys * d_v);
  std::vector<std::vector<float>> q;
  for (int t = 0; t < threads; ++t) q.push_back(randoms(rows * d_qk));
  const std::vector<int64_t> last_pos(static_cast<size_t>(rows), keys - 1);
  std::vector<kernels::DenseAttentionState> states(static_cast<size_t>(threads));
  kernels::DenseKeys k;
  k.k_nope = k_nope.data(), k.k_rope = k_rope.data(), k.v = v.data();
  k.k_stride = d_nope, k.r_stride = d_rope, k.v_stride = d_v;
  k.pos0 = 0, k.count = keys;
  auto sweep = [&](int t) {
    kernels::DenseQueries dq;
    dq.q = q[size_t(t)].data();
    dq.last_pos = last_pos.data();
    dq.rows = rows, dq.q_stride = d_qk;
    dq.d_nope = d_nope, dq.d_rope = d_rope, dq.d_v = d_v;
    dq.scale = 1.0f / std::sqrt(float(d_qk));
    states[size_t(t)].reset(rows, d_v);
    kernels::dense_attention_accumulate(dq, k, states[size_t(t)]);
  };
  const double s = seconds_per_call([&] {
#pragma omp parallel num_threads(threads)
    sweep(omp_get_thread_num());
  });
  return double(threads) * double(rows) * double(keys) * 2.0 * double(d_qk + d_v) / s / 1e9;
}

}  // namespace

MeasuredKernels measure_engine_kernels(const ModelShape& m, GgmlType type) {
  MeasuredKernels k;
  k.weight_type = std::string(type_name(type));
  k.threads = kernels::threads();
  // The routed experts' shape: most of a DeepSeekMoE step's MACs run on it (dense models:
  // the FFN's). Columns are d_model, a multiple of every quant block size.
  const int64_t rows = m.is_moe() ? m.moe_intermediate_size : m.intermediate_size, cols = m.d_model;
  if (rows <= 0 || cols <= 0 || cols % 256) fail("kernel probe: unsupported shape ", rows, " x ", cols);
  // Three passes over everything, each figure the median of its passes: a burst of other
  // work on a shared machine spoils one pass of a figure, not the median.
  DecodeStreamProbe decode_stream(type, cols);
  std::map<std::string, std::map<int64_t, std::vector<double>>> matmul;
  std::vector<double> stream, attn_one, attn_all, dense_all;
  for (int pass = 0; pass < 3; ++pass) {
    for (GgmlType t : {type, GgmlType::Q4_0, GgmlType::Q8_0})
      for (auto [n, gmacs] : matmul_rates(t, rows, cols)) matmul[std::string(type_name(t))][n].push_back(gmacs);
    stream.push_back(decode_stream.gbps());
    if (m.attention == AttentionKind::MLA) {
      constexpr int64_t kKeys = 512;  // one prompt's worth of cached latents (1 MiB of c_kv)
      attn_one.push_back(attention_rate(m, m.n_heads, kKeys, 1));
      attn_all.push_back(attention_rate(m, 4 * m.n_heads, kKeys, kernels::threads()));
      dense_all.push_back(dense_attention_rate(m, 32, kKeys, kernels::threads()));
    }
  }
  for (auto& [t, by_tokens] : matmul)
    for (auto& [n, rates] : by_tokens) k.matmul_gmacs[t][n] = median(rates);
  k.decode_stream_gbps = median(stream);
  k.attention_gflops_one_thread = median(attn_one);
  k.attention_gflops_all_threads = median(attn_all);
  k.dense_attention_gflops_all_threads = median(dense_all);
  return k;
}

}  // namespace mlamoe::planner
