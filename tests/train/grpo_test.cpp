// GRPO's objective: the clipped ratio term and the k3 KL estimator.
#include <gtest/gtest.h>

#include "test_paths.h"
#include "train/rl.h"

using namespace mlamoe::train;

TEST(GrpoLoss, OnPolicyWithoutDriftIsMinusTheMeanAdvantage) {
  auto logp = torch::log(torch::tensor({{0.5f, 0.25f, 0.5f}, {0.1f, 0.2f, 0.3f}}));
  auto mask = torch::tensor({{1.f, 1.f, 0.f}, {1.f, 1.f, 1.f}});
  auto adv = torch::tensor({1.5f, -0.5f});
  auto loss = grpo_loss(logp, logp, logp, adv, mask, 0.2, 0.04);
  EXPECT_NEAR(loss.item<double>(), -(1.5 - 0.5) / 2, 1e-6);
}

TEST(GrpoLoss, GradientRaisesGoodCompletionsAndLowersBadOnes) {
  auto old_logp = torch::log(torch::tensor({{0.4f, 0.4f}, {0.4f, 0.4f}}));
  auto new_logp = old_logp.clone().requires_grad_(true);
  auto mask = torch::ones({2, 2});
  auto adv = torch::tensor({1.0f, -1.0f});
  grpo_loss(new_logp, old_logp, old_logp, adv, mask, 0.2, 0.0).backward();
  auto g = new_logp.grad();
  EXPECT_LT(g[0][0].item<float>(), 0);  // descending the loss raises log p of the good completion
  EXPECT_GT(g[1][0].item<float>(), 0);
}

TEST(GrpoLoss, ClippingStopsThePushBeyondTheTrustRegion) {
  auto old_logp = torch::log(torch::tensor({{0.2f}}));
  auto new_logp = torch::log(torch::tensor({{0.3f}})).requires_grad_(true);  // ratio 1.5 > 1.2
  grpo_loss(new_logp, old_logp, old_logp.detach(), torch::tensor({1.0f}), torch::ones({1, 1}), 0.2, 0.0).backward();
  EXPECT_EQ(new_logp.grad()[0][0].item<float>(), 0.0f);
  // A negative advantage is not clipped on that side: the ratio can still come down.
  auto n2 = torch::log(torch::tensor({{0.3f}})).requires_grad_(true);
  grpo_loss(n2, old_logp, old_logp.detach(), torch::tensor({-1.0f}), torch::ones({1, 1}), 0.2, 0.0).backward();
  EXPECT_GT(n2.grad()[0][0].item<float>(), 0.0f);
}

TEST(GrpoLoss, K3IsNonNegativeZeroAtEqualityAndUnbiased) {
  auto p = torch::log(torch::tensor({0.1f, 0.5f, 0.9f}));
  auto q = torch::log(torch::tensor({0.3f, 0.5f, 0.2f}));
  EXPECT_TRUE((k3_kl(p, q) >= 0).all().item<bool>());
  EXPECT_EQ(k3_kl(p, p).abs().max().item<float>(), 0.0f);
  // E_{x~pi}[k3] = KL(pi || ref): check on a categorical distribution by exact expectation.
  auto pi = torch::tensor({0.5, 0.3, 0.2}, torch::kFloat64), ref = torch::tensor({0.2, 0.2, 0.6}, torch::kFloat64);
  double expected_k3 = (pi * k3_kl(pi.log(), ref.log())).sum().item<double>();
  double kl = (pi * (pi.log() - ref.log())).sum().item<double>();
  EXPECT_NEAR(expected_k3, kl, 1e-12);
}

// Batched decoding through the latent cache equals decoding each prompt alone, and
// equals greedy decoding by full recomputation (no cache).
TEST(Sampling, BatchedGreedyDecodingMatchesOnePromptAtATime) {
  const std::string dir = mlamoe::test::shared_dir() + "/fixtures/v3/hf-f32";
  DeepSeek model(mlamoe::ModelConfig::from_hf_json(dir + "/config.json"));
  load_tensor_map(model, read_safetensors(dir + "/model.safetensors"), dir);
  std::vector<std::vector<int32_t>> prompts{{1, 50, 60, 70}, {1, 200, 10, 99}};
  auto batched = sample_batch(model, prompts, 6, 0.0);
  for (size_t i = 0; i < prompts.size(); ++i) {
    EXPECT_EQ(batched[i], sample_completions(model, prompts[i], 1, 6, 0.0)[0]);
    std::vector<int64_t> seq(prompts[i].begin(), prompts[i].end());
    torch::NoGradGuard no_grad;
    for (int t = 0; t < 6; ++t) {
      auto logits = model->forward(torch::tensor(seq).unsqueeze(0));
      seq.push_back(logits[0][-1].argmax().item<int64_t>());
    }
    EXPECT_EQ(std::vector<int32_t>(seq.begin() + 4, seq.end()), batched[i]);
  }
}

// GRPO scores completions of many prompts in one batch: each row must equal the
// log-probabilities computed for its prompt alone (padding never leaks into real tokens).
TEST(Sampling, BatchedCompletionLogprobsMatchOnePromptAtATime) {
  const std::string dir = mlamoe::test::shared_dir() + "/fixtures/v3/hf-f32";
  DeepSeek model(mlamoe::ModelConfig::from_hf_json(dir + "/config.json"));
  load_tensor_map(model, read_safetensors(dir + "/model.safetensors"), dir);
  torch::NoGradGuard no_grad;
  std::vector<std::vector<int32_t>> prompts{{1, 50, 60}, {1, 200, 10}, {1, 50, 60}};
  std::vector<std::vector<int32_t>> completions{{5, 6, 7, 8}, {9}, {11, 12}};
  auto [logp, mask] = completion_logprobs(model, prompts, completions);
  ASSERT_EQ(logp.size(0), 3);
  ASSERT_EQ(logp.size(1), 4);
  for (size_t i = 0; i < prompts.size(); ++i) {
    auto [alone, alone_mask] = completion_logprobs(model, prompts[i], {completions[i]});
    const int64_t n = completions[i].size();
    EXPECT_EQ(mask[i].sum().item<float>(), float(n));
    EXPECT_TRUE(torch::allclose(logp[i].narrow(0, 0, n), alone[0].narrow(0, 0, n), 1e-5, 1e-6)) << i;
  }
}
