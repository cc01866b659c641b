// Measures this machine's sustained read bandwidth (the decode roofline's denominator).
#pragma once
#include <cstddef>
namespace mlamoe::kernels {
// Streams a buffer of `bytes` (default 1 GiB) `reps` times with all threads; returns the
// median GB/s (1e9 bytes per second) of the repetitions.
double measure_read_bandwidth_gbps(size_t bytes = size_t(1) << 30, int reps = 5);
}  // namespace mlamoe::kernels
