#include "planner/compute_probe.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <chrono>

#include "planner/fma_chains.h"

namespace mlamoe::planner {

namespace detail {
float fma_chains_scalar(int64_t iters, float seed, int* lanes_out) { return fma_chains<float>(iters, seed, lanes_out); }
}  // namespace detail

double measure_fp32_fma_gflops() {
  using namespace detail;
  auto chains = fma_chains_scalar;
  if (__builtin_cpu_supports("avx512f")) chains = fma_chains_avx512;
  else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) chains = fma_chains_avx2;
  const int64_t iters = 4'000'000;
  double best = 0;
  for (int run = 0; run < 3; ++run) {
    std::atomic<double> flops{0};
    std::atomic<float> sink{0};
    auto t0 = std::chrono::steady_clock::now();
#pragma omp parallel
    {
      int lanes = 1;
      float s = chains(iters, 1.0f + omp_get_thread_num(), &lanes);
      double f = 2.0 * double(iters) * kFmaChains * lanes;
      double cur = flops.load();
      while (!flops.compare_exchange_weak(cur, cur + f)) {
      }
      float cs = sink.load();
      while (!sink.compare_exchange_weak(cs, cs + s)) {
      }
    }
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (sink.load() == 12345.678f) best += 1e-30;  // keeps the result observable
    best = std::max(best, flops.load() / secs / 1e9);
  }
  return best;
}

}  // namespace mlamoe::planner
