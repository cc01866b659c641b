// mlamoe gen-random end to end: the file it writes loads and runs in `mlamoe logits`,
// and bad flags fail with one line.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "test_paths.h"

namespace mlamoe {
namespace {

using test::run_mlamoe;

std::string config(const std::string& fixture) { return test::shared_dir() + "/fixtures/" + fixture + "/config.json"; }

TEST(GenRandomCli, WritesAModelThatRuns) {
  for (const char* type : {"f32", "q8_0", "q4_K_M"}) {
    SCOPED_TRACE(type);
    std::string out = test::temp_dir() + "/gen_" + type + ".gguf";
    auto r = run_mlamoe({"gen-random", "--config", config("v3"), "--out", out, "--type", type, "--seed", "11"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    std::string logits = out + ".f32";
    r = run_mlamoe({"logits", "-m", out, "--tokens", "1,2,3,4", "--out", logits});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    auto v = test::read_f32(logits);
    ASSERT_EQ(v.size(), 4u * 256u);
    double sq = 0;
    for (float x : v) {
      ASSERT_TRUE(std::isfinite(x));
      sq += double(x) * x;
    }
    // Unit-scale initialisation: logits of order one, neither vanishing nor exploding.
    double rms = std::sqrt(sq / double(v.size()));
    EXPECT_GT(rms, 0.05);
    EXPECT_LT(rms, 20.0);
  }
}

TEST(GenRandomCli, BadInputFailsWithOneLine) {
  std::string out = test::temp_dir() + "/gen_bad.gguf";
  struct Case {
    std::vector<std::string> args;
    std::string needle;
  } cases[] = {
      {{"gen-random", "--config", "/nonexistent/config.json", "--out", out}, "/nonexistent/config.json"},
      {{"gen-random", "--config", config("v2"), "--out", out, "--type", "q2_K"}, "q2_K"},
      {{"gen-random", "--config", config("v2"), "--out", out, "--layers", "99"}, "--layers"},
      {{"gen-random", "--config", config("v2"), "--out", out, "--vocab", config("v2")}, "config.json"},
      {{"gen-random", "--config", config("v2"), "--out", "/nonexistent-dir/x.gguf"}, "/nonexistent-dir/x.gguf"},
  };
  for (auto& c : cases) {
    auto r = run_mlamoe(c.args);
    EXPECT_EQ(r.exit_code, 1) << c.needle;
    EXPECT_NE(r.err.find("error: "), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(c.needle), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
  EXPECT_FALSE(std::filesystem::exists(out));
}

}  // namespace
}  // namespace mlamoe
