// Rotary position embedding on the decoupled rope part of queries and keys, in
// DeepSeek's interleaved-pair layout: pairs (x[2i], x[2i+1]) rotate by pos·θ_i.
// With YaRN, θ_i is blended between the original and the stretched frequency
// (ramp between the correction dimensions of beta_fast and beta_slow), exactly as
// DeepSeek-V3's reference precompute_freqs_cis does.
#pragma once
#include <cstdint>
#include <vector>

#include "model/config.h"

namespace mlamoe {

std::vector<float> rope_inv_freq(const ModelConfig& c);  // one per rotary pair

// The rotation of one position, computed once for all the vectors it turns (a token's
// query heads and its shared key): cos and sin of pos·θ_i per pair.
struct RopeRotation {
  std::vector<float> cos, sin;
  void set(int64_t pos, const std::vector<float>& inv_freq);
  void apply(float* x) const;  // rotates x (rope_dim values) in place
};

}  // namespace mlamoe
