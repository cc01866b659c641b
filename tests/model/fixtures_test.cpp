// The forward pass against DeepSeek's own reference implementation: every shared
// fixture (V2-Lite, V2, legacy attn_kv_b, V3) must match the reference logits at every
// position within 1e-4 of the largest reference logit, in both attention paths, in one
// pass, token by token through the KV cache, and with several sequences in one batch.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/error.h"
#include "common/parse.h"
#include "model/engine.h"
#include "test_paths.h"

using namespace mlamoe;

namespace {

struct Fixture {
  std::unique_ptr<Model> model;
  std::vector<int32_t> tokens;
  std::vector<float> logits;  // n_tokens × vocab
  float scale = 0;            // largest |reference logit|
};

Fixture load_fixture(const std::string& name) {
  const std::string dir = test::shared_dir() + "/fixtures/" + name;
  Fixture f;
  f.model = Model::load(dir + "/model.gguf");
  std::ifstream in(dir + "/tokens.txt");
  std::stringstream ss;
  ss << in.rdbuf();
  f.tokens = parse_token_list(ss.str());
  f.logits = test::read_f32(dir + "/logits.f32");
  for (float v : f.logits) f.scale = std::max(f.scale, std::fabs(v));
  return f;
}

// Max |got - ref| over rows [0, n) divided by the largest reference logit.
double rel_error(const Fixture& f, const std::vector<float>& got, size_t row0 = 0) {
  double worst = 0;
  for (size_t i = 0; i < got.size(); ++i) worst = std::max(worst, double(std::fabs(got[i] - f.logits[row0 * f.model->config().vocab_size + i])));
  return worst / f.scale;
}

constexpr double kTolerance = 1e-4;

class FixtureTest : public ::testing::TestWithParam<std::tuple<std::string, AttentionMode>> {};

TEST_P(FixtureTest, WholeSequenceMatchesReference) {
  auto [name, mode] = GetParam();
  Fixture f = load_fixture(name);
  ASSERT_EQ(f.logits.size(), f.tokens.size() * f.model->config().vocab_size);
  Engine engine(*f.model, {0, mode});
  Batch b;
  for (size_t i = 0; i < f.tokens.size(); ++i) b.add(f.tokens[i], int32_t(i), 0);
  std::vector<float> got = engine.forward(b);
  ASSERT_EQ(got.size(), f.logits.size());
  EXPECT_LT(rel_error(f, got), kTolerance) << name;
}

TEST_P(FixtureTest, TokenByTokenDecodeMatchesReference) {
  auto [name, mode] = GetParam();
  Fixture f = load_fixture(name);
  Engine engine(*f.model, {0, mode});
  const int64_t V = f.model->config().vocab_size;
  for (size_t i = 0; i < f.tokens.size(); ++i) {
    Batch b;
    b.add(f.tokens[i], int32_t(i), 0);
    std::vector<float> row = engine.forward(b);
    ASSERT_EQ(row.size(), size_t(V));
    EXPECT_LT(rel_error(f, row, i), kTolerance) << name << " position " << i;
  }
  EXPECT_EQ(engine.kv().length(0), int64_t(f.tokens.size()));
}

// A prompt chunk, then several sequences decoding in one batch: each sequence must see
// only its own cache.
TEST_P(FixtureTest, InterleavedSequencesInOneBatch) {
  auto [name, mode] = GetParam();
  Fixture f = load_fixture(name);
  Engine engine(*f.model, {0, mode});
  const int64_t V = f.model->config().vocab_size;
  const size_t split = f.tokens.size() / 2;
  // seq 0 and seq 1 both prefill the first half in one batch.
  Batch pre;
  for (int32_t s = 0; s < 2; ++s)
    for (size_t i = 0; i < split; ++i) pre.add(f.tokens[i], int32_t(i), s, i + 1 == split);
  std::vector<float> last = engine.forward(pre);
  ASSERT_EQ(last.size(), size_t(2 * V));
  // Then they decode the second half together, one token each per step.
  for (size_t i = split; i < f.tokens.size(); ++i) {
    Batch b;
    b.add(f.tokens[i], int32_t(i), 1);
    b.add(f.tokens[i], int32_t(i), 0);
    std::vector<float> rows = engine.forward(b);
    ASSERT_EQ(rows.size(), size_t(2 * V));
    std::vector<float> r0(rows.begin(), rows.begin() + V), r1(rows.begin() + V, rows.end());
    EXPECT_LT(rel_error(f, r0, i), kTolerance);
    EXPECT_LT(rel_error(f, r1, i), kTolerance);
  }
}

INSTANTIATE_TEST_SUITE_P(AllFixtures, FixtureTest,
                         ::testing::Combine(::testing::Values("v2lite", "v2", "v2-legacy-kvb", "v3"),
                                            ::testing::Values(AttentionMode::Absorbed, AttentionMode::Naive)),
                         [](const auto& info) {
                           std::string n = std::get<0>(info.param);
                           for (auto& c : n)
                             if (c == '-') c = '_';
                           return n + (std::get<1>(info.param) == AttentionMode::Absorbed ? "_absorbed" : "_naive");
                         });

TEST(Engine, RejectsOutOfOrderPositionsAndBadTokens) {
  Fixture f = load_fixture("v2lite");
  Engine engine(*f.model, {16, AttentionMode::Absorbed});
  Batch gap;
  gap.add(1, 1, 0);  // position 0 never given
  EXPECT_THROW(engine.forward(gap), Error);
  Batch bad;
  bad.add(9999, 0, 0);
  EXPECT_THROW(engine.forward(bad), Error);
  Batch too_long;
  for (int i = 0; i < 17; ++i) too_long.add(1, i, 0);
  EXPECT_THROW(engine.forward(too_long), Error);
}

TEST(Engine, KvCacheHoldsOnlyLatentsAndSharedRopeKey) {
  Fixture f = load_fixture("v3");
  const ModelConfig& c = f.model->config();
  Engine engine(*f.model, {0, AttentionMode::Absorbed});
  Batch b;
  for (int i = 0; i < 10; ++i) b.add(f.tokens[size_t(i)], i, 0);
  engine.forward(b);
  EXPECT_EQ(engine.kv().bytes_used(), uint64_t(10 * c.n_layers * (c.kv_lora_rank + c.qk_rope_head_dim) * sizeof(float)));
}

}  // namespace
