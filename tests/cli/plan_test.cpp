// `mlamoe plan` end to end: the JSON keys tools read, the table, --svg, --sweep,
// --compare, GGUF input, and one clear line with exit 1 for every kind of bad input.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "test_paths.h"

using mlamoe::test::run_mlamoe;
using mlamoe::test::RunResult;

namespace {

std::string cfg(const std::string& name) { return mlamoe::test::shared_dir() + "/configs/" + name + ".json"; }

void expect_one_line_error(const RunResult& r, const std::string& needle) {
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
}

TEST(PlanCli, JsonHasTheKeysToolsRead) {
  auto r = run_mlamoe({"plan", "--model", cfg("deepseek-v3"), "--hw", "h800", "--devices", "144", "--ep", "144",
                       "--weights", "fp8", "--batch", "128", "--ctx", "4096:1024", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  for (const char* key : {"params_total", "params_active", "weight_bytes_per_device", "kv_bytes_per_token",
                          "kv_bytes_per_token_mha", "max_concurrent_sequences", "prefill_tokens_per_s",
                          "decode_tokens_per_s", "prefill_tokens_per_s_system", "decode_tokens_per_s_system", "ttft_s",
                          "usd_per_mtok_in", "usd_per_mtok_out"})
    EXPECT_TRUE(j.contains(key)) << key;
  EXPECT_NEAR(j["params_total"].get<double>() / 1e9, 671, 7);
  EXPECT_DOUBLE_EQ(j["kv_bytes_per_token"].get<double>(), 576.0 * 61 * 2);
  EXPECT_DOUBLE_EQ(j["kv_bytes_per_token_mha"].get<double>(), 32768.0 * 61 * 2);
  EXPECT_NEAR(j["decode_tokens_per_s_system"].get<double>(), 144 * j["decode_tokens_per_s"].get<double>(), 1e-6);
  // H800's catalog price is DeepSeek's $2/GPU-hour.
  EXPECT_NEAR(j["usd_per_mtok_out"].get<double>(), 2.0 / 3600 / j["decode_tokens_per_s"].get<double>() * 1e6, 1e-9);
}

TEST(PlanCli, ReadableTableAndRoofline) {
  std::string svg = mlamoe::test::temp_dir() + "/roofline.svg";
  auto r = run_mlamoe({"plan", "-m", cfg("deepseek-v2-lite"), "--hw", "h200", "--svg", svg, "--price", "3"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* s : {"KV per token", "-85.9%", "prefill", "decode", "TTFT", "per M output"})
    EXPECT_NE(r.out.find(s), std::string::npos) << s << "\n" << r.out;
  std::ifstream in(svg);
  std::string text((std::istreambuf_iterator<char>(in)), {});
  EXPECT_EQ(text.rfind("<svg", 0), 0u);
  EXPECT_NE(text.find("decode ("), std::string::npos);
}

TEST(PlanCli, GgufInputGivesTheSameShapeAsItsConfig) {
  const std::string dir = mlamoe::test::shared_dir() + "/fixtures/v2lite";
  auto a = run_mlamoe({"plan", "-m", dir + "/model.gguf", "--hw", "h100-sxm", "--json"});
  auto b = run_mlamoe({"plan", "-m", dir + "/config.json", "--hw", "h100-sxm", "--json"});
  ASSERT_EQ(a.exit_code, 0) << a.err;
  ASSERT_EQ(b.exit_code, 0) << b.err;
  auto ja = nlohmann::json::parse(a.out), jb = nlohmann::json::parse(b.out);
  EXPECT_EQ(ja["params_total"], jb["params_total"]);
  EXPECT_EQ(ja["kv_bytes_per_token"], jb["kv_bytes_per_token"]);
  // Without --weights, a GGUF is planned at its own storage size (this fixture is F32).
  EXPECT_EQ(ja["weights"], "file (32.00 bits/weight)");
  EXPECT_EQ(jb["weights"], "bf16");
}

TEST(PlanCli, SweepDoublesTheBatch) {
  auto r = run_mlamoe({"plan", "-m", cfg("deepseek-v2"), "--hw", "hgx-h200", "--ep", "8", "--weights", "fp8", "--sweep",
                       "batch=1..64", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto rows = nlohmann::json::parse(r.out)["sweep"];
  ASSERT_EQ(rows.size(), 7u);  // 1 2 4 8 16 32 64
  EXPECT_EQ(rows[6]["batch"], 64);
  for (size_t i = 1; i < rows.size(); ++i)
    EXPECT_GT(rows[i]["decode_tokens_per_s"].get<double>(), rows[i - 1]["decode_tokens_per_s"].get<double>());
}

TEST(PlanCli, CompareShowsModelsAndAttentionVariants) {
  auto r = run_mlamoe({"plan", "--compare", "--hw", "hgx-h200", "--ep", "8", "--weights", "fp8"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* s : {"deepseek-v2-lite ", "deepseek-v2 (MHA)", "deepseek-v3 (GQA-8)", "deepseek-v3 (MQA)",
                        "deepseek-llm-67b", "-98.2%"})
    EXPECT_NE(r.out.find(s), std::string::npos) << s << "\n" << r.out;
}

TEST(PlanCli, CatalogListComputesHbm) {
  auto r = run_mlamoe({"plan", "--hw", "list"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("819.2 GB/s"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("cloudmatrix-384"), std::string::npos);
}

TEST(PlanCli, HwDirOverridesTheCatalog) {
  std::string dir = mlamoe::test::temp_dir() + "/hw";
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/toy.json") << R"({"id":"toy","kind":"accelerator","name":"Toy","memory_gb":100,
    "memory_bandwidth_gbps":1000,"peak_dense_tflops":{"bf16":100},"scale_up":{"gbps_per_direction":100,"domain":8},
    "sources":["test"]})";
  auto r = run_mlamoe({"plan", "-m", cfg("deepseek-v2-lite"), "--hw", "toy", "--hw-dir", dir, "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["memory_bandwidth_gbps"], 1000.0);
  expect_one_line_error(run_mlamoe({"plan", "-m", cfg("deepseek-v2-lite"), "--hw", "h800", "--hw-dir", dir}),
                        "known: toy");
}

TEST(PlanCli, BadInputIsOneClearLine) {
  const std::string v3 = cfg("deepseek-v3");
  expect_one_line_error(run_mlamoe({"plan", "-m", v3, "--hw", "h900"}), "unknown hardware 'h900' (known: a100");
  expect_one_line_error(run_mlamoe({"plan", "-m", v3, "--hw", "h800", "--weights", "fp8"}), "needs at least 12 devices");
  expect_one_line_error(run_mlamoe({"plan", "-m", v3, "--hw", "hgx-h800", "--tp", "3"}), "not a multiple of --tp 3");
  expect_one_line_error(run_mlamoe({"plan", "-m", v3, "--hw", "hgx-h800", "--devices", "16", "--tp", "16"}),
                        "scale-up domain");
  expect_one_line_error(run_mlamoe({"plan", "-m", v3, "--hw", "h800", "--ctx", "4k"}), "--ctx '4k'");
  expect_one_line_error(run_mlamoe({"plan", "-m", v3, "--hw", "h800", "--weights", "fp5"}), "--weights 'fp5'");
  expect_one_line_error(run_mlamoe({"plan", "-m", "/nonexistent.json", "--hw", "h800"}), "no such file");
  expect_one_line_error(run_mlamoe({"plan", "-m", v3, "--hw", "h800", "--sweep", "batch=8..2"}), "--sweep");
}

TEST(PlanCli, LocalMachineIsMeasured) {
  auto r = run_mlamoe({"plan", "-m", cfg("deepseek-v2-lite"), "--hw", "local", "--weights", "q4", "--batch", "1",
                       "--ctx", "256:64", "--json"});
  if (r.exit_code != 0 && r.err.find("does not fit") != std::string::npos) GTEST_SKIP() << "too little RAM: " << r.err;
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_GT(j["memory_bandwidth_gbps"].get<double>(), 0.1);
  EXPECT_GT(j["decode_tokens_per_s"].get<double>(), 0);
  // Timed with the engine's own kernels, taken as measured (no efficiency factor).
  ASSERT_TRUE(j.contains("local_kernels")) << r.out;
  EXPECT_EQ(j["local_kernels"]["weight_type"], "q4_0");
  EXPECT_GT(j["local_kernels"]["matmul_gmacs_by_tokens"]["q4_0"]["512"].get<double>(), 0);
  EXPECT_GT(j["local_kernels"]["attention_gflops_one_thread"].get<double>(), 0);
  EXPECT_EQ(j["assumptions"]["compute_efficiency"], 1.0);
  EXPECT_EQ(j["assumptions"]["bandwidth_efficiency"], 1.0);
  expect_one_line_error(run_mlamoe({"plan", "-m", cfg("deepseek-v2-lite"), "--hw", "local", "--weights", "fp8"}),
                        "mlamoe has no such matmul kernel");
}

}  // namespace
