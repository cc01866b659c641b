// Measures this machine's sustained read bandwidth (the decode roofline's denominator).
#pragma once
#include <cstddef>
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

// One probe of `bytes` (default 1 GiB): the median of `reps` passes after a warm-up.
double measure_read_bandwidth_gbps(size_t bytes = size_t(1) << 30, int reps = 5);

}  // namespace mlamoe::kernels
