// mlamoe gen-random end to end: the file it writes loads and runs in `mlamoe logits`,
// and bad flags fail with one line.
#include <gtest/gtest.h>

#include <cmath>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <thread>

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

// Ctrl-C (or a kill) in the middle of a write: nothing appears under the final name.
TEST(GenRandomCli, InterruptedWriteLeavesNothingUnderTheFinalName) {
  namespace fs = std::filesystem;
  const std::string dir = test::temp_dir() + "/interrupt";
  fs::create_directories(dir);
  const std::string out = dir + "/big.gguf";
  for (int sig : {SIGINT, SIGKILL}) {
    SCOPED_TRACE(sig);
    pid_t pid = fork();
    if (pid == 0) {
      int null = open("/dev/null", O_WRONLY);
      dup2(null, 1);
      dup2(null, 2);
      std::string bin = test::binary(), cfg = test::shared_dir() + "/configs/deepseek-v2-lite.json";
      execl(bin.c_str(), bin.c_str(), "gen-random", "--config", cfg.c_str(), "--out", out.c_str(), "--layers", "1",
            static_cast<char*>(nullptr));
      _exit(127);
    }
    ASSERT_GT(pid, 0);
    // Wait until the temp file holds some tensor data (~2 GB would be written in all).
    const std::string tmp = out + ".tmp." + std::to_string(pid);
    bool started = false;
    for (int i = 0; i < 600 && !started; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      std::error_code ec;
      started = fs::exists(tmp) && fs::file_size(tmp, ec) > (1u << 20);
    }
    EXPECT_TRUE(started);
    kill(pid, sig);
    int status = 0;
    waitpid(pid, &status, 0);
    EXPECT_TRUE(WIFSIGNALED(status));
    EXPECT_FALSE(fs::exists(out));
    fs::remove(tmp);
  }
}

}  // namespace
}  // namespace mlamoe
