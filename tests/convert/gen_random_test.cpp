// gen-random: the layout of the fixtures, deterministic per seed whatever the thread
// count, initialisation statistics, type fallbacks, layer cut and vocabulary copy.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstring>

#include "common/error.h"
#include "common/files.h"
#include "common/progress.h"
#include "convert/gen_random.h"
#include "convert/tensor_names.h"
#include "format/gguf.h"
#include "format/quant.h"
#include "model/config.h"
#include "test_paths.h"

namespace mlamoe {
namespace {

std::string fixture(const std::string& name, const std::string& file) {
  return test::shared_dir() + "/fixtures/" + name + "/" + file;
}

std::string generate(const std::string& fixture_name, const std::string& type, uint64_t seed,
                     const std::string& out_name, int64_t layers = -1) {
  Progress::set_quiet(true);
  GenRandomOptions o;
  o.config_path = fixture(fixture_name, "config.json");
  o.out_path = test::temp_dir() + "/" + out_name;
  o.recipe = parse_recipe(type);
  o.seed = seed;
  o.layers = layers;
  gen_random(o);
  return o.out_path;
}

std::vector<float> dequantized(const GgufTensor& t) {
  std::vector<float> v(t.n_elements());
  size_t rb = row_bytes(t.type, t.ne[0]);
  for (int64_t r = 0; r < t.rows(); ++r) dequantize_row(t.type, t.data + r * rb, v.data() + r * t.ne[0], t.ne[0]);
  return v;
}

TEST(GenRandom, HasTheFixtureLayout) {
  for (const char* name : {"v2lite", "v3"}) {
    SCOPED_TRACE(name);
    auto g = GgufFile::open(generate(name, "f32", 1, std::string("layout_") + name + ".gguf"));
    auto ref = GgufFile::open(fixture(name, "model.gguf"));
    ASSERT_EQ(g->tensors().size(), ref->tensors().size());
    for (size_t i = 0; i < g->tensors().size(); ++i) {
      EXPECT_EQ(g->tensors()[i].name, ref->tensors()[i].name);
      EXPECT_EQ(g->tensors()[i].ne, ref->tensors()[i].ne);
      EXPECT_EQ(g->tensors()[i].type, GgmlType::F32);
    }
    ModelConfig a = ModelConfig::from_gguf(*g), b = ModelConfig::from_gguf(*ref);
    EXPECT_EQ(a.params_total(), b.params_total());
    EXPECT_EQ(a.has_routing_bias, b.has_routing_bias);
  }
}

TEST(GenRandom, SameSeedSameFileAnyThreadCount) {
  int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  std::string a = generate("v3", "q8_0", 7, "seed_a.gguf");
  omp_set_num_threads(std::max(2, saved));
  std::string b = generate("v3", "q8_0", 7, "seed_b.gguf");
  std::string c = generate("v3", "q8_0", 8, "seed_c.gguf");
  omp_set_num_threads(saved);
  EXPECT_EQ(read_file(a), read_file(b));
  EXPECT_NE(read_file(a), read_file(c));
}

TEST(GenRandom, InitialisationKeepsActivationsUnitScale) {
  auto g = GgufFile::open(generate("v2", "f32", 3, "stats.gguf"));
  for (const auto& t : g->tensors()) {
    SCOPED_TRACE(t.name);
    auto spec = tn::spec_from_name(t.name, t.ne);
    std::vector<float> v = dequantized(t);
    if (spec.role == tn::Role::Norm) {
      for (float x : v) ASSERT_EQ(x, 1.0f);
      continue;
    }
    double sum = 0, sq = 0;
    for (float x : v) {
      sum += x;
      sq += double(x) * x;
    }
    double n = double(v.size()), mean = sum / n, sd = std::sqrt(sq / n - mean * mean);
    double fan_in = spec.role == tn::Role::AttnKB ? double(t.ne[1]) : double(t.ne[0]);
    double want = spec.role == tn::Role::Embedding ? 1.0 : 1.0 / std::sqrt(fan_in);
    EXPECT_NEAR(sd, want, 5 * want / std::sqrt(n) + 0.02 * want);
    EXPECT_NEAR(mean, 0.0, 5 * want / std::sqrt(n));
  }
}

TEST(GenRandom, QuantizedTypesFallBackWhereRowsDoNotFit) {
  std::string f32 = generate("v3", "f32", 5, "types_f32.gguf");
  std::string q = generate("v3", "q4_K", 5, "types_q4k.gguf");
  auto a = GgufFile::open(f32), b = GgufFile::open(q);
  for (const auto& t : b->tensors()) {
    SCOPED_TRACE(t.name);
    GgmlType want;
    if (t.ne.size() == 1 || t.name.find("ffn_gate_inp") != std::string::npos) want = GgmlType::F32;
    else if (t.ne[0] % 256 == 0) want = GgmlType::Q4_K;
    else if (t.ne[0] % 32 == 0) want = GgmlType::Q4_0;  // 64-wide rows of the tiny model
    else want = GgmlType::F16;                          // rows of 16 and 24
    EXPECT_EQ(t.type, want);
    // Same seed: the quantized file holds the f32 file's values, rounded.
    std::vector<float> x = dequantized(*a->tensor(t.name)), y = dequantized(t);
    double err = 0, ref = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      err += (x[i] - y[i]) * double(x[i] - y[i]);
      ref += double(x[i]) * x[i];
    }
    EXPECT_LT(std::sqrt(err / ref), want == GgmlType::F32 ? 1e-12 : want == GgmlType::F16 ? 1e-3 : 0.15);
  }
}

TEST(GenRandom, LayerCutAndBadOptions) {
  auto g = GgufFile::open(generate("v3", "f32", 1, "cut.gguf", 2));
  ModelConfig c = ModelConfig::from_gguf(*g);
  EXPECT_EQ(c.n_layers, 2);
  EXPECT_TRUE(g->tensor("blk.1.ffn_gate_exps.weight"));
  EXPECT_FALSE(g->tensor("blk.2.attn_norm.weight"));
  EXPECT_THROW(generate("v3", "f32", 1, "cut_bad.gguf", 9), Error);
  EXPECT_THROW(generate("v3", "q3_K", 1, "bad_type.gguf"), Error);
}

TEST(GenRandom, CopiesTheVocabulary) {
  Progress::set_quiet(true);
  std::string vocab = test::shared_dir() + "/tokenizer/ggml-vocab-deepseek-llm.gguf";
  auto v = GgufFile::open(vocab);
  const int64_t n_vocab = static_cast<int64_t>(v->find("tokenizer.ggml.tokens")->array_size());
  // A narrow model with the real vocabulary size.
  std::string cfg_text = read_file(fixture("v2lite", "config.json"));
  auto pos = cfg_text.find("\"vocab_size\": 256");
  ASSERT_NE(pos, std::string::npos);
  cfg_text.replace(pos, 17, "\"vocab_size\": " + std::to_string(n_vocab));
  std::string cfg = test::temp_dir() + "/vocab_config.json";
  write_file_atomic(cfg, cfg_text);
  GenRandomOptions o;
  o.config_path = cfg;
  o.out_path = test::temp_dir() + "/with_vocab.gguf";
  o.recipe = parse_recipe("q8_0");
  o.layers = 1;
  o.vocab_path = vocab;
  gen_random(o);
  auto g = GgufFile::open(o.out_path);
  for (const auto& [key, value] : v->metadata()) {
    if (key.rfind("tokenizer.", 0) != 0) continue;
    const GgufValue* mine = g->find(key);
    ASSERT_TRUE(mine) << key;
    EXPECT_EQ(mine->type, value.type);
    EXPECT_EQ(mine->to_string(1000), value.to_string(1000)) << key;
  }
  EXPECT_EQ(g->tensor("token_embd.weight")->ne[1], n_vocab);
  // The tiny fixture config has 256 tokens: the vocabulary does not fit it.
  o.config_path = fixture("v2lite", "config.json");
  o.out_path = test::temp_dir() + "/vocab_mismatch.gguf";
  EXPECT_THROW(gen_random(o), Error);
}

}  // namespace
}  // namespace mlamoe
