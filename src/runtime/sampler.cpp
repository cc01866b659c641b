#include "runtime/sampler.h"

#include <algorithm>
#include <cmath>

#include "common/error.h"

namespace mlamoe {

Sampler::Sampler(SamplerParams p) : p_(p), rng_(p.seed) {
  if (!std::isfinite(p_.temperature)) fail("temperature must be a finite number");
  if (p_.top_p <= 0.f || std::isnan(p_.top_p)) fail("top_p must be in (0, 1]");
  if (p_.min_p < 0.f || p_.min_p >= 1.f || std::isnan(p_.min_p)) fail("min_p must be in [0, 1)");
  if (p_.repeat_penalty <= 0.f || std::isnan(p_.repeat_penalty)) fail("repeat_penalty must be positive");
}

int32_t Sampler::sample(const float* logits, int64_t n_vocab, const std::vector<int32_t>& history) {
  cand_.resize(static_cast<size_t>(n_vocab));
  for (int64_t i = 0; i < n_vocab; ++i) cand_[static_cast<size_t>(i)] = {logits[i], static_cast<int32_t>(i)};

  // Repetition penalty as in CTRL/llama.cpp: divide positive logits, multiply negative.
  if (p_.repeat_penalty != 1.0f && !history.empty()) {
    size_t from = history.size() > static_cast<size_t>(std::max(0, p_.repeat_last_n))
                      ? history.size() - static_cast<size_t>(std::max(0, p_.repeat_last_n)) : 0;
    for (size_t i = from; i < history.size(); ++i) {
      int32_t t = history[i];
      if (t < 0 || t >= n_vocab) continue;
      float& l = cand_[static_cast<size_t>(t)].first;
      if (l == logits[t]) l = l > 0 ? l / p_.repeat_penalty : l * p_.repeat_penalty;
    }
  }

  auto best = std::max_element(cand_.begin(), cand_.end(),
                               [](auto& a, auto& b) { return a.first < b.first || (a.first == b.first && a.second > b.second); });
  if (p_.temperature <= 0.f) return best->second;

  // Top-k: keep the k most likely (sorted descending).
  size_t k = cand_.size();
  if (p_.top_k > 0 && static_cast<size_t>(p_.top_k) < k) k = static_cast<size_t>(p_.top_k);
  std::partial_sort(cand_.begin(), cand_.begin() + static_cast<long>(k), cand_.end(),
                    [](auto& a, auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); });
  cand_.resize(k);

  // Softmax at temperature.
  const float mx = cand_[0].first;
  double sum = 0.0;
  for (auto& c : cand_) {
    c.first = static_cast<float>(std::exp((c.first - mx) / p_.temperature));
    sum += c.first;
  }
  for (auto& c : cand_) c.first = static_cast<float>(c.first / sum);

  // Min-p: drop tokens less likely than min_p × the best.
  if (p_.min_p > 0.f) {
    const float floor = p_.min_p * cand_[0].first;
    size_t keep = 1;
    while (keep < cand_.size() && cand_[keep].first >= floor) ++keep;
    cand_.resize(keep);
  }
  // Top-p: smallest prefix whose mass reaches top_p.
  if (p_.top_p < 1.f) {
    double mass = 0.0;
    size_t keep = 0;
    while (keep < cand_.size()) {
      mass += cand_[keep++].first;
      if (mass >= p_.top_p) break;
    }
    cand_.resize(keep);
  }
  double total = 0.0;
  for (auto& c : cand_) total += c.first;
  double r = std::uniform_real_distribution<double>(0.0, total)(rng_);
  for (auto& c : cand_) {
    r -= c.first;
    if (r <= 0.0) return c.second;
  }
  return cand_.back().second;
}

static double log_sum_exp(const float* logits, int64_t n, float* max_out) {
  float mx = logits[0];
  for (int64_t i = 1; i < n; ++i) mx = std::max(mx, logits[i]);
  double s = 0.0;
  for (int64_t i = 0; i < n; ++i) s += std::exp(static_cast<double>(logits[i] - mx));
  *max_out = mx;
  return std::log(s);
}

float Sampler::logprob_of(const float* logits, int64_t n_vocab, int32_t token) {
  float mx;
  double lse = log_sum_exp(logits, n_vocab, &mx);
  return static_cast<float>(logits[token] - mx - lse);
}

std::vector<TokenProb> Sampler::top_logprobs(const float* logits, int64_t n_vocab, int n) {
  float mx;
  double lse = log_sum_exp(logits, n_vocab, &mx);
  std::vector<TokenProb> all(static_cast<size_t>(n_vocab));
  for (int64_t i = 0; i < n_vocab; ++i) all[static_cast<size_t>(i)] = {static_cast<int32_t>(i), static_cast<float>(logits[i] - mx - lse)};
  size_t k = std::min<size_t>(static_cast<size_t>(std::max(0, n)), all.size());
  std::partial_sort(all.begin(), all.begin() + static_cast<long>(k), all.end(),
                    [](auto& a, auto& b) { return a.logprob > b.logprob || (a.logprob == b.logprob && a.token < b.token); });
  all.resize(k);
  return all;
}

}  // namespace mlamoe
