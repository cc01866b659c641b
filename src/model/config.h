// Hyperparameters of a DeepSeek-V2/V3 model, named as in the papers and HF configs.
// Read from GGUF metadata (llama.cpp's `deepseek2` keys) or from an HF config.json;
// everything else in mlamoe (engine, planner, trainer, converter) starts from here.
#pragma once
#include <cstdint>
#include <string>

namespace mlamoe {

class GgufFile;

enum class ScoringFunc { Softmax, Sigmoid };

struct RopeScaling {
  bool yarn = false;
  double factor = 1.0;
  int64_t original_ctx = 0;  // original_max_position_embeddings
  double beta_fast = 32.0;
  double beta_slow = 1.0;
  double mscale = 1.0;          // HF rope_scaling.mscale
  double mscale_all_dim = 0.0;  // HF rope_scaling.mscale_all_dim; GGUF yarn_log_multiplier = 0.1 * this
};

struct ModelConfig {
  std::string architecture = "deepseek2";
  std::string name;
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;        // d_model
  int64_t n_layers = 0;
  int64_t n_heads = 0;
  int64_t max_position_embeddings = 0;  // context length
  double rms_norm_eps = 1e-6;

  // MLA
  int64_t q_lora_rank = 0;        // 0: no query compression (V2-Lite)
  int64_t kv_lora_rank = 0;       // d_c: width of the latent c_kv
  int64_t qk_nope_head_dim = 0;
  int64_t qk_rope_head_dim = 0;   // width of the shared rotary key k_rope
  int64_t v_head_dim = 0;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;

  // FFN / DeepSeekMoE
  int64_t intermediate_size = 0;      // dense FFN of the first layers
  int64_t moe_intermediate_size = 0;  // one expert
  int64_t n_routed_experts = 0;
  int64_t n_shared_experts = 0;
  int64_t num_experts_per_tok = 0;
  int64_t n_group = 1;
  int64_t topk_group = 1;
  int64_t first_k_dense_replace = 0;
  ScoringFunc scoring_func = ScoringFunc::Softmax;
  bool norm_topk_prob = false;
  double routed_scaling_factor = 1.0;
  bool has_routing_bias = false;  // e_score_correction_bias (V3, noaux_tc)
  int64_t num_nextn_predict_layers = 0;  // MTP modules (V3), counted apart

  int64_t bos_token_id = -1;
  int64_t eos_token_id = -1;

  int64_t qk_head_dim() const { return qk_nope_head_dim + qk_rope_head_dim; }
  bool is_moe_layer(int64_t layer) const { return n_routed_experts > 0 && layer >= first_k_dense_replace; }

  // Softmax scale 1/sqrt(d_qk), times mscale^2 when YaRN stretches the context
  // (mscale = 1 + 0.1 * mscale_all_dim * ln(factor)), as DeepSeek's reference does.
  double softmax_scale() const;

  // Latent KV cache entries per token and layer: kv_lora_rank + qk_rope_head_dim.
  int64_t kv_values_per_token_layer() const { return kv_lora_rank + qk_rope_head_dim; }
  // What standard attention with the same heads would cache per token and layer:
  // 2·n_h·d_h (V2 paper Table 1; MHA applies RoPE to the whole head, so no extra k_rope).
  int64_t mha_values_per_token_layer() const { return n_heads * (qk_nope_head_dim + v_head_dim); }
  int64_t gqa_values_per_token_layer(int64_t groups) const { return groups * (qk_nope_head_dim + v_head_dim); }

  // Parameter counts computed from the shapes (no tables): embeddings and head included.
  int64_t params_total() const;    // all layers, all experts (MTP excluded)
  int64_t params_active() const;   // per token: shared + top-k routed experts only
  int64_t params_mtp() const;      // the MTP modules, counted apart

  void validate(const std::string& where) const;  // Error naming `where` and the field

  static ModelConfig from_gguf(const GgufFile& f);
  static ModelConfig from_hf_json(const std::string& path);
  static ModelConfig from_hf_json_text(const std::string& text, const std::string& where);
};

}  // namespace mlamoe
