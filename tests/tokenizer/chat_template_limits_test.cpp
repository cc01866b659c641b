// Regressions found by fuzz/chat_template_fuzz.cpp: hostile templates (tests/tokenizer/
// regressions/chat_template/) must fail with one "chat template: ..." line instead of
// crashing (out-of-range literals), hitting undefined behavior (int64 overflow) or
// hanging / exhausting memory (nested loops, string and list doubling). The render
// budget must still leave room for the largest conversation the server accepts.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "common/error.h"
#include "test_paths.h"
#include "tokenizer/chat_template.h"

namespace mlamoe {
namespace {

std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(ChatTemplateLimits, HostileTemplatesFailWithOneLine) {
  const std::filesystem::path dir = test::source_dir() + "/tests/tokenizer/regressions/chat_template";
  const std::vector<ChatMessage> messages = {{"system", "s"}, {"user", "hi"}, {"assistant", "hello"}};
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    SCOPED_TRACE(e.path().string());
    ++n;
    // "-renders": the bug was undefined behavior on a valid template (sanitizer builds).
    const bool valid = e.path().filename().string().find("-renders") != std::string::npos;
    try {
      ChatTemplate t(slurp(e.path()), "<bos>", "<eos>");
      (void)t.apply(messages);
      if (!valid) ADD_FAILURE() << "rendered, expected an error";
    } catch (const Error& err) {
      const std::string what = err.what();
      EXPECT_FALSE(valid) << what;
      EXPECT_EQ(what.rfind("chat template: ", 0), 0u) << what;
      EXPECT_EQ(what.find('\n'), std::string::npos) << what;
    }
  }
  EXPECT_GE(n, 10);
}

// A namespace stored in itself, directly or inside a list or dict, would be a reference
// cycle that shared ownership never frees (LeakSanitizer found it: fuzz input
// leak-namespace-set-to-itself). It is refused; namespaces holding other namespaces and
// lists that share structure still work.
TEST(ChatTemplateLimits, NamespaceCannotHoldItself) {
  for (const char* src : {"{% set ns = namespace() %}{% set ns.me = ns %}",
                          "{% set ns = namespace() %}{% set l = [1, [ns]] %}{% set ns.x = {'k': l} %}"}) {
    SCOPED_TRACE(src);
    try {
      (void)ChatTemplate(src, "", "").apply({}, false);
      ADD_FAILURE() << "rendered, expected an error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("cannot store namespace 'ns' inside itself"), std::string::npos) << e.what();
    }
  }
  EXPECT_EQ(ChatTemplate("{% set a = namespace(v=1) %}{% set b = namespace(v=2) %}{% set a.other = b %}{% set b.v = 3 %}{{ a.other.v }}", "", "")
                .apply({}, false),
            "3");
  // 2^48 paths through 48 shared lists: the check visits each list once.
  EXPECT_EQ(ChatTemplate("{% set acc = namespace(l=[]) %}{% for i in range(48) %}{% set acc.l = [acc.l, acc.l] %}{% endfor %}"
                         "{% set ns = namespace() %}{% set ns.x = acc.l %}{{ ns.x | length }}",
                         "", "")
                .apply({}, false),
            "2");
}

TEST(ChatTemplateLimits, ArithmeticStillExactNearTheLimits) {
  ChatTemplate t("{{ 9223372036854775806 + 1 }} {{ -9223372036854775807 - 1 }} {{ (-7) // 2 }} {{ (-7) % 3 }} "
                 "{% for i in range(9223372036854775800, 9223372036854775807, 3) %}{{ i }},{% endfor %}",
                 "", "");
  EXPECT_EQ(t.apply({}, false),
            "9223372036854775807 -9223372036854775808 -4 2 9223372036854775800,9223372036854775803,9223372036854775806,");
}

TEST(ChatTemplateLimits, LargestConversationStillRenders) {
  // The server accepts up to 4096 messages in an 8 MiB body.
  std::vector<ChatMessage> messages;
  for (int k = 0; k < 4096; ++k) messages.push_back({k % 2 ? "assistant" : "user", std::string(2000, 'x')});
  for (const std::string& name : ChatTemplate::builtin_names()) {
    SCOPED_TRACE(name);
    ChatTemplate t(*ChatTemplate::builtin_source(name), "<bos>", "<eos>", name);
    EXPECT_GT(t.apply(messages).size(), 4096u * 2000u);
  }
}

}  // namespace
}  // namespace mlamoe
