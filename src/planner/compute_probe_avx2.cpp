// Built with -mavx2 -mfma (see CMakeLists.txt); called only when the CPU has both.
#include <immintrin.h>

#include "planner/compute_probe.h"

namespace mlamoe::planner::detail {

float fma_chains_avx2(int64_t iters, float seed, int* lanes_out) {
  __m256 acc[kFmaChains];
  for (int c = 0; c < kFmaChains; ++c) acc[c] = _mm256_set1_ps(seed + c);
  const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
  for (int64_t i = 0; i < iters; ++i)
    for (int c = 0; c < kFmaChains; ++c) acc[c] = _mm256_fmadd_ps(acc[c], a, b);
  __m256 s = acc[0];
  for (int c = 1; c < kFmaChains; ++c) s = _mm256_add_ps(s, acc[c]);
  alignas(32) float out[8];
  _mm256_store_ps(out, s);
  *lanes_out = 8;
  return out[0] + out[7];
}

}  // namespace mlamoe::planner::detail
