// Absorbed MLA attention kernel (src/kernels/attention.h) on V2-Lite's shape: 16 heads,
// kv_lora_rank 512 + rope 64, keys in 32-position runs as the paged cache hands them
// out. "decode": one token's 16 rows over the whole context; "prefill": 4 tokens
// (64 rows), the group size the engine uses. Single thread; MACs/s counts the score
// (576) and output (512) multiply-adds per (row, key).
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "kernels/attention.h"
#include "kernels/kernels.h"

using namespace mlamoe::kernels;

namespace {

void run(benchmark::State& state, bool reference) {
  const int64_t rows = state.range(0), n = state.range(1), d_c = 512, d_r = 64, block = 32;
  std::mt19937 rng(1);
  std::normal_distribution<float> nd;
  auto fill = [&](int64_t count) {
    std::vector<float> v(static_cast<size_t>(count));
    for (auto& x : v) x = nd(rng);
    return v;
  };
  const auto q_lat = fill(rows * d_c), q_rope = fill(rows * d_r), c_kv = fill(n * d_c), k_rope = fill(n * d_r);
  std::vector<int64_t> last(static_cast<size_t>(rows), n - 1);
  LatentQueries q;
  q.q_lat = q_lat.data();
  q.q_rope = q_rope.data();
  q.last_pos = last.data();
  q.rows = rows;
  q.d_c = d_c;
  q.d_r = d_r;
  q.scale = 1.f / 24.f;
  LatentAttentionState s;
  for (auto _ : state) {
    s.reset(rows, d_c);
    for (int64_t j0 = 0; j0 < n; j0 += block) {
      const float* c = c_kv.data() + j0 * d_c;
      const float* r = k_rope.data() + j0 * d_r;
      if (reference) latent_attention_accumulate_reference(q, j0, block, c, r, s);
      else latent_attention_accumulate(q, j0, block, c, r, s);
    }
    benchmark::DoNotOptimize(s.o.data());
  }
  state.counters["GMAC/s"] = benchmark::Counter(static_cast<double>(rows * n * (d_c + d_r + d_c)) * state.iterations() / 1e9,
                                               benchmark::Counter::kIsRate);
  state.counters["GB/s_kv"] = benchmark::Counter(static_cast<double>(n * (d_c + d_r) * 4) * state.iterations() / 1e9,
                                                benchmark::Counter::kIsRate);
}

}  // namespace

BENCHMARK_CAPTURE(run, fast, false)->Args({16, 4096})->Args({16, 65536})->Args({64, 4096})->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(run, reference, true)->Args({16, 4096})->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
