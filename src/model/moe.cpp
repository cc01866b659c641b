// DeepSeekMoE (V2/V3 reports, §DeepSeekMoE): fine-grained routed experts chosen per
// token, shared experts always on. V3 adds a per-expert bias used only to *select*
// experts (auxiliary-loss-free balancing); gate weights come from the unbiased scores.
#include <algorithm>
#include <numeric>

#include "kernels/kernels.h"
#include "model/layers.h"
#include "model/ops.h"

namespace mlamoe {

void swiglu_mlp(const ExpertWeights& w, const float* x, int64_t T, float* out) { kernels::swiglu_ffn(w, x, T, out); }

void route_tokens(const ModelConfig& c, const LayerWeights& L, const float* h, int64_t T,
                  std::vector<int32_t>& expert_ids, std::vector<float>& gate_weights) {
  const int64_t E = c.n_routed_experts, k = c.num_experts_per_tok;
  const int64_t n_group = c.n_group, per_group = E / n_group;
  std::vector<float> logits(static_cast<size_t>(T * E));
  kernels::matmul(L.router, h, T, logits.data());
  expert_ids.assign(static_cast<size_t>(T * k), 0);
  gate_weights.assign(static_cast<size_t>(T * k), 0.f);
  const bool biased = !L.routing_bias.empty();

  std::vector<float> score(static_cast<size_t>(E)), choice(static_cast<size_t>(E));
  std::vector<int32_t> order(static_cast<size_t>(std::max(E, n_group)));
  std::vector<float> group_score(static_cast<size_t>(n_group));
  for (int64_t t = 0; t < T; ++t) {
    float* s = logits.data() + t * E;
    if (c.scoring_func == ScoringFunc::Softmax) {
      softmax(s, E);
    } else {
      for (int64_t e = 0; e < E; ++e) s[e] = 1.0f / (1.0f + std::exp(-s[e]));
    }
    for (int64_t e = 0; e < E; ++e) choice[static_cast<size_t>(e)] = s[e] + (biased ? L.routing_bias[static_cast<size_t>(e)] : 0.f);

    // Group-limited selection: keep the topk_group best groups. V2 ranks a group by its
    // best expert; V3 (biased) by the sum of its two best biased scores.
    if (n_group > 1) {
      for (int64_t g = 0; g < n_group; ++g) {
        float* gs = choice.data() + g * per_group;
        if (biased && per_group >= 2) {
          std::vector<float> top(gs, gs + per_group);
          std::partial_sort(top.begin(), top.begin() + 2, top.end(), std::greater<float>());
          group_score[static_cast<size_t>(g)] = top[0] + top[1];
        } else {
          group_score[static_cast<size_t>(g)] = *std::max_element(gs, gs + per_group);
        }
      }
      std::iota(order.begin(), order.begin() + n_group, 0);
      std::stable_sort(order.begin(), order.begin() + n_group,
                       [&](int32_t a, int32_t b) { return group_score[static_cast<size_t>(a)] > group_score[static_cast<size_t>(b)]; });
      for (int64_t r = c.topk_group; r < n_group; ++r) {
        int64_t g = order[static_cast<size_t>(r)];
        std::fill(choice.begin() + g * per_group, choice.begin() + (g + 1) * per_group, -INFINITY);
      }
    }

    std::iota(order.begin(), order.begin() + E, 0);
    std::partial_sort(order.begin(), order.begin() + k, order.begin() + E, [&](int32_t a, int32_t b) {
      return choice[static_cast<size_t>(a)] > choice[static_cast<size_t>(b)] ||
             (choice[static_cast<size_t>(a)] == choice[static_cast<size_t>(b)] && a < b);
    });
    double sum = 0.0;
    for (int64_t i = 0; i < k; ++i) sum += s[order[static_cast<size_t>(i)]];
    for (int64_t i = 0; i < k; ++i) {
      int32_t e = order[static_cast<size_t>(i)];
      float w = s[e];
      if (c.norm_topk_prob) w = static_cast<float>(w / sum);
      expert_ids[static_cast<size_t>(t * k + i)] = e;
      gate_weights[static_cast<size_t>(t * k + i)] = w * static_cast<float>(c.routed_scaling_factor);
    }
  }
}

void moe_ffn(const ModelConfig& c, const LayerWeights& L, const float* h, int64_t T, float* out) {
  const int64_t d = c.hidden_size, k = c.num_experts_per_tok;
  std::vector<int32_t> ids;
  std::vector<float> weights;
  route_tokens(c, L, h, T, ids, weights);

  std::fill(out, out + T * d, 0.f);
  if (!L.routed_and_shared.empty()) {
    // Every token also takes each shared expert (gate weight 1): one pass, one set of
    // barriers, and the threads balance both kinds of expert together.
    const int64_t E = c.n_routed_experts, n_shared = c.n_shared_experts, k_all = k + n_shared;
    std::vector<int32_t> all_ids(static_cast<size_t>(T * k_all));
    std::vector<float> all_weights(static_cast<size_t>(T * k_all), 1.f);
    for (int64_t t = 0; t < T; ++t) {
      std::copy_n(ids.begin() + t * k, k, all_ids.begin() + t * k_all);
      std::copy_n(weights.begin() + t * k, k, all_weights.begin() + t * k_all);
      for (int64_t j = 0; j < n_shared; ++j) all_ids[static_cast<size_t>(t * k_all + k + j)] = static_cast<int32_t>(E + j);
    }
    kernels::moe_ffn(L.routed_and_shared.data(), E + n_shared, h, T, all_ids.data(), all_weights.data(), static_cast<int>(k_all), out);
    return;
  }
  // Shared experts: every token.
  if (!L.shared.gate.empty()) swiglu_mlp(L.shared, h, T, out);

  // Routed experts: the kernel groups the batch by expert, so each selected expert's
  // weights stream from memory once per batch, not once per token.
  kernels::moe_ffn(L.experts.data(), c.n_routed_experts, h, T, ids.data(), weights.data(), static_cast<int>(k), out);
}

}  // namespace mlamoe
