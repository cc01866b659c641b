// Read bandwidth probe: every thread streams its slice of a buffer far larger than
// the last-level cache with the active ISA's widest loads, summing so nothing is
// optimized away. Median of the repetitions, after one untimed warm-up pass.
#include "kernels/membw.h"

#include "common/mapped_file.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <vector>

#include "common/error.h"
#include "kernels/dispatch.h"

namespace mlamoe::kernels {

namespace {

// Thread i of m's slice of `bytes`: 128-byte aligned, the last one to the end.
void thread_slice(size_t bytes, size_t i, size_t m, size_t& lo, size_t& hi) {
  lo = (bytes / m * i) & ~size_t(127);
  hi = i + 1 == m ? bytes : (bytes / m * (i + 1)) & ~size_t(127);
}

}  // namespace

uint64_t stream_read(const uint8_t* data, size_t bytes, bool prefetch) {
  const auto stream = kernel_table(active_isa()).stream_sum;
  uint64_t sum = 0;
#pragma omp parallel num_threads(std::max(1, threads())) reduction(+ : sum)
  {
    size_t lo, hi;
    thread_slice(bytes, static_cast<size_t>(omp_get_thread_num()), static_cast<size_t>(omp_get_num_threads()), lo, hi);
    sum += stream(data + lo, hi - lo, prefetch);
  }
  return sum;
}

struct ReadBandwidthProbe::Buffer {
  // In transparent huge pages, like the repacked weights (Model::tile_weights), so the
  // probe reads memory the way decode reads the weights (on this VM the two page sizes
  // measured alike, within its run-to-run swings).
  explicit Buffer(size_t n) : bytes(n), memory(n) {}
  size_t bytes;
  AnonymousMemory memory;
  std::atomic<uint64_t> sink{0};

  // First touch by the reader threads (pages land near them), with distinct contents in
  // every 64-byte line: pages of one repeated byte can be merged by the host (KSM /
  // same-page sharing), and then "streaming" them reads one cached page.
  void first_touch() {
    uint8_t* data = memory.data();
#pragma omp parallel num_threads(std::max(1, threads()))
    {
      size_t lo, hi;
      thread_slice(bytes, static_cast<size_t>(omp_get_thread_num()), static_cast<size_t>(omp_get_num_threads()), lo, hi);
      for (size_t o = lo; o + 8 <= hi; o += 8) {
        const uint64_t v = (o >> 3) * 0x9E3779B97F4A7C15ull;
        std::memcpy(data + o, &v, 8);
      }
    }
  }
  void pass(bool prefetch = true) { sink.fetch_add(stream_read(memory.data(), bytes, prefetch), std::memory_order_relaxed); }
};

ReadBandwidthProbe::ReadBandwidthProbe(size_t bytes)
    : buffer_(std::make_unique<Buffer>(std::max<size_t>(bytes, size_t(64) << 20) & ~size_t(4095))) {
  buffer_->first_touch();
  buffer_->pass();  // warm-up: TLB, page tables, the threads' first wake-up
}

ReadBandwidthProbe::~ReadBandwidthProbe() = default;

// The faster of the two streams (with and without software prefetch, alternating):
// the roofline is what this machine can read, however it is asked.
double ReadBandwidthProbe::gbps(int reps) {
  if (reps < 1) reps = 1;
  std::vector<double> rates[2];
  for (int r = 0; r < 2 * reps; ++r) {
    const bool prefetch = r % 2 == 0;
    const auto t0 = std::chrono::steady_clock::now();
    buffer_->pass(prefetch);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    rates[prefetch].push_back(static_cast<double>(buffer_->bytes) / s / 1e9);
  }
  if (buffer_->sink.load() == 0x5eed) rates[0][0] += 0;  // keeps the sums observable
  double best = 0;
  for (std::vector<double>& v : rates) {
    std::sort(v.begin(), v.end());
    best = std::max(best, v[v.size() / 2]);
  }
  return best;
}

double measure_read_bandwidth_gbps(size_t bytes, int reps) { return ReadBandwidthProbe(bytes).gbps(reps); }

namespace {

// One run: thread 0 writes an odd value, thread 1 answers with the next even one, for
// ~2 ms of trips; thread 1 leaves when it reads -1. When the two do not run at once
// (another process on the other CPU, or both threads on one) each trip waits for a
// scheduler slice: thread 0 then stops at 200 ms and divides by the trips done, and the
// figure says how long an exchange takes on this machine now.
double round_trip_run_ns() {
  using Clock = std::chrono::steady_clock;
  constexpr auto kBudget = std::chrono::milliseconds(2), kGiveUp = std::chrono::milliseconds(200);
  alignas(64) std::atomic<int64_t> line{0};
  double ns = std::numeric_limits<double>::quiet_NaN();
#pragma omp parallel num_threads(2)
  {
    if (omp_get_num_threads() == 2 && omp_get_thread_num() == 1) {
      for (int64_t seen = 0;;) {
        const int64_t v = line.load(std::memory_order_acquire);
        if (v < 0) break;
        if (v % 2 == 1 && v != seen) {
          seen = v;
          int64_t expected = v;  // not over thread 0's -1 if it stopped meanwhile
          line.compare_exchange_strong(expected, v + 1, std::memory_order_acq_rel);
        }
      }
    } else if (omp_get_num_threads() == 2) {
      const auto t0 = Clock::now();
      int64_t v = 0, trips = 0;
      bool late = false;
      while (!late && Clock::now() - t0 < kBudget)
        for (int k = 0; k < 64 && !late; ++k) {
          line.store(v + 1, std::memory_order_release);
          for (uint32_t spins = 1; line.load(std::memory_order_acquire) != v + 2; ++spins)
            if (spins % 4096 == 0 && Clock::now() - t0 > kGiveUp) {
              late = true;
              break;
            }
          if (!late) ++trips, v += 2;
        }
      if (trips > 0) ns = std::chrono::duration<double, std::nano>(Clock::now() - t0).count() / static_cast<double>(trips);
      line.store(-1, std::memory_order_release);
    }
  }
  return ns;
}

}  // namespace

double core_round_trip_ns() {
  if (threads() < 2) return std::numeric_limits<double>::quiet_NaN();
  std::vector<double> runs;
  for (int r = 0; r < 3; ++r) runs.push_back(round_trip_run_ns());
  if (std::any_of(runs.begin(), runs.end(), [](double x) { return !(x > 0); })) return std::numeric_limits<double>::quiet_NaN();
  std::sort(runs.begin(), runs.end());
  return runs[1];
}

}  // namespace mlamoe::kernels
