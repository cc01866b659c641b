#include "convert/hf_convert.h"

#include <chrono>
#include <filesystem>
#include <map>
#include <set>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/files.h"
#include "common/progress.h"
#include "convert/hf_tokenizer.h"
#include "convert/metadata.h"
#include "convert/tensor_names.h"
#include "convert/tensor_stream.h"
#include "format/gguf_writer.h"
#include "format/safetensors.h"
#include "model/config.h"

namespace mlamoe {

namespace {

namespace fs = std::filesystem;

// How the float32 rows of one GGUF tensor come out of the checkpoint.
struct Source {
  enum Kind { Direct, Stacked, KB, VB } kind = Direct;
  std::vector<const StTensor*> parts;  // Stacked: one per expert
};

class Mapping {
 public:
  Mapping(const SafetensorsModel& st, const ModelConfig& c) : st_(st), c_(c) {}

  // GGUF name -> source, every source checked against the shape the config implies.
  std::map<std::string, Source> build(bool with_mtp) {
    const int64_t d = c_.hidden_size, V = c_.vocab_size;
    direct(std::string(tn::kTokenEmbd), "model.embed_tokens.weight", {V, d});
    direct(std::string(tn::kOutputNorm), "model.norm.weight", {d});
    direct(std::string(tn::kOutput), st_.find("lm_head.weight") || !tie_ ? "lm_head.weight" : "model.embed_tokens.weight",
           {V, d});
    const int64_t n_blocks = c_.n_layers + (with_mtp ? c_.num_nextn_predict_layers : 0);
    for (int64_t l = 0; l < n_blocks; ++l) layer(l, l < c_.n_layers ? c_.is_moe_layer(l) : c_.n_routed_experts > 0);
    return std::move(out_);
  }
  bool tie_ = false;

 private:
  const StTensor& need(const std::string& hf, const std::vector<int64_t>& shape) {
    const StTensor& t = st_.require(hf);
    st_.check(t, shape);
    return t;
  }
  void direct(const std::string& gguf, const std::string& hf, const std::vector<int64_t>& shape) {
    out_[gguf] = Source{Source::Direct, {&need(hf, shape)}};
  }

  void layer(int64_t l, bool moe) {
    const int64_t d = c_.hidden_size, H = c_.n_heads, d_qk = c_.qk_head_dim();
    const std::string p = "model.layers." + std::to_string(l) + ".";
    auto blk = [&](std::string_view stem) { return tn::blk(l, stem); };
    direct(blk(tn::kAttnNorm), p + "input_layernorm.weight", {d});
    if (c_.q_lora_rank > 0) {
      direct(blk(tn::kAttnQA), p + "self_attn.q_a_proj.weight", {c_.q_lora_rank, d});
      direct(blk(tn::kAttnQANorm), p + "self_attn.q_a_layernorm.weight", {c_.q_lora_rank});
      direct(blk(tn::kAttnQB), p + "self_attn.q_b_proj.weight", {H * d_qk, c_.q_lora_rank});
    } else {
      direct(blk(tn::kAttnQ), p + "self_attn.q_proj.weight", {H * d_qk, d});
    }
    direct(blk(tn::kAttnKvAMqa), p + "self_attn.kv_a_proj_with_mqa.weight", {c_.kv_lora_rank + c_.qk_rope_head_dim, d});
    direct(blk(tn::kAttnKvANorm), p + "self_attn.kv_a_layernorm.weight", {c_.kv_lora_rank});
    const StTensor& kv_b =
        need(p + "self_attn.kv_b_proj.weight", {H * (c_.qk_nope_head_dim + c_.v_head_dim), c_.kv_lora_rank});
    out_[blk(tn::kAttnKvB)] = Source{Source::Direct, {&kv_b}};
    out_[blk(tn::kAttnKB)] = Source{Source::KB, {&kv_b}};
    out_[blk(tn::kAttnVB)] = Source{Source::VB, {&kv_b}};
    direct(blk(tn::kAttnOutput), p + "self_attn.o_proj.weight", {d, H * c_.v_head_dim});
    direct(blk(tn::kFfnNorm), p + "post_attention_layernorm.weight", {d});
    if (l >= c_.n_layers) {  // MTP module extras
      direct(blk(tn::kNextnEnorm), p + "enorm.weight", {d});
      direct(blk(tn::kNextnHnorm), p + "hnorm.weight", {d});
      direct(blk(tn::kNextnEhProj), p + "eh_proj.weight", {d, 2 * d});
      direct(blk(tn::kNextnSharedHeadNorm), p + "shared_head.norm.weight", {d});
    }
    if (!moe) {
      const int64_t f = c_.intermediate_size;
      direct(blk(tn::kFfnGate), p + "mlp.gate_proj.weight", {f, d});
      direct(blk(tn::kFfnUp), p + "mlp.up_proj.weight", {f, d});
      direct(blk(tn::kFfnDown), p + "mlp.down_proj.weight", {d, f});
      return;
    }
    const int64_t E = c_.n_routed_experts, f = c_.moe_intermediate_size;
    direct(blk(tn::kFfnGateInp), p + "mlp.gate.weight", {E, d});
    if (c_.has_routing_bias) direct(tn::blk_bias(l, tn::kExpProbsB), p + "mlp.gate.e_score_correction_bias", {E});
    const std::pair<std::string_view, const char*> kExperts[] = {
        {tn::kFfnGateExps, "gate_proj"}, {tn::kFfnUpExps, "up_proj"}, {tn::kFfnDownExps, "down_proj"}};
    for (auto& [stem, proj] : kExperts) {
      Source s{Source::Stacked, {}};
      const bool down = std::string_view(proj) == "down_proj";
      for (int64_t e = 0; e < E; ++e)
        s.parts.push_back(&need(p + "mlp.experts." + std::to_string(e) + "." + proj + ".weight",
                                down ? std::vector<int64_t>{d, f} : std::vector<int64_t>{f, d}));
      out_[blk(stem)] = std::move(s);
    }
    if (c_.n_shared_experts > 0) {
      const int64_t fs = c_.n_shared_experts * f;
      direct(blk(tn::kFfnGateShexp), p + "mlp.shared_experts.gate_proj.weight", {fs, d});
      direct(blk(tn::kFfnUpShexp), p + "mlp.shared_experts.up_proj.weight", {fs, d});
      direct(blk(tn::kFfnDownShexp), p + "mlp.shared_experts.down_proj.weight", {d, fs});
    }
  }

  const SafetensorsModel& st_;
  const ModelConfig& c_;
  std::map<std::string, Source> out_;
};

// Rows [first, first + n) of the GGUF tensor `spec` (rows of spec.ne[0]) from `src`.
void read_gguf_rows(const SafetensorsModel& st, const ModelConfig& c, const tn::TensorSpec& spec, const Source& src,
                    int64_t first, int64_t n, float* out) {
  const int64_t row_len = spec.ne[0];
  const int64_t d_nope = c.qk_nope_head_dim, d_v = c.v_head_dim, d_c = c.kv_lora_rank;
  const int64_t head_rows = d_nope + d_v;  // rows of one head in kv_b_proj
  switch (src.kind) {
    case Source::Direct:
      st.read_rows(*src.parts[0], first, n, out);
      return;
    case Source::Stacked: {
      const int64_t per = spec.ne[1];  // rows of one expert
      for (int64_t done = 0; done < n;) {
        const int64_t r = first + done, e = r / per, within = r % per, take = std::min(n - done, per - within);
        st.read_rows(*src.parts[static_cast<size_t>(e)], within, take, out + done * row_len);
        done += take;
      }
      return;
    }
    case Source::VB: {  // row (h, v) of W_UV = kv_b_proj row h*(d_nope+d_v) + d_nope + v
      for (int64_t done = 0; done < n;) {
        const int64_t r = first + done, h = r / d_v, v = r % d_v, take = std::min(n - done, d_v - v);
        st.read_rows(*src.parts[0], h * head_rows + d_nope + v, take, out + done * row_len);
        done += take;
      }
      return;
    }
    case Source::KB: {  // row (h, c) of attn_k_b = column c of head h's W_UK (d_nope × d_c)
      std::vector<float> w_uk(static_cast<size_t>(d_nope * d_c));
      for (int64_t done = 0; done < n;) {
        const int64_t r = first + done, h = r / d_c, c0 = r % d_c, take = std::min(n - done, d_c - c0);
        st.read_rows(*src.parts[0], h * head_rows, d_nope, w_uk.data());
        for (int64_t j = 0; j < take; ++j)
          for (int64_t k = 0; k < d_nope; ++k) out[(done + j) * row_len + k] = w_uk[k * d_c + c0 + j];
        done += take;
      }
      return;
    }
  }
}

void check_architecture(const std::string& config_path, const nlohmann::json& j) {
  auto arch = j.find("architectures");
  if (arch == j.end()) return;  // model_type is checked by ModelConfig
  if (!arch->is_array() || arch->empty() || !(*arch)[0].is_string())
    fail(config_path, ": field architectures must be a list of names");
  std::string a = (*arch)[0].get<std::string>();
  if (a != "DeepseekV2ForCausalLM" && a != "DeepseekV3ForCausalLM")
    fail(config_path, ": unsupported architecture '", a, "' (DeepseekV2ForCausalLM or DeepseekV3ForCausalLM)");
}

}  // namespace

ConvertStats convert_hf(const ConvertOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  const std::string config_path = (fs::path(o.hf_dir) / "config.json").string();
  if (!fs::exists(config_path)) fail(o.hf_dir, ": no config.json (not a Hugging Face checkpoint directory)");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(config_path));
  } catch (const nlohmann::json::exception& e) {
    fail(config_path, ": invalid JSON: ", e.what());
  }
  if (!j.is_object()) fail(config_path, ": expected a JSON object");
  check_architecture(config_path, j);
  ModelConfig cfg = ModelConfig::from_hf_json(config_path);
  std::string name = fs::path(o.hf_dir).lexically_normal().filename().string();
  if (name.empty()) name = fs::path(o.hf_dir).lexically_normal().parent_path().filename().string();
  cfg.name = name;

  auto st = SafetensorsModel::open(o.hf_dir);
  if (auto q = j.find("quantization_config"); q != j.end() && q->is_object()) {
    auto bs = q->find("weight_block_size");
    if (bs != q->end()) {
      if (!bs->is_array() || bs->size() != 2 || !(*bs)[0].is_number_integer() || !(*bs)[1].is_number_integer())
        fail(config_path, ": quantization_config.weight_block_size must be [rows, cols]");
      st->set_block_size((*bs)[0].get<int64_t>(), (*bs)[1].get<int64_t>());
    }
  }
  if (o.no_mtp) cfg.num_nextn_predict_layers = 0;

  Mapping mapping(*st, cfg);
  mapping.tie_ = j.value("tie_word_embeddings", false);
  std::map<std::string, Source> sources = mapping.build(cfg.num_nextn_predict_layers > 0);
  std::vector<tn::TensorSpec> specs = tn::model_tensors(cfg);

  GgufWriter w(o.out_path);
  write_model_metadata(cfg, w);
  set_file_type(w, o.recipe.base, o.recipe.k_m);
  write_hf_tokenizer(o.hf_dir, cfg, j.value("model_type", std::string()), w);
  std::vector<GgmlType> types;
  ConvertStats stats;
  std::set<const StTensor*> read;
  for (auto& s : specs) {
    if (!sources.count(s.name)) fail("internal: no source for ", s.name);
    types.push_back(choose_type(o.recipe, s, cfg.n_layers));
    w.add_tensor(s.name, s.ne, types.back());
    for (const StTensor* p : sources[s.name].parts)
      if (read.insert(p).second) stats.bytes_read += p->nbytes;
  }
  w.begin();
  Progress progress("convert " + o.hf_dir, w.total_tensor_bytes());
  for (size_t i = 0; i < specs.size(); ++i) {
    const tn::TensorSpec& spec = specs[i];
    const Source& src = sources[spec.name];
    write_rows(w, types[i], spec.n_elements() / spec.ne[0], spec.ne[0],
               [&](int64_t first, int64_t n, float* out) { read_gguf_rows(*st, cfg, spec, src, first, n, out); },
               &progress);
  }
  w.finish();
  stats.bytes_written = w.total_tensor_bytes();
  stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  progress.finish();
  return stats;
}

}  // namespace mlamoe
