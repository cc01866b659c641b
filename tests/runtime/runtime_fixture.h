// The shared reference fixtures, as the runtime tests use them.
#pragma once
#include <algorithm>
#include <cmath>
#include <fstream>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "common/parse.h"
#include "model/engine.h"
#include "runtime/paged_kv_cache.h"
#include "test_paths.h"

namespace mlamoe::test {

struct RefFixture {
  std::unique_ptr<Model> model;
  std::vector<int32_t> tokens;
  std::vector<float> logits;  // n_tokens × vocab, from DeepSeek's reference
  float scale = 0;            // largest |reference logit|
  int64_t vocab() const { return model->config().vocab_size; }
};

inline RefFixture load_ref_fixture(const std::string& name) {
  const std::string dir = shared_dir() + "/fixtures/" + name;
  RefFixture f;
  f.model = Model::load(dir + "/model.gguf");
  std::ifstream in(dir + "/tokens.txt");
  std::stringstream ss;
  ss << in.rdbuf();
  f.tokens = parse_token_list(ss.str());
  f.logits = read_f32(dir + "/logits.f32");
  for (float v : f.logits) f.scale = std::max(f.scale, std::fabs(v));
  return f;
}

// max |a - ref rows from row0| / scale
inline double rel_error(const RefFixture& f, const std::vector<float>& got, size_t row0 = 0) {
  double worst = 0;
  for (size_t i = 0; i < got.size(); ++i)
    worst = std::max(worst, double(std::fabs(got[i] - f.logits[row0 * f.vocab() + i])));
  return worst / f.scale;
}

// Sequence 0 of kv gets n positions of random latent rows in every one of L layers;
// c (L·n·dc) and r (L·n·dr) keep them, row (l·n + p), to check reads against.
inline void store_random_sequence(PagedKvCache& kv, int64_t L, int64_t n, int64_t dc, int64_t dr, unsigned seed,
                                  std::vector<float>& c, std::vector<float>& r) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd;
  c.resize(size_t(L * n * dc));
  r.resize(size_t(L * n * dr));
  for (auto& v : c) v = nd(rng);
  for (auto& v : r) v = nd(rng);
  kv.reserve(0, n);
  for (int64_t p = 0; p < n; ++p)
    for (int64_t l = 0; l < L; ++l) kv.store(0, l, p, &c[size_t((l * n + p) * dc)], &r[size_t((l * n + p) * dr)]);
  kv.set_length(0, n);
}

inline std::shared_ptr<PagedKvCache> paged_for(const Model& m, PagedKvOptions o) {
  const ModelConfig& c = m.config();
  return std::make_shared<PagedKvCache>(c.n_layers, c.kv_lora_rank, c.qk_rope_head_dim, std::move(o));
}

// Logits of the whole sequence run token by token (decode) or at once.
inline std::vector<float> run_logits(Engine& e, const std::vector<int32_t>& tokens, bool stepwise, int32_t seq = 0) {
  std::vector<float> out;
  if (stepwise) {
    for (size_t i = 0; i < tokens.size(); ++i) {
      Batch b;
      b.add(tokens[i], int32_t(i), seq);
      auto row = e.forward(b);
      out.insert(out.end(), row.begin(), row.end());
    }
  } else {
    Batch b;
    for (size_t i = 0; i < tokens.size(); ++i) b.add(tokens[i], int32_t(i), seq);
    out = e.forward(b);
  }
  return out;
}

}  // namespace mlamoe::test
