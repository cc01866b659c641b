// The two halves of a DeepSeek layer, as the forward pass calls them. T is the number
// of tokens in the batch; h is T × d_model (already RMS-normed); out is T × d_model.
#pragma once
#include <cstdint>
#include <vector>

#include "model/engine.h"

namespace mlamoe {

struct AttentionContext {
  const ModelConfig& config;
  const Batch& batch;
  KvCache& kv;
  const std::vector<float>& rope_inv_freq;
  AttentionMode mode;
};

// Multi-head Latent Attention: compresses h into c_kv and k_rope, appends them to the
// latent cache, and attends over the cache (absorbed or naive).
void mla_attention(const AttentionContext& ctx, const LayerWeights& L, int64_t layer, const float* h, int64_t T,
                   float* out);

// DeepSeekMoE: shared experts on every token plus the top-k routed experts, each
// expert run once over the tokens that chose it.
void moe_ffn(const ModelConfig& c, const LayerWeights& L, const float* h, int64_t T, float* out);

// A SwiGLU MLP (dense layer, one expert, or the shared experts): out = W2(silu(W1 x) * W3 x).
void swiglu_mlp(const ExpertWeights& w, const float* x, int64_t T, float* out);

// Expert selection for T tokens: top-k expert ids and their gate weights.
void route_tokens(const ModelConfig& c, const LayerWeights& L, const float* h, int64_t T,
                  std::vector<int32_t>& expert_ids, std::vector<float>& gate_weights);

}  // namespace mlamoe
