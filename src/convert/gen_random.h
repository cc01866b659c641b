// A random-weight model of any DeepSeek-V2/V3 shape (for tests and benchmarks),
// generated, converted and written tensor by tensor in bounded memory.
//
// Initialisation keeps activations O(1) through the network: every matrix is
// ~N(0, 1/fan_in) (fan_in = the input width of the projection), RMSNorm gains are 1,
// the embedding is ~N(0, 1), the routing bias ~N(0, 0.01^2). The normal deviates are
// Irwin–Hall sums of four uniforms (mean 0, variance 1, |x| < 3.5): cheap, and close
// enough to a Gaussian for weights nobody trains. Every row is drawn from its own
// counter-based stream keyed by (seed, tensor, row), so a seed gives the same file
// whatever the thread count.
#pragma once
#include <cstdint>
#include <string>

#include "convert/quant_plan.h"
#include "model/config.h"

namespace mlamoe {

struct GenRandomOptions {
  std::string config_path;  // HF config.json
  std::string out_path;
  QuantRecipe recipe;
  int64_t layers = -1;      // keep only the first N main layers (-1: all)
  std::string vocab_path;   // copy tokenizer.* from this GGUF
  uint64_t seed = 0;
  bool legacy_kv_b = false; // write attn_kv_b instead of attn_k_b/attn_v_b
};

// The config as it will be written (layers cut, name set).
ModelConfig gen_random_config(const GenRandomOptions& opts);
void gen_random(const GenRandomOptions& opts);

// Row `row` of tensor number `tensor` (values ~N(0,1) before scaling), as gen-random draws it.
void random_normal_row(uint64_t seed, uint64_t tensor, uint64_t row, float scale, float* out, int64_t n);

}  // namespace mlamoe
