// Kernel micro-benchmarks: every weight type × ISA × batch size. For n = 1 (decode)
// the matrix is 2× the last-level cache (≥ 128 MB), so the GB/s of weight bytes is what a decode
// step would see; for n > 1 (prefill) the matrix is expert-sized (2048 × 1408) and
// items/s counts multiply-adds.
//   ./build/kernels_bench --benchmark_filter='q4_0/avx512' --benchmark_min_time=1s
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "format/quant.h"
#include "kernels/kernels.h"
#include "kernels/membw.h"
#include "kernels/tiled.h"
#include "repeated_rows.h"

using namespace mlamoe;
using namespace mlamoe::kernels;

namespace {

struct Matrix {
  std::vector<uint8_t> bytes;
  WeightView view;
  std::vector<uint8_t> tiles;  // the Tiles16 copy, made on first use
  WeightView tiled;
};

Matrix make_matrix(GgmlType type, int64_t rows, int64_t cols) {
  Matrix m;
  const size_t rb = row_bytes(type, cols);
  m.bytes.resize(rb * static_cast<size_t>(rows));
  bench::fill_repeated_rows(type, m.bytes.data(), rows, cols);
  m.view = WeightView{type, m.bytes.data(), rows, cols, rb};
  return m;
}

// Streaming cases read a matrix twice the last-level cache (at least 128 MB): on a host
// with a 260 MB L3 a 128 MB one was read from the cache, not from DRAM.
size_t streaming_matrix_bytes() {
  const long l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);
  return std::max(size_t(128) << 20, l3 > 0 ? 2 * static_cast<size_t>(l3) : 0);
}

// hot: a 512 KB matrix that stays in L2, so the kernel's arithmetic alone is timed
// (the compute ceiling a decode step could reach with infinite bandwidth).
// tiled: the load-time Tiles16 layout (Q4_0/Q8_0/Q4_K/Q6_K under AVX2 and AVX-512) instead of the file's rows.
void run_matmul(benchmark::State& state, GgmlType type, Isa isa, int64_t n, int threads, bool hot, bool tiled) {
  set_isa(isa);
  set_threads(threads);
  const int64_t cols = 2048;
  const size_t matrix_bytes = hot ? size_t(512) << 10 : streaming_matrix_bytes();
  const int64_t rows = n == 1 ? static_cast<int64_t>(matrix_bytes / row_bytes(type, cols)) : 1408;
  static std::vector<Matrix> cache;  // one big matrix per type, reused across ISAs
  Matrix* m = nullptr;
  for (auto& c : cache)
    if (c.view.type == type && c.view.rows == rows) m = &c;
  if (!m) {
    cache.push_back(make_matrix(type, rows, cols));
    m = &cache.back();
  }
  if (tiled && m->tiles.empty()) {
    m->tiles.resize(tiled_bytes(m->view));
    m->tiled = tile_weights(m->view, m->tiles.data());
  }
  const WeightView& view = tiled ? m->tiled : m->view;
  std::vector<float> x(static_cast<size_t>(n * cols)), y(static_cast<size_t>(n * rows));
  std::mt19937 rng(1);
  std::normal_distribution<float> normal(0.f, 1.f);
  for (auto& v : x) v = normal(rng);
  for (auto _ : state) {
    matmul(view, x.data(), n, y.data());
    benchmark::DoNotOptimize(y.data());
  }
  const double weight_bytes = static_cast<double>(m->bytes.size());
  state.counters["weight_GBps"] = benchmark::Counter(weight_bytes * static_cast<double>(state.iterations()) / 1e9, benchmark::Counter::kIsRate);
  state.counters["GMACps"] = benchmark::Counter(static_cast<double>(rows * cols * n) * static_cast<double>(state.iterations()) / 1e9,
                                                benchmark::Counter::kIsRate);
}

// MLA's absorbed query for a legacy attn_kv_b (V2-Lite shape): W_UK^T q_nope with
// each head's W_UK rows (128 × 512) tiled, as the naive path has them, through
// matmul_transposed's AVX-512 kernel (int8 coefficients, vpdpbusd over 4 rows a lane)
// or AVX2 kernel (float axpy over the rows), one token, one thread. `heads` heads back
// to back: 1 stays in L2 (the arithmetic alone); 16 × 27 × 4 (four decode steps' worth,
// 64-120 MB) streams from DRAM. ns_per_head against a decode's absorb phase (--phases)
// tells arithmetic from memory.
void run_absorb(benchmark::State& state, GgmlType type, Isa isa, int64_t heads) {
  set_isa(isa);
  set_threads(1);
  const int64_t d_c = 512, d_nope = 128;
  Matrix uk = make_matrix(type, heads * d_nope, d_c);  // W_UK rows of every head, as in attn_kv_b
  std::vector<uint8_t> tiles(tiled_bytes(uk.view));
  const WeightView all = tile_weights(uk.view, tiles.data());
  std::vector<float> x(static_cast<size_t>(d_nope), 0.5f), y(static_cast<size_t>(d_c));
  for (auto _ : state)
    for (int64_t h = 0; h < heads; ++h) {
      matmul_transposed(row_slice(all, h * d_nope, d_nope), x.data(), 1, y.data());
      benchmark::DoNotOptimize(y.data());
    }
  state.counters["ns_per_head"] = benchmark::Counter(static_cast<double>(heads) * static_cast<double>(state.iterations()),
                                                     benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  state.counters["weight_GBps"] = benchmark::Counter(static_cast<double>(tiles.size()) * static_cast<double>(state.iterations()) / 1e9,
                                                     benchmark::Counter::kIsRate);
}

}  // namespace

int main(int argc, char** argv) {
  const GgmlType types[] = {GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4_K, GgmlType::Q5_K,
                            GgmlType::Q6_K, GgmlType::F16,  GgmlType::BF16, GgmlType::F32};
  for (GgmlType type : types)
    for (Isa isa : kAllIsas) {
      if (!cpu_supports(isa)) continue;
      for (bool tiled : {false, true}) {
        if (tiled && !has_tiled_kernel(isa, type)) continue;
        if (!tiled && isa == Isa::AvxVnni) continue;  // the file's rows take the AVX2 kernels
        for (int64_t n : {1, 4, 64, 512})
          for (int threads : {1, 2}) {
            const std::string name = std::string(type_name(type)) + "/" + isa_name(isa) + (tiled ? "-tiled" : "") + "/n" +
                                     std::to_string(n) + "/t" + std::to_string(threads);
            benchmark::RegisterBenchmark(name.c_str(), run_matmul, type, isa, n, threads, false, tiled)->UseRealTime()->Unit(benchmark::kMillisecond);
            if (n == 1 && threads == 1)
              benchmark::RegisterBenchmark((name + "/hot").c_str(), run_matmul, type, isa, n, threads, true, tiled)->Unit(benchmark::kMicrosecond);
          }
      }
    }
  for (GgmlType type : {GgmlType::Q4_0, GgmlType::Q8_0, GgmlType::Q6_K})
    for (Isa isa : {Isa::Avx2, Isa::Avx512}) {
      if (!cpu_supports(isa)) continue;
      const std::string name = "absorb/" + std::string(type_name(type)) + "-tiled-rows/" + (isa == Isa::Avx2 ? "avx2/" : "");
      benchmark::RegisterBenchmark((name + "hot").c_str(), run_absorb, type, isa, 1)->Unit(benchmark::kMicrosecond);
      benchmark::RegisterBenchmark((name + "16x27x4").c_str(), run_absorb, type, isa, 16 * 27 * 4)->UseRealTime()->Unit(benchmark::kMicrosecond);
    }
  benchmark::RegisterBenchmark("membw/read", [](benchmark::State& state) {
    set_threads(2);
    double g = 0;
    for (auto _ : state) g = measure_read_bandwidth_gbps(size_t(1) << 30, 3);
    state.counters["GBps"] = g;
  })->Iterations(1)->Unit(benchmark::kMillisecond);
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
