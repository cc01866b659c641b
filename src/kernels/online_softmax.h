// One step of the online (streaming) softmax the scalar attention references share:
// fold value row `v` with score `score` into the running max `m`, denominator `l` and
// unnormalized output `o`, rescaling what came before when the max moves.
// `exp` is std::exp for natural-log scores or std::exp2 for scores already in log2 units.
#pragma once
#include <cstdint>
#include <limits>

namespace mlamoe::kernels {

template <class Exp>
inline void online_softmax_add(float score, const float* v, int64_t d, float& m, float& l, float* o, Exp exp) {
  float p = 1.f;
  if (score > m) {  // a new max: everything so far is rescaled to it
    const float corr = m == -std::numeric_limits<float>::infinity() ? 0.f : exp(m - score);
    for (int64_t i = 0; i < d; ++i) o[i] *= corr;
    l *= corr;
    m = score;
  } else {
    p = exp(score - m);
  }
  l += p;
  for (int64_t i = 0; i < d; ++i) o[i] += p * v[i];
}

}  // namespace mlamoe::kernels
