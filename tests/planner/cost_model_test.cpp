// The cost model against figures nobody here computed: DeepSeek's papers (37B of 671B,
// 576 vs 32,768 cached values, −93.3% vs DeepSeek 67B) and DeepSeek's published H800
// serving throughput; plus the expert-touch formula against a simulation.
#include <gtest/gtest.h>

#include <cmath>
#include <algorithm>
#include <numeric>
#include <random>

#include "common/error.h"
#include "model/config.h"
#include "planner/compute_probe.h"
#include "planner/cost_model.h"
#include "planner/hardware.h"
#include "planner/model_shape.h"
#include "planner/roofline_svg.h"
#include "test_paths.h"

using namespace mlamoe;
using namespace mlamoe::planner;

namespace {

const Catalog& catalog() {
  static Catalog c = Catalog::load(test::source_dir() + "/data/hardware");
  return c;
}
ModelShape shared_model(const std::string& name) {
  std::string path = test::shared_dir() + "/configs/" + name + ".json";
  return ModelShape::from_config(ModelConfig::from_hf_json(path), name);
}
ModelShape data_model(const std::string& name) { return load_model_shape(name, test::source_dir() + "/data"); }

TEST(Params, V3Activates37BOf671BWithMtpApart) {
  ModelShape v3 = shared_model("deepseek-v3");
  const double total = double(v3.params_total()), active = double(v3.params_active());
  EXPECT_NEAR(total / 1e9, 671, 671 * 0.01);
  EXPECT_NEAR(active / 1e9, 37, 37 * 0.03);
  EXPECT_NEAR(active / total, 0.055, 0.002);
  // The MTP module (one more MoE layer, 14B in DeepSeek's 685B release) is counted apart.
  EXPECT_GT(v3.mtp_params, int64_t(10e9));
  EXPECT_LT(v3.mtp_params, int64_t(15e9));
}

TEST(Params, ShapeCountAgreesWithModelConfig) {
  for (const char* name : {"deepseek-v2-lite", "deepseek-v2", "deepseek-v3"}) {
    ModelConfig c = ModelConfig::from_hf_json(test::shared_dir() + "/configs/" + name + ".json");
    ModelShape m = ModelShape::from_config(c, name);
    EXPECT_EQ(m.params_total(), c.params_total()) << name;
    EXPECT_EQ(m.params_active(), c.params_active()) << name;
  }
}

TEST(KvCache, MlaCachesTheLatentNotHeads) {
  ModelShape v2 = shared_model("deepseek-v2"), lite = shared_model("deepseek-v2-lite");
  EXPECT_EQ(v2.kv_values_per_token_layer(), 576);  // kv_lora_rank 512 + rope 64
  EXPECT_EQ(v2.mha_values_per_token_layer(), 32768);  // 2 × 128 heads × 128
  EXPECT_NEAR(1.0 - 576.0 / 32768, 0.982, 0.001);
  EXPECT_EQ(lite.kv_values_per_token_layer(), 576);
  EXPECT_EQ(lite.mha_values_per_token_layer(), 4096);  // 2 × 16 × 128
  EXPECT_NEAR(1.0 - 576.0 / 4096, 0.859, 0.001);
  // The MHA variant the planner builds caches exactly that.
  EXPECT_EQ(v2.with_standard_attention(v2.n_heads).kv_values_per_token_layer(), 32768);
  EXPECT_EQ(v2.with_standard_attention(1).kv_values_per_token_layer(), 256);  // MQA: one head
  // ModelConfig agrees (config.h's comparison helpers).
  ModelConfig c = ModelConfig::from_hf_json(test::shared_dir() + "/configs/deepseek-v2.json");
  EXPECT_EQ(c.mha_values_per_token_layer(), 32768);
}

TEST(KvCache, ReproducesTheV2PapersMinus93Point3VersusDeepSeek67B) {
  // V2 §3.2.3: deployed V2 keeps each KV element in 6 bits on average; DeepSeek 67B
  // serves BF16 GQA (8 KV heads of 128, 95 layers).
  ModelShape v2 = shared_model("deepseek-v2"), llm67b = data_model("deepseek-llm-67b");
  EXPECT_EQ(llm67b.attention_name(), "GQA-8");
  EXPECT_EQ(llm67b.kv_values_per_token(), 2 * 8 * 128 * 95);
  const double v2_bytes = v2.kv_values_per_token() * kv_precision("6").bytes;
  const double b67_bytes = llm67b.kv_values_per_token() * kv_precision("bf16").bytes;
  EXPECT_NEAR(1.0 - v2_bytes / b67_bytes, 0.933, 0.0005);
  // At equal precision the architecture alone gives −82%: the rest is the 6-bit cache.
  EXPECT_NEAR(1.0 - double(v2.kv_values_per_token()) / llm67b.kv_values_per_token(), 0.822, 0.001);
  EXPECT_NEAR(llm67b.params_total() / 1e9, 67, 1.0);
}

TEST(Experts, ExpectedDistinctMatchesSimulation) {
  EXPECT_DOUBLE_EQ(expected_distinct_experts(256, 8, 1), 8.0);
  EXPECT_NEAR(expected_distinct_experts(256, 8, 4096), 256.0, 1e-6);
  std::mt19937 rng(7);
  for (int tokens : {1, 4, 16, 64}) {
    const int E = 64, k = 6, trials = 4000;
    double sum = 0;
    std::vector<int> ids(E);
    for (int t = 0; t < trials; ++t) {
      std::vector<bool> hit(E, false);
      for (int tok = 0; tok < tokens; ++tok) {
        std::iota(ids.begin(), ids.end(), 0);
        for (int j = 0; j < k; ++j) {  // k distinct experts, uniformly (partial shuffle)
          std::uniform_int_distribution<int> pick(j, E - 1);
          std::swap(ids[j], ids[pick(rng)]);
          hit[ids[j]] = true;
        }
      }
      sum += std::count(hit.begin(), hit.end(), true);
    }
    EXPECT_NEAR(sum / trials, expected_distinct_experts(E, k, tokens), 0.15) << tokens << " tokens";
  }
}

Deployment deepseek_prefill() {  // V3/R1 Inference System Overview + profile-data: EP32, TP1, 4K prompts, 16K tokens/GPU
  Deployment d;
  d.devices = 32, d.tp = 1, d.ep = 32, d.batch = 4, d.ctx_in = 4096, d.ctx_out = 1024, d.weights = "fp8", d.kv = "bf16";
  return d;
}
Deployment deepseek_decode() {  // EP144 (18 nodes), TP1, 4K prompts, 128 requests per GPU
  Deployment d = deepseek_prefill();
  d.devices = 144, d.ep = 144, d.batch = 128;
  return d;
}

TEST(Published, DeepSeekH800ServingWithinTwoTimes) {
  ModelShape v3 = shared_model("deepseek-v3");
  HardwareChoice h800 = catalog().resolve("h800");
  Plan prefill = make_plan(v3, h800, deepseek_prefill());
  Plan decode = make_plan(v3, h800, deepseek_decode());
  const double prefill_node = prefill.prefill_tokens_per_s * 8, decode_node = decode.decode_tokens_per_s * 8;
  EXPECT_GT(prefill_node / 73.7e3, 0.5) << prefill_node;
  EXPECT_LT(prefill_node / 73.7e3, 2.0) << prefill_node;
  EXPECT_GT(decode_node / 14.8e3, 0.5) << decode_node;
  EXPECT_LT(decode_node / 14.8e3, 2.0) << decode_node;
  // What fits: FP8 V3 over 144 GPUs leaves room for the 128 sequences of 5K tokens.
  EXPECT_LE(decode.weight_bytes_per_device, 25e9);
  EXPECT_GE(decode.max_sequences_per_replica, 128);
  // A large batch over 144 GPUs touches every expert of every layer each step.
  EXPECT_NEAR(decode.decode.experts_touched_per_layer, 256, 0.01);
}

TEST(Plan, DecodeIsMemoryBoundAtBatchOneAndReadsOnlyChosenExperts) {
  ModelShape v3 = shared_model("deepseek-v3");
  Deployment d;
  d.devices = 16, d.ep = 16, d.batch = 1, d.weights = "fp8";
  Plan p = make_plan(v3, catalog().resolve("hgx-h800"), d);
  EXPECT_EQ(p.decode.bound, "memory");
  // 16 replicas × 1 token reach one expert copy: E(1−(1−k/E)^16) ≈ 100 of 256 experts.
  EXPECT_NEAR(p.decode.experts_touched_per_layer, expected_distinct_experts(256, 8, 16), 1e-9);
  EXPECT_LT(p.decode.weight_bytes, p.weight_bytes_per_device);
  // Bigger batches read the same weights for more tokens: throughput grows, per-token latency too.
  d.batch = 64;
  Plan q = make_plan(v3, catalog().resolve("hgx-h800"), d);
  EXPECT_GT(q.decode_tokens_per_s, 10 * p.decode_tokens_per_s);
  EXPECT_GT(q.tpot_s, p.tpot_s);
}

TEST(Plan, AttentionWorkGrowsWithContext) {
  ModelShape lite = shared_model("deepseek-v2-lite");
  Deployment d;
  d.batch = 8, d.ctx_in = 1024;
  Plan shorter = make_plan(lite, catalog().resolve("h200"), d);
  d.ctx_in = 8192;
  Plan longer = make_plan(lite, catalog().resolve("h200"), d);
  EXPECT_GT(longer.decode.kv_bytes, 4 * shorter.decode.kv_bytes);
  EXPECT_GT(longer.decode.attention_flops, 4 * shorter.decode.attention_flops);
  EXPECT_DOUBLE_EQ(longer.decode.linear_flops, shorter.decode.linear_flops);
  EXPECT_LT(longer.decode_tokens_per_s, shorter.decode_tokens_per_s);
}

TEST(Plan, MlaHoldsManyMoreSequencesThanMha) {
  ModelShape v2 = shared_model("deepseek-v2");
  Deployment d;
  d.devices = 8, d.ep = 8, d.weights = "fp8", d.batch = 1;
  Plan mla = make_plan(v2, catalog().resolve("hgx-h200"), d);
  Plan mha = make_plan(v2.with_standard_attention(v2.n_heads), catalog().resolve("hgx-h200"), d);
  EXPECT_GT(mla.max_sequences_system, 40 * mha.max_sequences_system);
  EXPECT_NEAR(mla.kv_bytes_per_token / mla.kv_bytes_per_token_mha, 576.0 / 32768, 1e-12);
}

TEST(Plan, CostAndEnergyFollowThroughput) {
  ModelShape lite = shared_model("deepseek-v2-lite");
  Deployment d;
  d.usd_per_hour = 3.6;
  Plan p = make_plan(lite, catalog().resolve("h100-sxm"), d);
  ASSERT_TRUE(p.usd_per_mtok_out && p.joules_per_token_out);
  EXPECT_NEAR(*p.usd_per_mtok_out, 3.6 / 3600 / p.decode_tokens_per_s * 1e6, 1e-9);
  EXPECT_NEAR(*p.joules_per_token_out, 700.0 / p.decode_tokens_per_s, 1e-9);
  EXPECT_GT(*p.usd_per_mtok_out, *p.usd_per_mtok_in);  // decode reads weights for few tokens
}

TEST(Plan, ImpossibleDeploymentsSayWhy) {
  ModelShape v3 = shared_model("deepseek-v3");
  HardwareChoice h800 = catalog().resolve("h800");
  auto message = [&](Deployment d, const ModelShape& m) {
    try {
      make_plan(m, h800, d);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  Deployment d;
  d.weights = "fp8";
  EXPECT_NE(message(d, v3).find("needs at least 12 devices"), std::string::npos) << message(d, v3);
  d.devices = 8, d.tp = 3;
  EXPECT_NE(message(d, v3).find("not a multiple of --tp"), std::string::npos);
  d.tp = 1, d.ep = 512, d.devices = 512;
  EXPECT_NE(message(d, v3).find("exceeds the model's 256 routed experts"), std::string::npos);
  d.ep = 1, d.devices = 16, d.tp = 16;
  EXPECT_NE(message(d, v3).find("scale-up domain"), std::string::npos);
  ModelShape b67 = data_model("deepseek-llm-67b");
  d.devices = 8, d.tp = 8, d.ep = 8;
  EXPECT_NE(message(d, b67).find("dense"), std::string::npos);
  d.ep = 1, d.batch = 100000;
  EXPECT_NE(message(d, b67).find("does not fit"), std::string::npos);
}

TEST(Svg, RooflineHasRoofsAndBothPoints) {
  Deployment d;
  Plan p = make_plan(shared_model("deepseek-v2-lite"), catalog().resolve("h200"), d);
  std::string svg = roofline_svg(p);
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  EXPECT_NE(svg.find("</svg>"), std::string::npos);
  EXPECT_NE(svg.find(">prefill ("), std::string::npos);
  EXPECT_NE(svg.find(">decode ("), std::string::npos);
  EXPECT_NE(svg.find("bf16 peak"), std::string::npos);
  EXPECT_NE(svg.find("fp8 peak"), std::string::npos);
}

TEST(Local, ProbesMeasureSomething) {
  double gflops = measure_fp32_fma_gflops();
  EXPECT_GT(gflops, 0.5);
  EXPECT_TRUE(std::isfinite(gflops));
  HardwareChoice local = catalog().resolve("local");
  EXPECT_GT(local.device.memory_bandwidth_gbps, 0.1);
  EXPECT_GT(local.device.memory_gb, 0.1);
  EXPECT_GT(local.device.peak_tflops("fp32"), 0);
}

}  // namespace
