// The decode kernel over tiles in a mapped file (a tile cache, as `--tile-cache` maps
// it) against the same tiles in anonymous memory (as laid out at load): one-token
// products over expert-shaped Q4_0 matrices (1408 × 2048) in a random order, 800 per
// pass (1.3 GB, a V2-Lite token's worth). The file is written to $TMPDIR and mapped
// with huge pages requested and every page read in, like TileCache::read_in.
//   ./build/bench/mapped_weights_bench --benchmark_repetitions=12
//       --benchmark_enable_random_interleaving=true --benchmark_report_aggregates_only=true
// MLAMOE_BENCH_TILE_CACHE=FILE maps that tile cache instead (its bytes from 2 MiB on,
// read as expert matrices) and copies it into anonymous memory: the same bytes, the
// page cache's pages against fresh ones.
// Needs the AVX-512 tiled kernels; skips otherwise.
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "common/files.h"
#include "common/mapped_file.h"
#include "kernels/kernels.h"
#include "repeated_rows.h"

using namespace mlamoe;
using namespace mlamoe::kernels;

namespace {

constexpr int64_t kRows = 1408, kCols = 2048, kMatrices = 1280, kPerPass = 800;

struct Weights {
  size_t matrix_bytes = 0;
  AnonymousMemory anonymous;
  MappedFile mapped;
  const uint8_t* mapped_tiles = nullptr;
  int64_t n_matrices = kMatrices;
  std::vector<int64_t> order;  // kPerPass matrices, drawn anew per pass
  bool ok = false;
};

// Huge pages requested and every page read in, as TileCache::read_in does.
void read_in(const uint8_t* p, size_t n) {
  ::madvise(const_cast<uint8_t*>(p), n, MADV_HUGEPAGE);
  ::madvise(const_cast<uint8_t*>(p), n, MADV_POPULATE_READ);
}

Weights& weights() {
  static Weights w = [] {
    Weights w;
    set_isa(active_isa());
    std::vector<uint8_t> rows(row_bytes(GgmlType::Q4_0, kCols) * kRows);
    bench::fill_repeated_rows(GgmlType::Q4_0, rows.data(), kRows, kCols);
    const WeightView source{GgmlType::Q4_0, rows.data(), kRows, kCols, row_bytes(GgmlType::Q4_0, kCols)};
    w.matrix_bytes = tiled_bytes(source);
    if (!w.matrix_bytes) return w;
    if (const char* cache = std::getenv("MLAMOE_BENCH_TILE_CACHE")) {
      w.mapped = MappedFile(cache);
      const size_t skip = std::min(w.mapped.size(), size_t{2} << 20), tile_bytes = w.mapped.size() - skip;
      w.n_matrices = static_cast<int64_t>(tile_bytes / w.matrix_bytes);
      w.mapped_tiles = w.mapped.data() + skip;
      read_in(w.mapped_tiles, tile_bytes);
      w.anonymous = AnonymousMemory(w.matrix_bytes * w.n_matrices);
      std::memcpy(w.anonymous.data(), w.mapped_tiles, w.anonymous.size());
      w.order.resize(kPerPass);
      w.ok = w.n_matrices > 0;
      return w;
    }
    w.anonymous = AnonymousMemory(w.matrix_bytes * kMatrices);
    for (int64_t i = 0; i < kMatrices; ++i) tile_weights(source, w.anonymous.data() + i * w.matrix_bytes);
    const char* tmp = std::getenv("TMPDIR");
    const std::string path = std::string(tmp ? tmp : "/tmp") + "/mlamoe-mapped-weights-bench." + std::to_string(getpid());
    AtomicFile f(path);
    f.write(w.anonymous.data(), w.anonymous.size());
    f.commit();
    w.mapped = MappedFile(path);
    std::remove(path.c_str());  // the mapping keeps the pages
    w.mapped_tiles = w.mapped.data();
    read_in(w.mapped_tiles, w.mapped.size());
    w.order.resize(kPerPass);
    w.ok = true;
    return w;
  }();
  return w;
}

void run(benchmark::State& state, bool mapped) {
  Weights& w = weights();
  if (!w.ok) {
    state.SkipWithError("no tiled int8 kernels on this CPU");
    return;
  }
  const uint8_t* base = mapped ? w.mapped_tiles : w.anonymous.data();
  WeightView view{GgmlType::Q4_0, nullptr, kRows, kCols, row_bytes(GgmlType::Q4_0, kCols)};
  std::vector<float> x(kCols), y(kRows);
  std::mt19937 rng(1);
  std::normal_distribution<float> normal(0.f, 1.f);
  for (float& v : x) v = normal(rng);
  std::uniform_int_distribution<int64_t> pick(0, w.n_matrices - 1);
  for (auto _ : state) {
    state.PauseTiming();
    for (int64_t& m : w.order) m = pick(rng);
    state.ResumeTiming();
    for (int64_t m : w.order) {
      const WeightView tiles = tiled_view(view, base + m * w.matrix_bytes);
      matmul(tiles, x.data(), 1, y.data());
    }
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["weight_GBps"] = benchmark::Counter(
      static_cast<double>(w.matrix_bytes) * kPerPass * static_cast<double>(state.iterations()) / 1e9, benchmark::Counter::kIsRate);
}

}  // namespace

BENCHMARK_CAPTURE(run, anonymous, false)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(run, mapped_file, true)->Unit(benchmark::kMillisecond)->UseRealTime();

BENCHMARK_MAIN();
