// `--hw local`: the cost model times this machine with the engine's own measured kernel
// rates (matmul GMAC/s by tokens per matrix, absorbed-attention GFLOP/s) and its measured
// read bandwidth, with no efficiency factor; the expected times here are recomputed from
// the parameter counts, not taken from the cost model.
#include <gtest/gtest.h>

#include <cmath>

#include "common/error.h"
#include "model/config.h"
#include "planner/cost_model.h"
#include "planner/hardware.h"
#include "planner/kernel_probe.h"
#include "planner/model_shape.h"
#include "test_paths.h"

using namespace mlamoe;
using namespace mlamoe::planner;

namespace {

ModelShape v2_lite() {
  return ModelShape::from_config(ModelConfig::from_hf_json(test::shared_dir() + "/configs/deepseek-v2-lite.json"),
                                 "deepseek-v2-lite");
}

// A machine with 20 GB/s and kernels at `gmacs` whatever the token count.
HardwareChoice fake_local(double gmacs, double attn_one, double attn_all) {
  Accelerator a;
  a.id = "local", a.kind = "local";
  a.memory_gb = 64, a.memory_bandwidth_gbps = 20;
  a.peak_dense_tflops["fp32"] = 0.1;
  MeasuredKernels k;
  k.weight_type = "q4_0", k.threads = 2;
  for (int64_t n : kProbeTokens) k.matmul_gmacs["q4_0"][n] = gmacs;
  k.attention_gflops_one_thread = attn_one, k.attention_gflops_all_threads = attn_all;
  a.kernels = k;
  return {a, std::nullopt};
}

Deployment local_deployment(int64_t in, int64_t out) {
  Deployment d;
  d.batch = 1, d.ctx_in = in, d.ctx_out = out;
  d.weights = "q4", d.kv = "fp32";
  d.compute_efficiency = 1, d.bandwidth_efficiency = 1;
  return d;
}

TEST(MeasuredKernels, InterpolatesInLogTokensAndClamps) {
  MeasuredKernels k;
  k.matmul_gmacs["q4_0"] = {{1, 10.0}, {4, 30.0}, {512, 100.0}};
  EXPECT_DOUBLE_EQ(k.matmul_gmacs_at("q4_0", 1), 10.0);
  EXPECT_DOUBLE_EQ(k.matmul_gmacs_at("q4_0", 0.5), 10.0);
  EXPECT_DOUBLE_EQ(k.matmul_gmacs_at("q4_0", 4), 30.0);
  EXPECT_NEAR(k.matmul_gmacs_at("q4_0", 2), 20.0, 1e-12);  // halfway in log(tokens)
  EXPECT_DOUBLE_EQ(k.matmul_gmacs_at("q4_0", 4096), 100.0);
  EXPECT_THROW(k.matmul_gmacs_at("q8_0", 1), Error);
}

TEST(LocalPlan, DecodeIsTheSlowerOfMeasuredComputeAndMeasuredBandwidth) {
  const ModelShape m = v2_lite();
  const double macs_per_token = double(m.params_active() - m.embedding_params());  // head included
  // Slow kernels: compute-bound; every active matrix at 5 GMAC/s, attention on one thread.
  Plan slow = make_plan(m, fake_local(5, 10, 15), local_deployment(1, 128));
  EXPECT_NEAR(slow.decode.t_linear, macs_per_token / 5e9, 1e-9);
  EXPECT_NEAR(slow.decode.t_attention, slow.decode.attention_flops / 10e9, 1e-12);  // 1 token: one thread
  EXPECT_NEAR(slow.decode.t_memory, slow.decode.bytes / 20e9, 1e-12);
  EXPECT_EQ(slow.decode.bound, "compute");
  EXPECT_NEAR(slow.tpot_s, slow.decode.t_linear + slow.decode.t_attention, 1e-12);
  // Fast kernels: the same step is bound by the bytes it streams.
  Plan fast = make_plan(m, fake_local(500, 10, 15), local_deployment(1, 128));
  EXPECT_EQ(fast.decode.bound, "memory");
  EXPECT_NEAR(fast.tpot_s, fast.decode.bytes / 20e9, 1e-12);
}

TEST(LocalPlan, PrefillRunsAbsorbedOnAllThreadsWithLogitsForTheLastToken) {
  const ModelShape m = v2_lite();
  const int64_t P = 512;
  Plan p = make_plan(m, fake_local(50, 10, 15), local_deployment(P, 128));
  const double head = double(m.head_params());
  const double macs = P * double(m.params_active() - m.embedding_params() - m.head_params()) + head;
  EXPECT_NEAR(p.prefill.linear_flops, 2 * macs, 2 * macs * 1e-12);
  EXPECT_NEAR(p.prefill.t_linear, macs / 50e9, 1e-9);
  // mlamoe runs MLA absorbed in prefill too: 2·H·(2·d_c + d_R) per query and key.
  const double causal = (P + 1) / 2.0;
  const double attn = P * 2.0 * m.n_heads * (2 * m.kv_lora_rank + m.qk_rope_head_dim) * causal * m.n_layers;
  EXPECT_NEAR(p.prefill.attention_flops, attn, attn * 1e-12);
  EXPECT_NEAR(p.prefill.t_attention, attn / 15e9, 1e-9);  // 128 groups of 4 tokens: all threads
  EXPECT_NEAR(p.prefill_tokens_per_s, P / std::max(p.prefill.t_compute, p.prefill.t_memory), 1e-9);
}

TEST(Plan, PromptsComputeLogitsOnlyForTheirLastToken) {
  const ModelShape m = v2_lite();
  Deployment d;
  d.batch = 4, d.ctx_in = 1000, d.ctx_out = 100;
  HardwareChoice h200 = Catalog::load(test::source_dir() + "/data/hardware").resolve("h200");
  Plan p = make_plan(m, h200, d);
  const double body = 2.0 * double(m.params_active() - m.embedding_params() - m.head_params());
  EXPECT_NEAR(p.prefill.linear_flops, 4 * 1000 * body + 4 * 2.0 * m.head_params(), 1.0);
  EXPECT_NEAR(p.decode.linear_flops, 4 * (body + 2.0 * m.head_params()), 1.0);
}

TEST(KernelProbe, TimesTheEngineKernelsAtEveryTokenCount) {
  ModelShape m = v2_lite();
  m.d_model = 256, m.moe_intermediate_size = 64, m.n_heads = 2, m.kv_lora_rank = 64, m.qk_rope_head_dim = 16;
  MeasuredKernels k = measure_engine_kernels(m, GgmlType::Q4_0);
  EXPECT_EQ(k.weight_type, "q4_0");
  for (const char* type : {"q4_0", "q8_0"}) {
    ASSERT_TRUE(k.matmul_gmacs.count(type)) << type;
    for (int64_t n : kProbeTokens) {
      ASSERT_TRUE(k.matmul_gmacs.at(type).count(n)) << type << " " << n;
      const double g = k.matmul_gmacs.at(type).at(n);
      EXPECT_TRUE(std::isfinite(g) && g > 0) << type << " at " << n << " tokens: " << g;
    }
  }
  EXPECT_TRUE(std::isfinite(k.attention_gflops_one_thread) && k.attention_gflops_one_thread > 0);
  EXPECT_TRUE(std::isfinite(k.attention_gflops_all_threads) && k.attention_gflops_all_threads > 0);
}

TEST(KernelProbe, WeightTypeMixOfAnF32File) {
  WeightTypeMix mix = weight_type_mix(test::shared_dir() + "/fixtures/v2lite/model.gguf");
  EXPECT_EQ(mix.dominant, GgmlType::F32);
  EXPECT_DOUBLE_EQ(mix.dominant_share, 1.0);
  EXPECT_EQ(mix.summary, "f32 100.0%");
  EXPECT_THROW(weight_type_mix(test::shared_dir() + "/configs/deepseek-v2-lite.json"), Error);
}

}  // namespace
