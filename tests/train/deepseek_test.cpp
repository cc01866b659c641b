// The libtorch model against DeepSeek's reference implementation: the shared fixtures
// were produced by the official model.py; loading their HF weights must reproduce
// their logits. This is what proves the trainer trains the real architecture.
#include <gtest/gtest.h>

#include <cmath>

#include "common/error.h"
#include "common/files.h"
#include "common/parse.h"
#include "test_paths.h"
#include "train/deepseek.h"

using namespace mlamoe;
using namespace mlamoe::train;

namespace {

double max_rel_error(const torch::Tensor& got, const torch::Tensor& want) {
  return ((got - want).abs().max() / want.abs().max()).item<double>();
}

DeepSeek load_fixture(const std::string& name) {
  const std::string dir = test::shared_dir() + "/fixtures/" + name;
  DeepSeek model(ModelConfig::from_hf_json(dir + "/hf-f32/config.json"));
  load_tensor_map(model, read_safetensors(dir + "/hf-f32/model.safetensors"), dir);
  model->eval();
  return model;
}

torch::Tensor fixture_tokens(const std::string& name) {
  auto ids = parse_token_list(read_file(test::shared_dir() + "/fixtures/" + name + "/tokens.txt"));
  return torch::tensor(std::vector<int64_t>(ids.begin(), ids.end()), torch::kInt64).unsqueeze(0);
}

class Fixture : public ::testing::TestWithParam<std::string> {};

TEST_P(Fixture, LogitsMatchDeepSeekReference) {
  torch::NoGradGuard no_grad;
  auto model = load_fixture(GetParam());
  auto tokens = fixture_tokens(GetParam());
  auto ref = test::read_f32(test::shared_dir() + "/fixtures/" + GetParam() + "/logits.f32");
  auto want = torch::from_blob(ref.data(), {tokens.size(1), model->config().vocab_size}, torch::kFloat32);
  auto got = model->forward(tokens).squeeze(0);
  EXPECT_LT(max_rel_error(got, want), 1e-4);
}

// The decode path (latent cache, W_UK/W_UV absorbed) must equal the training path.
TEST_P(Fixture, AbsorbedDecodeWithLatentCacheMatchesFullForward) {
  torch::NoGradGuard no_grad;
  auto model = load_fixture(GetParam());
  auto tokens = fixture_tokens(GetParam());
  auto full = model->forward(tokens).squeeze(0);
  LatentCache cache;
  const int64_t prefix = 7;
  std::vector<torch::Tensor> rows{model->forward(tokens.narrow(1, 0, prefix), 0, &cache).squeeze(0)};
  for (int64_t t = prefix; t < tokens.size(1); ++t) rows.push_back(model->forward(tokens.narrow(1, t, 1), t, &cache).squeeze(0));
  EXPECT_EQ(cache.length, tokens.size(1));
  EXPECT_LT(max_rel_error(torch::cat(rows, 0), full), 1e-5);
}

INSTANTIATE_TEST_SUITE_P(Shared, Fixture, ::testing::Values("v2lite", "v2", "v3"));

TEST(DeepSeekModel, MissingTensorIsNamed) {
  auto model = load_fixture("v3");
  auto tensors = to_tensor_map(model);
  tensors.erase("model.layers.2.mlp.gate.e_score_correction_bias");
  try {
    load_tensor_map(model, tensors, "ckpt");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.layers.2.mlp.gate.e_score_correction_bias"), std::string::npos);
  }
}

}  // namespace
