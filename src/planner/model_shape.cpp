#include "planner/model_shape.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/files.h"
#include "common/json_fields.h"
#include "format/gguf.h"

namespace mlamoe::planner {

std::string ModelShape::attention_name() const {
  if (attention == AttentionKind::MLA) return "MLA";
  if (kv_heads == n_heads) return "MHA";
  if (kv_heads == 1) return "MQA";
  return "GQA-" + std::to_string(kv_heads);
}

int64_t ModelShape::attention_params_per_layer() const {
  const int64_t d = d_model, H = n_heads;
  if (attention == AttentionKind::GQA)
    return d * H * head_dim + 2 * d * kv_heads * head_dim + H * head_dim * d;  // W_Q, W_K, W_V, W_O
  const int64_t qk = qk_nope_head_dim + qk_rope_head_dim;
  int64_t p = q_lora_rank > 0 ? d * q_lora_rank + q_lora_rank + q_lora_rank * H * qk  // W_DQ, norm, W_UQ+W_QR
                              : d * H * qk;                                          // W_Q
  p += d * (kv_lora_rank + qk_rope_head_dim) + kv_lora_rank;  // W_DKV + W_KR, kv norm
  p += kv_lora_rank * H * (qk_nope_head_dim + v_head_dim);    // W_UK, W_UV
  p += H * v_head_dim * d;                                    // W_O
  return p;
}

int64_t ModelShape::params_total() const {
  const int64_t d = d_model;
  const int64_t moe_layer = d * n_routed_experts + (routing_bias ? n_routed_experts : 0) +
                            (n_routed_experts + n_shared_experts) * expert_params();
  const int64_t dense_layer = 3 * d * intermediate_size;
  int64_t total = embedding_params() + head_params() + d;  // tables and the final norm
  total += n_layers * (attention_params_per_layer() + 2 * d);
  total += moe_layers() * moe_layer + (n_layers - moe_layers()) * dense_layer;
  return total;
}

int64_t ModelShape::kv_values_per_token_layer() const {
  if (attention == AttentionKind::MLA) return kv_lora_rank + qk_rope_head_dim;
  return 2 * kv_heads * head_dim;
}

int64_t ModelShape::mha_values_per_token_layer() const {
  return 2 * n_heads * (attention == AttentionKind::MLA ? v_head_dim : head_dim);
}

double ModelShape::attention_flops_per_token(double context, bool absorbed) const {
  const double H = double(n_heads), L = context;
  double per_layer;
  if (attention == AttentionKind::GQA) per_layer = 2.0 * H * (2.0 * head_dim) * L;
  else if (absorbed) per_layer = 2.0 * H * (2.0 * kv_lora_rank + qk_rope_head_dim) * L;
  else per_layer = 2.0 * H * (qk_nope_head_dim + qk_rope_head_dim + v_head_dim) * L;
  return per_layer * n_layers;
}

ModelShape ModelShape::from_config(const ModelConfig& c, const std::string& name) {
  ModelShape m;
  m.name = name.empty() ? c.name : name;
  m.vocab = c.vocab_size;
  m.d_model = c.hidden_size;
  m.n_layers = c.n_layers;
  m.n_heads = c.n_heads;
  m.attention = AttentionKind::MLA;
  m.q_lora_rank = c.q_lora_rank;
  m.kv_lora_rank = c.kv_lora_rank;
  m.qk_nope_head_dim = c.qk_nope_head_dim;
  m.qk_rope_head_dim = c.qk_rope_head_dim;
  m.v_head_dim = c.v_head_dim;
  m.intermediate_size = c.intermediate_size;
  m.n_routed_experts = c.n_routed_experts;
  m.n_shared_experts = c.n_shared_experts;
  m.experts_per_token = c.num_experts_per_tok;
  m.moe_intermediate_size = c.moe_intermediate_size;
  m.first_k_dense = c.n_routed_experts > 0 ? std::min(c.first_k_dense_replace, c.n_layers) : c.n_layers;
  m.routing_bias = c.has_routing_bias;
  m.mtp_params = c.params_mtp();
  return m;
}

ModelShape ModelShape::from_dense_json_text(const std::string& text, const std::string& where) {
  const nlohmann::json j = parse_json_object(text, where);
  auto get = [&](const char* key, int64_t def, bool required) -> int64_t {
    const nlohmann::json* it = json_field(j, key, where, required);
    if (!it) return def;
    if (!it->is_number_integer() || it->get<int64_t>() <= 0) fail(where, ": field ", key, " must be a positive integer");
    return it->get<int64_t>();
  };
  ModelShape m;
  const nlohmann::json* model_type = json_field(j, "model_type", where);
  if (model_type && !model_type->is_string()) fail(where, ": field model_type must be a string");
  m.name = model_type ? model_type->get<std::string>() : "dense";
  m.vocab = get("vocab_size", 0, true);
  m.d_model = get("hidden_size", 0, true);
  m.n_layers = get("num_hidden_layers", 0, true);
  m.n_heads = get("num_attention_heads", 0, true);
  m.attention = AttentionKind::GQA;
  m.kv_heads = get("num_key_value_heads", m.n_heads, false);
  if (m.d_model % m.n_heads) fail(where, ": hidden_size ", m.d_model, " is not divisible by num_attention_heads ", m.n_heads);
  m.head_dim = get("head_dim", m.d_model / m.n_heads, false);
  if (m.n_heads % m.kv_heads) fail(where, ": num_attention_heads ", m.n_heads, " is not divisible by num_key_value_heads ", m.kv_heads);
  m.intermediate_size = get("intermediate_size", 0, true);
  m.first_k_dense = m.n_layers;
  if (j.contains("tie_word_embeddings") && !j["tie_word_embeddings"].is_boolean())
    fail(where, ": field tie_word_embeddings must be a boolean");
  m.tied_embeddings = j.value("tie_word_embeddings", false);
  return m;
}

ModelShape ModelShape::with_standard_attention(int64_t kvh) const {
  ModelShape m = *this;
  const int64_t hd = attention == AttentionKind::MLA ? v_head_dim : head_dim;
  m.attention = AttentionKind::GQA;
  m.kv_heads = std::clamp<int64_t>(kvh, 1, n_heads);
  m.head_dim = hd;
  m.q_lora_rank = m.kv_lora_rank = m.qk_nope_head_dim = m.qk_rope_head_dim = m.v_head_dim = 0;
  m.name = name + " (" + m.attention_name() + ")";
  return m;
}

ModelShape load_model_shape(const std::string& spec, const std::string& data_dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  std::string path = spec;
  if (!fs::is_regular_file(path, ec)) {
    fs::path named = fs::path(data_dir) / "models" / (spec + (fs::path(spec).extension() == ".json" ? "" : ".json"));
    if (!fs::is_regular_file(named, ec)) {
      std::string known;
      for (auto& e : fs::directory_iterator(fs::path(data_dir) / "models", ec))
        if (e.path().extension() == ".json") known += (known.empty() ? "" : ", ") + e.path().stem().string();
      fail("model '", spec, "': no such file, and not a name under ", (fs::path(data_dir) / "models").string(),
           known.empty() ? "" : " (known: " + known + ")");
    }
    path = named.string();
  }
  const std::string stem = fs::path(path).stem().string();
  char magic[4] = {};
  {
    std::ifstream in(path, std::ios::binary);
    in.read(magic, 4);
  }
  if (!std::memcmp(magic, "GGUF", 4)) {
    auto f = GgufFile::open(path);
    ModelConfig c = ModelConfig::from_gguf(*f);
    ModelShape m = ModelShape::from_config(c, c.name.empty() ? stem : c.name);
    double bytes = 0, elements = 0;
    for (const GgufTensor& t : f->tensors()) bytes += double(t.nbytes), elements += double(t.n_elements());
    if (elements > 0) m.file_bytes_per_param = bytes / elements;
    return m;
  }
  std::string text = read_file(path);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const std::exception& e) {
    fail(path, ": neither a GGUF file nor valid JSON: ", e.what());
  }
  if (j.is_object() && j.contains("kv_lora_rank"))
    return ModelShape::from_config(ModelConfig::from_hf_json_text(text, path), stem);
  ModelShape m = ModelShape::from_dense_json_text(text, path);
  m.name = stem;
  return m;
}

}  // namespace mlamoe::planner
