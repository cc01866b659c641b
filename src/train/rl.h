// Sampling and GRPO pieces on the libtorch side. Include from train/*.cpp and tests only.
#pragma once
#include <random>
#include <vector>

#include "train/deepseek.h"

namespace mlamoe::train {

// n completions of one prompt, decoded together through the latent cache. Each
// completion ends with EOS if the model produced one within max_new tokens.
// temperature 0 is greedy.
std::vector<std::vector<int32_t>> sample_completions(DeepSeek& model, const std::vector<int32_t>& prompt, int64_t n,
                                                     int64_t max_new, double temperature);
// One completion for each of several prompts of equal length, decoded as one batch.
std::vector<std::vector<int32_t>> sample_batch(DeepSeek& model, const std::vector<std::vector<int32_t>>& prompts,
                                               int64_t max_new, double temperature);

// Per-token log-probabilities of each completion given the prompt: [G, L] with L the
// longest completion, and the mask of real (non-padding) positions.
std::pair<torch::Tensor, torch::Tensor> completion_logprobs(DeepSeek& model, const std::vector<int32_t>& prompt,
                                                            const std::vector<std::vector<int32_t>>& completions);
// The same for completions of different prompts of equal length (one prompt per row),
// computed as one batch.
std::pair<torch::Tensor, torch::Tensor> completion_logprobs(DeepSeek& model, const std::vector<std::vector<int32_t>>& prompts,
                                                            const std::vector<std::vector<int32_t>>& completions);

// GRPO's objective (DeepSeekMath eq. 3), negated as a loss: per token
// min(ratio * A, clip(ratio, 1-eps, 1+eps) * A) - beta * k3, averaged over each
// completion's tokens, then over the group. k3 = exp(ref - new) - (ref - new) - 1 is
// the unbiased, always non-negative estimator of KL(new || ref).
torch::Tensor grpo_loss(const torch::Tensor& new_logp, const torch::Tensor& old_logp, const torch::Tensor& ref_logp,
                        const torch::Tensor& advantages, const torch::Tensor& mask, double clip_eps, double beta);
torch::Tensor k3_kl(const torch::Tensor& new_logp, const torch::Tensor& ref_logp);

}  // namespace mlamoe::train
