// End-to-end contracts of `mlamoe logits`, `info` and `run`, and how they fail on bad
// input: one line on stderr naming the problem, a non-zero exit, never a crash.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "test_paths.h"

using mlamoe::test::run_mlamoe;
using mlamoe::test::shared_dir;
using mlamoe::test::temp_dir;

namespace {

std::string fixture(const std::string& name, const std::string& file) { return shared_dir() + "/fixtures/" + name + "/" + file; }

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string tokens_of(const std::string& name) {
  std::string s = slurp(fixture(name, "tokens.txt"));
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

void write(const std::string& path, const std::string& bytes) { std::ofstream(path, std::ios::binary) << bytes; }

// A failing command: non-zero exit (not a signal), exactly one line on stderr that
// starts with "error:" and contains `needle`.
void expect_clean_failure(const mlamoe::test::RunResult& r, const std::string& needle) {
  EXPECT_NE(r.exit_code, 0);
  EXPECT_LT(r.exit_code, 128) << "killed by a signal";
  EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << "stderr: " << r.err;
}

class LogitsCommand : public ::testing::TestWithParam<std::tuple<std::string, std::string>> {};

TEST_P(LogitsCommand, MatchesReferenceLogits) {
  auto [name, attn] = GetParam();
  const std::string out = temp_dir() + "/" + name + "-" + attn + ".f32";
  auto r = run_mlamoe({"logits", "-m", fixture(name, "model.gguf"), "--tokens", tokens_of(name), "--out", out, "--attn", attn, "-t", "2"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto got = mlamoe::test::read_f32(out), ref = mlamoe::test::read_f32(fixture(name, "logits.f32"));
  ASSERT_EQ(got.size(), ref.size());
  float scale = 0, worst = 0;
  for (float v : ref) scale = std::max(scale, std::fabs(v));
  for (size_t i = 0; i < ref.size(); ++i) worst = std::max(worst, std::fabs(got[i] - ref[i]));
  EXPECT_LT(worst / scale, 1e-4) << name << " " << attn;
}

INSTANTIATE_TEST_SUITE_P(Fixtures, LogitsCommand,
                         ::testing::Combine(::testing::Values("v2lite", "v2", "v2-legacy-kvb", "v3"),
                                            ::testing::Values("absorbed", "naive")),
                         [](const auto& info) {
                           std::string n = std::get<0>(info.param) + "_" + std::get<1>(info.param);
                           for (auto& c : n)
                             if (c == '-') c = '_';
                           return n;
                         });

TEST(InfoCommand, ReportsParametersAndKvSaving) {
  auto r = run_mlamoe({"info", fixture("v3", "model.gguf")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("370.10K total"), std::string::npos) << r.out;  // equals the elements in the file
  EXPECT_NE(r.out.find("370.10K elements in the file"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("MLA (c_kv + k_rope)"), std::string::npos);
  EXPECT_NE(r.out.find("sigmoid"), std::string::npos);
}

// The V3 shape from DeepSeek's config: 671B total, ~37B active, computed from shapes.
TEST(InfoCommand, V3ShapeFromConfigIs671BTotal37BActive) {
  auto r = run_mlamoe({"info", shared_dir() + "/configs/deepseek-v3.json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("671.03B total, 37.55B active per token (5.6%)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("MLA saves 98.2% against MHA"), std::string::npos) << r.out;
  r = run_mlamoe({"info", shared_dir() + "/configs/deepseek-v2-lite.json"});
  EXPECT_NE(r.out.find("MLA saves 85.9% against MHA"), std::string::npos) << r.out;
}

TEST(RunCommand, GreedyDecodeIsDeterministicAndMatchesLogitsArgmax) {
  const std::string m = fixture("v3", "model.gguf");
  auto a = run_mlamoe({"run", "-m", m, "--tokens", "5,6,7", "-n", "8", "--temp", "0", "--show-ids"});
  auto b = run_mlamoe({"run", "-m", m, "--tokens", "5,6,7", "-n", "8", "--temp", "0", "--show-ids"});
  ASSERT_EQ(a.exit_code, 0) << a.err;
  EXPECT_EQ(a.out, b.out);
  EXPECT_NE(a.err.find("tok/s"), std::string::npos);
  // The first generated id is the argmax of the last prompt position.
  const std::string out = temp_dir() + "/argmax.f32";
  ASSERT_EQ(run_mlamoe({"logits", "-m", m, "--tokens", "5,6,7", "--out", out}).exit_code, 0);
  auto logits = mlamoe::test::read_f32(out);
  int best = 0;
  for (int i = 0; i < 256; ++i)
    if (logits[512 + i] > logits[512 + best]) best = i;
  EXPECT_EQ(a.out.substr(0, a.out.find(' ')), std::to_string(best));
}

TEST(RunCommand, SeededSamplingRepeats) {
  const std::string m = fixture("v2", "model.gguf");
  auto a = run_mlamoe({"run", "-m", m, "--tokens", "1,2,3", "-n", "12", "--temp", "1.0", "--seed", "42", "--show-ids"});
  auto b = run_mlamoe({"run", "-m", m, "--tokens", "1,2,3", "-n", "12", "--temp", "1.0", "--seed", "42", "--show-ids"});
  ASSERT_EQ(a.exit_code, 0) << a.err;
  EXPECT_EQ(a.out, b.out);
}

// ---- bad input ----

TEST(BadInput, MissingFile) {
  expect_clean_failure(run_mlamoe({"info", "/nonexistent/model.gguf"}), "/nonexistent/model.gguf");
}

TEST(BadInput, TruncatedFile) {
  std::string bytes = slurp(fixture("v2", "model.gguf"));
  for (size_t cut : {size_t(3), size_t(20), size_t(200), size_t(4000), bytes.size() / 2, bytes.size() - 1}) {
    const std::string p = temp_dir() + "/truncated.gguf";
    write(p, bytes.substr(0, cut));
    auto r = run_mlamoe({"logits", "-m", p, "--tokens", "1,2", "--out", temp_dir() + "/t.f32"});
    expect_clean_failure(r, "truncated.gguf");
  }
}

TEST(BadInput, WrongMagicAndVersion) {
  std::string bytes = slurp(fixture("v2", "model.gguf"));
  std::string bad = bytes;
  bad[0] = 'X';
  write(temp_dir() + "/magic.gguf", bad);
  expect_clean_failure(run_mlamoe({"info", temp_dir() + "/magic.gguf"}), "not a GGUF file");
  bad = bytes;
  bad[4] = 9;
  write(temp_dir() + "/version.gguf", bad);
  expect_clean_failure(run_mlamoe({"info", temp_dir() + "/version.gguf"}), "version 9");
}

TEST(BadInput, UnknownArchitecture) {
  std::string bytes = slurp(fixture("v2", "model.gguf"));
  size_t at = bytes.find("deepseek2", bytes.find("general.architecture"));
  ASSERT_NE(at, std::string::npos);
  bytes.replace(at, 9, "llamallam");
  write(temp_dir() + "/arch.gguf", bytes);
  expect_clean_failure(run_mlamoe({"info", temp_dir() + "/arch.gguf"}), "unsupported architecture 'llamallam'");
}

// Patches the type of tensor `name` in a GGUF's tensor infos.
std::string with_tensor_type(std::string bytes, const std::string& name, uint32_t type) {
  size_t at = bytes.find(name);
  while (at != std::string::npos) {
    uint64_t len;
    std::memcpy(&len, bytes.data() + at - 8, 8);
    if (len == name.size()) break;
    at = bytes.find(name, at + 1);
  }
  size_t p = at + name.size();
  uint32_t n_dims;
  std::memcpy(&n_dims, bytes.data() + p, 4);
  p += 4 + 8 * n_dims;
  std::memcpy(bytes.data() + p, &type, 4);
  return bytes;
}

TEST(BadInput, UnsupportedAndUnknownTensorTypes) {
  std::string bytes = slurp(fixture("v2", "model.gguf"));
  write(temp_dir() + "/q4_1.gguf", with_tensor_type(bytes, "output_norm.weight", 3));  // q4_1: known, unsupported
  expect_clean_failure(run_mlamoe({"logits", "-m", temp_dir() + "/q4_1.gguf", "--tokens", "1", "--out", temp_dir() + "/x.f32"}),
                       "output_norm.weight");
  write(temp_dir() + "/type99.gguf", with_tensor_type(bytes, "output_norm.weight", 99));
  expect_clean_failure(run_mlamoe({"info", temp_dir() + "/type99.gguf"}), "unknown tensor type 99");
}

TEST(BadInput, TokenOutOfRange) {
  expect_clean_failure(run_mlamoe({"logits", "-m", fixture("v2", "model.gguf"), "--tokens", "1,256", "--out", temp_dir() + "/x.f32"}),
                       "token id 256 is out of range");
  expect_clean_failure(run_mlamoe({"logits", "-m", fixture("v2", "model.gguf"), "--tokens", "1,x", "--out", temp_dir() + "/x.f32"}),
                       "invalid token list");
}

TEST(BadInput, PromptLongerThanContext) {
  expect_clean_failure(run_mlamoe({"run", "-m", fixture("v2", "model.gguf"), "--tokens", "1,2,3,4,5,6", "-c", "4", "-n", "2"}),
                       "longer than the context");
  expect_clean_failure(run_mlamoe({"logits", "-m", fixture("v2", "model.gguf"), "--tokens", "1,2,3,4,5,6", "-c", "4", "--out", temp_dir() + "/x.f32"}),
                       "context size");
}

TEST(BadInput, UnknownCommandAndFlags) {
  auto r = run_mlamoe({"frobnicate"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("unknown command"), std::string::npos);
  r = run_mlamoe({"logits", "--bogus"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_LT(r.exit_code, 128);
}

TEST(BadInput, NotAFileButADirectory) {
  expect_clean_failure(run_mlamoe({"info", temp_dir()}), "not a regular file");
}

}  // namespace
