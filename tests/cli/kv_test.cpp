// End to end through the tiered KV cache: `mlamoe logits` with a 4 KiB RAM budget and
// a disk directory (every block spilled and read back) must still give DeepSeek's
// reference logits; `mlamoe run --session` reuses a saved conversation, and ignores
// (with one warning line) a session that is corrupt or from another model.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "test_paths.h"

using mlamoe::test::read_f32;
using mlamoe::test::run_mlamoe;
using mlamoe::test::shared_dir;
using mlamoe::test::temp_dir;

namespace {

std::string fixture(const std::string& name, const std::string& file) { return shared_dir() + "/fixtures/" + name + "/" + file; }

std::string tokens_of(const std::string& name) {
  std::ifstream in(fixture(name, "tokens.txt"));
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

double rel_error(const std::vector<float>& got, const std::vector<float>& ref) {
  float scale = 0, worst = 0;
  for (float v : ref) scale = std::max(scale, std::fabs(v));
  for (size_t i = 0; i < ref.size(); ++i) worst = std::max(worst, std::fabs(got[i] - ref[i]));
  return worst / scale;
}

class TieredLogits : public ::testing::TestWithParam<std::tuple<std::string, std::string, bool>> {};

TEST_P(TieredLogits, FourKiBOfRamPlusDiskMatchesReference) {
  auto [name, attn, stepwise] = GetParam();
  const std::string dir = temp_dir() + "/" + name + attn + (stepwise ? "-step" : ""), out = dir + ".f32", plain = dir + "-plain.f32";
  std::vector<std::string> base = {"logits", "-m", fixture(name, "model.gguf"), "--tokens", tokens_of(name), "--attn", attn,
                                   "-t", "2", "--kv-block", "8", "--verbose"};
  if (stepwise) base.push_back("--stepwise");
  auto tiered = base;
  tiered.insert(tiered.end(), {"--kv-ram-budget", "4KiB", "--kv-disk", dir, "--out", out});
  auto r = run_mlamoe(tiered);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("pages written to disk"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find(" 0 pages written to disk"), std::string::npos) << "nothing spilled: " << r.err;
  const auto ref = read_f32(fixture(name, "logits.f32")), got = read_f32(out);
  ASSERT_EQ(got.size(), ref.size());
  EXPECT_LT(rel_error(got, ref), 1e-4);
  // And bit for bit what the all-RAM cache gives.
  auto all_ram = base;
  all_ram.insert(all_ram.end(), {"--out", plain});
  auto p = run_mlamoe(all_ram);
  ASSERT_EQ(p.exit_code, 0) << p.err;
  EXPECT_EQ(read_f32(plain), got);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, TieredLogits,
                         ::testing::Combine(::testing::Values("v2lite", "v2", "v2-legacy-kvb", "v3"),
                                            ::testing::Values("absorbed", "naive"), ::testing::Bool()),
                         [](const auto& info) {
                           std::string n = std::get<0>(info.param) + "_" + std::get<1>(info.param) +
                                           (std::get<2>(info.param) ? "_stepwise" : "_one_pass");
                           for (auto& c : n)
                             if (c == '-') c = '_';
                           return n;
                         });

TEST(KvFlags, NarrowTypesStayCloseToReference) {
  for (const char* type : {"f16", "bf16", "q8_0"}) {
    const std::string out = temp_dir() + "/v2-" + type + ".f32";
    auto r = run_mlamoe({"logits", "-m", fixture("v2", "model.gguf"), "--tokens", tokens_of("v2"), "--kv-type", type,
                         "--out", out});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_LT(rel_error(read_f32(out), read_f32(fixture("v2", "logits.f32"))), 1e-2) << type;
  }
}

TEST(KvFlags, BadValuesFailWithOneLine) {
  const std::string model = fixture("v2", "model.gguf"), out = temp_dir() + "/bad.f32";
  auto expect_fail = [](const mlamoe::test::RunResult& r, const std::string& needle) {
    EXPECT_NE(r.exit_code, 0);
    EXPECT_LT(r.exit_code, 128);
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
  };
  expect_fail(run_mlamoe({"logits", "-m", model, "--tokens", "1,2", "--out", out, "--kv-ram-budget", "12XB"}), "--kv-ram-budget");
  expect_fail(run_mlamoe({"logits", "-m", model, "--tokens", "1,2", "--out", out, "--kv-disk", model}), "--kv-disk");
  expect_fail(run_mlamoe({"logits", "-m", model, "--tokens", "1,2", "--out", out, "--kv-block", "0"}), "--kv-block");
  // A RAM budget without a disk is a hard limit.
  expect_fail(run_mlamoe({"logits", "-m", model, "--tokens", tokens_of("v2"), "--out", out, "--kv-ram-budget", "1KiB"}),
              "--kv-disk");
}

TEST(RunSession, ReusesSavedConversationAndRefusesBadFiles) {
  const std::string dir = temp_dir(), session = dir + "/chat.session";
  const std::string prompt = "5,17,200,3,99,42,7,7,1,250,31,64,8";
  auto run = [&](const std::string& model, const std::string& tokens) {
    return run_mlamoe({"run", "-m", fixture(model, "model.gguf"), "--tokens", tokens, "-n", "6", "--temp", "0",
                       "--show-ids", "--session", session, "--verbose", "--kv-block", "4"});
  };
  auto first = run("v2", prompt);
  ASSERT_EQ(first.exit_code, 0) << first.err;
  EXPECT_NE(first.err.find("session: 0 tokens restored"), std::string::npos) << first.err;
  ASSERT_TRUE(std::filesystem::exists(session));
  // Same prompt again: all but its last token come from the session, same output.
  auto second = run("v2", prompt);
  ASSERT_EQ(second.exit_code, 0) << second.err;
  EXPECT_EQ(second.out, first.out);
  EXPECT_NE(second.err.find("restored, 12 reused"), std::string::npos) << second.err;
  // Corrupt: warned, recomputed, same output, then overwritten with a good one.
  std::string bytes;
  {
    std::ifstream in(session, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    bytes = ss.str();
  }
  bytes[bytes.size() / 2] ^= 1;
  std::ofstream(session, std::ios::binary) << bytes;
  auto third = run("v2", prompt);
  ASSERT_EQ(third.exit_code, 0) << third.err;
  EXPECT_NE(third.err.find("checksum mismatch"), std::string::npos) << third.err;
  EXPECT_NE(third.err.find("recomputing"), std::string::npos) << third.err;
  EXPECT_EQ(third.out, first.out);
  // Another model's session is not used.
  auto other = run("v3", prompt);
  ASSERT_EQ(other.exit_code, 0) << other.err;
  EXPECT_NE(other.err.find("different model"), std::string::npos) << other.err;
  EXPECT_NE(other.err.find("session: 0 tokens restored"), std::string::npos) << other.err;
}

}  // namespace
