#include "train/deepseek.h"

#include <cmath>

#include "common/error.h"

namespace mlamoe::train {

namespace F = torch::nn::functional;

// ---- rotary embedding (YaRN as in DeepSeek's reference precompute_freqs_cis) ----

static double yarn_mscale(double factor, double m) { return factor <= 1.0 ? 1.0 : 0.1 * m * std::log(factor) + 1.0; }

RopeTables make_rope_tables(const ModelConfig& c, int64_t max_positions) {
  const int64_t dim = c.qk_rope_head_dim;
  const double base = c.rope_theta;
  auto freqs = 1.0 / torch::pow(base, torch::arange(0, dim, 2, torch::kFloat64) / static_cast<double>(dim));
  double cos_sin_scale = 1.0;
  const RopeScaling& rs = c.rope_scaling;
  if (rs.yarn && rs.factor > 1.0) {
    // Dimensions that rotate fewer than beta_slow times over the original context are
    // interpolated (divided by factor); those rotating more than beta_fast are kept.
    auto correction_dim = [&](double rotations) {
      return dim * std::log(rs.original_ctx / (rotations * 2 * M_PI)) / (2 * std::log(base));
    };
    double low = std::max(std::floor(correction_dim(rs.beta_fast)), 0.0);
    double high = std::min(std::ceil(correction_dim(rs.beta_slow)), static_cast<double>(dim - 1));
    if (low == high) high += 0.001;
    auto ramp = torch::clamp((torch::arange(dim / 2, torch::kFloat64) - low) / (high - low), 0.0, 1.0);
    auto smooth = 1.0 - ramp;
    freqs = freqs / rs.factor * (1.0 - smooth) + freqs * smooth;
    // HF applies mscale/mscale_all_dim to cos and sin (1 when they are equal).
    cos_sin_scale = yarn_mscale(rs.factor, rs.mscale) / yarn_mscale(rs.factor, rs.mscale_all_dim);
  }
  auto t = torch::arange(max_positions, torch::kFloat64);
  auto angles = torch::outer(t, freqs);
  return {(torch::cos(angles) * cos_sin_scale).to(torch::kFloat32), (torch::sin(angles) * cos_sin_scale).to(torch::kFloat32)};
}

torch::Tensor apply_rotary(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
  // x: [B, T, H, d]; cos/sin: [T, d/2]
  auto pairs = x.view({x.size(0), x.size(1), x.size(2), x.size(3) / 2, 2});
  auto x0 = pairs.select(-1, 0), x1 = pairs.select(-1, 1);
  auto c = cos.view({1, cos.size(0), 1, cos.size(1)}), s = sin.view({1, sin.size(0), 1, sin.size(1)});
  return torch::stack({x0 * c - x1 * s, x0 * s + x1 * c}, -1).flatten(3);
}

// ---- building blocks ----

RMSNormImpl::RMSNormImpl(int64_t dim, double eps_) : eps(eps_) { weight = register_parameter("weight", torch::ones({dim})); }

torch::Tensor RMSNormImpl::forward(const torch::Tensor& x) {
  return x * torch::rsqrt(x.pow(2).mean(-1, true) + eps) * weight;
}

static torch::nn::Linear linear(int64_t in, int64_t out) {
  return torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(false));
}

MlpImpl::MlpImpl(int64_t dim, int64_t inter) {
  gate_proj = register_module("gate_proj", linear(dim, inter));
  up_proj = register_module("up_proj", linear(dim, inter));
  down_proj = register_module("down_proj", linear(inter, dim));
}

torch::Tensor MlpImpl::forward(const torch::Tensor& x) { return down_proj(F::silu(gate_proj(x)) * up_proj(x)); }

// ---- Multi-head Latent Attention ----

MlaImpl::MlaImpl(const ModelConfig& c) : cfg(c), softmax_scale(c.softmax_scale()) {
  const int64_t d = c.hidden_size, H = c.n_heads;
  if (c.q_lora_rank == 0) {
    q_proj = register_module("q_proj", linear(d, H * c.qk_head_dim()));
  } else {
    q_a_proj = register_module("q_a_proj", linear(d, c.q_lora_rank));
    q_a_layernorm = register_module("q_a_layernorm", RMSNorm(c.q_lora_rank, c.rms_norm_eps));
    q_b_proj = register_module("q_b_proj", linear(c.q_lora_rank, H * c.qk_head_dim()));
  }
  kv_a_proj_with_mqa = register_module("kv_a_proj_with_mqa", linear(d, c.kv_lora_rank + c.qk_rope_head_dim));
  kv_a_layernorm = register_module("kv_a_layernorm", RMSNorm(c.kv_lora_rank, c.rms_norm_eps));
  kv_b_proj = register_module("kv_b_proj", linear(c.kv_lora_rank, H * (c.qk_nope_head_dim + c.v_head_dim)));
  o_proj = register_module("o_proj", linear(H * c.v_head_dim, d));
}

torch::Tensor MlaImpl::forward(const torch::Tensor& x, int64_t start_pos, const RopeTables& rope, LatentCache* cache,
                               size_t layer) {
  const int64_t B = x.size(0), T = x.size(1), H = cfg.n_heads;
  const int64_t d_nope = cfg.qk_nope_head_dim, d_rope = cfg.qk_rope_head_dim, d_v = cfg.v_head_dim;
  const int64_t d_c = cfg.kv_lora_rank;
  if (start_pos + T > rope.cos.size(0))
    fail("position ", start_pos + T, " exceeds the model's context ", rope.cos.size(0));
  auto cos = rope.cos.narrow(0, start_pos, T), sin = rope.sin.narrow(0, start_pos, T);

  auto q = cfg.q_lora_rank == 0 ? q_proj(x) : q_b_proj(q_a_layernorm(q_a_proj(x)));
  q = q.view({B, T, H, d_nope + d_rope});
  auto q_nope = q.narrow(-1, 0, d_nope);
  auto q_rope = apply_rotary(q.narrow(-1, d_nope, d_rope), cos, sin);

  auto kv = kv_a_proj_with_mqa(x);
  auto c_kv = kv_a_layernorm(kv.narrow(-1, 0, d_c));                                         // [B, T, d_c]
  auto k_rope = apply_rotary(kv.narrow(-1, d_c, d_rope).unsqueeze(2), cos, sin).squeeze(2);  // [B, T, d_rope]

  auto w_kv_b = kv_b_proj->weight.view({H, d_nope + d_v, d_c});
  auto W_UK = w_kv_b.narrow(1, 0, d_nope);  // [H, d_nope, d_c]
  auto W_UV = w_kv_b.narrow(1, d_nope, d_v);  // [H, d_v, d_c]

  torch::Tensor out;
  if (cache) {
    // Decode path (the point of MLA): keep only c_kv and k_rope; absorb W_UK into the
    // query and W_UV into the output, attending over the latents directly.
    if (cache->c_kv.size() <= layer) cache->c_kv.resize(layer + 1), cache->k_rope.resize(layer + 1);
    auto& cc = cache->c_kv[layer];
    auto& cr = cache->k_rope[layer];
    if (cc.defined() && cc.size(1) != start_pos) fail("latent cache holds ", cc.size(1), " positions, expected ", start_pos);
    if (!cc.defined() && start_pos != 0) fail("latent cache is empty but start_pos is ", start_pos);
    cc = cc.defined() ? torch::cat({cc, c_kv}, 1) : c_kv;
    cr = cr.defined() ? torch::cat({cr, k_rope}, 1) : k_rope;
    auto q_latent = torch::einsum("bshd,hdc->bshc", {q_nope, W_UK});
    auto scores = (torch::einsum("bshc,btc->bsht", {q_latent, cc}) + torch::einsum("bshr,btr->bsht", {q_rope, cr})) *
                  softmax_scale;
    const int64_t S = cc.size(1);
    auto q_pos = torch::arange(start_pos, start_pos + T).view({T, 1});
    auto k_pos = torch::arange(0, S).view({1, S});
    auto mask = (k_pos > q_pos).view({1, T, 1, S});
    auto probs = torch::softmax(scores.masked_fill(mask, -INFINITY), -1);
    auto o_latent = torch::einsum("bsht,btc->bshc", {probs, cc});
    out = torch::einsum("bshc,hdc->bshd", {o_latent, W_UV});
  } else {
    // Training path: decompress per-head keys and values from c_kv, then attention.
    auto k_nope = torch::einsum("btc,hdc->bthd", {c_kv, W_UK});
    auto v = torch::einsum("btc,hdc->bthd", {c_kv, W_UV});
    auto scores =
        (torch::einsum("bshd,bthd->bsht", {q_nope, k_nope}) + torch::einsum("bshr,btr->bsht", {q_rope, k_rope})) *
        softmax_scale;
    auto mask = torch::ones({T, T}, torch::kBool).triu(1).view({1, T, 1, T});
    auto probs = torch::softmax(scores.masked_fill(mask, -INFINITY), -1);
    out = torch::einsum("bsht,bthd->bshd", {probs, v});
  }
  return o_proj(out.reshape({B, T, H * d_v}));
}

// ---- DeepSeekMoE ----

GateImpl::GateImpl(const ModelConfig& c) : cfg(c) {
  weight = register_parameter("weight", torch::empty({c.n_routed_experts, c.hidden_size}));
  e_score_correction_bias = register_buffer("e_score_correction_bias", torch::zeros({c.n_routed_experts}));
}

std::pair<torch::Tensor, torch::Tensor> GateImpl::forward(const torch::Tensor& x, torch::Tensor* scores_out) {
  const int64_t N = x.size(0);
  auto logits = torch::matmul(x, weight.t());
  auto scores = cfg.scoring_func == ScoringFunc::Softmax ? torch::softmax(logits, -1) : torch::sigmoid(logits);
  if (scores_out) *scores_out = scores;
  torch::Tensor indices;
  {
    torch::NoGradGuard no_grad;  // selection is not differentiable; the bias only steers it
    auto choice = scores.detach();
    if (cfg.has_routing_bias) choice = choice + e_score_correction_bias;
    if (cfg.n_group > 1) {
      auto grouped = choice.view({N, cfg.n_group, -1});
      // V3 ranks groups by the sum of their two best biased scores, V2 by the best one.
      auto group_scores =
          cfg.has_routing_bias ? std::get<0>(grouped.topk(2, -1)).sum(-1) : std::get<0>(grouped.max(-1));
      auto top_groups = std::get<1>(group_scores.topk(cfg.topk_group, -1));
      auto masked = torch::ones({N, cfg.n_group}, torch::kBool).scatter(1, top_groups, false);
      choice = grouped.masked_fill(masked.unsqueeze(-1), -INFINITY).flatten(1);
    }
    indices = std::get<1>(choice.topk(cfg.num_experts_per_tok, -1));
  }
  auto weights = scores.gather(1, indices);
  if (cfg.norm_topk_prob) weights = weights / (weights.sum(-1, true) + 1e-20);
  return {weights * cfg.routed_scaling_factor, indices};
}

MoeImpl::MoeImpl(const ModelConfig& c) : cfg(c) {
  gate = register_module("gate", Gate(c));
  experts = register_module("experts", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.n_routed_experts; ++i) experts->push_back(Mlp(c.hidden_size, c.moe_intermediate_size));
  if (c.n_shared_experts > 0)
    shared_experts = register_module("shared_experts", Mlp(c.hidden_size, c.n_shared_experts * c.moe_intermediate_size));
}

torch::Tensor MoeImpl::forward(const torch::Tensor& x_in, RoutingStats* stats) {
  auto shape = x_in.sizes().vec();
  auto x = x_in.reshape({-1, cfg.hidden_size});
  torch::Tensor scores;
  auto [weights, indices] = gate(x, &scores);
  auto counts = torch::bincount(indices.flatten(), {}, cfg.n_routed_experts);
  auto counts_cpu = counts.accessor<int64_t, 1>();
  auto y = torch::zeros_like(x);
  for (int64_t i = 0; i < cfg.n_routed_experts; ++i) {
    if (counts_cpu[i] == 0) continue;
    auto hit = (indices == i).nonzero();  // [n, 2]: token, slot
    auto tok = hit.select(1, 0), slot = hit.select(1, 1);
    auto w = weights.index({tok, slot}).unsqueeze(1);
    y = y.index_add(0, tok, experts[i]->as<Mlp>()->forward(x.index_select(0, tok)) * w);
  }
  if (!shared_experts.is_empty()) y = y + shared_experts(x);
  if (stats) {
    stats->expert_counts.push_back(counts.to(torch::kFloat32));
    if (stats->want_aux_loss) {
      // DeepSeek-V2's expert-level balance loss: sum_i f_i * P_i with f_i the fraction
      // of slots routed to i (scaled so uniform = 1) and P_i its mean normalized score.
      const double N = static_cast<double>(x.size(0));
      auto f = counts.to(torch::kFloat32) * (cfg.n_routed_experts / (cfg.num_experts_per_tok * N));
      auto p = (scores / scores.sum(-1, true)).mean(0);
      auto loss = (f * p).sum();
      stats->aux_loss = stats->aux_loss.defined() ? stats->aux_loss + loss : loss;
    }
  }
  return y.view(shape);
}

// ---- layers and model ----

DecoderLayerImpl::DecoderLayerImpl(const ModelConfig& c, int64_t layer) {
  self_attn = register_module("self_attn", Mla(c));
  if (c.is_moe_layer(layer)) moe = register_module("mlp", Moe(c));
  else dense_mlp = register_module("mlp", Mlp(c.hidden_size, c.intermediate_size));
  input_layernorm = register_module("input_layernorm", RMSNorm(c.hidden_size, c.rms_norm_eps));
  post_attention_layernorm = register_module("post_attention_layernorm", RMSNorm(c.hidden_size, c.rms_norm_eps));
}

torch::Tensor DecoderLayerImpl::forward(const torch::Tensor& x, int64_t start_pos, const RopeTables& rope,
                                        LatentCache* cache, RoutingStats* stats, size_t layer) {
  auto h = x + self_attn(input_layernorm(x), start_pos, rope, cache, layer);
  auto n = post_attention_layernorm(h);
  return h + (moe.is_empty() ? dense_mlp(n) : moe(n, stats));
}

BackboneImpl::BackboneImpl(const ModelConfig& c) {
  embed_tokens = register_module("embed_tokens", torch::nn::Embedding(c.vocab_size, c.hidden_size));
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t l = 0; l < c.n_layers; ++l) layers->push_back(DecoderLayer(c, l));
  norm = register_module("norm", RMSNorm(c.hidden_size, c.rms_norm_eps));
}

DeepSeekImpl::DeepSeekImpl(const ModelConfig& c) : cfg_(c) {
  c.validate("model config");
  model_ = register_module("model", Backbone(c));
  lm_head_ = register_module("lm_head", linear(c.hidden_size, c.vocab_size));
  rope_ = make_rope_tables(c, c.max_position_embeddings);
}

torch::Tensor DeepSeekImpl::forward(const torch::Tensor& tokens, int64_t start_pos, LatentCache* cache,
                                    RoutingStats* stats) {
  auto h = model_->embed_tokens(tokens);
  for (size_t l = 0; l < model_->layers->size(); ++l)
    h = model_->layers[l]->as<DecoderLayer>()->forward(h, start_pos, rope_, cache, stats, l);
  if (cache) cache->length = start_pos + tokens.size(1);
  return lm_head_(model_->norm(h));
}

std::vector<torch::Tensor> DeepSeekImpl::routing_biases() {
  std::vector<torch::Tensor> out;
  for (auto& layer : *model_->layers) {
    auto* l = layer->as<DecoderLayer>();
    if (!l->moe.is_empty()) out.push_back(l->moe->gate->e_score_correction_bias);
  }
  return out;
}

void DeepSeekImpl::init_weights(uint64_t seed) {
  torch::NoGradGuard no_grad;
  torch::manual_seed(seed);
  for (auto& p : named_parameters()) {
    if (p.key().find("layernorm") != std::string::npos || p.key().find("norm.weight") != std::string::npos)
      p.value().fill_(1.0);
    else
      p.value().normal_(0.0, 0.02);
  }
  for (auto& b : routing_biases()) b.zero_();
}

std::map<std::string, torch::Tensor> DeepSeekImpl::state() {
  std::map<std::string, torch::Tensor> out;
  for (auto& p : named_parameters()) out[p.key()] = p.value();
  for (auto& b : named_buffers()) {
    // The routing bias exists in the file only for models that route with it (noaux_tc).
    if (!cfg_.has_routing_bias && b.key().find("e_score_correction_bias") != std::string::npos) continue;
    out[b.key()] = b.value();
  }
  return out;
}

void DeepSeekImpl::load_state(const std::map<std::string, torch::Tensor>& tensors, const std::string& where,
                              bool allow_extra) {
  torch::NoGradGuard no_grad;
  auto mine = state();
  for (auto& [name, t] : mine) {
    auto it = tensors.find(name);
    if (it == tensors.end()) fail(where, ": missing tensor ", name);
    if (it->second.sizes() != t.sizes())
      fail(where, ": tensor ", name, " has shape ", it->second.sizes(), ", the config expects ", t.sizes());
    t.copy_(it->second.to(torch::kFloat32));
  }
  if (!allow_extra)
    for (auto& [name, t] : tensors)
      if (!mine.count(name)) fail(where, ": unexpected tensor ", name, " for this config");
}

}  // namespace mlamoe::train

namespace mlamoe::train {

void update_routing_bias(torch::Tensor& bias, const torch::Tensor& expert_counts, double gamma) {
  torch::NoGradGuard no_grad;
  bias += gamma * torch::sign(expert_counts.mean() - expert_counts);
}

torch::Tensor to_torch(const NamedTensor& t) {
  return torch::from_blob(const_cast<float*>(t.data.data()), t.shape, torch::kFloat32).clone();
}

TensorMap to_tensor_map(DeepSeek& model) {
  TensorMap out;
  for (auto& [name, t] : model->state()) {
    auto c = t.detach().contiguous().to(torch::kFloat32);
    NamedTensor n;
    n.shape = c.sizes().vec();
    n.data.assign(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
    out.emplace(name, std::move(n));
  }
  return out;
}

void load_tensor_map(DeepSeek& model, const TensorMap& tensors, const std::string& where, bool allow_extra) {
  std::map<std::string, torch::Tensor> m;
  for (auto& [name, t] : tensors) m.emplace(name, to_torch(t));
  model->load_state(m, where, allow_extra);
}

}  // namespace mlamoe::train
