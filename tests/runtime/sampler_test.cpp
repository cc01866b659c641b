// The sampler: greedy picks the argmax; filters (top-k, top-p, min-p) never let an
// excluded token through; the same seed gives the same tokens; the repetition penalty
// moves mass away from recent tokens; empirical frequencies follow softmax(l / T).
#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "common/error.h"
#include "runtime/sampler.h"

using namespace mlamoe;

namespace {

std::vector<float> ramp(int n) {  // logits 0, 1, ..., n-1: token n-1 is best
  std::vector<float> l(n);
  for (int i = 0; i < n; ++i) l[i] = float(i);
  return l;
}

SamplerParams plain(float temp) {
  SamplerParams p;
  p.temperature = temp;
  p.top_k = 0;
  p.top_p = 1.0f;
  p.min_p = 0.0f;
  return p;
}

TEST(Sampler, GreedyPicksArgmax) {
  Sampler s(plain(0.0f));
  auto l = ramp(50);
  l[17] = 100.f;
  EXPECT_EQ(s.sample(l.data(), 50, {}), 17);
}

TEST(Sampler, TopKNeverReturnsExcludedTokens) {
  SamplerParams p = plain(5.0f);  // hot: without top-k every token would appear
  p.top_k = 3;
  Sampler s(p);
  auto l = ramp(20);
  for (int i = 0; i < 2000; ++i) EXPECT_GE(s.sample(l.data(), 20, {}), 17);
}

TEST(Sampler, TopPKeepsSmallestNucleus) {
  SamplerParams p = plain(1.0f);
  p.top_p = 0.5f;
  Sampler s(p);
  std::vector<float> l = {std::log(0.6f), std::log(0.3f), std::log(0.1f)};
  for (int i = 0; i < 1000; ++i) EXPECT_EQ(s.sample(l.data(), 3, {}), 0);  // 0.6 alone reaches 0.5
}

TEST(Sampler, MinPDropsUnlikelyTokens) {
  SamplerParams p = plain(1.0f);
  p.min_p = 0.2f;
  Sampler s(p);
  std::vector<float> l = {std::log(0.5f), std::log(0.4f), std::log(0.09f), std::log(0.01f)};
  for (int i = 0; i < 2000; ++i) EXPECT_LT(s.sample(l.data(), 4, {}), 2);  // 0.09 < 0.2 × 0.5
}

TEST(Sampler, SameSeedSameTokens) {
  auto l = ramp(100);
  for (auto& v : l) v *= 0.05f;
  SamplerParams p = plain(1.0f);
  p.seed = 1234;
  Sampler a(p), b(p);
  p.seed = 99;
  Sampler c(p);
  std::vector<int32_t> ta, tb, tc;
  for (int i = 0; i < 50; ++i) {
    ta.push_back(a.sample(l.data(), 100, {}));
    tb.push_back(b.sample(l.data(), 100, {}));
    tc.push_back(c.sample(l.data(), 100, {}));
  }
  EXPECT_EQ(ta, tb);
  EXPECT_NE(ta, tc);
}

TEST(Sampler, FrequenciesFollowTemperedSoftmax) {
  std::vector<float> l = {0.0f, 1.0f, 2.0f};
  const float T = 2.0f;
  Sampler s(plain(T));
  std::map<int, int> count;
  const int n = 60000;
  for (int i = 0; i < n; ++i) count[s.sample(l.data(), 3, {})]++;
  double z = 0;
  for (float v : l) z += std::exp(v / T);
  for (int t = 0; t < 3; ++t) EXPECT_NEAR(double(count[t]) / n, std::exp(l[t] / T) / z, 0.01) << t;
}

TEST(Sampler, RepetitionPenaltyDemotesRecentTokens) {
  SamplerParams p = plain(0.0f);
  p.repeat_penalty = 2.0f;
  Sampler s(p);
  std::vector<float> l = {1.0f, 1.5f, -1.0f};
  EXPECT_EQ(s.sample(l.data(), 3, {}), 1);
  EXPECT_EQ(s.sample(l.data(), 3, {1}), 0);  // 1.5 / 2 = 0.75 < 1.0
}

TEST(Sampler, LogprobsAreNormalized) {
  auto l = ramp(10);
  auto top = Sampler::top_logprobs(l.data(), 10, 3);
  ASSERT_EQ(top.size(), 3u);
  EXPECT_EQ(top[0].token, 9);
  EXPECT_EQ(top[2].token, 7);
  double mass = 0;
  for (int t = 0; t < 10; ++t) mass += std::exp(Sampler::logprob_of(l.data(), 10, t));
  EXPECT_NEAR(mass, 1.0, 1e-6);
}

TEST(Sampler, RejectsNonsenseParameters) {
  SamplerParams p;
  p.top_p = 0.0f;
  EXPECT_THROW(Sampler{p}, Error);
  p = SamplerParams{};
  p.min_p = 1.5f;
  EXPECT_THROW(Sampler{p}, Error);
  p = SamplerParams{};
  p.temperature = NAN;
  EXPECT_THROW(Sampler{p}, Error);
}

}  // namespace
