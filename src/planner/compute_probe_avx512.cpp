// Built with -mavx512f (see CMakeLists.txt); called only when the CPU has it.
#include <immintrin.h>

#include "planner/compute_probe.h"

namespace mlamoe::planner::detail {

float fma_chains_avx512(int64_t iters, float seed, int* lanes_out) {
  __m512 acc[kFmaChains];
  for (int c = 0; c < kFmaChains; ++c) acc[c] = _mm512_set1_ps(seed + c);
  const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
  for (int64_t i = 0; i < iters; ++i)
    for (int c = 0; c < kFmaChains; ++c) acc[c] = _mm512_fmadd_ps(acc[c], a, b);
  __m512 s = acc[0];
  for (int c = 1; c < kFmaChains; ++c) s = _mm512_add_ps(s, acc[c]);
  alignas(64) float out[16];
  _mm512_store_ps(out, s);
  *lanes_out = 16;
  return out[0] + out[15];
}

}  // namespace mlamoe::planner::detail
