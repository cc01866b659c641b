// What the cost model needs to know about a model: its shapes, split into the parts
// that are stored, read and computed differently (attention, dense FFN, shared and
// routed experts, embeddings). Built from a DeepSeek ModelConfig (GGUF or HF config.json),
// from a Llama-style dense config (data/models/deepseek-llm-67b.json), or as a variant
// of a DeepSeek model with its MLA replaced by MHA, GQA or MQA.
#pragma once
#include <cstdint>
#include <string>

#include "model/config.h"

namespace mlamoe::planner {

enum class AttentionKind { MLA, GQA };  // MHA = GQA with kv_heads = n_heads; MQA = 1

struct ModelShape {
  std::string name;
  int64_t vocab = 0, d_model = 0, n_layers = 0, n_heads = 0;
  bool tied_embeddings = false;

  AttentionKind attention = AttentionKind::MLA;
  // MLA (DeepSeek-V2 §2.1): latent c_kv of kv_lora_rank plus one shared k_rope.
  int64_t q_lora_rank = 0, kv_lora_rank = 0, qk_nope_head_dim = 0, qk_rope_head_dim = 0, v_head_dim = 0;
  // GQA/MHA/MQA: kv_heads key and value heads of head_dim each.
  int64_t kv_heads = 0, head_dim = 0;

  // FFN: the first `first_k_dense` layers (all, for a dense model) use intermediate_size.
  int64_t intermediate_size = 0, first_k_dense = 0;
  int64_t n_routed_experts = 0, n_shared_experts = 0, experts_per_token = 0, moe_intermediate_size = 0;
  bool routing_bias = false;
  int64_t mtp_params = 0;  // multi-token-prediction modules, counted apart
  double file_bytes_per_param = 0;  // from a GGUF's tensors (its real quantization mix); 0: unknown

  bool is_moe() const { return n_routed_experts > 0; }
  int64_t moe_layers() const { return is_moe() ? n_layers - first_k_dense : 0; }
  std::string attention_name() const;  // "MLA", "MHA", "GQA-8", "MQA"

  // ---- parameters (counted from shapes) ----
  int64_t attention_params_per_layer() const;
  int64_t expert_params() const { return 3 * d_model * moe_intermediate_size; }  // W_gate, W_up, W_down
  int64_t routed_params() const { return moe_layers() * n_routed_experts * expert_params(); }
  int64_t embedding_params() const { return vocab * d_model; }  // the input table: looked up, not multiplied
  int64_t head_params() const { return tied_embeddings ? 0 : vocab * d_model; }
  int64_t params_total() const;
  // Everything but the routed experts: replicated per tensor-parallel group.
  int64_t params_non_routed() const { return params_total() - routed_params(); }
  int64_t params_active() const { return params_non_routed() + moe_layers() * experts_per_token * expert_params(); }

  // ---- KV cache ----
  int64_t kv_values_per_token_layer() const;  // MLA: kv_lora_rank + qk_rope_head_dim
  int64_t kv_values_per_token() const { return kv_values_per_token_layer() * n_layers; }
  // Standard multi-head attention with the same heads: 2 × n_heads × d_h per layer, where
  // d_h is the per-head width (V2 paper Table 1; MHA needs no decoupled RoPE key).
  int64_t mha_values_per_token_layer() const;
  int64_t kv_heads_for_sharding() const { return attention == AttentionKind::MLA ? 1 : kv_heads; }

  // ---- FLOPs per token (2 per multiply-add) ----
  // Weight matmuls of one token: every active parameter but the embedding lookup.
  double linear_flops_per_token() const { return 2.0 * double(params_active() - embedding_params()); }
  // Attention scores and values of one query over `context` cached tokens, all layers.
  // MLA decode runs absorbed (scores over the 576-wide latent, W_UK/W_UV folded into the
  // query and output); MLA prefill runs decompressed (per-head keys and values).
  double attention_flops_per_token(double context, bool absorbed) const;

  static ModelShape from_config(const ModelConfig& c, const std::string& name);
  // Llama-style dense config.json (model_type llama/mistral/qwen2 ... with num_key_value_heads).
  static ModelShape from_dense_json_text(const std::string& text, const std::string& where);
  // The same model with MLA replaced by standard attention of `kv_heads` heads of
  // v_head_dim (MHA: n_heads, MQA: 1): what the cache would be without MLA.
  ModelShape with_standard_attention(int64_t kv_heads) const;
};

// --model: a .gguf file, an HF config.json, or a name under <data>/models ("deepseek-v3").
ModelShape load_model_shape(const std::string& spec, const std::string& data_dir);

}  // namespace mlamoe::planner
