// Small row-wise operations of the forward pass (the heavy ones are in src/kernels).
#pragma once
#include <cmath>
#include <cstdint>

namespace mlamoe {

// out = x / sqrt(mean(x^2) + eps) * gain  (in place allowed)
// The sum of squares runs in 8 independent double lanes: one chain of dependent adds
// took ~4 cycles per element (2048 per norm, 2 norms a layer, on the decode's serial path).
inline void rms_norm(const float* x, const float* gain, int64_t n, double eps, float* out) {
  double lane[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) lane[j] += static_cast<double>(x[i + j]) * x[i + j];
  for (; i < n; ++i) lane[0] += static_cast<double>(x[i]) * x[i];
  const double ss = ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
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
