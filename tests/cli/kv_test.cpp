// End to end through the tiered KV cache: `mlamoe logits` with a 4 KiB RAM budget and
// a disk directory (every block spilled and read back) must still give DeepSeek's
// reference logits; `mlamoe run --session` reuses a saved conversation, and ignores
// (with one warning line) a session that is corrupt or from another model.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

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

namespace {

std::string file_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

// `mlamoe chat --session`: two turns in two runs give the same answers as one
// conversation of two turns, and the second run computes only its new turn.
TEST(ChatSession, ContinuesTheConversationFromTheSavedKv) {
  const std::string dir = temp_dir(), session = dir + "/chat.session";
  auto chat = [&](const std::string& input, bool with_session) {
    std::vector<std::string> args = {"chat", "-m", fixture("v3", "model.gguf"), "-c", "1024", "-n", "8", "--temp", "0",
                                     "--verbose", "--kv-block", "4"};
    if (with_session) args.insert(args.end(), {"--session", session});
    return run_mlamoe(args, input);
  };
  const auto whole = chat("Hello\nAgain\n", false);
  ASSERT_EQ(whole.exit_code, 0) << whole.err;
  const auto first = chat("Hello\n", true);
  ASSERT_EQ(first.exit_code, 0) << first.err;
  ASSERT_TRUE(std::filesystem::exists(session));
  ASSERT_TRUE(std::filesystem::exists(session + ".chat.json"));
  const auto second = chat("Again\n", true);
  ASSERT_EQ(second.exit_code, 0) << second.err;
  EXPECT_NE(second.err.find("(session " + session + ": 2 messages"), std::string::npos) << second.err;
  EXPECT_EQ(first.out + second.out, whole.out);
  // The second run's prompt reused the first conversation: the same counts as the
  // second turn of the uninterrupted conversation.
  const auto last_prompt_line = [](const std::string& err) {
    const size_t at = err.rfind("prompt: ");
    return at == std::string::npos ? std::string() : err.substr(at, err.find('\n', at) - at);
  };
  EXPECT_EQ(last_prompt_line(second.err), last_prompt_line(whole.err)) << second.err << "\n---\n" << whole.err;
  EXPECT_EQ(last_prompt_line(second.err).find(" 0 reused"), std::string::npos) << second.err;

  // A corrupt session: warned, recomputed, same answer.
  std::string bytes = file_text(session);
  bytes[bytes.size() / 2] ^= 1;
  std::ofstream(session, std::ios::binary) << bytes;
  std::filesystem::remove(session + ".chat.json");
  const auto fresh = chat("Hello\n", true);
  ASSERT_EQ(fresh.exit_code, 0) << fresh.err;
  EXPECT_NE(fresh.err.find("checksum mismatch"), std::string::npos) << fresh.err;
  EXPECT_EQ(fresh.out, first.out);
}

// `mlamoe bench` runs on the KV flags' cache, from a -d context or a saved session, and
// reports the KV bytes per token against MHA/GQA/MQA.
TEST(BenchKv, DepthTiersAndBytesPerToken) {
  const std::string model = fixture("v2lite", "model.gguf"), dir = temp_dir();
  auto r = run_mlamoe({"bench", "-m", model, "-p", "4", "-n", "3", "-r", "1", "-d", "40", "--kv-ram-budget", "16KiB",
                       "--kv-disk", dir, "--kv-type", "f16", "--kv-block", "4", "--json", "--verbose"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("depth: 40 tokens"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("MHA"), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("read"), std::string::npos) << r.err;
  std::string last = r.out;
  while (!last.empty() && last.back() == '\n') last.pop_back();
  const auto j = nlohmann::json::parse(last.substr(last.rfind('\n') + 1));
  EXPECT_EQ(j["depth"], 40);
  const auto& kvb = j["kv_bytes_per_token"];
  EXPECT_EQ(kvb["type"], "f16");
  EXPECT_EQ(kvb["stored"], kvb["mla_16bit"]) << "f16 stores 16 bits per value";
  EXPECT_LT(kvb["mla_16bit"].get<uint64_t>(), kvb["gqa8_16bit"].get<uint64_t>());
  EXPECT_LE(kvb["gqa8_16bit"].get<uint64_t>(), kvb["mha_16bit"].get<uint64_t>()) << "the fixture has fewer than 8 heads";
  EXPECT_LT(kvb["mqa_16bit"].get<uint64_t>(), kvb["gqa8_16bit"].get<uint64_t>());

  // A session as the context; -d with --session is refused in one line.
  const std::string session = dir + "/bench.session";
  ASSERT_EQ(run_mlamoe({"run", "-m", model, "--tokens", "5,17,200,3,99,42,7,7,1,250", "-n", "4", "--temp", "0",
                        "--session", session})
                .exit_code,
            0);
  r = run_mlamoe({"bench", "-m", model, "-p", "0", "-n", "2", "-r", "1", "--session", session});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("depth: 13 tokens"), std::string::npos) << r.out;
  r = run_mlamoe({"bench", "-m", model, "-d", "4", "--session", session});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("-d and --session"), std::string::npos) << r.err;
}
