// Test support: writes a Hugging Face checkpoint (config.json + sharded safetensors +
// index) holding the weights of a deepseek2 GGUF, in F32, BF16 or FP8 e4m3 with one
// power-of-two scale per 128×128 block — the inverse of the converter's mapping,
// written independently of it (from the GGUF tensor layout documented by llama.cpp).
#pragma once
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/files.h"
#include "format/gguf.h"
#include "format/quant.h"
#include "format/safetensors.h"
#include "model/config.h"

namespace mlamoe::test {

struct HfTensor {
  std::string name;
  std::vector<int64_t> shape;  // [rows, cols] or [n]
  std::vector<float> values;
  bool keep_bf16 = false;      // embeddings, head and router stay BF16 in FP8 releases
};

// The HF tensors of a deepseek2 GGUF (F32 tensors only).
inline std::vector<HfTensor> hf_tensors_of(const GgufFile& g) {
  ModelConfig c = ModelConfig::from_gguf(g);
  auto vals = [](const GgufTensor& t) {
    std::vector<float> v(static_cast<size_t>(t.n_elements()));
    std::memcpy(v.data(), t.data, v.size() * 4);
    return v;
  };
  std::vector<HfTensor> out;
  for (const GgufTensor& t : g.tensors()) {
    std::string n = t.name;
    std::vector<int64_t> hf_shape(t.ne.rbegin(), t.ne.rend());
    if (n == "token_embd.weight") { out.push_back({"model.embed_tokens.weight", hf_shape, vals(t), true}); continue; }
    if (n == "output.weight") { out.push_back({"lm_head.weight", hf_shape, vals(t), true}); continue; }
    if (n == "output_norm.weight") { out.push_back({"model.norm.weight", hf_shape, vals(t)}); continue; }
    // blk.L.stem.weight
    size_t dot = n.find('.', 4);
    std::string layer = n.substr(4, dot - 4), rest = n.substr(dot + 1);
    std::string p = "model.layers." + layer + ".";
    static const std::map<std::string, std::string> kDirect = {
        {"attn_norm.weight", "input_layernorm.weight"},
        {"attn_q.weight", "self_attn.q_proj.weight"},
        {"attn_q_a.weight", "self_attn.q_a_proj.weight"},
        {"attn_q_a_norm.weight", "self_attn.q_a_layernorm.weight"},
        {"attn_q_b.weight", "self_attn.q_b_proj.weight"},
        {"attn_kv_a_mqa.weight", "self_attn.kv_a_proj_with_mqa.weight"},
        {"attn_kv_a_norm.weight", "self_attn.kv_a_layernorm.weight"},
        {"attn_kv_b.weight", "self_attn.kv_b_proj.weight"},
        {"attn_output.weight", "self_attn.o_proj.weight"},
        {"ffn_norm.weight", "post_attention_layernorm.weight"},
        {"ffn_gate.weight", "mlp.gate_proj.weight"},
        {"ffn_up.weight", "mlp.up_proj.weight"},
        {"ffn_down.weight", "mlp.down_proj.weight"},
        {"ffn_gate_inp.weight", "mlp.gate.weight"},
        {"exp_probs_b.bias", "mlp.gate.e_score_correction_bias"},
        {"ffn_gate_shexp.weight", "mlp.shared_experts.gate_proj.weight"},
        {"ffn_up_shexp.weight", "mlp.shared_experts.up_proj.weight"},
        {"ffn_down_shexp.weight", "mlp.shared_experts.down_proj.weight"},
        {"nextn.enorm.weight", "enorm.weight"},  // MTP modules (V3)
        {"nextn.hnorm.weight", "hnorm.weight"},
        {"nextn.eh_proj.weight", "eh_proj.weight"},
        {"nextn.shared_head_norm.weight", "shared_head.norm.weight"},
    };
    if (auto it = kDirect.find(rest); it != kDirect.end()) {
      out.push_back({p + it->second, hf_shape, vals(t), rest == "ffn_gate_inp.weight"});
      continue;
    }
    if (rest == "ffn_gate_exps.weight" || rest == "ffn_up_exps.weight" || rest == "ffn_down_exps.weight") {
      std::string proj = rest.substr(4, rest.find("_exps") - 4) + "_proj";
      auto v = vals(t);
      const size_t per = static_cast<size_t>(t.ne[0] * t.ne[1]);
      for (int64_t e = 0; e < t.ne[2]; ++e)
        out.push_back({p + "mlp.experts." + std::to_string(e) + "." + proj + ".weight", {t.ne[1], t.ne[0]},
                       std::vector<float>(v.begin() + e * per, v.begin() + (e + 1) * per)});
      continue;
    }
    if (rest == "attn_k_b.weight") {
      // W_UK of head h is attn_k_b[h] transposed; W_UV is attn_v_b[h]; kv_b_proj stacks
      // [W_UK_h; W_UV_h] per head.
      const GgufTensor* vb = g.tensor("blk." + layer + ".attn_v_b.weight");
      const int64_t H = c.n_heads, dn = c.qk_nope_head_dim, dv = c.v_head_dim, dc = c.kv_lora_rank;
      auto kb = vals(t), vbv = vals(*vb);
      std::vector<float> kv_b(static_cast<size_t>(H * (dn + dv) * dc));
      for (int64_t h = 0; h < H; ++h) {
        for (int64_t k = 0; k < dn; ++k)
          for (int64_t ci = 0; ci < dc; ++ci) kv_b[((h * (dn + dv) + k) * dc) + ci] = kb[(h * dc + ci) * dn + k];
        for (int64_t v = 0; v < dv; ++v)
          for (int64_t ci = 0; ci < dc; ++ci) kv_b[((h * (dn + dv) + dn + v) * dc) + ci] = vbv[(h * dv + v) * dc + ci];
      }
      out.push_back({p + "self_attn.kv_b_proj.weight", {H * (dn + dv), dc}, kv_b});
      continue;
    }
    if (rest == "attn_v_b.weight") continue;  // folded into kv_b_proj above
    throw std::runtime_error("hf_tensors_of: unmapped tensor " + n);
  }
  return out;
}

inline std::string f32_bytes(const std::vector<float>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * 4);
}

// Encodes v exactly in `dtype` ("F32", "BF16" or "F8_E4M3" with block scales); sets
// *exact = false if some value is not on the grid.
inline std::vector<StTensorData> encode(const HfTensor& t, const std::string& dtype, bool* exact) {
  if (dtype == "F32" || t.shape.size() == 1) return {{t.name, "F32", t.shape, f32_bytes(t.values)}};
  if (dtype == "BF16" || t.keep_bf16) {
    std::string b(t.values.size() * 2, '\0');
    for (size_t i = 0; i < t.values.size(); ++i) {
      uint16_t h = fp32_to_bf16(t.values[i]);
      if (bf16_to_fp32(h) != t.values[i]) *exact = false;
      std::memcpy(&b[2 * i], &h, 2);
    }
    return {{t.name, "BF16", t.shape, b}};
  }
  // FP8: per 128×128 block the smallest power-of-two scale with max|w|/scale <= 448.
  static const std::map<float, uint8_t> codes = [] {
    std::map<float, uint8_t> m;
    for (int c = 0; c < 256; ++c) {
      float f = fp8_e4m3_to_fp32(static_cast<uint8_t>(c));
      if (std::isfinite(f) && !m.count(f)) m[f] = static_cast<uint8_t>(c);
    }
    return m;
  }();
  const int64_t R = t.shape[0], C = t.shape[1], br = (R + 127) / 128, bc = (C + 127) / 128;
  std::vector<float> scales(static_cast<size_t>(br * bc));
  std::string q(static_cast<size_t>(R * C), '\0');
  for (int64_t bi = 0; bi < br; ++bi)
    for (int64_t bj = 0; bj < bc; ++bj) {
      float amax = 0;
      for (int64_t r = bi * 128; r < std::min(R, bi * 128 + 128); ++r)
        for (int64_t cc = bj * 128; cc < std::min(C, bj * 128 + 128); ++cc) amax = std::max(amax, std::fabs(t.values[r * C + cc]));
      float s = amax > 0 ? std::exp2(std::ceil(std::log2(amax / 448.0f))) : 1.0f;
      scales[bi * bc + bj] = s;
      for (int64_t r = bi * 128; r < std::min(R, bi * 128 + 128); ++r)
        for (int64_t cc = bj * 128; cc < std::min(C, bj * 128 + 128); ++cc) {
          float x = t.values[r * C + cc] / s;
          auto it = codes.lower_bound(x);
          if (it == codes.end()) --it;
          if (it->first != x) *exact = false;
          q[r * C + cc] = static_cast<char>(it->second);
        }
    }
  return {{t.name, "F8_E4M3", t.shape, q}, {t.name + "_scale_inv", "F32", {br, bc}, f32_bytes(scales)}};
}

// Writes dir/config.json (copied from config_path), n_shards shards and the index.
// Returns false if a value was not exactly representable in dtype.
inline bool write_hf_checkpoint(const GgufFile& g, const std::string& config_path, const std::string& dir,
                                const std::string& dtype, int n_shards) {
  std::filesystem::create_directories(dir);
  nlohmann::json cfg = nlohmann::json::parse(read_file(config_path));
  if (dtype == "F8_E4M3")
    cfg["quantization_config"] = {{"quant_method", "fp8"}, {"fmt", "e4m3"}, {"weight_block_size", {128, 128}}};
  write_file_atomic(dir + "/config.json", cfg.dump(1));
  bool exact = true;
  std::vector<std::vector<StTensorData>> shards(static_cast<size_t>(n_shards));
  nlohmann::json weight_map = nlohmann::json::object();
  size_t i = 0;
  for (const HfTensor& t : hf_tensors_of(g)) {
    size_t s = i++ % static_cast<size_t>(n_shards);
    std::string file = "model-" + std::to_string(s + 1) + "-of-" + std::to_string(n_shards) + ".safetensors";
    for (auto& e : encode(t, dtype, &exact)) {
      weight_map[e.name] = file;
      shards[s].push_back(std::move(e));
    }
  }
  for (int s = 0; s < n_shards; ++s)
    write_safetensors(dir + "/model-" + std::to_string(s + 1) + "-of-" + std::to_string(n_shards) + ".safetensors",
                      shards[static_cast<size_t>(s)]);
  write_file_atomic(dir + "/model.safetensors.index.json", nlohmann::json{{"metadata", nlohmann::json::object()},
                                                                          {"weight_map", weight_map}}.dump(1));
  return exact;
}

}  // namespace mlamoe::test
