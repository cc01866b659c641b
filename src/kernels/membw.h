// Measures this machine's sustained read bandwidth (the decode roofline's denominator).
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>

namespace mlamoe::kernels {

// A buffer far larger than the last-level cache, first-touched once and then streamed
// with all threads on every call, so bandwidth can be sampled many times (between
// decode steps) without paying for the allocation again.
class ReadBandwidthProbe {
 public:
  explicit ReadBandwidthProbe(size_t bytes = size_t(1) << 30);
  ~ReadBandwidthProbe();
  // Median GB/s (1e9 bytes per second) of `reps` timed passes.
  double gbps(int reps = 5);

 private:
  struct Buffer;
  std::unique_ptr<Buffer> buffer_;
};

// One pass of the probe over [data, data + bytes): every thread (threads()) streams its
// slice with the active ISA's widest loads, with or without the stream's software
// prefetch. Returns the sum (so the reads are not optimized away).
uint64_t stream_read(const uint8_t* data, size_t bytes, bool prefetch);

// One probe of `bytes` (default 1 GiB): the median of `reps` passes after a warm-up.
double measure_read_bandwidth_gbps(size_t bytes = size_t(1) << 30, int reps = 5);

// Nanoseconds a cache line takes to go from thread 0 of a 2-thread team to thread 1 and
// back (median of 3 runs of ~2 ms), or NaN with fewer than 2 threads (threads()) or no
// trip done in 200 ms. What every barrier between decode's phases pays: on the 2-vCPU
// VMs of BENCHMARKS.md ~70-120 ns when the host gives the two vCPUs one L3 and ~340 ns
// when it places them apart (and doubles the read bandwidth); milliseconds when the two
// threads cannot run at once.
double core_round_trip_ns();

}  // namespace mlamoe::kernels
