// Parameter and KV-cache arithmetic from the real DeepSeek configs (shared/configs):
// the numbers the papers state must come out of the shapes.
#include <gtest/gtest.h>

#include "common/error.h"
#include "format/gguf.h"
#include "model/config.h"
#include "test_paths.h"

using namespace mlamoe;

static ModelConfig shared_config(const std::string& name) {
  return ModelConfig::from_hf_json(test::shared_dir() + "/configs/" + name + ".json");
}

TEST(Config, DeepSeekV3Is671BTotal37BActive) {
  ModelConfig c = shared_config("deepseek-v3");
  EXPECT_NEAR(c.params_total() / 1e9, 671.0, 1.0);
  EXPECT_NEAR(c.params_active() / 1e9, 37.5, 1.0);
  EXPECT_NEAR(100.0 * c.params_active() / c.params_total(), 5.5, 0.3);
  EXPECT_GT(c.params_mtp(), 0);
  EXPECT_EQ(c.kv_values_per_token_layer(), 576);
  EXPECT_EQ(c.mha_values_per_token_layer(), 2 * 128 * 128);  // 2·n_h·d_h, as the V2 paper counts MHA
}

TEST(Config, DeepSeekV2Is236BTotal21BActive) {
  ModelConfig c = shared_config("deepseek-v2");
  EXPECT_NEAR(c.params_total() / 1e9, 236.0, 1.5);
  EXPECT_NEAR(c.params_active() / 1e9, 21.0, 1.0);
}

TEST(Config, DeepSeekV2LiteIs15_7BTotal2_4BActive) {
  ModelConfig c = shared_config("deepseek-v2-lite");
  EXPECT_NEAR(c.params_total() / 1e9, 15.7, 0.2);
  EXPECT_NEAR(c.params_active() / 1e9, 2.4, 0.3);
  EXPECT_EQ(c.q_lora_rank, 0);
}

TEST(Config, GgufAndHfConfigsAgreeOnEveryFixture) {
  for (std::string name : {"v2lite", "v2", "v2-legacy-kvb", "v3"}) {
    const std::string dir = test::shared_dir() + "/fixtures/" + name;
    ModelConfig hf = ModelConfig::from_hf_json(dir + "/config.json");
    auto f = GgufFile::open(dir + "/model.gguf");
    ModelConfig gg = ModelConfig::from_gguf(*f);
    EXPECT_EQ(hf.params_total(), gg.params_total()) << name;
    EXPECT_EQ(hf.params_active(), gg.params_active()) << name;
    EXPECT_NEAR(hf.softmax_scale(), gg.softmax_scale(), 1e-6) << name;
    EXPECT_EQ(hf.has_routing_bias, gg.has_routing_bias) << name;
    EXPECT_EQ(hf.n_group, gg.n_group) << name;
    EXPECT_EQ(hf.norm_topk_prob, gg.norm_topk_prob) << name;
    EXPECT_DOUBLE_EQ(hf.routed_scaling_factor, gg.routed_scaling_factor) << name;
  }
}

TEST(Config, RejectsInconsistentConfigs) {
  EXPECT_THROW(ModelConfig::from_hf_json_text("{", "x.json"), Error);
  EXPECT_THROW(ModelConfig::from_hf_json_text("[]", "x.json"), Error);
  EXPECT_THROW(ModelConfig::from_hf_json_text(R"({"model_type":"llama"})", "x.json"), Error);
  std::string ok = R"({"vocab_size":256,"hidden_size":64,"num_hidden_layers":2,"num_attention_heads":4,
    "kv_lora_rank":32,"qk_nope_head_dim":16,"qk_rope_head_dim":8,"v_head_dim":16,"intermediate_size":96,
    "n_routed_experts":8,"num_experts_per_tok":2,"moe_intermediate_size":16,"n_group":3)";
  EXPECT_THROW(ModelConfig::from_hf_json_text(ok + "}", "x.json"), Error);  // 8 experts not divisible by 3 groups
  try {
    ModelConfig::from_hf_json_text(ok + "}", "x.json");
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("n_group"), std::string::npos);
  }
}
