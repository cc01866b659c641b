// The one-token product against plain loads of the same bytes, side by side in one
// process: each round streams the matrix once with the roofline probe's loads and once
// through the decode kernel (matmul, n = 1), alternating, and books their ratio. A
// host whose bandwidth swings (this project's 2-vCPU VMs flip between ~30 and ~60 GB/s
// every few minutes) moves both halves of a round alike, so the ratio is what the
// kernel leaves on the table, where separate runs of kernels_bench and membw/read
// compare two different moments. fast_half is the median ratio over the rounds whose loads
// ran at ≥ 80 % of the fastest round's (fast_rounds of them): the kernel's loss shows
// mostly when the host is fast. Each type runs with the decode kernels' software
// prefetch off and on (kernels.h, decode_prefetch()).
//   ./build/bench/decode_vs_loads_bench --benchmark_filter='q4_K'
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <random>
#include <string>
#include <vector>

#include "common/mapped_file.h"
#include "format/quant.h"
#include "kernels/kernels.h"
#include "kernels/membw.h"
#include "repeated_rows.h"

using namespace mlamoe;
using namespace mlamoe::kernels;

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Weight bytes far beyond the last-level cache: 4× L3, at least 512 MB.
size_t matrix_bytes() {
  const long l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);
  return std::max(size_t(512) << 20, l3 > 0 ? 4 * static_cast<size_t>(l3) : 0);
}

// A 2048-column matrix of `type` in the layout decode reads (Tiles16 where the active
// ISA has a tiled kernel), in transparent huge pages like the engine's repacked
// weights (rows from repeated_rows.h).
struct StreamedMatrix {
  AnonymousMemory rows_memory, tiles_memory;
  WeightView view;
  size_t bytes = 0;

  explicit StreamedMatrix(GgmlType type) {
    const int64_t cols = 2048;
    const size_t rb = row_bytes(type, cols);
    const int64_t rows = static_cast<int64_t>(matrix_bytes() / rb) / 64 * 64;
    rows_memory = AnonymousMemory(rb * static_cast<size_t>(rows));
    uint8_t* data = rows_memory.data();
    bench::fill_repeated_rows(type, data, rows, cols);
    view = WeightView{type, data, rows, cols, rb};
    bytes = rb * static_cast<size_t>(rows);
    if (const size_t tb = tiled_bytes(view)) {
      tiles_memory = AnonymousMemory(tb);
      view = tile_weights(view, tiles_memory.data());
      rows_memory = AnonymousMemory();
      bytes = tb;
    }
  }
  const uint8_t* data() const { return view.data; }
};

// The roofline probe's pass (kernels/membw.h) without its software prefetch: on the Zen 4
// host that is the faster form; where the prefetching form is faster (the probe takes
// the better of the two), these ratios read a little high.
uint64_t plain_loads(const uint8_t* p, size_t bytes) { return stream_read(p, bytes, false); }

void run(benchmark::State& state, GgmlType type, int threads, bool prefetch, int rounds) {
  set_threads(threads);
  set_decode_prefetch(prefetch);
  StreamedMatrix m(type);
  std::vector<float> x(static_cast<size_t>(m.view.cols)), y(static_cast<size_t>(m.view.rows));
  std::mt19937 rng(1);
  std::normal_distribution<float> normal(0.f, 1.f);
  for (float& v : x) v = normal(rng);
  std::vector<double> loads_gbps, ratio;
  for (auto _ : state) {
    plain_loads(m.data(), m.bytes);  // warm-up: page tables, TLB, thread wake-up
    for (int r = 0; r < rounds; ++r) {
      auto t0 = std::chrono::steady_clock::now();
      benchmark::DoNotOptimize(plain_loads(m.data(), m.bytes));
      const double loads_s = seconds_since(t0);
      t0 = std::chrono::steady_clock::now();
      matmul(m.view, x.data(), 1, y.data());
      benchmark::DoNotOptimize(y.data());
      const double kernel_s = seconds_since(t0);
      loads_gbps.push_back(static_cast<double>(m.bytes) / loads_s / 1e9);
      ratio.push_back(loads_s / kernel_s);
    }
  }
  const double fastest = *std::max_element(loads_gbps.begin(), loads_gbps.end());
  std::vector<double> fast;
  for (size_t i = 0; i < ratio.size(); ++i)
    if (loads_gbps[i] >= 0.8 * fastest) fast.push_back(ratio[i]);
  state.counters["loads_GBps"] = median(loads_gbps);
  state.counters["loads_GBps_max"] = fastest;
  state.counters["kernel_over_loads"] = median(ratio);
  state.counters["fast_rounds"] = static_cast<double>(fast.size());
  state.counters["fast_half"] = median(fast);
}

}  // namespace

int main(int argc, char** argv) {
  for (GgmlType type : {GgmlType::Q4_0, GgmlType::Q8_0, GgmlType::Q4_K, GgmlType::Q6_K})
    for (int threads : {1, 2})
      for (bool prefetch : {false, true}) {
        const std::string name =
            std::string(type_name(type)) + "/" + isa_name(active_isa()) + "/t" + std::to_string(threads) + (prefetch ? "/prefetch" : "");
        benchmark::RegisterBenchmark(name.c_str(), run, type, threads, prefetch, 40)->Iterations(1)->Unit(benchmark::kMillisecond);
      }
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
