// Absorbed MLA attention kernel (src/kernels/attention.h) on V2-Lite's shape: 16 heads,
// kv_lora_rank 512 + rope 64, keys in 32-position runs as the paged cache hands them
// out (fp32, or bf16 as --kv-type bf16 stores them). "decode": one token's 16 rows over the whole context; "prefill": 4 tokens
// (64 rows), the group size the engine uses. Single thread; MACs/s counts the score
// (576) and output (512) multiply-adds per (row, key).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <bit>
#include <cstdint>
#include <random>
#include <vector>

#include "kernels/attention.h"
#include "kernels/kernels.h"

using namespace mlamoe::kernels;

namespace {

enum class Path { Fast, Reference, Bf16 };

void run(benchmark::State& state, Path path) {
  const int64_t rows = state.range(0), n = state.range(1), d_c = 512, d_r = 64, block = 32;
  std::mt19937 rng(1);
  std::normal_distribution<float> nd;
  auto fill = [&](int64_t count) {
    std::vector<float> v(static_cast<size_t>(count));
    for (auto& x : v) x = nd(rng);
    return v;
  };
  const auto q_lat = fill(rows * d_c), q_rope = fill(rows * d_r), c_kv = fill(n * d_c), k_rope = fill(n * d_r);
  // the keys as --kv-type bf16 caches them (truncated: the speed does not care)
  const auto to_bf16 = [](const std::vector<float>& v) {
    std::vector<uint16_t> b(v.size());
    for (size_t i = 0; i < v.size(); ++i) b[i] = static_cast<uint16_t>(std::bit_cast<uint32_t>(v[i]) >> 16);
    return b;
  };
  const auto c_bf16 = to_bf16(c_kv), r_bf16 = to_bf16(k_rope);
  const size_t key_bytes = path == Path::Bf16 ? 2 : 4;
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
      // the sweep goes on into the next block, as the paged cache tells the kernels
      const int64_t next_count = std::min(block, n - j0 - block);
      const float* c = c_kv.data() + j0 * d_c;
      const float* r = k_rope.data() + j0 * d_r;
      switch (path) {
        case Path::Fast:
          latent_attention_accumulate(q, j0, block, c, r, s, {c + block * d_c, r + block * d_r, next_count});
          break;
        case Path::Reference: latent_attention_accumulate_reference(q, j0, block, c, r, s); break;
        case Path::Bf16: {
          const uint16_t* cb = c_bf16.data() + j0 * d_c;
          const uint16_t* rb = r_bf16.data() + j0 * d_r;
          latent_attention_accumulate_bf16(q, j0, block, cb, rb, s, {cb + block * d_c, rb + block * d_r, next_count});
          break;
        }
      }
    }
    benchmark::DoNotOptimize(s.o.data());
  }
  state.counters["GMAC/s"] = benchmark::Counter(static_cast<double>(rows * n * (d_c + d_r + d_c)) * state.iterations() / 1e9,
                                               benchmark::Counter::kIsRate);
  state.counters["GB/s_kv"] = benchmark::Counter(static_cast<double>(n * (d_c + d_r)) * key_bytes * state.iterations() / 1e9,
                                                benchmark::Counter::kIsRate);
}

}  // namespace

BENCHMARK_CAPTURE(run, fast, Path::Fast)->Args({16, 4096})->Args({16, 65536})->Args({64, 4096})->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(run, bf16, Path::Bf16)->Args({16, 4096})->Args({16, 65536})->Args({64, 4096})->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(run, reference, Path::Reference)->Args({16, 4096})->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
