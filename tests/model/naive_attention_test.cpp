// MLA's naive path (decompressed K/V, kernels::dense_attention_*) through the whole
// forward pass on every ISA the CPU has, against DeepSeek's reference logits; and the
// Auto mode's per-sequence choice: in a batch holding a long prompt and a decode, the
// prompt's rows come out exactly as the naive path gives them and the decode's as the
// absorbed path gives them (so both branches and the split are exercised).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>

#include "common/parse.h"
#include "kernels/kernels.h"
#include "model/engine.h"
#include "test_paths.h"

using namespace mlamoe;

namespace {

std::string fixture_path(const std::string& name, const std::string& file) {
  return test::shared_dir() + "/fixtures/" + name + "/" + file;
}

std::vector<int32_t> fixture_tokens(const std::string& name) {
  std::ifstream in(fixture_path(name, "tokens.txt"));
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_token_list(ss.str());
}

// max |a - b| / max |b|
double rel_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double worst = 0, scale = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    worst = std::max(worst, double(std::fabs(a[i] - b[i])));
    scale = std::max(scale, double(std::fabs(b[i])));
  }
  return worst / scale;
}

const char* const kFixtures[] = {"v2lite", "v2", "v2-legacy-kvb", "v3"};

class EveryIsa : public ::testing::Test {
 protected:
  void TearDown() override { kernels::set_isa(saved_); }
  kernels::Isa saved_ = kernels::active_isa();
};

}  // namespace

// The whole prompt in one batch, then the same prompt in two chunks (the second
// attending over cached keys it did not compute), naive path, every ISA.
TEST_F(EveryIsa, NaivePathMatchesReferenceLogits) {
  for (kernels::Isa isa : kernels::kAllIsas) {
    if (!kernels::cpu_supports(isa)) continue;
    kernels::set_isa(isa);
    for (const char* name : kFixtures) {
      auto model = Model::load(fixture_path(name, "model.gguf"));  // weights laid out for this ISA
      const std::vector<int32_t> tokens = fixture_tokens(name);
      const std::vector<float> ref = test::read_f32(fixture_path(name, "logits.f32"));
      Engine whole(*model, {0, AttentionMode::Naive});
      Batch b;
      for (size_t i = 0; i < tokens.size(); ++i) b.add(tokens[i], int32_t(i), 0);
      EXPECT_LT(rel_diff(whole.forward(b), ref), 1e-4) << kernels::isa_name(isa) << " " << name;

      Engine chunked(*model, {0, AttentionMode::Naive});
      const size_t split = 19;
      Batch first, second;
      for (size_t i = 0; i < tokens.size(); ++i) (i < split ? first : second).add(tokens[i], int32_t(i), 0);
      std::vector<float> got = chunked.forward(first), rest = chunked.forward(second);
      got.insert(got.end(), rest.begin(), rest.end());
      EXPECT_LT(rel_diff(got, ref), 1e-4) << kernels::isa_name(isa) << " " << name << " in two chunks";
    }
  }
}

// Seq 1 has 5 cached tokens and decodes one; seq 0 prefills 90 tokens in the same
// batch. On the legacy attn_kv_b fixture (where Auto takes naive from 16 queries) seq 0's
// rows must be the naive engine's bits and seq 1's close to the absorbed engine's
// (its key ranges may be cut differently there), and not the other way round.
TEST_F(EveryIsa, AutoTakesNaiveForTheLongPromptAndAbsorbedForTheDecode) {
  for (kernels::Isa isa : kernels::kAllIsas) {
    if (!kernels::cpu_supports(isa)) continue;
    kernels::set_isa(isa);
    auto model = Model::load(fixture_path("v2-legacy-kvb", "model.gguf"));
    const int64_t V = model->config().vocab_size;
    const std::vector<int32_t> fixture = fixture_tokens("v2-legacy-kvb");
    auto token = [&](size_t i) { return fixture[(i * 7) % fixture.size()]; };
    auto run = [&](AttentionMode mode) {
      Engine e(*model, {0, mode});
      Batch pre;
      for (int32_t i = 0; i < 5; ++i) pre.add(token(size_t(100 + i)), i, 1);
      e.forward(pre);
      Batch mixed;
      for (int32_t i = 0; i < 90; ++i) mixed.add(token(size_t(i)), i, 0, true);
      mixed.add(token(105), 5, 1, true);
      return e.forward(mixed);
    };
    const std::vector<float> naive = run(AttentionMode::Naive), absorbed = run(AttentionMode::Absorbed),
                             automatic = run(AttentionMode::Auto);
    ASSERT_EQ(automatic.size(), size_t(91 * V));
    const size_t prompt = size_t(90 * V);
    auto part = [&](const std::vector<float>& x, bool decode) {
      return decode ? std::vector<float>(x.begin() + long(prompt), x.end()) : std::vector<float>(x.begin(), x.begin() + long(prompt));
    };
    const char* isa_name = kernels::isa_name(isa);
    EXPECT_EQ(0, std::memcmp(automatic.data(), naive.data(), prompt * sizeof(float))) << isa_name << ": prompt rows not naive";
    EXPECT_NE(0, std::memcmp(automatic.data(), absorbed.data(), prompt * sizeof(float))) << isa_name;
    EXPECT_LT(rel_diff(part(automatic, false), part(absorbed, false)), 1e-4) << isa_name;
    EXPECT_LT(rel_diff(part(automatic, true), part(absorbed, true)), 1e-5) << isa_name;
    EXPECT_NE(0, std::memcmp(automatic.data() + prompt, naive.data() + prompt, size_t(V) * sizeof(float)))
        << isa_name << ": decode row not absorbed";
  }
}

// A decode step over more cached keys than one range holds: the absorbed path cuts
// the keys into ranges the threads share (65-127 keys: two; 300: four or five) and
// merges their online-softmax states. Its row must agree with the naive path, which
// attends over all keys at once, on 1, 2 and 3 threads (a range count that does not
// divide the keys, and leftovers of one key).
TEST_F(EveryIsa, AbsorbedDecodeOverManyKeysMatchesNaive) {
  const int saved_threads = kernels::threads();
  auto model = Model::load(fixture_path("v2lite", "model.gguf"));
  const std::vector<int32_t> fixture = fixture_tokens("v2lite");
  auto token = [&](size_t i) { return fixture[(i * 7) % fixture.size()]; };
  for (kernels::Isa isa : kernels::kAllIsas) {
    if (!kernels::cpu_supports(isa)) continue;
    kernels::set_isa(isa);
    for (int threads : {1, 2, 3})
      for (int32_t cached : {64, 65, 100, 127, 300}) {
        kernels::set_threads(threads);
        auto decode_row = [&](AttentionMode mode) {
          Engine e(*model, {512, mode});  // past the fixture's 128 positions: both paths rotate alike
          Batch prompt;
          for (int32_t i = 0; i < cached; ++i) prompt.add(token(size_t(i)), i, 0, false);
          e.forward(prompt);
          Batch step;
          step.add(token(size_t(cached)), cached, 0);
          return e.forward(step);
        };
        const std::vector<float> naive = decode_row(AttentionMode::Naive), absorbed = decode_row(AttentionMode::Absorbed);
        ASSERT_EQ(absorbed.size(), naive.size());
        EXPECT_LT(rel_diff(absorbed, naive), 1e-4) << kernels::isa_name(isa) << ", " << threads << " threads, " << cached << " cached";
      }
  }
  kernels::set_threads(saved_threads);
}
