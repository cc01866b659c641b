// The local machine's fp32 compute peak, measured: every thread runs independent
// fused multiply-add chains in registers (no memory traffic) on the widest ISA the CPU
// has. This is the roofline's flat part for `--hw local`.
#pragma once
#include <cstdint>

namespace mlamoe::planner {

// GFLOP/s (2 flops per FMA lane) over all OpenMP threads; the best of a few runs.
double measure_fp32_fma_gflops();

// One thread's FMA chains: `iters` rounds of kFmaChains vector FMAs. Returns a value
// that depends on every chain (so the loop cannot be dropped); *lanes_out = vector width.
namespace detail {
constexpr int kFmaChains = 12;  // enough independent chains to hide FMA latency on 2 ports
float fma_chains_scalar(int64_t iters, float seed, int* lanes_out);
float fma_chains_avx2(int64_t iters, float seed, int* lanes_out);
float fma_chains_avx512(int64_t iters, float seed, int* lanes_out);
}  // namespace detail

}  // namespace mlamoe::planner
