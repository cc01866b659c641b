// The GGUF tensors of a DeepSeek-V2/V3 model in llama.cpp's `deepseek2` layout: names,
// shapes (ggml order: ne[0] is the row length, i.e. the input dimension of a matrix)
// and the role each plays. One place for the naming, used by gen-random, convert,
// quantize and the trainer's exporter.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "model/config.h"

namespace mlamoe::tn {

inline constexpr std::string_view kTokenEmbd = "token_embd.weight";
inline constexpr std::string_view kOutputNorm = "output_norm.weight";
inline constexpr std::string_view kOutput = "output.weight";

// Per-layer tensor stems: blk.<layer>.<stem>.weight (the routing bias ends in .bias).
inline constexpr std::string_view kAttnNorm = "attn_norm";
inline constexpr std::string_view kAttnQ = "attn_q";            // W_Q (no q compression)
inline constexpr std::string_view kAttnQA = "attn_q_a";         // W_DQ: d -> q_lora
inline constexpr std::string_view kAttnQANorm = "attn_q_a_norm";
inline constexpr std::string_view kAttnQB = "attn_q_b";         // W_UQ and W_QR: q_lora -> H*(d_nope+d_rope)
inline constexpr std::string_view kAttnKvAMqa = "attn_kv_a_mqa";  // W_DKV and W_KR: d -> kv_lora + d_rope
inline constexpr std::string_view kAttnKvANorm = "attn_kv_a_norm";
inline constexpr std::string_view kAttnKB = "attn_k_b";         // W_UK per head: [d_nope, kv_lora, H]
inline constexpr std::string_view kAttnVB = "attn_v_b";         // W_UV per head: [kv_lora, d_v, H]
inline constexpr std::string_view kAttnKvB = "attn_kv_b";       // legacy: W_UK and W_UV stacked [kv_lora, H*(d_nope+d_v)]
inline constexpr std::string_view kAttnOutput = "attn_output";  // W_O
inline constexpr std::string_view kFfnNorm = "ffn_norm";
inline constexpr std::string_view kFfnGate = "ffn_gate";        // dense FFN (first layers)
inline constexpr std::string_view kFfnUp = "ffn_up";
inline constexpr std::string_view kFfnDown = "ffn_down";
inline constexpr std::string_view kFfnGateInp = "ffn_gate_inp";  // router: d -> n_routed
inline constexpr std::string_view kExpProbsB = "exp_probs_b";    // routing bias (V3), .bias
inline constexpr std::string_view kFfnGateExps = "ffn_gate_exps";  // routed experts stacked on ne[2]
inline constexpr std::string_view kFfnUpExps = "ffn_up_exps";
inline constexpr std::string_view kFfnDownExps = "ffn_down_exps";
inline constexpr std::string_view kFfnGateShexp = "ffn_gate_shexp";  // shared experts as one wider MLP
inline constexpr std::string_view kFfnUpShexp = "ffn_up_shexp";
inline constexpr std::string_view kFfnDownShexp = "ffn_down_shexp";
// MTP modules (V3), stored as extra blocks after the main layers (as llama.cpp's nextn).
inline constexpr std::string_view kNextnEhProj = "nextn.eh_proj";  // [2d, d]
inline constexpr std::string_view kNextnEnorm = "nextn.enorm";
inline constexpr std::string_view kNextnHnorm = "nextn.hnorm";
inline constexpr std::string_view kNextnSharedHeadNorm = "nextn.shared_head_norm";

std::string blk(int64_t layer, std::string_view stem);       // "blk.3.attn_norm.weight"
std::string blk_bias(int64_t layer, std::string_view stem);  // "blk.3.exp_probs_b.bias"

// What a tensor is: decides its initialisation (gen-random) and its precision in
// the quantization mixes.
enum class Role {
  Norm,        // RMSNorm gain, 1-D
  RoutingBias, // e_score_correction_bias, 1-D
  Embedding,
  Output,
  Router,
  AttnQ, AttnQA, AttnQB, AttnKvA, AttnKB, AttnVB, AttnKvB, AttnOutput,
  FfnGate, FfnUp, FfnDown,              // dense and shared experts
  ExpertGate, ExpertUp, ExpertDown,     // routed experts (stacked)
  NextnEhProj,
  Other,       // a tensor this table does not know (kept, quantized like a matrix)
};

struct TensorSpec {
  std::string name;
  std::vector<int64_t> ne;  // ggml order
  Role role;
  int64_t layer = -1;       // -1 for global tensors; >= n_layers for MTP blocks
  int64_t fan_in() const { return ne[0]; }
  int64_t n_elements() const;
  bool is_vector() const { return ne.size() == 1; }
};

struct LayoutOptions {
  bool legacy_kv_b = false;  // one attn_kv_b instead of attn_k_b + attn_v_b
  bool include_mtp = true;   // the cfg.num_nextn_predict_layers MTP blocks
};

// Role and layer of a tensor found in a file, from its name (Role::Other if unknown).
TensorSpec spec_from_name(const std::string& name, std::vector<int64_t> ne);

// Every tensor of the model, in file order.
std::vector<TensorSpec> model_tensors(const ModelConfig& cfg, const LayoutOptions& opts = {});

}  // namespace mlamoe::tn
