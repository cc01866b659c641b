// The naive attention path on quantized models, both layouts. Legacy attn_kv_b: with
// the int8 kernels' tiled W_UV it decompresses V from the tiled copy and K from the
// file's rows, with --no-repack both from the file's rows in one product. attn_k_b: K
// from W_UK rebuilt as float32 rows, V from attn_v_b's heads as one matrix (tiled or
// not). Same quantized c_kv, same weights: tiled and row layouts must agree to float32
// summation order (up to a flipped near-tie in the random network's routing), and both
// must stay near the absorbed path (which quantizes the absorbed query instead of
// c_kv: a few % on this random network; unrelated logits are ~1).
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "common/files.h"
#include "test_paths.h"

using mlamoe::test::run_mlamoe;

namespace {

std::string fixture(const std::string& name, const std::string& file) {
  return mlamoe::test::shared_dir() + "/fixtures/" + name + "/" + file;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

mlamoe::test::LogitDiff compare(const std::string& a_path, const std::string& b_path) {
  return mlamoe::test::logit_diff(mlamoe::test::read_f32(a_path), mlamoe::test::read_f32(b_path));
}

}  // namespace

TEST(NaiveAttentionCli, QuantizedModelsAgreeAcrossLayoutsAndWithAbsorbed) {
  // The v2lite fixture's shape with 32-multiple head sizes (so W_UV can be tiled).
  auto cfg = nlohmann::json::parse(slurp(fixture("v2lite", "config.json")));
  cfg.update({{"hidden_size", 128}, {"intermediate_size", 256}, {"moe_intermediate_size", 64},
              {"kv_lora_rank", 64}, {"qk_nope_head_dim", 32}, {"v_head_dim", 32}});
  const std::string dir = mlamoe::test::temp_dir(), cfg_path = dir + "/naive_legacy_config.json";
  mlamoe::write_file_atomic(cfg_path, cfg.dump());
  std::string tokens = slurp(fixture("v2lite", "tokens.txt"));
  while (!tokens.empty() && (tokens.back() == '\n' || tokens.back() == ' ')) tokens.pop_back();
  const std::pair<bool, const char*> cases[] = {{true, "q8_0"}, {true, "q4_0"}, {false, "q8_0"}, {false, "q4_0"}};
  for (const auto& [legacy, type] : cases) {
    const std::string tag = std::string(legacy ? "legacy attn_kv_b " : "attn_k_b ") + type;
    SCOPED_TRACE(tag);
    const std::string model = dir + "/naive_" + (legacy ? "legacy_" : "kb_") + type + ".gguf";
    std::vector<std::string> gen = {"gen-random", "--config", cfg_path, "--out", model, "--type", type, "--seed", "7"};
    if (legacy) gen.push_back("--legacy-kv-b");
    auto r = run_mlamoe(gen);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    auto logits = [&](const std::string& tag, std::vector<std::string> extra) {
      const std::string out = model + "." + tag + ".f32";
      std::vector<std::string> args = {"logits", "-m", model, "--tokens", tokens, "--out", out, "-t", "2"};
      args.insert(args.end(), extra.begin(), extra.end());
      const auto res = run_mlamoe(args);
      EXPECT_EQ(res.exit_code, 0) << res.err;
      return out;
    };
    const std::string naive_tiles = logits("naive", {"--attn", "naive"}), naive_rows = logits("naive_rows", {"--attn", "naive", "--no-repack"}),
                      absorbed = logits("absorbed", {"--attn", "absorbed"});
    const mlamoe::test::LogitDiff layouts = compare(naive_tiles, naive_rows), paths = compare(naive_tiles, absorbed);
    EXPECT_LE(layouts.rms_rel, 0.01);
    EXPECT_LE(layouts.max_rel, 0.05);
    EXPECT_LE(paths.rms_rel, 0.06);
    EXPECT_LE(paths.max_rel, 0.2);
    std::printf("[ logits ] %s naive: tiles vs rows max %.3g rms %.3g; vs absorbed max %.3g rms %.3g\n", tag.c_str(),
                layouts.max_rel, layouts.rms_rel, paths.max_rel, paths.rms_rel);
  }
}
