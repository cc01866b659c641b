// The body of the compute probe's FMA chains, once for every ISA: each of
// compute_probe.cpp (scalar), compute_probe_avx2.cpp (-mavx2 -mfma) and
// compute_probe_avx512.cpp (-mavx512f) instantiates it with its vector width, and the
// compiler emits that file's widest FMA for `acc * a + b` (GCC vector extensions).
#pragma once
#include <cstdint>

#include "planner/compute_probe.h"

namespace mlamoe::planner::detail {
namespace {  // internal linkage: each instantiation stays in the file built with its ISA flags

typedef float F32x8 __attribute__((vector_size(32)));
typedef float F32x16 __attribute__((vector_size(64)));

// Vec: float, F32x8 or F32x16.
template <typename Vec>
float fma_chains(int64_t iters, float seed, int* lanes_out) {
  constexpr int kLanes = sizeof(Vec) / sizeof(float);
  Vec acc[kFmaChains];
  for (int c = 0; c < kFmaChains; ++c) acc[c] = Vec{} + (seed + c);
  const Vec a = Vec{} + 0.999999f, b = Vec{} + 1e-7f;
  for (int64_t i = 0; i < iters; ++i)
    for (int c = 0; c < kFmaChains; ++c) acc[c] = acc[c] * a + b;
  Vec s = acc[0];
  for (int c = 1; c < kFmaChains; ++c) s += acc[c];
  *lanes_out = kLanes;
  if constexpr (kLanes == 1) return s;
  else return s[0] + s[kLanes - 1];
}

}  // namespace
}  // namespace mlamoe::planner::detail
