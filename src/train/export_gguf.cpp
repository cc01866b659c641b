// Checkpoint (HF names, F32) -> GGUF in llama.cpp's deepseek2 layout, F32, with the
// byte-level chat vocabulary. Names, shapes and metadata come from src/convert, the
// one place that defines the layout; this file only says where each tensor's values
// come from in the HF checkpoint.
#include "common/error.h"
#include "common/files.h"
#include "convert/metadata.h"
#include "convert/tensor_names.h"
#include "format/gguf_writer.h"
#include "train/chat_vocab.h"
#include "train/tensor_file.h"
#include "train/train.h"

namespace mlamoe::train {

namespace {

const NamedTensor& need(const TensorMap& m, const std::string& name, const std::string& where) {
  auto it = m.find(name);
  if (it == m.end()) fail(where, ": missing tensor ", name);
  return it->second;
}

// The values of one GGUF tensor, row-major in ggml order (ne[0] fastest).
std::vector<float> gguf_values(const tn::TensorSpec& spec, const ModelConfig& c, const TensorMap& hf,
                               const std::string& where) {
  auto get = [&](const std::string& name) -> const std::vector<float>& { return need(hf, name, where).data; };
  if (spec.layer < 0) {
    if (spec.name == tn::kTokenEmbd) return get("model.embed_tokens.weight");
    if (spec.name == tn::kOutputNorm) return get("model.norm.weight");
    if (spec.name == tn::kOutput) return get("lm_head.weight");
    fail("export: no source for tensor ", spec.name);
  }
  const std::string L = "model.layers." + std::to_string(spec.layer) + ".";
  const std::string stem = spec.name.substr(spec.name.find('.', 4) + 1, spec.name.rfind('.') - spec.name.find('.', 4) - 1);
  // HF Linear weights are [out, in] row-major: exactly ggml's {in, out}.
  static const std::pair<std::string_view, const char*> kDirect[] = {
      {tn::kAttnNorm, "input_layernorm.weight"},
      {tn::kAttnQ, "self_attn.q_proj.weight"},
      {tn::kAttnQA, "self_attn.q_a_proj.weight"},
      {tn::kAttnQANorm, "self_attn.q_a_layernorm.weight"},
      {tn::kAttnQB, "self_attn.q_b_proj.weight"},
      {tn::kAttnKvAMqa, "self_attn.kv_a_proj_with_mqa.weight"},
      {tn::kAttnKvANorm, "self_attn.kv_a_layernorm.weight"},
      {tn::kAttnKvB, "self_attn.kv_b_proj.weight"},
      {tn::kAttnOutput, "self_attn.o_proj.weight"},
      {tn::kFfnNorm, "post_attention_layernorm.weight"},
      {tn::kFfnGate, "mlp.gate_proj.weight"},
      {tn::kFfnUp, "mlp.up_proj.weight"},
      {tn::kFfnDown, "mlp.down_proj.weight"},
      {tn::kFfnGateInp, "mlp.gate.weight"},
      {tn::kExpProbsB, "mlp.gate.e_score_correction_bias"},
      {tn::kFfnGateShexp, "mlp.shared_experts.gate_proj.weight"},
      {tn::kFfnUpShexp, "mlp.shared_experts.up_proj.weight"},
      {tn::kFfnDownShexp, "mlp.shared_experts.down_proj.weight"},
  };
  for (auto& [s, hf_name] : kDirect)
    if (stem == s) return get(L + hf_name);

  const int64_t H = c.n_heads, d_nope = c.qk_nope_head_dim, d_v = c.v_head_dim, d_c = c.kv_lora_rank;
  if (stem == tn::kAttnKB || stem == tn::kAttnVB) {
    // kv_b_proj is [H * (d_nope + d_v), d_c]: per head W_UK (d_nope rows) then W_UV (d_v rows).
    // attn_k_b holds W_UK transposed per head ([H][d_c][d_nope]); attn_v_b holds W_UV ([H][d_v][d_c]).
    const auto& kv_b = get(L + "self_attn.kv_b_proj.weight");
    std::vector<float> out;
    out.reserve(spec.n_elements());
    for (int64_t h = 0; h < H; ++h) {
      const float* head = kv_b.data() + h * (d_nope + d_v) * d_c;
      if (stem == tn::kAttnKB) {
        for (int64_t ci = 0; ci < d_c; ++ci)
          for (int64_t j = 0; j < d_nope; ++j) out.push_back(head[j * d_c + ci]);
      } else {
        out.insert(out.end(), head + d_nope * d_c, head + (d_nope + d_v) * d_c);
      }
    }
    return out;
  }
  const char* proj = stem == tn::kFfnGateExps ? "gate_proj" : stem == tn::kFfnUpExps ? "up_proj"
                     : stem == tn::kFfnDownExps ? "down_proj" : nullptr;
  if (proj) {  // routed experts stacked on ne[2]
    std::vector<float> out;
    out.reserve(spec.n_elements());
    for (int64_t e = 0; e < c.n_routed_experts; ++e) {
      const auto& w = get(L + "mlp.experts." + std::to_string(e) + "." + proj + ".weight");
      out.insert(out.end(), w.begin(), w.end());
    }
    return out;
  }
  fail("export: no source for tensor ", spec.name);
}

}  // namespace

void export_gguf(const std::string& dir, const std::string& gguf_path) {
  const std::string config_path = dir + "/config.json";
  ModelConfig cfg = ModelConfig::from_hf_json(config_path);
  if (cfg.vocab_size != ChatVocab::kSize)
    fail(config_path, ": export writes the byte-level chat vocabulary of ", ChatVocab::kSize,
         " tokens; vocab_size is ", cfg.vocab_size);
  TensorMap hf = read_safetensors(dir + "/model.safetensors");
  tn::LayoutOptions layout;
  layout.include_mtp = false;
  auto specs = tn::model_tensors(cfg, layout);

  GgufWriter w(gguf_path);
  write_model_metadata(cfg, w, layout);
  set_file_type(w, GgmlType::F32);
  ChatVocab::write_gguf_metadata(w);
  std::vector<std::vector<float>> values;
  for (auto& spec : specs) {
    values.push_back(gguf_values(spec, cfg, hf, dir + "/model.safetensors"));
    if (static_cast<int64_t>(values.back().size()) != spec.n_elements())
      fail(dir, ": tensor for ", spec.name, " has ", values.back().size(), " values, the layout expects ", spec.n_elements());
    w.add_tensor(spec.name, spec.ne, GgmlType::F32);
  }
  w.begin();
  for (size_t i = 0; i < specs.size(); ++i) w.write_tensor(specs[i].name, values[i].data(), values[i].size() * 4);
  w.finish();
}

}  // namespace mlamoe::train
