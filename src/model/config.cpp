#include "model/config.h"

#include <cmath>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/files.h"
#include "common/json_fields.h"
#include "format/gguf.h"

namespace mlamoe {

double ModelConfig::softmax_scale() const {
  double scale = 1.0 / std::sqrt(static_cast<double>(qk_head_dim()));
  if (rope_scaling.yarn && rope_scaling.factor > 1.0) {
    double m = 1.0 + 0.1 * rope_scaling.mscale_all_dim * std::log(rope_scaling.factor);
    scale *= m * m;
  }
  return scale;
}

int64_t ModelConfig::params_total() const {
  const int64_t d = hidden_size;
  int64_t attn = 0;
  if (q_lora_rank > 0) attn += d * q_lora_rank + q_lora_rank + q_lora_rank * n_heads * qk_head_dim();
  else attn += d * n_heads * qk_head_dim();
  attn += d * (kv_lora_rank + qk_rope_head_dim) + kv_lora_rank;           // W_DKV + W_KR, kv norm
  attn += kv_lora_rank * n_heads * (qk_nope_head_dim + v_head_dim);      // W_UK, W_UV
  attn += n_heads * v_head_dim * d;                                       // W_O
  const int64_t norms = 2 * d;
  const int64_t dense_ffn = 3 * d * intermediate_size;
  const int64_t expert = 3 * d * moe_intermediate_size;
  const int64_t moe_ffn = d * n_routed_experts + (has_routing_bias ? n_routed_experts : 0) +
                          (n_routed_experts + n_shared_experts) * expert;
  int64_t total = 2 * vocab_size * d + d;  // embedding, head, final norm
  for (int64_t l = 0; l < n_layers; ++l) total += attn + norms + (is_moe_layer(l) ? moe_ffn : dense_ffn);
  return total;
}

int64_t ModelConfig::params_active() const {
  const int64_t expert = 3 * hidden_size * moe_intermediate_size;
  int64_t inactive_per_moe_layer = (n_routed_experts - num_experts_per_tok) * expert;
  int64_t moe_layers = 0;
  for (int64_t l = 0; l < n_layers; ++l) moe_layers += is_moe_layer(l);
  return params_total() - moe_layers * inactive_per_moe_layer;
}

int64_t ModelConfig::params_mtp() const {
  if (num_nextn_predict_layers <= 0) return 0;
  // One MTP module: a full MoE layer plus enorm, hnorm, the 2d->d projection and a head norm
  // (the embedding and output head are shared with the main model).
  ModelConfig one = *this;
  one.n_layers = 1;
  one.first_k_dense_replace = 0;
  one.num_nextn_predict_layers = 0;
  int64_t layer = one.params_total() - (2 * vocab_size * hidden_size + hidden_size);
  return num_nextn_predict_layers * (layer + 2 * hidden_size + 2 * hidden_size * hidden_size + hidden_size);
}

void ModelConfig::validate(const std::string& where) const {
  auto positive = [&](int64_t v, const char* field) {
    if (v <= 0) fail(where, ": ", field, " must be positive, found ", v);
  };
  positive(vocab_size, "vocab_size");
  positive(hidden_size, "hidden_size");
  positive(n_layers, "num_hidden_layers");
  positive(n_heads, "num_attention_heads");
  positive(kv_lora_rank, "kv_lora_rank");
  positive(qk_nope_head_dim, "qk_nope_head_dim");
  positive(qk_rope_head_dim, "qk_rope_head_dim");
  positive(v_head_dim, "v_head_dim");
  // Limits far above any real model (V3: d 7168, vocab 129280, 61 layers, 256 experts) that
  // keep every derived count (parameters, bytes) inside int64 and loops over layers short,
  // whatever a hostile file or config claims.
  auto at_most = [&](int64_t v, int64_t max, const char* field) {
    if (v > max) fail(where, ": ", field, " ", v, " exceeds the limit ", max);
    if (v < 0) fail(where, ": ", field, " must not be negative, found ", v);
  };
  at_most(vocab_size, 1 << 22, "vocab_size");
  at_most(hidden_size, 1 << 16, "hidden_size");
  at_most(n_layers, 1 << 10, "num_hidden_layers");
  at_most(n_heads, 1 << 10, "num_attention_heads");
  at_most(q_lora_rank, 1 << 16, "q_lora_rank");
  at_most(kv_lora_rank, 1 << 16, "kv_lora_rank");
  at_most(qk_nope_head_dim, 1 << 13, "qk_nope_head_dim");
  at_most(qk_rope_head_dim, 1 << 13, "qk_rope_head_dim");
  at_most(v_head_dim, 1 << 13, "v_head_dim");
  at_most(intermediate_size, 1 << 20, "intermediate_size");
  at_most(moe_intermediate_size, 1 << 18, "moe_intermediate_size");
  at_most(n_routed_experts, 1 << 14, "n_routed_experts");
  at_most(n_shared_experts, 1 << 8, "n_shared_experts");
  at_most(num_nextn_predict_layers, 16, "num_nextn_predict_layers");
  if (qk_rope_head_dim % 2) fail(where, ": qk_rope_head_dim must be even, found ", qk_rope_head_dim);
  if (q_lora_rank < 0) fail(where, ": q_lora_rank must not be negative");
  if (n_routed_experts > 0) {
    positive(moe_intermediate_size, "moe_intermediate_size");
    positive(num_experts_per_tok, "num_experts_per_tok");
    if (num_experts_per_tok > n_routed_experts)
      fail(where, ": num_experts_per_tok ", num_experts_per_tok, " exceeds n_routed_experts ", n_routed_experts);
    positive(n_group, "n_group");
    if (n_routed_experts % n_group) fail(where, ": n_routed_experts ", n_routed_experts, " is not divisible by n_group ", n_group);
    if (topk_group < 1 || topk_group > n_group) fail(where, ": topk_group ", topk_group, " must be in 1..n_group (", n_group, ")");
    if (topk_group * (n_routed_experts / n_group) < num_experts_per_tok)
      fail(where, ": topk_group groups hold fewer experts than num_experts_per_tok");
  }
  if (first_k_dense_replace < n_layers) {
    if (n_routed_experts <= 0) positive(intermediate_size, "intermediate_size");
  }
  if (first_k_dense_replace > 0) positive(intermediate_size, "intermediate_size");
  if (!(rms_norm_eps > 0) || !std::isfinite(rms_norm_eps)) fail(where, ": rms_norm_eps must be positive");
  if (!(rope_theta > 0) || !std::isfinite(rope_theta)) fail(where, ": rope_theta must be positive");
  if (rope_scaling.yarn && (!(rope_scaling.factor >= 1.0) || rope_scaling.original_ctx <= 0))
    fail(where, ": yarn rope scaling needs factor >= 1 and original_max_position_embeddings > 0");
}

// ---- GGUF (llama.cpp's deepseek2 keys) ----

ModelConfig ModelConfig::from_gguf(const GgufFile& f) {
  ModelConfig c;
  c.architecture = f.get_string("general.architecture");
  if (c.architecture.empty()) fail(f.path(), ": missing metadata key general.architecture");
  if (c.architecture != "deepseek2")
    fail(f.path(), ": unsupported architecture '", c.architecture, "' (mlamoe runs deepseek2: DeepSeek-V2, V2-Lite, V3, R1)");
  const std::string a = c.architecture + ".";
  c.name = f.get_string("general.name");
  c.n_layers = f.require_int(a + "block_count");
  c.hidden_size = f.require_int(a + "embedding_length");
  c.n_heads = f.require_int(a + "attention.head_count");
  c.max_position_embeddings = f.get_int(a + "context_length", 4096);
  c.rms_norm_eps = f.get_float(a + "attention.layer_norm_rms_epsilon", 1e-6);
  c.intermediate_size = f.get_int(a + "feed_forward_length", 0);
  c.q_lora_rank = f.get_int(a + "attention.q_lora_rank", 0);
  c.kv_lora_rank = f.require_int(a + "attention.kv_lora_rank");
  c.qk_rope_head_dim = f.require_int(a + "rope.dimension_count");
  // Newer files describe the absorbed (MQA-like) view in key_length/value_length and the
  // per-head view in *_mla; older files only have the per-head view.
  if (f.has(a + "attention.key_length_mla")) {
    c.qk_nope_head_dim = f.require_int(a + "attention.key_length_mla") - c.qk_rope_head_dim;
    c.v_head_dim = f.require_int(a + "attention.value_length_mla");
  } else {
    c.qk_nope_head_dim = f.require_int(a + "attention.key_length") - c.qk_rope_head_dim;
    c.v_head_dim = f.require_int(a + "attention.value_length");
  }
  c.rope_theta = f.get_float(a + "rope.freq_base", 10000.0);
  std::string scaling = f.get_string(a + "rope.scaling.type", "none");
  if (scaling == "yarn") {
    c.rope_scaling.yarn = true;
    c.rope_scaling.factor = f.get_float(a + "rope.scaling.factor", 1.0);
    c.rope_scaling.original_ctx = f.get_int(a + "rope.scaling.original_context_length", c.max_position_embeddings);
    c.rope_scaling.beta_fast = f.get_float(a + "rope.scaling.yarn_beta_fast", 32.0);
    c.rope_scaling.beta_slow = f.get_float(a + "rope.scaling.yarn_beta_slow", 1.0);
    c.rope_scaling.mscale_all_dim = f.get_float(a + "rope.scaling.yarn_log_multiplier", 0.0) / 0.1;
    c.rope_scaling.mscale = c.rope_scaling.mscale_all_dim;
  } else if (scaling != "none" && !scaling.empty()) {
    fail(f.path(), ": metadata ", a, "rope.scaling.type: unsupported '", scaling, "' (yarn or none)");
  }
  c.n_routed_experts = f.get_int(a + "expert_count", 0);
  c.n_shared_experts = f.get_int(a + "expert_shared_count", 0);
  c.num_experts_per_tok = f.get_int(a + "expert_used_count", 0);
  c.moe_intermediate_size = f.get_int(a + "expert_feed_forward_length", 0);
  c.first_k_dense_replace = f.get_int(a + "leading_dense_block_count", 0);
  c.n_group = f.get_int(a + "expert_group_count", 1);
  c.topk_group = f.get_int(a + "expert_group_used_count", 1);
  if (c.n_group <= 0) c.n_group = 1;
  if (c.topk_group <= 0) c.topk_group = c.n_group;
  c.routed_scaling_factor = f.get_float(a + "expert_weights_scale", 1.0);
  c.norm_topk_prob = f.get_bool(a + "expert_weights_norm", false);
  int64_t gating = f.get_int(a + "expert_gating_func", 1);
  if (gating != 1 && gating != 2)
    fail(f.path(), ": metadata ", a, "expert_gating_func: unsupported value ", gating, " (1 softmax, 2 sigmoid)");
  c.scoring_func = gating == 2 ? ScoringFunc::Sigmoid : ScoringFunc::Softmax;
  c.num_nextn_predict_layers = f.get_int(a + "nextn_predict_layers", 0);
  c.bos_token_id = f.get_int("tokenizer.ggml.bos_token_id", -1);
  c.eos_token_id = f.get_int("tokenizer.ggml.eos_token_id", -1);
  // Vocabulary size: metadata, else the token list, else the embedding tensor.
  c.vocab_size = f.get_int(a + "vocab_size", 0);
  if (c.vocab_size == 0) {
    if (const GgufValue* toks = f.find("tokenizer.ggml.tokens")) c.vocab_size = static_cast<int64_t>(toks->array_size());
    else if (const GgufTensor* t = f.tensor("token_embd.weight"); t && t->ne.size() == 2) c.vocab_size = t->ne[1];
  }
  c.validate(f.path());  // first: bounds n_layers for the scan below
  for (int64_t l = 0; l < c.n_layers && !c.has_routing_bias; ++l)
    c.has_routing_bias = f.tensor("blk." + std::to_string(l) + ".exp_probs_b.bias") != nullptr;
  return c;
}

// ---- Hugging Face config.json ----

ModelConfig ModelConfig::from_hf_json(const std::string& path) { return from_hf_json_text(read_file(path), path); }

ModelConfig ModelConfig::from_hf_json_text(const std::string& text, const std::string& where) {
  const nlohmann::json j = parse_json_object(text, where);
  auto get_int = [&](const char* key, int64_t def, bool required = false) -> int64_t {
    const nlohmann::json* it = json_field(j, key, where, required);
    if (!it) return def;
    if (!it->is_number_integer() && !(it->is_number_float() && std::floor(it->get<double>()) == it->get<double>() &&
                                      std::fabs(it->get<double>()) < 9.2e18))
      fail(where, ": field ", key, " must be an integer");
    return it->is_number_integer() ? it->get<int64_t>() : static_cast<int64_t>(it->get<double>());
  };
  auto get_num = [&](const nlohmann::json& o, const char* key, double def) -> double {
    const nlohmann::json* it = json_field(o, key, where);
    if (!it) return def;
    if (!it->is_number()) fail(where, ": field ", key, " must be a number");
    return it->get<double>();
  };
  auto get_str = [&](const nlohmann::json& o, const char* key, const std::string& def) -> std::string {
    const nlohmann::json* it = json_field(o, key, where);
    if (!it) return def;
    if (!it->is_string()) fail(where, ": field ", key, " must be a string");
    return it->get<std::string>();
  };
  ModelConfig c;
  std::string model_type = get_str(j, "model_type", "");
  if (!model_type.empty() && model_type != "deepseek_v2" && model_type != "deepseek_v3")
    fail(where, ": unsupported model_type '", model_type, "' (deepseek_v2 or deepseek_v3)");
  c.name = model_type;
  c.vocab_size = get_int("vocab_size", 0, true);
  c.hidden_size = get_int("hidden_size", 0, true);
  c.n_layers = get_int("num_hidden_layers", 0, true);
  c.n_heads = get_int("num_attention_heads", 0, true);
  c.max_position_embeddings = get_int("max_position_embeddings", 4096);
  c.rms_norm_eps = get_num(j, "rms_norm_eps", 1e-6);
  c.intermediate_size = get_int("intermediate_size", 0);
  c.q_lora_rank = get_int("q_lora_rank", 0);
  c.kv_lora_rank = get_int("kv_lora_rank", 0, true);
  c.qk_nope_head_dim = get_int("qk_nope_head_dim", 0, true);
  c.qk_rope_head_dim = get_int("qk_rope_head_dim", 0, true);
  c.v_head_dim = get_int("v_head_dim", 0, true);
  c.rope_theta = get_num(j, "rope_theta", 10000.0);
  if (auto rs = j.find("rope_scaling"); rs != j.end() && rs->is_object()) {
    std::string type = get_str(*rs, "type", get_str(*rs, "rope_type", ""));
    if (type == "yarn") {
      c.rope_scaling.yarn = true;
      c.rope_scaling.factor = get_num(*rs, "factor", 1.0);
      const double original_ctx = get_num(*rs, "original_max_position_embeddings", 4096);
      if (!(std::fabs(original_ctx) < 9.2e18)) fail(where, ": field original_max_position_embeddings is out of range");
      c.rope_scaling.original_ctx = static_cast<int64_t>(original_ctx);
      c.rope_scaling.beta_fast = get_num(*rs, "beta_fast", 32.0);
      c.rope_scaling.beta_slow = get_num(*rs, "beta_slow", 1.0);
      c.rope_scaling.mscale = get_num(*rs, "mscale", 1.0);
      c.rope_scaling.mscale_all_dim = get_num(*rs, "mscale_all_dim", 0.0);
    } else if (!type.empty()) {
      fail(where, ": rope_scaling.type '", type, "' is not supported (yarn)");
    }
  }
  c.moe_intermediate_size = get_int("moe_intermediate_size", 0);
  c.n_routed_experts = get_int("n_routed_experts", 0);
  c.n_shared_experts = get_int("n_shared_experts", 0);
  c.num_experts_per_tok = get_int("num_experts_per_tok", 0);
  c.n_group = get_int("n_group", 1);
  c.topk_group = get_int("topk_group", 1);
  c.first_k_dense_replace = get_int("first_k_dense_replace", 0);
  std::string scoring = get_str(j, "scoring_func", "softmax");
  if (scoring != "softmax" && scoring != "sigmoid") fail(where, ": scoring_func '", scoring, "' (softmax or sigmoid)");
  c.scoring_func = scoring == "sigmoid" ? ScoringFunc::Sigmoid : ScoringFunc::Softmax;
  if (j.contains("norm_topk_prob") && !j["norm_topk_prob"].is_boolean()) fail(where, ": field norm_topk_prob must be a boolean");
  c.norm_topk_prob = j.value("norm_topk_prob", false);
  c.routed_scaling_factor = get_num(j, "routed_scaling_factor", 1.0);
  std::string topk_method = get_str(j, "topk_method", "greedy");
  c.has_routing_bias = topk_method == "noaux_tc";
  c.num_nextn_predict_layers = get_int("num_nextn_predict_layers", 0);
  c.bos_token_id = get_int("bos_token_id", -1);
  c.eos_token_id = get_int("eos_token_id", -1);
  c.validate(where);
  return c;
}

}  // namespace mlamoe
