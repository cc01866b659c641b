#include "convert/tensor_names.h"

namespace mlamoe::tn {

std::string blk(int64_t layer, std::string_view stem) {
  return "blk." + std::to_string(layer) + "." + std::string(stem) + ".weight";
}
std::string blk_bias(int64_t layer, std::string_view stem) {
  return "blk." + std::to_string(layer) + "." + std::string(stem) + ".bias";
}

int64_t TensorSpec::n_elements() const {
  int64_t n = 1;
  for (int64_t d : ne) n *= d;
  return n;
}

// One decoder block: MLA attention then a dense FFN or DeepSeekMoE.
static void add_block(std::vector<TensorSpec>& out, const ModelConfig& c, int64_t l, bool moe,
                      const LayoutOptions& opts) {
  const int64_t d = c.hidden_size, H = c.n_heads;
  const int64_t d_qk = c.qk_head_dim(), d_nope = c.qk_nope_head_dim, d_v = c.v_head_dim, d_c = c.kv_lora_rank;
  auto add = [&](std::string_view stem, std::vector<int64_t> ne, Role role) {
    out.push_back({blk(l, stem), std::move(ne), role, l});
  };
  add(kAttnNorm, {d}, Role::Norm);
  if (c.q_lora_rank > 0) {
    add(kAttnQA, {d, c.q_lora_rank}, Role::AttnQA);
    add(kAttnQANorm, {c.q_lora_rank}, Role::Norm);
    add(kAttnQB, {c.q_lora_rank, H * d_qk}, Role::AttnQB);
  } else {
    add(kAttnQ, {d, H * d_qk}, Role::AttnQ);
  }
  add(kAttnKvAMqa, {d, d_c + c.qk_rope_head_dim}, Role::AttnKvA);
  add(kAttnKvANorm, {d_c}, Role::Norm);
  if (opts.legacy_kv_b) {
    add(kAttnKvB, {d_c, H * (d_nope + d_v)}, Role::AttnKvB);
  } else {
    add(kAttnKB, {d_nope, d_c, H}, Role::AttnKB);
    add(kAttnVB, {d_c, d_v, H}, Role::AttnVB);
  }
  add(kAttnOutput, {H * d_v, d}, Role::AttnOutput);
  add(kFfnNorm, {d}, Role::Norm);
  if (!moe) {
    add(kFfnGate, {d, c.intermediate_size}, Role::FfnGate);
    add(kFfnUp, {d, c.intermediate_size}, Role::FfnUp);
    add(kFfnDown, {c.intermediate_size, d}, Role::FfnDown);
    return;
  }
  const int64_t E = c.n_routed_experts, f = c.moe_intermediate_size;
  add(kFfnGateInp, {d, E}, Role::Router);
  if (c.has_routing_bias) out.push_back({blk_bias(l, kExpProbsB), {E}, Role::RoutingBias, l});
  add(kFfnGateExps, {d, f, E}, Role::ExpertGate);
  add(kFfnUpExps, {d, f, E}, Role::ExpertUp);
  add(kFfnDownExps, {f, d, E}, Role::ExpertDown);
  if (c.n_shared_experts > 0) {
    const int64_t fs = c.n_shared_experts * f;
    add(kFfnGateShexp, {d, fs}, Role::FfnGate);
    add(kFfnUpShexp, {d, fs}, Role::FfnUp);
    add(kFfnDownShexp, {fs, d}, Role::FfnDown);
  }
}

std::vector<TensorSpec> model_tensors(const ModelConfig& c, const LayoutOptions& opts) {
  const int64_t d = c.hidden_size;
  std::vector<TensorSpec> out;
  out.push_back({std::string(kTokenEmbd), {d, c.vocab_size}, Role::Embedding, -1});
  out.push_back({std::string(kOutputNorm), {d}, Role::Norm, -1});
  out.push_back({std::string(kOutput), {d, c.vocab_size}, Role::Output, -1});
  for (int64_t l = 0; l < c.n_layers; ++l) add_block(out, c, l, c.is_moe_layer(l), opts);
  if (opts.include_mtp) {
    // An MTP module: enorm(embedding) and hnorm(hidden) concatenated, projected 2d -> d,
    // then a full MoE block and its own head norm (embedding and head are shared).
    for (int64_t i = 0; i < c.num_nextn_predict_layers; ++i) {
      const int64_t l = c.n_layers + i;
      out.push_back({blk(l, kNextnEnorm), {d}, Role::Norm, l});
      out.push_back({blk(l, kNextnHnorm), {d}, Role::Norm, l});
      out.push_back({blk(l, kNextnEhProj), {2 * d, d}, Role::NextnEhProj, l});
      add_block(out, c, l, c.n_routed_experts > 0, opts);
      out.push_back({blk(l, kNextnSharedHeadNorm), {d}, Role::Norm, l});
    }
  }
  return out;
}

TensorSpec spec_from_name(const std::string& name, std::vector<int64_t> ne) {
  TensorSpec s{name, std::move(ne), Role::Other, -1};
  if (name == kTokenEmbd) s.role = Role::Embedding;
  else if (name == kOutput) s.role = Role::Output;
  else if (name == kOutputNorm) s.role = Role::Norm;
  if (name.rfind("blk.", 0) != 0) return s;
  size_t dot = name.find('.', 4);
  if (dot == std::string::npos) return s;
  try {
    s.layer = std::stoll(name.substr(4, dot - 4));
  } catch (const std::exception&) {
    return s;
  }
  std::string stem = name.substr(dot + 1);
  if (stem.size() > 7 && stem.ends_with(".weight")) stem.resize(stem.size() - 7);
  else if (stem.size() > 5 && stem.ends_with(".bias")) stem.resize(stem.size() - 5);
  static const std::pair<std::string_view, Role> kStems[] = {
      {kAttnNorm, Role::Norm}, {kAttnQ, Role::AttnQ}, {kAttnQA, Role::AttnQA}, {kAttnQANorm, Role::Norm},
      {kAttnQB, Role::AttnQB}, {kAttnKvAMqa, Role::AttnKvA}, {kAttnKvANorm, Role::Norm}, {kAttnKB, Role::AttnKB},
      {kAttnVB, Role::AttnVB}, {kAttnKvB, Role::AttnKvB}, {kAttnOutput, Role::AttnOutput}, {kFfnNorm, Role::Norm},
      {kFfnGate, Role::FfnGate}, {kFfnUp, Role::FfnUp}, {kFfnDown, Role::FfnDown}, {kFfnGateInp, Role::Router},
      {kExpProbsB, Role::RoutingBias}, {kFfnGateExps, Role::ExpertGate}, {kFfnUpExps, Role::ExpertUp},
      {kFfnDownExps, Role::ExpertDown}, {kFfnGateShexp, Role::FfnGate}, {kFfnUpShexp, Role::FfnUp},
      {kFfnDownShexp, Role::FfnDown}, {kNextnEhProj, Role::NextnEhProj}, {kNextnEnorm, Role::Norm},
      {kNextnHnorm, Role::Norm}, {kNextnSharedHeadNorm, Role::Norm},
  };
  for (const auto& [st, role] : kStems)
    if (stem == st) s.role = role;
  return s;
}

}  // namespace mlamoe::tn
