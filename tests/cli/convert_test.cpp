// mlamoe convert / quantize end to end: converted checkpoints run in `mlamoe logits`
// and match DeepSeek's reference logits; quantized files stay close; bad input fails
// with one line.
//
// Tolerance: the fixture weights lie on the BF16 and FP8 grids, so conversion from
// every release is lossless and the converted model must meet the engine's own bound
// against the reference: 1e-4 × the largest |reference logit|.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>

#include <nlohmann/json.hpp>

#include "../convert/hf_checkpoint.h"
#include "common/files.h"
#include "test_paths.h"

namespace mlamoe {
namespace {

namespace fs = std::filesystem;
using test::run_mlamoe;

std::string fixture(const std::string& name, const std::string& file = "") {
  return test::shared_dir() + "/fixtures/" + name + (file.empty() ? "" : "/" + file);
}

std::string tokens_of(const std::string& name) {
  std::string t = read_file(fixture(name, "tokens.txt"));
  while (!t.empty() && (t.back() == '\n' || t.back() == ' ')) t.pop_back();
  return t;
}

using LogitError = test::LogitDiff;

LogitError compare(const std::string& logits, const std::string& reference) {
  auto got = test::read_f32(logits), ref = test::read_f32(reference);
  EXPECT_EQ(got.size(), ref.size());
  return test::logit_diff(got, ref);
}

// The logits of `model` with its Q4_0/Q8_0 matrices tiled (the default) against the
// file's rows (--no-repack), on `tokens`.
LogitError tiles_vs_rows(const std::string& model, const std::string& tokens) {
  const std::string rows = model + ".rows.f32", tiles = model + ".tiles.f32";
  auto r = run_mlamoe({"logits", "-m", model, "--tokens", tokens, "--out", rows, "--no-repack"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  r = run_mlamoe({"logits", "-m", model, "--tokens", tokens, "--out", tiles});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return compare(tiles, rows);
}

// A fixture's config.json with some fields changed, written to the test directory as
// `file`; returns its path.
std::string reshaped_config(const std::string& name, const nlohmann::json& changes, const std::string& file) {
  auto cfg = nlohmann::json::parse(read_file(fixture(name, "config.json")));
  cfg.update(changes);
  const std::string path = test::temp_dir() + "/" + file;
  write_file_atomic(path, cfg.dump());
  return path;
}

LogitError run_logits(const std::string& model, const std::string& tokens, const std::string& reference) {
  std::string out = model + ".logits.f32";
  auto r = run_mlamoe({"logits", "-m", model, "--tokens", tokens, "--out", out});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return compare(out, reference);
}

double logit_error(const std::string& model, const std::string& name) {
  return run_logits(model, tokens_of(name), fixture(name, "logits.f32")).max_rel;
}

const char* kFixtures[] = {"v2lite", "v2", "v2-legacy-kvb", "v3"};

TEST(ConvertCli, EveryReleaseMatchesTheReferenceLogits) {
  for (const char* name : kFixtures)
    for (const char* release : {"hf-f32", "hf-bf16", "hf-fp8"}) {
      SCOPED_TRACE(std::string(name) + " " + release);
      std::string out = test::temp_dir() + "/cli_" + name + "_" + release + ".gguf";
      auto r = run_mlamoe({"convert", fixture(name, release), out});
      ASSERT_EQ(r.exit_code, 0) << r.err;
      EXPECT_LE(logit_error(out, name), 1e-4);
    }
}

TEST(ConvertCli, ShardedCheckpointsWrittenByTheTestMatchTheReferenceLogits) {
  for (const char* name : kFixtures)
    for (const char* dtype : {"BF16", "F8_E4M3"}) {
      SCOPED_TRACE(std::string(name) + " " + dtype);
      auto ref = GgufFile::open(fixture(name, "model.gguf"));
      std::string dir = test::temp_dir() + "/cli_hf_" + name + "_" + dtype;
      ASSERT_TRUE(test::write_hf_checkpoint(*ref, fixture(name, "config.json"), dir, dtype, 2));
      std::string out = dir + ".gguf";
      auto r = run_mlamoe({"convert", dir, out});
      ASSERT_EQ(r.exit_code, 0) << r.err;
      EXPECT_LE(logit_error(out, name), 1e-4);
    }
}

// Quantized models: the logit error grows as bits shrink but stays bounded. The
// bounds are loose multiples of what was measured (BENCHMARKS.md has the numbers):
// they catch a broken block format, not a slightly worse rounding. The maximum error
// is dominated by positions where rounding flips a routed expert, so the RMS error is
// the tighter check. The fixtures' 64-wide rows fall back from K-quants to Q8_0/Q4_0
// (quant_plan.h); the 256-wide random model below exercises the K-quants themselves.
struct QuantCase {
  const char* type;
  double max_bound, rms_bound;
};

TEST(QuantizeCli, QuantizedFixturesStayCloseToTheReference) {
  const QuantCase cases[] = {{"f16", 1e-4, 1e-4},  {"bf16", 1e-4, 1e-4}, {"q8_0", 0.15, 0.03}, {"q6_K", 0.15, 0.03},
                             {"q5_K", 0.15, 0.03}, {"q4_K", 0.4, 0.15},  {"q4_0", 0.4, 0.15},  {"q4_K_M", 0.4, 0.15}};
  for (const char* name : {"v2lite", "v3"})
    for (auto& c : cases) {
      SCOPED_TRACE(std::string(name) + " " + c.type);
      std::string out = test::temp_dir() + "/cli_q_" + name + "_" + c.type + ".gguf";
      auto r = run_mlamoe({"quantize", fixture(name, "model.gguf"), out, c.type});
      ASSERT_EQ(r.exit_code, 0) << r.err;
      LogitError e = run_logits(out, tokens_of(name), fixture(name, "logits.f32"));
      EXPECT_LE(e.max_rel, c.max_bound);
      EXPECT_LE(e.rms_rel, c.rms_bound);
      std::printf("[ logits ] %s %s: max error %.3g of the largest logit, rms error %.3g of rms logit\n", name, c.type,
                  e.max_rel, e.rms_rel);
    }
}

// The int8 kernels read Q4_0/Q8_0 re-laid out in tiles (default) or in the file's rows
// (--no-repack): the same quantized activations times the same weights, so the logits
// differ only by float32 summation order (~1e-7) — except where that order decides a
// near-tie between two routed experts: q4_0 of v2lite agrees to 1.7e-7 at positions
// 0-35, then a flip at position 36 moves later logits by up to 0.5% of the largest one,
// still far below the quantization error (rms 0.13) checked above.
TEST(QuantizeCli, TiledWeightsGiveTheLogitsOfTheFileLayout) {
  for (const char* name : {"v2lite", "v3"})
    for (const char* type : {"q8_0", "q4_0"}) {
      SCOPED_TRACE(std::string(name) + " " + type);
      const std::string model = test::temp_dir() + "/cli_tiles_" + name + "_" + type + ".gguf";
      ASSERT_EQ(run_mlamoe({"quantize", fixture(name, "model.gguf"), model, type}).exit_code, 0);
      const LogitError e = tiles_vs_rows(model, tokens_of(name));
      if (std::string(type) == "q8_0") {
        EXPECT_LE(e.max_rel, 1e-5);
      }
      EXPECT_LE(e.max_rel, 0.02);
      EXPECT_LE(e.rms_rel, 0.01);
      std::printf("[ logits ] %s %s tiles vs rows: max difference %.3g of the largest logit\n", name, type, e.max_rel);
    }
}

// Q4_K and Q6_K tiles (AVX-512) multiply by activations quantized per 32 values, the
// file-layout K-quant kernels by activations quantized per 256 (Q8_K), so here the two
// layouts do not give the same logits: each is checked against the file's own weights
// with float32 activations (the model dequantized by `quantize ... f32`). Measured, wide
// random model (seed 4): q4_K tiles max 0.14 rms 0.043, rows max 0.36 rms 0.16 (the
// coarser activation scales); q4_K_M (Q4_K and Q6_K tiles) 0.31 / 0.100, rows
// 0.32 / 0.15; q6_K tiles 0.26 / 0.106, rows 0.41 / 0.128. Unrelated logits would be
// ~1.4 rms.
TEST(QuantizeCli, TiledQ4KGivesTheLogitsOfTheFileWeights) {
  if (!__builtin_cpu_supports("avx512vnni")) GTEST_SKIP() << "no AVX-512 VNNI: Q4_K is not tiled";
  const std::string cfg_path = reshaped_config("v3",
                                               {{"hidden_size", 256}, {"intermediate_size", 512}, {"moe_intermediate_size", 256},
                                                {"q_lora_rank", 256}, {"kv_lora_rank", 256}},
                                               "wide_tiles_config.json");
  const std::string tokens = tokens_of("v3");
  for (const char* type : {"q4_K", "q4_K_M", "q6_K"}) {
    SCOPED_TRACE(type);
    const std::string model = test::temp_dir() + "/wide_tiles_" + type + ".gguf", f32 = model + ".f32.gguf";
    auto r = run_mlamoe({"gen-random", "--config", cfg_path, "--out", model, "--type", type, "--seed", "4"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    ASSERT_EQ(run_mlamoe({"quantize", model, f32, "f32"}).exit_code, 0);
    ASSERT_EQ(run_mlamoe({"logits", "-m", f32, "--tokens", tokens, "--out", f32 + ".ref"}).exit_code, 0);
    const LogitError tiles = run_logits(model, tokens, f32 + ".ref");
    r = run_mlamoe({"logits", "-m", model, "--tokens", tokens, "--out", model + ".rows", "--no-repack"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const LogitError rows = compare(model + ".rows", f32 + ".ref");
    EXPECT_LE(tiles.max_rel, 0.45);
    EXPECT_LE(tiles.rms_rel, 0.2);
    std::printf("[ logits ] wide-random %s vs its f32 weights: tiles max %.3g rms %.3g, rows max %.3g rms %.3g\n", type,
                tiles.max_rel, tiles.rms_rel, rows.max_rel, rows.rms_rel);
  }
}

// A legacy attn_kv_b with 32-multiple head sizes: under the int8 kernels each head's
// W_UK rows are tiled and the absorbed query W_UK^T q_nope is summed over them in float
// (kernels::matmul_transposed's AVX-512 kernel); the file layout takes the reference
// path (the rows dequantized). Both are float, so q8_0 and q4_0 agree to float
// rounding (measured 1.7e-7); a wrong kernel gives unrelated logits (rms ~1). q6_K (a
// 256-wide latent, so attn_kv_b is Q6_K): the other Q6_K tensors' tiled products, whose
// activations are quantized differently from the file layout's, dominate, and the
// random network's near-tie routing amplifies them: measured max 0.087 rms 0.030 (a
// float32 W_UK^T built at load gave 0.092 / 0.023, session 3).
TEST(QuantizeCli, LegacyKvbTiledWUKGivesTheLogitsOfTheFileLayout) {
  const std::string cfg_path = reshaped_config("v2lite",
                                               {{"hidden_size", 128}, {"intermediate_size", 256}, {"moe_intermediate_size", 64},
                                                {"kv_lora_rank", 64}, {"qk_nope_head_dim", 32}, {"v_head_dim", 32}},
                                               "legacy_kvb_config.json");
  const std::string wide_cfg_path = reshaped_config("v2lite",
                                                    {{"hidden_size", 128}, {"intermediate_size", 256}, {"moe_intermediate_size", 64},
                                                     {"kv_lora_rank", 256}, {"qk_nope_head_dim", 32}, {"v_head_dim", 32}},
                                                    "legacy_kvb_wide_config.json");
  for (const char* type : {"q8_0", "q4_0", "q6_K"}) {
    SCOPED_TRACE(type);
    const bool k_quant = std::string(type) == "q6_K";
    const std::string model = test::temp_dir() + "/legacy_kvb_" + type + ".gguf";
    auto r = run_mlamoe({"gen-random", "--config", k_quant ? wide_cfg_path : cfg_path, "--out", model, "--type", type, "--legacy-kv-b",
                         "--seed", "5"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    if (k_quant) {
      r = run_mlamoe({"info", model});
      ASSERT_NE(r.out.find("q6_K"), std::string::npos) << r.out;
    }
    const LogitError e = tiles_vs_rows(model, tokens_of("v2lite"));
    EXPECT_LE(e.max_rel, 0.2);
    EXPECT_LE(e.rms_rel, 0.06);
    std::printf("[ logits ] legacy attn_kv_b %s tiles vs rows: max %.3g rms %.3g\n", type, e.max_rel, e.rms_rel);
  }
}

TEST(QuantizeCli, KQuantsOfAWideRandomModelStayCloseToF32) {
  // The v3 fixture's shape with every row a multiple of 256.
  const std::string cfg_path = reshaped_config("v3",
                                               {{"hidden_size", 256}, {"intermediate_size", 512}, {"moe_intermediate_size", 256},
                                                {"q_lora_rank", 256}, {"kv_lora_rank", 256}},
                                               "wide_config.json");
  std::string f32 = test::temp_dir() + "/wide_f32.gguf";
  auto r = run_mlamoe({"gen-random", "--config", cfg_path, "--out", f32, "--seed", "4"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string tokens = tokens_of("v3");
  ASSERT_EQ(run_mlamoe({"logits", "-m", f32, "--tokens", tokens, "--out", f32 + ".ref.f32"}).exit_code, 0);
  // A unit-scale random network amplifies weight noise (logits of RMS ~1, routed experts
  // flipping on near-ties), so the errors are large in absolute terms (q8_0 ~0.15 rms):
  // the bounds are ~2x the measured values, far below the ~1.4 of unrelated logits,
  // and more bits must not give a larger error.
  const QuantCase cases[] = {{"q8_0", 0.8, 0.3}, {"q6_K", 0.8, 0.35}, {"q5_K", 1.0, 0.6},
                             {"q4_K", 1.2, 0.8}, {"q4_K_M", 1.2, 0.8}};
  std::map<std::string, double> rms;
  for (auto& c : cases) {
    SCOPED_TRACE(c.type);
    std::string out = test::temp_dir() + "/wide_" + c.type + ".gguf";
    r = run_mlamoe({"quantize", f32, out, c.type});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    LogitError e = run_logits(out, tokens, f32 + ".ref.f32");
    EXPECT_LE(e.max_rel, c.max_bound);
    EXPECT_LE(e.rms_rel, c.rms_bound);
    std::printf("[ logits ] wide-random %s: max error %.3g of the largest logit, rms error %.3g of rms logit\n", c.type,
                e.max_rel, e.rms_rel);
    rms[c.type] = e.rms_rel;
  }
  EXPECT_LE(rms["q8_0"], rms["q5_K"]);
  EXPECT_LE(rms["q6_K"], rms["q4_K"]);
  EXPECT_LE(rms["q5_K"], rms["q4_K"]);
}

void expect_one_line_error(const test::RunResult& r, const std::vector<std::string>& needles) {
  EXPECT_EQ(r.exit_code, 1) << r.err;
  // The last line is the error (a progress line may precede it when output had begun).
  std::string err = r.err;
  while (!err.empty() && err.back() == '\n') err.pop_back();
  std::string last = err.substr(err.rfind('\n') == std::string::npos ? 0 : err.rfind('\n') + 1);
  EXPECT_EQ(last.rfind("error: ", 0), 0u) << r.err;
  for (auto& n : needles) EXPECT_NE(last.find(n), std::string::npos) << "'" << n << "' not in: " << r.err;
}

TEST(ConvertCli, BadInputFailsWithOneLine) {
  std::string out = test::temp_dir() + "/cli_bad.gguf";
  expect_one_line_error(run_mlamoe({"convert", "/nonexistent/dir", out}), {"/nonexistent/dir"});
  expect_one_line_error(run_mlamoe({"convert", fixture("v3", "hf-bf16"), out, "--type", "q3_K"}), {"q3_K"});
  // A checkpoint missing a shard.
  auto ref = GgufFile::open(fixture("v2", "model.gguf"));
  std::string dir = test::temp_dir() + "/cli_missing_shard";
  test::write_hf_checkpoint(*ref, fixture("v2", "config.json"), dir, "BF16", 3);
  fs::remove(dir + "/model-3-of-3.safetensors");
  expect_one_line_error(run_mlamoe({"convert", dir, out}), {"model.safetensors.index.json", "model-3-of-3.safetensors"});
  // quantize: missing input, unknown type
  expect_one_line_error(run_mlamoe({"quantize", "/nonexistent.gguf", out, "q8_0"}), {"/nonexistent.gguf"});
  expect_one_line_error(run_mlamoe({"quantize", fixture("v2", "model.gguf"), out, "q9_9"}), {"q9_9"});
  EXPECT_NE(run_mlamoe({"quantize", fixture("v2", "model.gguf")}).exit_code, 0);  // usage
  EXPECT_FALSE(fs::exists(out));
}

}  // namespace
}  // namespace mlamoe
