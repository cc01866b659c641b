// Tiered latent KV memory on a real-shaped model (default: the V2-Lite-shaped random
// model from `mlamoe gen-random --config deepseek-v2-lite.json --type q4_0`):
//  - decode at a long context with everything in RAM vs a RAM budget + disk tier
//    (logits compared bit for bit);
//  - time to first token of a request whose long prefix another request already
//    computed (radix-tree reuse) vs recomputing it.
// The long context is filled with synthetic latent entries (random c_kv / k_rope rows):
// a decode step costs the same whatever the values, and a real 64K prefill takes hours
// on two cores. Settings come from the environment:
//   MLAMOE_KV_BENCH_MODEL (/tmp/v2lite-q4_0.gguf), MLAMOE_KV_BENCH_CTX (65536),
//   MLAMOE_KV_BENCH_BUDGET (256MiB), MLAMOE_KV_BENCH_DISK (/tmp/mlamoe-kv-bench),
//   MLAMOE_KV_BENCH_PREFIX (4096), MLAMOE_KV_BENCH_DECODE (3 timed steps); the decode
//   benchmarks exist per KV storage type (decode_at_context/all_ram_f32, ssd_tier_f32,
//   all_ram_f16, ssd_tier_f16: pick with --benchmark_filter).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <random>
#include <string>

#include "common/parse.h"
#include "common/progress.h"
#include "model/engine.h"
#include "runtime/generate.h"
#include "runtime/paged_kv_cache.h"

using namespace mlamoe;

namespace {

std::string env(const char* name, const char* def) {
  const char* v = std::getenv(name);
  return v && *v ? v : def;
}

const Model& model() {
  static std::unique_ptr<Model> m = Model::load(env("MLAMOE_KV_BENCH_MODEL", "/tmp/v2lite-q4_0.gguf"));
  return *m;
}

std::shared_ptr<PagedKvCache> make_cache(bool tiered, const char* type = "f32") {
  const ModelConfig& c = model().config();
  PagedKvOptions o;
  o.type = parse_kv_type(type);
  if (tiered) {
    o.ram_budget = parse_byte_size(env("MLAMOE_KV_BENCH_BUDGET", "256MiB"));
    o.disk_dir = env("MLAMOE_KV_BENCH_DISK", "/tmp/mlamoe-kv-bench");
  }
  return std::make_shared<PagedKvCache>(c.n_layers, c.kv_lora_rank, c.qk_rope_head_dim, o);
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// n positions of synthetic latents (unit-RMS c_kv and k_rope rows, like RMS-normed and
// rotated entries), the same for every cache.
void fill_context(PagedKvCache& kv, int64_t n) {
  std::mt19937 rng(2024);
  std::normal_distribution<float> nd;
  std::vector<float> c(static_cast<size_t>(kv.kv_lora_rank())), r(static_cast<size_t>(kv.rope_dim()));
  kv.reserve(0, n);
  Progress progress("synthetic context", static_cast<uint64_t>(n), "tok");
  for (int64_t p = 0; p < n; ++p) {
    // One random entry per position, shared by the layers (rotated so they differ):
    // drawing 27 × 576 normals per position would dominate the set-up.
    for (auto& v : c) v = nd(rng);
    for (auto& v : r) v = nd(rng);
    for (int64_t l = 0; l < kv.n_layers(); ++l) {
      kv.store(0, l, p, c.data(), r.data());
      std::rotate(c.begin(), c.begin() + 1, c.end());
    }
    if (p % 1024 == 0) progress.update(static_cast<uint64_t>(p));
  }
  progress.finish();
  kv.set_length(0, n);
}

std::map<std::string, std::vector<std::vector<float>>> g_all_ram_logits;  // per type: every step, all in RAM

// One untimed step first (faults the weights in, grows scratch buffers, primes the
// tier's read-ahead), then MLAMOE_KV_BENCH_DECODE timed steps; the logits of every
// step are compared with the all-RAM run's.
void decode_at_context(benchmark::State& state, bool tiered, const char* type) {
  const int64_t ctx = std::stoll(env("MLAMOE_KV_BENCH_CTX", "65536"));
  const int steps = std::stoi(env("MLAMOE_KV_BENCH_DECODE", "3"));
  auto kv = make_cache(tiered, type);
  fill_context(*kv, ctx);
  auto& reference = g_all_ram_logits[type];
  Engine engine(model(), {ctx + steps + 8, AttentionMode::Absorbed}, kv);
  std::vector<double> times;
  bool equal = true;
  KvStats before;
  for (auto _ : state) {
    for (int i = 0; i <= steps; ++i) {
      if (i == 1) before = kv->stats();
      Batch b;
      b.add(17 + i, static_cast<int32_t>(ctx + i), 0);
      const auto t0 = std::chrono::steady_clock::now();
      std::vector<float> logits = engine.forward(b);
      const double t = seconds_since(t0);
      if (i > 0) times.push_back(t);
      std::fprintf(stderr, "%s decode at %lld: %.3f s%s\n", tiered ? "ssd-tier" : "all-ram", (long long)(ctx + i), t,
                   i == 0 ? " (warm-up, untimed)" : "");
      if (!tiered) reference.push_back(logits);
      else equal = equal && static_cast<size_t>(i) < reference.size() && logits == reference[static_cast<size_t>(i)];
    }
    double total = 0;
    for (double t : times) total += t;
    state.SetIterationTime(total);
  }
  std::sort(times.begin(), times.end());
  const KvStats s = kv->stats();
  state.counters["ctx"] = static_cast<double>(ctx);
  state.counters["median_s_per_token"] = times[times.size() / 2];
  state.counters["min_s"] = times.front();
  state.counters["max_s"] = times.back();
  state.counters["kv_bytes_per_token"] = static_cast<double>(kv->bytes_per_token());
  state.counters["peak_resident_MiB"] = static_cast<double>(s.peak_resident_bytes) / 1048576.0;
  if (tiered) {
    const double decoded = static_cast<double>(times.size());
    state.counters["pages_read_per_token"] = static_cast<double>(s.pages_read - before.pages_read) / decoded;
    state.counters["prefetched_share"] =
        static_cast<double>(s.pages_prefetched - before.pages_prefetched) / std::max<double>(1, double(s.pages_read - before.pages_read));
    state.counters["logits_equal_all_ram"] = reference.empty() ? -1 : equal ? 1 : 0;  // every step, bit for bit
  }
}

// A 4K-token shared prefix: request A computes it, request B (same prefix, another
// final token) reuses it through the radix tree.
void prefix_ttft(benchmark::State& state) {
  const int64_t n = std::stoll(env("MLAMOE_KV_BENCH_PREFIX", "4096"));
  auto kv = make_cache(false);
  Engine engine(model(), {n + 8, AttentionMode::Absorbed}, kv);
  std::mt19937 rng(5);
  std::vector<int32_t> prompt(static_cast<size_t>(n));
  for (auto& t : prompt) t = static_cast<int32_t>(rng() % model().config().vocab_size);
  // Cold: the whole prompt, as generate() prefills it (chunks of 256).
  auto t0 = std::chrono::steady_clock::now();
  std::vector<float> cold = prefill(engine, 0, prompt, 0, 256);
  const double cold_s = seconds_since(t0);
  kv->publish(0, prompt);
  std::fprintf(stderr, "cold prefill of %lld tokens: %.2f s\n", (long long)n, cold_s);
  std::vector<double> warm;
  double worst = 0, scale = 0;
  int32_t seq = 1;
  for (auto _ : state) {
    t0 = std::chrono::steady_clock::now();
    const int64_t reused = kv->attach_prefix(seq, std::span<const int32_t>(prompt.data(), prompt.size() - 1));
    std::vector<float> logits = prefill(engine, seq, prompt, static_cast<size_t>(reused), 256);
    warm.push_back(seconds_since(t0));
    state.SetIterationTime(warm.back());
    for (size_t i = 0; i < logits.size(); ++i) {
      worst = std::max(worst, double(std::fabs(logits[i] - cold[i])));
      scale = std::max(scale, double(std::fabs(cold[i])));
    }
    std::fprintf(stderr, "reused %lld tokens, first token after %.3f s\n", (long long)reused, warm.back());
    kv->release(seq++);
  }
  std::sort(warm.begin(), warm.end());
  state.counters["prefix_tokens"] = static_cast<double>(n);
  state.counters["cold_ttft_s"] = cold_s;
  state.counters["reused_ttft_s_median"] = warm[warm.size() / 2];
  state.counters["speedup"] = cold_s / warm[warm.size() / 2];
  state.counters["max_rel_logit_diff"] = scale > 0 ? worst / scale : 0;
}

}  // namespace

BENCHMARK_CAPTURE(decode_at_context, all_ram_f32, false, "f32")->Iterations(1)->UseManualTime()->Unit(benchmark::kSecond);
BENCHMARK_CAPTURE(decode_at_context, ssd_tier_f32, true, "f32")->Iterations(1)->UseManualTime()->Unit(benchmark::kSecond);
BENCHMARK_CAPTURE(decode_at_context, all_ram_f16, false, "f16")->Iterations(1)->UseManualTime()->Unit(benchmark::kSecond);
BENCHMARK_CAPTURE(decode_at_context, ssd_tier_f16, true, "f16")->Iterations(1)->UseManualTime()->Unit(benchmark::kSecond);
BENCHMARK(prefix_ttft)->Iterations(5)->UseManualTime()->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
