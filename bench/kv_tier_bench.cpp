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
//   MLAMOE_KV_BENCH_PREFIX (4096), MLAMOE_KV_BENCH_DECODE (3 timed steps),
//   MLAMOE_KV_BENCH_READERS (read-ahead threads, 4), MLAMOE_KV_BENCH_BATCH (pages per
//   read request, 32); the decode benchmarks exist per KV storage type
//   (decode_at_context/all_ram_f32, ssd_tier_f32, all_ram_f16, ssd_tier_f16: pick with
//   --benchmark_filter); sweep_only/ssd_tier_f32 streams the tier without the model.
// disk_read_rate measures the raw O_DIRECT read rate of the disk directory for the tier's
// request size (32 pages) at queue depth 1 and at the read-ahead's (median of 5 reads of
// 1 GiB); the tier reports its bound, max(all-RAM step, context bytes ÷ that rate), so
// its ratio to all-RAM is explained by the device rather than guessed.
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <thread>

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
    o.read_ahead_threads = std::stoi(env("MLAMOE_KV_BENCH_READERS", "4"));
    o.read_batch_pages = std::stoi(env("MLAMOE_KV_BENCH_BATCH", "32"));
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
std::map<std::string, double> g_all_ram_median_s;                          // per type
double g_disk_rate = 0;  // bytes/s, disk_read_rate at the read-ahead's queue depth

// Raw O_DIRECT reads of `request` bytes by `depth` threads over a 1 GiB file in the disk
// tier's directory (written once, then read `rounds` times; unlinked at once); bytes/s.
std::vector<double> probe_disk_read_rate(size_t request, int depth, int rounds) {
  const std::string dir = env("MLAMOE_KV_BENCH_DISK", "/tmp/mlamoe-kv-bench");
  std::string path = dir + "/probe-XXXXXX";
  const int fd = ::mkstemp(path.data());
  if (fd < 0) return {0};
  ::unlink(path.c_str());
  const int fl = ::fcntl(fd, F_GETFL);
  if (fl < 0 || ::fcntl(fd, F_SETFL, fl | O_DIRECT) != 0) std::fprintf(stderr, "disk probe: no O_DIRECT here\n");
  const size_t n_requests = (size_t(1) << 30) / request;
  void* buf = std::aligned_alloc(4096, request);
  std::memset(buf, 0x5a, request);
  std::vector<double> rates;
  bool ok = true;
  for (size_t i = 0; i < n_requests && ok; ++i)
    ok = ::pwrite(fd, buf, request, static_cast<off_t>(i * request)) == static_cast<ssize_t>(request);
  for (int round = 0; round < rounds && ok; ++round) {
    std::atomic<size_t> next{0};
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<std::thread> readers;
    for (int t = 0; t < depth; ++t)
      readers.emplace_back([&] {
        void* b = std::aligned_alloc(4096, request);
        for (size_t i; (i = next++) < n_requests;)
          if (::pread(fd, b, request, static_cast<off_t>(i * request)) != static_cast<ssize_t>(request)) ok = false;
        std::free(b);
      });
    for (auto& r : readers) r.join();
    rates.push_back(double(n_requests * request) / seconds_since(t0));
  }
  std::free(buf);
  ::close(fd);
  if (!ok) std::fprintf(stderr, "disk probe: I/O failed in %s\n", dir.c_str());
  return ok ? rates : std::vector<double>{0};
}

// The tier's read request: 32 pages of the V2-Lite-shaped f32 cache (73,728 B each).
void disk_read_rate(benchmark::State& state, int depth) {
  const size_t request = 32 * 73728;
  std::vector<double> rates;
  for (auto _ : state) {
    rates = probe_disk_read_rate(request, depth, 5);
    double seconds = 0;
    for (double r : rates) seconds += double(size_t(1) << 30) / std::max(r, 1.0);
    state.SetIterationTime(seconds);
  }
  std::sort(rates.begin(), rates.end());
  state.counters["request_bytes"] = double(request);
  state.counters["queue_depth"] = depth;
  state.counters["GBps_median"] = rates[rates.size() / 2] / 1e9;
  state.counters["GBps_min"] = rates.front() / 1e9;
  state.counters["GBps_max"] = rates.back() / 1e9;
  std::fprintf(stderr, "disk O_DIRECT reads of %zu B at depth %d: median %.2f GB/s (%.2f-%.2f)\n", request, depth,
               rates[rates.size() / 2] / 1e9, rates.front() / 1e9, rates.back() / 1e9);
  if (depth > 1) g_disk_rate = rates[rates.size() / 2];
}

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
      const KvStats step_before = kv->stats();
      Batch b;
      b.add(17 + i, static_cast<int32_t>(ctx + i), 0);
      const auto t0 = std::chrono::steady_clock::now();
      std::vector<float> logits = engine.forward(b);
      const double t = seconds_since(t0);
      if (i > 0) times.push_back(t);
      std::fprintf(stderr, "%s %s decode at %lld: %.3f s%s\n", tiered ? "ssd-tier" : "all-ram", type,
                   (long long)(ctx + i), t, i == 0 ? " (warm-up, untimed)" : "");
      if (tiered) {
        // Where the step went: disk busy (≥ 1 read in flight), attention waiting for
        // pages, read-ahead stopped for lack of room.
        const KvStats s = kv->stats();
        const double bytes = double(s.bytes_read - step_before.bytes_read), io = s.io_busy_s - step_before.io_busy_s;
        std::fprintf(stderr,
                     "  read %.2f GB, disk busy %.2f s (%.0f%% of the step, %.2f GB/s while busy), attention "
                     "waited %.2f s for pages, read-ahead waited %.2f s for room\n",
                     bytes / 1e9, io, 100 * io / t, io > 0 ? bytes / io / 1e9 : 0.0, s.sweep_wait_s - step_before.sweep_wait_s,
                     s.room_wait_s - step_before.room_wait_s);
      }
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
  if (!tiered) g_all_ram_median_s[type] = times[times.size() / 2];
  if (tiered) {
    const double decoded = static_cast<double>(times.size());
    const double bytes_per_step = double(s.bytes_read - before.bytes_read) / decoded;
    state.counters["GB_read_per_token"] = bytes_per_step / 1e9;
    state.counters["disk_busy_share"] = (s.io_busy_s - before.io_busy_s) / (decoded * times[times.size() / 2]);
    state.counters["sweep_wait_s_per_token"] = (s.sweep_wait_s - before.sweep_wait_s) / decoded;
    state.counters["room_wait_s_per_token"] = (s.room_wait_s - before.room_wait_s) / decoded;
    // The best the tier can do: compute as all-RAM, or the context's bytes at the disk's
    // raw rate, whichever is slower.
    const auto ram = g_all_ram_median_s.find(type);
    if (ram != g_all_ram_median_s.end() && g_disk_rate > 0) {
      const double bound = std::max(ram->second, bytes_per_step / g_disk_rate);
      state.counters["bound_s"] = bound;
      state.counters["tier_vs_ram"] = ram->second / times[times.size() / 2];
      state.counters["bound_vs_ram"] = ram->second / bound;
      std::fprintf(stderr, "%s tier: median %.3f s vs all-RAM %.3f s = %.0f%%; bound max(%.3f, %.2f GB / %.2f GB/s) = %.3f s = %.0f%%\n",
                   type, times[times.size() / 2], ram->second, 100 * ram->second / times[times.size() / 2], ram->second,
                   bytes_per_step / 1e9, g_disk_rate / 1e9, bound, 100 * ram->second / bound);
    }
    state.counters["pages_read_per_token"] = static_cast<double>(s.pages_read - before.pages_read) / decoded;
    state.counters["prefetched_share"] =
        static_cast<double>(s.pages_prefetched - before.pages_prefetched) / std::max<double>(1, double(s.pages_read - before.pages_read));
    state.counters["logits_equal_all_ram"] = reference.empty() ? -1 : equal ? 1 : 0;  // every step, bit for bit
  }
}

// The tier's streaming rate alone: decode-shaped sweeps (each layer once, two threads
// taking 1024-position ranges in order, as the attention does) that only touch the
// rows. What a decode step's I/O costs when nothing else competes for the CPU.
void sweep_only(benchmark::State& state, const char* type) {
  const int64_t ctx = std::stoll(env("MLAMOE_KV_BENCH_CTX", "65536"));
  const int steps = std::stoi(env("MLAMOE_KV_BENCH_DECODE", "3"));
  auto kv = make_cache(true, type);
  fill_context(*kv, ctx);
  std::vector<double> times;
  KvStats before;
  for (auto _ : state) {
    for (int i = 0; i <= steps; ++i) {
      if (i == 1) before = kv->stats();
      const auto t0 = std::chrono::steady_clock::now();
      for (int64_t l = 0; l < kv->n_layers(); ++l) {
        kv->will_read(0, l, ctx, /*single_pass=*/true);
        std::atomic<int64_t> next{0};
        auto sweep = [&] {
          float sink = 0;
          for (int64_t from; (from = next.fetch_add(1024)) < ctx;)
            kv->for_each_run_in(0, l, from, std::min(ctx, from + 1024),
                                [&](int64_t, int64_t, const float* c, const float* r) { sink += c[0] + r[0]; });
          benchmark::DoNotOptimize(sink);
        };
        std::thread other(sweep);
        sweep();
        other.join();
      }
      const double t = seconds_since(t0);
      if (i > 0) times.push_back(t);
      std::fprintf(stderr, "sweep-only %s at %lld: %.3f s%s\n", type, (long long)ctx, t, i == 0 ? " (warm-up, untimed)" : "");
    }
    double total = 0;
    for (double t : times) total += t;
    state.SetIterationTime(total);
  }
  std::sort(times.begin(), times.end());
  const KvStats s = kv->stats();
  const double decoded = static_cast<double>(times.size());
  state.counters["median_s_per_sweep"] = times[times.size() / 2];
  state.counters["min_s"] = times.front();
  state.counters["max_s"] = times.back();
  state.counters["GB_read_per_sweep"] = double(s.bytes_read - before.bytes_read) / decoded / 1e9;
  state.counters["GBps"] = double(s.bytes_read - before.bytes_read) / decoded / times[times.size() / 2] / 1e9;
  state.counters["disk_busy_share"] = (s.io_busy_s - before.io_busy_s) / (decoded * times[times.size() / 2]);
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

BENCHMARK_CAPTURE(disk_read_rate, depth_1, 1)->Iterations(1)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(disk_read_rate, depth_4, 4)->Iterations(1)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(decode_at_context, all_ram_f32, false, "f32")->Iterations(1)->UseManualTime()->Unit(benchmark::kSecond);
BENCHMARK_CAPTURE(decode_at_context, ssd_tier_f32, true, "f32")->Iterations(1)->UseManualTime()->Unit(benchmark::kSecond);
BENCHMARK_CAPTURE(decode_at_context, all_ram_f16, false, "f16")->Iterations(1)->UseManualTime()->Unit(benchmark::kSecond);
BENCHMARK_CAPTURE(decode_at_context, ssd_tier_f16, true, "f16")->Iterations(1)->UseManualTime()->Unit(benchmark::kSecond);
BENCHMARK_CAPTURE(sweep_only, ssd_tier_f32, "f32")->Iterations(1)->UseManualTime()->Unit(benchmark::kSecond);
BENCHMARK(prefix_ttft)->Iterations(5)->UseManualTime()->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
