#include "model/rope.h"

#include <algorithm>
#include <cmath>

namespace mlamoe {

std::vector<float> rope_inv_freq(const ModelConfig& c) {
  const int64_t dim = c.qk_rope_head_dim;
  const double base = c.rope_theta;
  std::vector<float> freq(static_cast<size_t>(dim / 2));
  for (int64_t i = 0; i < dim / 2; ++i)
    freq[static_cast<size_t>(i)] = static_cast<float>(1.0 / std::pow(base, static_cast<double>(2 * i) / dim));
  const RopeScaling& ys = c.rope_scaling;
  if (!ys.yarn || ys.factor <= 1.0) return freq;

  // The dimension whose wavelength makes `rotations` turns over the original context.
  auto correction_dim = [&](double rotations) {
    return dim * std::log(ys.original_ctx / (rotations * 2 * M_PI)) / (2 * std::log(base));
  };
  double low = std::max(0.0, std::floor(correction_dim(ys.beta_fast)));
  double high = std::min(static_cast<double>(dim - 1), std::ceil(correction_dim(ys.beta_slow)));
  if (low == high) high += 0.001;
  for (int64_t i = 0; i < dim / 2; ++i) {
    double ramp = std::clamp((static_cast<double>(i) - low) / (high - low), 0.0, 1.0);
    double smooth = 1.0 - ramp;  // 1: keep the original frequency (high-frequency dims)
    double f = freq[static_cast<size_t>(i)];
    freq[static_cast<size_t>(i)] = static_cast<float>(f / ys.factor * (1.0 - smooth) + f * smooth);
  }
  return freq;
}

void RopeRotation::set(int64_t pos, const std::vector<float>& inv_freq) {
  cos.resize(inv_freq.size());
  sin.resize(inv_freq.size());
  for (size_t i = 0; i < inv_freq.size(); ++i) {
    // float32 angle, as the reference computes torch.outer(t, freqs) in float32
    const float theta = static_cast<float>(pos) * inv_freq[i];
    cos[i] = std::cos(theta);
    sin[i] = std::sin(theta);
  }
}

void RopeRotation::apply(float* x) const {
  for (size_t i = 0; i < cos.size(); ++i) {
    const float x0 = x[2 * i], x1 = x[2 * i + 1];
    x[2 * i] = x0 * cos[i] - x1 * sin[i];
    x[2 * i + 1] = x0 * sin[i] + x1 * cos[i];
  }
}

}  // namespace mlamoe
