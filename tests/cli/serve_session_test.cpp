// `mlamoe serve --session FILE` end to end: the prefix cache is saved at a clean
// shutdown and restored at the next start, so the first request after a restart
// reuses a long shared prompt (and answers exactly as a server that computes it); a
// truncated file is refused with one warning line and the server still answers.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cmath>
#include <filesystem>

#include "server/serve_harness.h"

using namespace mlamoe::test::serve;
using mlamoe::test::temp_dir;

namespace {

std::string document() {
  std::string d = "You answer questions about this report. ";
  for (int i = 0; i < 12; ++i) d += "Section " + std::to_string(i) + ": the latent cache keeps c_kv and k_rope per token. ";
  return d;
}

json completion(const std::string& question) {
  return {{"model", "model.gguf"}, {"prompt", document() + question}, {"max_tokens", 8}, {"temperature", 0}, {"logprobs", 1}};
}

int64_t cached_tokens(const json& r) { return r["usage"]["prompt_tokens_details"]["cached_tokens"].get<int64_t>(); }

// Same text, and logprobs equal up to float rounding of differently batched prompts.
void expect_same_answer(const json& got, const json& want) {
  EXPECT_EQ(got["choices"][0]["text"], want["choices"][0]["text"]);
  const json& a = got["choices"][0]["logprobs"]["token_logprobs"];
  const json& b = want["choices"][0]["logprobs"]["token_logprobs"];
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i].get<double>(), b[i].get<double>(), 1e-4) << "token " << i;
}

ino_t inode_of(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? st.st_ino : 0;
}

bool leftover_temp_files(const std::string& dir) {
  for (const auto& e : std::filesystem::directory_iterator(dir))
    if (e.path().filename().string().find(".tmp.") != std::string::npos) return true;
  return false;
}

}  // namespace

TEST(ServeSession, PrefixCacheSurvivesARestartAndABrokenFileIsRefused) {
  const std::string dir = temp_dir() + "/serve-session", session = dir + "/prefixes.session";
  std::filesystem::remove_all(dir);  // a first start, also under --gtest_repeat
  std::filesystem::create_directories(dir);
  const std::vector<std::string> flags = {"-c", "1024", "--session", session, "--verbose"};

  json reference;  // the probe answered by a server that computes the whole prompt
  {
    Server plain({"-c", "1024"});
    const Reply r = post(plain, "/v1/completions", completion(" Question: what is stored?"));
    ASSERT_EQ(r.status, 200) << r.body;
    reference = r.as_json();
    EXPECT_EQ(cached_tokens(reference), 0);
    EXPECT_EQ(plain.stop(SIGTERM), 0);
  }
  const int64_t prompt_tokens = reference["usage"]["prompt_tokens"].get<int64_t>();
  ASSERT_GT(prompt_tokens, 200);

  {
    Server first(flags);
    EXPECT_NE(first.log().find("does not exist yet"), std::string::npos) << first.log();
    const Reply r = post(first, "/v1/completions", completion(" Question: who reads it?"));
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(first.stop(SIGTERM), 0) << first.log();
    EXPECT_NE(first.log().find("session " + session + ": saved"), std::string::npos) << first.log();
  }
  ASSERT_TRUE(std::filesystem::exists(session));
  const ino_t first_inode = inode_of(session);

  {
    Server second(flags);
    EXPECT_NE(second.log().find("session " + session + ": restored"), std::string::npos) << second.log();
    const Reply r = post(second, "/v1/completions", completion(" Question: what is stored?"));
    ASSERT_EQ(r.status, 200) << r.body;
    const json answer = r.as_json();
    // The document came from the file: this process computed none of it.
    const int64_t reused = cached_tokens(answer);
    EXPECT_GE(reused, prompt_tokens - 16) << "all but the question";
    EXPECT_LT(reused, prompt_tokens);
    EXPECT_EQ(metric(second, "mlamoe_prefix_hits_total"), 1);
    EXPECT_EQ(metric(second, "mlamoe_prefix_reused_tokens_total"), reused);
    EXPECT_NE(second.log().find(std::to_string(reused) + " reused from the prefix cache"), std::string::npos) << second.log();
    expect_same_answer(answer, reference);
    EXPECT_EQ(second.stop(SIGTERM), 0) << second.log();
  }
  // Saved again through a temp file renamed over the old one (AtomicFile): a new inode
  // and nothing left beside it.
  EXPECT_NE(inode_of(session), first_inode);
  EXPECT_FALSE(leftover_temp_files(dir));

  // A truncated file: one warning line, an empty cache, the same answer.
  std::filesystem::resize_file(session, std::filesystem::file_size(session) / 2);
  {
    Server third(flags);
    const std::string log = third.log();
    EXPECT_NE(log.find("warning: not using session " + session + ": truncated"), std::string::npos) << log;
    EXPECT_EQ(log.find("warning:"), log.rfind("warning:")) << "one warning line: " << log;
    const Reply r = post(third, "/v1/completions", completion(" Question: what is stored?"));
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(cached_tokens(r.as_json()), 0);
    expect_same_answer(r.as_json(), reference);
    EXPECT_EQ(third.stop(SIGTERM), 0) << third.log();
  }
}

TEST(ServeSession, NeedsThePrefixCache) {
  auto r = mlamoe::test::run_mlamoe({"serve", "-m", mlamoe::test::shared_dir() + "/fixtures/v3/model.gguf", "--port", "0",
                                     "--session", temp_dir() + "/x.session", "--kv-prefix-cache", "0"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("--kv-prefix-cache"), std::string::npos) << r.err;
}

// --session-save-interval: the cache is also saved when the server is idle, so a server
// that is then SIGKILLed (no clean shutdown) still leaves it for the next start.
TEST(ServeSession, IdleSaveSurvivesASigkill) {
  const std::string dir = temp_dir() + "/serve-idle", session = dir + "/prefixes.session";
  std::filesystem::remove_all(dir);  // a first start, also under --gtest_repeat
  std::filesystem::create_directories(dir);
  int64_t prompt_tokens = 0;
  {
    Server first({"-c", "1024", "--session", session, "--session-save-interval", "0.1"});
    const Reply r = post(first, "/v1/completions", completion(" Question: who reads it?"));
    ASSERT_EQ(r.status, 200) << r.body;
    prompt_tokens = r.as_json()["usage"]["prompt_tokens"].get<int64_t>();
    for (int i = 0; i < 200 && !std::filesystem::exists(session); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    ASSERT_TRUE(std::filesystem::exists(session)) << first.log();
    EXPECT_EQ(first.stop(SIGKILL), 128 + SIGKILL);
  }
  Server second({"-c", "1024", "--session", session});
  EXPECT_NE(second.log().find("session " + session + ": restored"), std::string::npos) << second.log();
  const Reply r = post(second, "/v1/completions", completion(" Question: what is stored?"));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_GE(cached_tokens(r.as_json()), prompt_tokens - 16);
}
