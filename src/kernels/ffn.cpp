// Fused SwiGLU FFN and DeepSeekMoE expert dispatch on top of the matmul kernels.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <optional>
#include <vector>

#include "common/error.h"
#include "kernels/dispatch.h"
#include "kernels/kernels.h"
#include "kernels/phase_profile.h"
#include "kernels/work_queue.h"

namespace mlamoe::kernels {
namespace {

// A slice of one matrix of one selected expert: rows [r0, r1) against its tokens.
struct WorkItem {
  int32_t expert;
  int32_t matrix;  // 0 gate, 1 up, 2 down, 3 gate and up then silu·up (fused), 4 gate and up
  int64_t r0, r1;
};

struct MoeScratch {  // per calling thread, grow-only
  std::vector<int64_t> count, start;
  std::vector<int32_t> slot_order, slot_row;  // slots sorted by expert; slot -> row in grouped arrays
  std::vector<int32_t> by_load;               // selected experts, most tokens first
  std::vector<uint8_t> x_gate, x_up, grouped_gate, grouped_up, h_q;
  std::vector<float> g, u, down;
  std::vector<WorkItem> items;
  template <class V>
  static typename V::value_type* grow(V& v, size_t n) {
    if (v.size() < n) v.resize(n);
    return v.data();
  }
};
thread_local MoeScratch tl;

// 256 rows (~290 KB of Q4_0): in decode each item is one stream from memory, and fewer,
// longer streams went faster (priming each item's first lines did not). tg64 on the
// 27-layer Q4_0 file, alternating runs, % of the roofline probed alongside: 64 rows
// 60.7 / 59.3, 256 rows 63.7 / 70.5; 2048 rows lost balance at the end of a pass.
// Prefill measured alike (pp512 within the runs' spread): 1,280 items per layer.
constexpr int64_t kRowsPerItem = 256;

inline float silu(float x) { return x / (1.0f + std::exp(-x)); }

}  // namespace

void silu_mul_avx512(float* g, const float* u, int64_t n);  // ffn_avx512.cpp
void silu_mul_avx2(float* g, const float* u, int64_t n);    // ffn_avx2.cpp

// g = silu(g) ⊙ u: the scalar definition, or its vector twins (within 1e-6 of it).
void silu_mul(float* g, const float* u, int64_t n) {
  switch (active_isa()) {
    case Isa::Avx512: return silu_mul_avx512(g, u, n);
    case Isa::AvxVnni:
    case Isa::Avx2: return silu_mul_avx2(g, u, n);
    default:
      for (int64_t j = 0; j < n; ++j) g[j] = silu(g[j]) * u[j];
  }
}

namespace {

// Columns [c0, c1) of one token's h = silu(g) ⊙ u (in place in g), quantized into its
// activation row h_q (c0 on a block boundary of `f`, or the whole row).
void silu_and_quantize(ActFormat f, float* g, const float* u, int64_t c0, int64_t c1, uint8_t* h_q) {
  silu_mul(g + c0, u + c0, c1 - c0);
  quantize_activation_row(f, g + c0, h_q + activation_row_bytes(f, c0), c1 - c0);
}

// The selected experts' rows go to SplitQueue in units of 32: a 32-value activation
// block of h, two tiles.
constexpr int64_t kUnitRows = 32;

void add_items(std::vector<WorkItem>& items, int32_t e, int32_t matrix, int64_t rows) {
  for (int64_t r = 0; r < rows; r += kRowsPerItem) items.push_back({e, matrix, r, std::min(rows, r + kRowsPerItem)});
}

}  // namespace

void moe_ffn(const FfnWeights* experts, int64_t n_experts, const float* X, int64_t n, const int32_t* ids,
             const float* weights, int k, float* Y) {
  if (n <= 0 || k <= 0) return;
  const FfnWeights& e0 = experts[0];
  const int64_t d = e0.gate.cols, ff = e0.gate.rows;
  const int64_t slots = n * k;
  auto& s = tl;
  // Group the batch by expert (counting sort of the slots).
  int64_t* count = MoeScratch::grow(s.count, static_cast<size_t>(n_experts));
  int64_t* start = MoeScratch::grow(s.start, static_cast<size_t>(n_experts));
  std::fill(count, count + n_experts, 0);
  for (int64_t i = 0; i < slots; ++i) {
    const int32_t e = ids[i];
    if (e < 0 || e >= n_experts) fail("moe_ffn: expert id ", e, " out of range [0, ", n_experts, ")");
    ++count[e];
  }
  for (int64_t e = 0, acc = 0; e < n_experts; ++e) {
    start[e] = acc;
    acc += count[e];
  }
  int32_t* order = MoeScratch::grow(s.slot_order, static_cast<size_t>(slots));
  int32_t* row_of = MoeScratch::grow(s.slot_row, static_cast<size_t>(slots));
  {
    std::vector<int64_t>& fill = s.count;  // reuse as a cursor
    for (int64_t e = 0; e < n_experts; ++e) fill[static_cast<size_t>(e)] = 0;
    for (int64_t i = 0; i < slots; ++i) {
      const int32_t e = ids[i];
      const int64_t row = start[e] + fill[static_cast<size_t>(e)]++;
      order[row] = static_cast<int32_t>(i);
      row_of[i] = static_cast<int32_t>(row);
    }
  }
  // Items of the experts with the most tokens first (the shared experts take every
  // token): the threads then pick up the small ones at the end and finish together.
  std::vector<int32_t>& busiest = s.by_load;
  busiest.clear();
  for (int64_t e = 0; e < n_experts; ++e)
    if (count[e]) busiest.push_back(static_cast<int32_t>(e));
  std::stable_sort(busiest.begin(), busiest.end(), [&](int32_t a, int32_t b) { return count[a] > count[b]; });
  // Only the selected experts are read, so only they are checked: all 66 of a V2-Lite
  // layer made the set-up 1.8-2.3 µs a call in decode, the 8 selected 1.3-1.8.
  for (int32_t e : busiest) {
    const FfnWeights& w = experts[e];
    if (w.gate.cols != d || w.up.cols != d || w.gate.rows != ff || w.up.rows != ff || w.down.cols != ff || w.down.rows != d ||
        w.gate.type != e0.gate.type || w.up.type != e0.up.type || w.down.type != e0.down.type ||
        w.gate.layout != e0.gate.layout || w.up.layout != e0.up.layout || w.down.layout != e0.down.layout)
      fail("moe_ffn: expert ", e, " does not have the shape and types of expert 0");
  }
  const ActFormat fg = kernel_activation_format(e0.gate), fu = kernel_activation_format(e0.up),
                  fd = kernel_activation_format(e0.down);
  // When the down projection's activations are quantized in 32-value blocks (or not at
  // all; Q8S16 is Q8 with split sums), an item can finish its rows of h = silu(gate) ⊙ up and quantize them while
  // they are hot: rows are handed out from multiples of 32, so they cut no block.
  const bool fused = fd == ActFormat::Q8 || fd == ActFormat::Q8S16 || fd == ActFormat::F32;
  // When every selected expert has the same number of tokens (always in a one-token
  // decode step) the rows cost alike, and each thread streams a contiguous run of
  // experts' rows (SplitQueue): items dealt out in turn had each thread jump to a new
  // 256-row stream every item.
  const bool uniform = std::all_of(busiest.begin(), busiest.end(), [&](int32_t e) { return count[e] == count[busiest[0]]; });
  s.items.clear();
  for (size_t j = 0; !uniform && j < busiest.size(); ++j) {
    if (fused) {
      add_items(s.items, busiest[j], 3, ff);
    } else {
      add_items(s.items, busiest[j], 0, ff);
      add_items(s.items, busiest[j], 1, ff);
    }
  }
  const size_t n_gate_up = s.items.size();
  if (!uniform)
    for (int32_t e : busiest) add_items(s.items, e, 2, d);

  const size_t sg = activation_row_bytes(fg, d), su = activation_row_bytes(fu, d), sd = activation_row_bytes(fd, ff);
  const bool shared_x = fg == fu;
  uint8_t* xg = MoeScratch::grow(s.x_gate, sg * static_cast<size_t>(n));
  uint8_t* xu = shared_x ? xg : MoeScratch::grow(s.x_up, su * static_cast<size_t>(n));
  uint8_t* gg = MoeScratch::grow(s.grouped_gate, sg * static_cast<size_t>(slots));
  uint8_t* gu = shared_x ? gg : MoeScratch::grow(s.grouped_up, su * static_cast<size_t>(slots));
  uint8_t* hq = MoeScratch::grow(s.h_q, sd * static_cast<size_t>(slots));
  float* G = MoeScratch::grow(s.g, static_cast<size_t>(slots * ff));
  float* U = MoeScratch::grow(s.u, static_cast<size_t>(slots * ff));
  float* D = MoeScratch::grow(s.down, static_cast<size_t>(slots * d));
  const WorkItem* items = s.items.data();
  const int64_t n_items = static_cast<int64_t>(s.items.size());
  const int nt = omp_in_parallel() ? 1 : std::max(1, threads());
  const int experts_used = static_cast<int>(busiest.size());
  auto ff_rows = [&](int) { return ff; };
  auto d_rows = [&](int) { return d; };
  std::optional<SplitQueue> gate_up_queue, down_queue;
  if (uniform) {
    gate_up_queue.emplace(units_of_parts(experts_used, kUnitRows, ff_rows), nt, kRowsPerItem / kUnitRows);
    down_queue.emplace(units_of_parts(experts_used, kUnitRows, d_rows), nt, kRowsPerItem / kUnitRows);
  }
  auto gate_up_rows = [&](int32_t e, int32_t matrix, int64_t r0, int64_t r1) {
    const FfnWeights& w = experts[e];
    const int64_t r = start[e], m = count[e];
    if (matrix != 1) matmul_rows(w.gate, r0, r1, gg + sg * static_cast<size_t>(r), sg, m, G + r * ff, static_cast<size_t>(ff));
    if (matrix != 0) matmul_rows(w.up, r0, r1, gu + su * static_cast<size_t>(r), su, m, U + r * ff, static_cast<size_t>(ff));
    if (matrix == 3)
      for (int64_t row = r; row < r + m; ++row) silu_and_quantize(fd, G + row * ff, U + row * ff, r0, r1, hq + sd * static_cast<size_t>(row));
  };
  auto down_rows = [&](int32_t e, int64_t r0, int64_t r1) {
    const int64_t r = start[e], m = count[e];
    matmul_rows(experts[e].down, r0, r1, hq + sd * static_cast<size_t>(r), sd, m, D + r * d, static_cast<size_t>(d));
  };

#pragma omp parallel num_threads(nt)
  {
    const int self = omp_get_thread_num();
    // 1. quantize each token once, 2. copy it to its slots' rows (grouped by expert)
    PhaseTimer inputs(Phase::ExpertInputs);
#pragma omp for schedule(static)
    for (int64_t t = 0; t < n; ++t) {
      quantize_activation_row(fg, X + t * d, xg + sg * static_cast<size_t>(t), d);
      if (!shared_x) quantize_activation_row(fu, X + t * d, xu + su * static_cast<size_t>(t), d);
    }
#pragma omp for schedule(static) nowait
    for (int64_t row = 0; row < slots; ++row) {
      const int64_t t = order[row] / k;
      std::memcpy(gg + sg * static_cast<size_t>(row), xg + sg * static_cast<size_t>(t), sg);
      if (!shared_x) std::memcpy(gu + su * static_cast<size_t>(row), xu + su * static_cast<size_t>(t), su);
    }
    inputs.end();
    // 3. gate and up rows of every selected expert
    PhaseTimer gate_up(Phase::ExpertGateUp);
    if (uniform) {
      for (int64_t u0, u1; gate_up_queue->next(self, u0, u1);)
        for_each_part_rows(experts_used, kUnitRows, ff_rows, u0, u1,
                           [&](int j, int64_t r0, int64_t r1) { gate_up_rows(busiest[static_cast<size_t>(j)], fused ? 3 : 4, r0, r1); });
    } else {
#pragma omp for schedule(dynamic, 1) nowait
      for (int64_t i = 0; i < static_cast<int64_t>(n_gate_up); ++i) gate_up_rows(items[i].expert, items[i].matrix, items[i].r0, items[i].r1);
    }
    // 4. h = silu(gate) ⊙ up, quantized for the down projection (in place in G)
    if (!fused) {
#pragma omp barrier
#pragma omp for schedule(static) nowait
      for (int64_t row = 0; row < slots; ++row) silu_and_quantize(fd, G + row * ff, U + row * ff, 0, ff, hq + sd * static_cast<size_t>(row));
    }
    gate_up.end();
    // 5. down rows of every selected expert
    PhaseTimer down(Phase::ExpertDown);
    if (uniform) {
      for (int64_t u0, u1; down_queue->next(self, u0, u1);)
        for_each_part_rows(experts_used, kUnitRows, d_rows, u0, u1,
                           [&](int j, int64_t r0, int64_t r1) { down_rows(busiest[static_cast<size_t>(j)], r0, r1); });
    } else {
#pragma omp for schedule(dynamic, 1) nowait
      for (int64_t i = static_cast<int64_t>(n_gate_up); i < n_items; ++i) down_rows(items[i].expert, items[i].r0, items[i].r1);
    }
    down.end();
    // 6. weighted sum back into each token's row, in slot order (deterministic)
    PhaseTimer sum(Phase::ExpertSum);
#pragma omp for schedule(static) nowait
    for (int64_t t = 0; t < n; ++t) {
      float* y = Y + t * d;
      for (int i = 0; i < k; ++i) {
        const float wgt = weights[t * k + i];
        const float* src = D + static_cast<int64_t>(row_of[t * k + i]) * d;
        for (int64_t j = 0; j < d; ++j) y[j] += wgt * src[j];
      }
    }
    sum.end_of_region();
  }
}

void swiglu_ffn(const FfnWeights& w, const float* X, int64_t n, float* Y) {
  thread_local std::vector<int32_t> ids;
  thread_local std::vector<float> ones;
  if (ids.size() < static_cast<size_t>(n)) {
    ids.assign(static_cast<size_t>(n), 0);
    ones.assign(static_cast<size_t>(n), 1.f);
  }
  std::fill(Y, Y + n * w.down.rows, 0.f);
  moe_ffn(&w, 1, X, n, ids.data(), ones.data(), 1, Y);
}

}  // namespace mlamoe::kernels
