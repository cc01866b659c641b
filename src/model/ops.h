// Small row-wise operations of the forward pass (the heavy ones are in src/kernels).
#pragma once
#include <cmath>
#include <cstdint>

namespace mlamoe {

// out = x / sqrt(mean(x^2) + eps) * gain  (in place allowed)
inline void rms_norm(const float* x, const float* gain, int64_t n, double eps, float* out) {
  double ss = 0.0;
  for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
  float inv = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(n) + eps));
  for (int64_t i = 0; i < n; ++i) out[i] = x[i] * inv * gain[i];
}

inline float silu(float x) { return x / (1.0f + std::exp(-x)); }

// In-place softmax over n values; returns nothing, max-subtracted for stability.
inline void softmax(float* x, int64_t n) {
  float mx = x[0];
  for (int64_t i = 1; i < n; ++i) mx = x[i] > mx ? x[i] : mx;
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - mx);
    sum += x[i];
  }
  float inv = static_cast<float>(1.0 / sum);
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

}  // namespace mlamoe
