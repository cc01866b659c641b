#include "convert/metadata.h"

#include "common/error.h"

namespace mlamoe {

static uint32_t u32(int64_t v) { return static_cast<uint32_t>(v); }

void write_model_metadata(const ModelConfig& c, GgufWriter& w, const tn::LayoutOptions& layout) {
  const std::string a = c.architecture + ".";
  w.set_string("general.architecture", c.architecture);
  if (!c.name.empty()) w.set_string("general.name", c.name);
  w.set_u32(a + "block_count", u32(c.n_layers));
  w.set_u32(a + "context_length", u32(c.max_position_embeddings));
  w.set_u32(a + "embedding_length", u32(c.hidden_size));
  if (c.intermediate_size > 0) w.set_u32(a + "feed_forward_length", u32(c.intermediate_size));
  w.set_u32(a + "attention.head_count", u32(c.n_heads));
  w.set_f32(a + "rope.freq_base", static_cast<float>(c.rope_theta));
  w.set_f32(a + "attention.layer_norm_rms_epsilon", static_cast<float>(c.rms_norm_eps));
  w.set_u32(a + "leading_dense_block_count", u32(c.first_k_dense_replace));
  w.set_u32(a + "vocab_size", u32(c.vocab_size));
  if (c.q_lora_rank > 0) w.set_u32(a + "attention.q_lora_rank", u32(c.q_lora_rank));
  w.set_u32(a + "attention.kv_lora_rank", u32(c.kv_lora_rank));
  w.set_u32(a + "rope.dimension_count", u32(c.qk_rope_head_dim));
  if (layout.legacy_kv_b) {
    w.set_u32(a + "attention.head_count_kv", u32(c.n_heads));
    w.set_u32(a + "attention.key_length", u32(c.qk_head_dim()));
    w.set_u32(a + "attention.value_length", u32(c.v_head_dim));
  } else {
    w.set_u32(a + "attention.head_count_kv", 1);
    w.set_u32(a + "attention.key_length", u32(c.kv_lora_rank + c.qk_rope_head_dim));
    w.set_u32(a + "attention.value_length", u32(c.kv_lora_rank));
    w.set_u32(a + "attention.key_length_mla", u32(c.qk_head_dim()));
    w.set_u32(a + "attention.value_length_mla", u32(c.v_head_dim));
  }
  if (c.n_routed_experts > 0) {
    w.set_u32(a + "expert_count", u32(c.n_routed_experts));
    w.set_u32(a + "expert_shared_count", u32(c.n_shared_experts));
    w.set_u32(a + "expert_used_count", u32(c.num_experts_per_tok));
    w.set_u32(a + "expert_feed_forward_length", u32(c.moe_intermediate_size));
    w.set_f32(a + "expert_weights_scale", static_cast<float>(c.routed_scaling_factor));
    w.set_bool(a + "expert_weights_norm", c.norm_topk_prob);
    w.set_u32(a + "expert_gating_func", c.scoring_func == ScoringFunc::Sigmoid ? 2 : 1);
    w.set_u32(a + "expert_group_count", u32(c.n_group));
    w.set_u32(a + "expert_group_used_count", u32(c.topk_group));
  }
  if (c.rope_scaling.yarn) {
    const RopeScaling& r = c.rope_scaling;
    w.set_string(a + "rope.scaling.type", "yarn");
    w.set_f32(a + "rope.scaling.factor", static_cast<float>(r.factor));
    w.set_u32(a + "rope.scaling.original_context_length", u32(r.original_ctx));
    // llama.cpp folds DeepSeek's mscale_all_dim into 0.1 * ln-multiplier form.
    w.set_f32(a + "rope.scaling.yarn_log_multiplier", static_cast<float>(0.1 * r.mscale_all_dim));
    w.set_f32(a + "rope.scaling.yarn_beta_fast", static_cast<float>(r.beta_fast));
    w.set_f32(a + "rope.scaling.yarn_beta_slow", static_cast<float>(r.beta_slow));
  }
  if (c.num_nextn_predict_layers > 0) w.set_u32(a + "nextn_predict_layers", u32(c.num_nextn_predict_layers));
  if (c.bos_token_id >= 0) w.set_u32("tokenizer.ggml.bos_token_id", u32(c.bos_token_id));
  if (c.eos_token_id >= 0) w.set_u32("tokenizer.ggml.eos_token_id", u32(c.eos_token_id));
}

void copy_tokenizer_metadata(const GgufFile& vocab, const ModelConfig& cfg, GgufWriter& w) {
  const GgufValue* tokens = vocab.find("tokenizer.ggml.tokens");
  if (!tokens || !tokens->is_array()) fail(vocab.path(), ": no tokenizer.ggml.tokens (not a vocabulary file)");
  if (static_cast<int64_t>(tokens->array_size()) != cfg.vocab_size)
    fail(vocab.path(), ": vocabulary has ", tokens->array_size(), " tokens but the model's vocab_size is ",
         cfg.vocab_size);
  for (const auto& [key, value] : vocab.metadata())
    if (key.rfind("tokenizer.", 0) == 0) w.set_value(key, value);
}

void set_file_type(GgufWriter& w, GgmlType type, bool mix) {
  uint32_t ft = 0;
  if (mix) {
    ft = type == GgmlType::Q5_K ? 17 : 15;  // LLAMA_FTYPE_MOSTLY_Q5_K_M, _Q4_K_M
  } else {
    switch (type) {
      case GgmlType::F32: ft = 0; break;
      case GgmlType::F16: ft = 1; break;
      case GgmlType::Q4_0: ft = 2; break;
      case GgmlType::Q8_0: ft = 7; break;
      case GgmlType::Q4_K: ft = 14; break;  // Q4_K_S: (almost) all q4_K
      case GgmlType::Q5_K: ft = 16; break;  // Q5_K_S
      case GgmlType::Q6_K: ft = 18; break;
      case GgmlType::BF16: ft = 32; break;
      default: fail("no GGUF file type for ", type_name(type));
    }
  }
  w.set_u32("general.file_type", ft);
}

}  // namespace mlamoe
