// Round trip of one cache line between two cores: each thread pinned to one of the first
// two CPUs the process may run on, passing a counter back and forth. On the 2-vCPU
// VMs these benchmarks ran on, it tells where the two vCPUs sit: ~55 ns when they share
// an L3, 5-6x that when the host places them apart, which is also when the read
// bandwidth doubles (BENCHMARKS.md, session 25). Every barrier of a decode step pays it.
//   build/bench/core_to_core_bench   (alternate with `mlamoe bench --membw`)
#include <benchmark/benchmark.h>
#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <thread>
#include <vector>

namespace {

// The first two CPUs of this process's affinity mask, or none.
std::vector<int> two_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> cpus;
  if (sched_getaffinity(0, sizeof set, &set) != 0) return cpus;
  for (int c = 0; c < CPU_SETSIZE && cpus.size() < 2; ++c)
    if (CPU_ISSET(c, &set)) cpus.push_back(c);
  return cpus;
}

void pin(std::thread::native_handle_type thread, int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  pthread_setaffinity_np(thread, sizeof set, &set);
}

void BM_CacheLineRoundTrip(benchmark::State& state) {
  static const std::vector<int> cpus = two_cpus();  // before the first run pins this thread
  if (cpus.size() < 2) {
    state.SkipWithError("needs two CPUs");
    return;
  }
  alignas(64) std::atomic<int64_t> line{0};
  std::atomic<bool> stop{false};
  // The partner answers every odd value with the next even one.
  std::thread partner([&] {
    for (int64_t seen = 0;;) {
      const int64_t v = line.load(std::memory_order_acquire);
      if (v % 2 == 1 && v != seen) {
        seen = v;
        line.store(v + 1, std::memory_order_release);
      } else if (stop.load(std::memory_order_relaxed)) {
        return;
      }
    }
  });
  pin(partner.native_handle(), cpus[1]);
  pin(pthread_self(), cpus[0]);
  int64_t v = 0;
  for (auto _ : state) {
    line.store(v + 1, std::memory_order_release);
    while (line.load(std::memory_order_acquire) != v + 2) {
    }
    v += 2;
  }
  stop.store(true);
  partner.join();
  state.counters["round_trip_ns"] = benchmark::Counter(static_cast<double>(state.iterations()),
                                                       benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_CacheLineRoundTrip)->UseRealTime()->MinTime(0.2);

}  // namespace

BENCHMARK_MAIN();
