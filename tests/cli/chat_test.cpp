// `mlamoe chat` end to end: through a pipe (commands, save/load), and in a real
// terminal driven by tmux (line editing with history, Ctrl-C stopping an answer without
// quitting, Ctrl-D leaving). Uses the shared v3 fixture model (byte-level vocabulary).
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "test_paths.h"

namespace fs = std::filesystem;
using mlamoe::test::run_mlamoe;

namespace {

std::string fixture_model() { return mlamoe::test::shared_dir() + "/fixtures/v3/model.gguf"; }

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

// Runs a shell command, returns its stdout.
std::string sh(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  pclose(p);
  return out;
}

std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// A tmux server of our own (-L) running one chat session in a 120x40 terminal.
class Terminal {
 public:
  explicit Terminal(const std::string& command) : socket_("mlamoe-test-" + std::to_string(getpid())) {
    sh("tmux -L " + socket_ + " kill-server 2>/dev/null");
    sh("tmux -L " + socket_ + " new-session -d -s chat -x 120 -y 40 " + quote(command + "; echo CHAT-EXITED-$?; sleep 60"));
  }
  ~Terminal() { sh("tmux -L " + socket_ + " kill-server 2>/dev/null"); }
  void keys(const std::string& k) { sh("tmux -L " + socket_ + " send-keys -t chat " + k); }
  void type(const std::string& text) { sh("tmux -L " + socket_ + " send-keys -t chat -l " + quote(text)); }
  std::string screen() { return sh("tmux -L " + socket_ + " capture-pane -p -J -S -200 -t chat"); }
  // Waits until pred(screen) holds; false after `seconds`.
  template <typename Pred>
  bool wait_for(Pred pred, double seconds = 30) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (std::chrono::steady_clock::now() < end) {
      if (pred(screen())) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }

 private:
  std::string socket_;
};

size_t count(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t i = s.find(what); i != std::string::npos; i = s.find(what, i + 1)) ++n;
  return n;
}

}  // namespace

TEST(CliChat, PipedCommandsSaveAndLoad) {
  const std::string saved = mlamoe::test::temp_dir() + "/conversation.json";
  const auto r = run_mlamoe({"chat", "-m", fixture_model(), "-c", "1024", "-n", "8", "--temp", "0", "-sys", "Be brief."},
                            "Hello\n/save " + saved + "\n/reset\n/load " + saved + "\nAgain\n/bogus\n/load /nonexistent.json\n/quit\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("(saved 3 messages to " + saved + ")"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("(conversation reset)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("(loaded 3 messages from " + saved + ")"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("unknown command '/bogus'"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("error: /nonexistent.json"), std::string::npos) << r.out;
  const auto j = read_json(saved);
  ASSERT_EQ(j["messages"].size(), 3u);
  EXPECT_EQ(j["messages"][0]["role"], "system");
  EXPECT_EQ(j["messages"][0]["content"], "Be brief.");
  EXPECT_EQ(j["messages"][1]["content"], "Hello");
  EXPECT_EQ(j["messages"][2]["role"], "assistant");
}

// R1: the generation prompt opens <think>, so the answer starts as reasoning; it is shown
// between <think> and </think> (dimmed on a terminal), or replaced by a placeholder.
TEST(CliChat, R1ReasoningShownOrHidden) {
  const std::vector<std::string> args = {"chat", "-m", fixture_model(), "-c", "1024", "-n", "6", "--temp", "0", "--chat-template", "r1"};
  const auto shown = run_mlamoe(args, "Hi\n");
  ASSERT_EQ(shown.exit_code, 0) << shown.err;
  EXPECT_NE(shown.err.find("template r1"), std::string::npos) << shown.err;
  const size_t open = shown.out.find("<think>"), close = shown.out.find("</think>");
  ASSERT_NE(open, std::string::npos) << shown.out;
  ASSERT_NE(close, std::string::npos) << shown.out;
  EXPECT_GT(close, open + 7) << "the reasoning text is shown";

  auto hidden_args = args;
  hidden_args.push_back("--hide-thinking");
  const auto hidden = run_mlamoe(hidden_args, "Hi\n");
  ASSERT_EQ(hidden.exit_code, 0) << hidden.err;
  EXPECT_EQ(hidden.out.find("<think>"), std::string::npos) << hidden.out;
  EXPECT_EQ(hidden.out, "(thinking…)\n\n") << "nothing but the placeholder: the whole answer was reasoning";
}

TEST(CliChat, UnknownTemplateIsAClearError) {
  const auto r = run_mlamoe({"chat", "-m", fixture_model(), "--chat-template", "nope"}, "");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("--chat-template 'nope'"), std::string::npos) << r.err;
}

TEST(CliChat, RealTerminalThroughTmux) {
  if (sh("command -v tmux").empty()) GTEST_SKIP() << "tmux is not installed (it is in .ci/apt-packages.txt)";
  const std::string dir = mlamoe::test::temp_dir();
  const std::string first = dir + "/first.json", second = dir + "/second.json";
  // Greedy decoding with a large context: the answer runs long enough to be interrupted.
  Terminal term(mlamoe::test::binary() + " chat -m " + fixture_model() + " -c 60000 -n -1 --temp 0");
  // (capture-pane drops trailing spaces: the prompt "> " shows as ">" at a line start)
  ASSERT_TRUE(term.wait_for([](const std::string& s) { return s.find("\n>") != std::string::npos; })) << term.screen();

  term.type("Tell me a long story");
  term.keys("Enter");
  // Output appears after the prompt line, then Ctrl-C stops it and a new prompt comes.
  ASSERT_TRUE(term.wait_for([](const std::string& s) {
    const size_t p = s.find("Tell me a long story");
    return p != std::string::npos && s.find_first_not_of(" \n", s.find('\n', p)) != std::string::npos;
  })) << term.screen();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  term.keys("C-c");
  ASSERT_TRUE(term.wait_for([](const std::string& s) { return s.find("[stopped]") != std::string::npos; })) << term.screen();
  ASSERT_TRUE(term.wait_for([](const std::string& s) {
    const size_t p = s.find("[stopped]");
    return p != std::string::npos && s.find("\n>", p) != std::string::npos;
  })) << term.screen();
  EXPECT_EQ(term.screen().find("CHAT-EXITED"), std::string::npos) << "Ctrl-C ended the program";

  // Line editing and history: save, then recall the line with Up, change it, run it.
  term.type("/save " + first);
  term.keys("Enter");
  ASSERT_TRUE(term.wait_for([&](const std::string& s) { return s.find("(saved 2 messages to " + first + ")") != std::string::npos; }))
      << term.screen();
  term.keys("Up");
  for (int i = 0; i < 10; ++i) term.keys("BSpace");  // "first.json" -> ""
  term.type("second.json");
  term.keys("Enter");
  ASSERT_TRUE(term.wait_for([&](const std::string& s) { return s.find("(saved 2 messages to " + second + ")") != std::string::npos; }))
      << term.screen();
  const auto a = read_json(first), b = read_json(second);
  EXPECT_EQ(a, b);
  EXPECT_EQ(a["messages"][0]["content"], "Tell me a long story");
  EXPECT_FALSE(a["messages"][1]["content"].get<std::string>().empty());

  term.keys("C-d");
  ASSERT_TRUE(term.wait_for([](const std::string& s) { return s.find("CHAT-EXITED-0") != std::string::npos; })) << term.screen();
  EXPECT_EQ(count(term.screen(), "[stopped]"), 1u);
}
