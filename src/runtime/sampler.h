// Token sampling: greedy, or temperature with top-k, top-p (nucleus) and min-p
// filtering and a repetition penalty, from a seeded generator so runs repeat exactly.
#pragma once
#include <cstdint>
#include <random>
#include <vector>

namespace mlamoe {

struct SamplerParams {
  float temperature = 0.8f;  // <= 0: greedy
  int top_k = 40;            // <= 0: off
  float top_p = 0.95f;       // >= 1: off
  float min_p = 0.05f;       // <= 0: off; drop tokens below min_p × p(best)
  float repeat_penalty = 1.0f;  // 1: off; > 1 penalizes tokens seen in the last repeat_last_n
  int repeat_last_n = 64;
  uint64_t seed = 0xdeadbeef;
};

struct TokenProb {
  int32_t token;
  float logprob;
};

class Sampler {
 public:
  explicit Sampler(SamplerParams p);
  const SamplerParams& params() const { return p_; }

  // Picks the next token from one row of logits; `history` holds earlier tokens
  // (prompt and generated) for the repetition penalty.
  int32_t sample(const float* logits, int64_t n_vocab, const std::vector<int32_t>& history);

  // Log-softmax of the raw logits: the chosen token's logprob and the top n alternatives
  // (for the API's logprobs / top_logprobs).
  static std::vector<TokenProb> top_logprobs(const float* logits, int64_t n_vocab, int n);
  static float logprob_of(const float* logits, int64_t n_vocab, int32_t token);

 private:
  SamplerParams p_;
  std::mt19937_64 rng_;
  std::vector<std::pair<float, int32_t>> cand_;  // reused: no allocation per token
};

}  // namespace mlamoe
