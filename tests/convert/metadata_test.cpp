// write_model_metadata and model_tensors against the fixtures written by llama.cpp's
// layout (the shared model.gguf files), and the metadata round trip through from_gguf.
#include <gtest/gtest.h>

#include "convert/metadata.h"
#include "convert/tensor_names.h"
#include "format/gguf.h"
#include "format/gguf_writer.h"
#include "model/config.h"
#include "test_paths.h"

namespace mlamoe {
namespace {

const char* kFixtures[] = {"v2lite", "v2", "v2-legacy-kvb", "v3"};

std::string fixture(const std::string& name, const std::string& file) {
  return test::shared_dir() + "/fixtures/" + name + "/" + file;
}

bool is_legacy(const GgufFile& f) { return f.tensor("blk.0.attn_kv_b.weight") != nullptr; }

TEST(ModelTensors, MatchEveryFixtureNameShapeAndOrder) {
  for (const char* name : kFixtures) {
    SCOPED_TRACE(name);
    auto f = GgufFile::open(fixture(name, "model.gguf"));
    ModelConfig cfg = ModelConfig::from_gguf(*f);
    tn::LayoutOptions layout;
    layout.legacy_kv_b = is_legacy(*f);
    auto specs = tn::model_tensors(cfg, layout);
    ASSERT_EQ(specs.size(), f->tensors().size());
    for (size_t i = 0; i < specs.size(); ++i) {
      EXPECT_EQ(specs[i].name, f->tensors()[i].name);
      EXPECT_EQ(specs[i].ne, f->tensors()[i].ne) << specs[i].name;
      auto back = tn::spec_from_name(specs[i].name, specs[i].ne);
      EXPECT_EQ(back.role, specs[i].role) << specs[i].name;
      EXPECT_EQ(back.layer, specs[i].layer) << specs[i].name;
    }
  }
}

// Every deepseek2.* key the fixture has, we write with the same type and value.
TEST(ModelMetadata, MatchesEveryFixtureKey) {
  for (const char* name : kFixtures) {
    SCOPED_TRACE(name);
    auto f = GgufFile::open(fixture(name, "model.gguf"));
    ModelConfig cfg = ModelConfig::from_gguf(*f);
    // from_gguf cannot know mscale (the file stores only mscale_all_dim); the HF config can.
    ModelConfig hf = ModelConfig::from_hf_json(fixture(name, "config.json"));
    hf.name = cfg.name;
    std::string out = test::temp_dir() + "/meta_" + name + ".gguf";
    {
      GgufWriter w(out);
      tn::LayoutOptions layout;
      layout.legacy_kv_b = is_legacy(*f);
      write_model_metadata(hf, w, layout);
      set_file_type(w, GgmlType::F32);
      w.finish();
    }
    auto g = GgufFile::open(out);
    for (const auto& [key, value] : f->metadata()) {
      if (key.rfind("tokenizer.", 0) == 0 && key != "tokenizer.ggml.bos_token_id" && key != "tokenizer.ggml.eos_token_id")
        continue;
      const GgufValue* mine = g->find(key);
      ASSERT_TRUE(mine) << key;
      EXPECT_EQ(mine->type, value.type) << key;
      EXPECT_EQ(mine->to_string(), value.to_string()) << key;
    }
    for (const auto& [key, value] : g->metadata()) {
      // Keys we add that the fixture leaves at their defaults.
      if (key == "deepseek2.expert_weights_norm" && !value.as_bool()) continue;
      EXPECT_TRUE(f->has(key)) << "extra key " << key;
    }
  }
}

void expect_same_config(const ModelConfig& a, const ModelConfig& b) {
  EXPECT_EQ(a.vocab_size, b.vocab_size);
  EXPECT_EQ(a.hidden_size, b.hidden_size);
  EXPECT_EQ(a.n_layers, b.n_layers);
  EXPECT_EQ(a.n_heads, b.n_heads);
  EXPECT_EQ(a.max_position_embeddings, b.max_position_embeddings);
  EXPECT_FLOAT_EQ(a.rms_norm_eps, b.rms_norm_eps);
  EXPECT_EQ(a.q_lora_rank, b.q_lora_rank);
  EXPECT_EQ(a.kv_lora_rank, b.kv_lora_rank);
  EXPECT_EQ(a.qk_nope_head_dim, b.qk_nope_head_dim);
  EXPECT_EQ(a.qk_rope_head_dim, b.qk_rope_head_dim);
  EXPECT_EQ(a.v_head_dim, b.v_head_dim);
  EXPECT_FLOAT_EQ(a.rope_theta, b.rope_theta);
  EXPECT_EQ(a.rope_scaling.yarn, b.rope_scaling.yarn);
  EXPECT_FLOAT_EQ(a.rope_scaling.factor, b.rope_scaling.factor);
  EXPECT_EQ(a.rope_scaling.original_ctx, b.rope_scaling.original_ctx);
  EXPECT_FLOAT_EQ(a.rope_scaling.beta_fast, b.rope_scaling.beta_fast);
  EXPECT_FLOAT_EQ(a.rope_scaling.beta_slow, b.rope_scaling.beta_slow);
  EXPECT_NEAR(a.rope_scaling.mscale_all_dim, b.rope_scaling.mscale_all_dim, 1e-6);
  EXPECT_EQ(a.intermediate_size, b.intermediate_size);
  EXPECT_EQ(a.moe_intermediate_size, b.moe_intermediate_size);
  EXPECT_EQ(a.n_routed_experts, b.n_routed_experts);
  EXPECT_EQ(a.n_shared_experts, b.n_shared_experts);
  EXPECT_EQ(a.num_experts_per_tok, b.num_experts_per_tok);
  EXPECT_EQ(a.n_group, b.n_group);
  EXPECT_EQ(a.topk_group, b.topk_group);
  EXPECT_EQ(a.first_k_dense_replace, b.first_k_dense_replace);
  EXPECT_EQ(a.scoring_func, b.scoring_func);
  EXPECT_EQ(a.norm_topk_prob, b.norm_topk_prob);
  EXPECT_FLOAT_EQ(a.routed_scaling_factor, b.routed_scaling_factor);
  EXPECT_EQ(a.num_nextn_predict_layers, b.num_nextn_predict_layers);
  EXPECT_EQ(a.bos_token_id, b.bos_token_id);
  EXPECT_EQ(a.eos_token_id, b.eos_token_id);
  // GGUF stores yarn_log_multiplier as float32: agreement to float precision.
  EXPECT_NEAR(a.softmax_scale(), b.softmax_scale(), 1e-6 * a.softmax_scale());
}

// HF config -> GGUF metadata -> from_gguf gives the same model, for the real configs.
TEST(ModelMetadata, RoundTripsThroughFromGguf) {
  for (std::string cfg_path : {test::shared_dir() + "/configs/deepseek-v2-lite.json",
                               test::shared_dir() + "/configs/deepseek-v2.json",
                               test::shared_dir() + "/configs/deepseek-v3.json", fixture("v3", "config.json")}) {
    SCOPED_TRACE(cfg_path);
    ModelConfig hf = ModelConfig::from_hf_json(cfg_path);
    std::string out = test::temp_dir() + "/roundtrip.gguf";
    {
      GgufWriter w(out);
      write_model_metadata(hf, w);
      // from_gguf learns of the routing bias from the tensor itself.
      if (hf.has_routing_bias) w.add_tensor(tn::blk_bias(hf.first_k_dense_replace, tn::kExpProbsB), {hf.n_routed_experts}, GgmlType::F32);
      w.begin();
      if (hf.has_routing_bias) {
        std::vector<float> zeros(hf.n_routed_experts);
        w.write_data(zeros.data(), zeros.size() * 4);
      }
      w.finish();
    }
    auto f = GgufFile::open(out);
    ModelConfig back = ModelConfig::from_gguf(*f);
    expect_same_config(hf, back);
    EXPECT_EQ(hf.params_total(), back.params_total());
    EXPECT_EQ(hf.params_active(), back.params_active());
  }
}

}  // namespace
}  // namespace mlamoe
