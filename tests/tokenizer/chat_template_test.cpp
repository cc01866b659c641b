// The Jinja renderer against outputs that Debian's python3-jinja2 produced for the same
// templates and conversations (tests/tokenizer/data/chat/gen_chat_expected.py), plus
// template recognition and selection.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/error.h"
#include "test_paths.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/jinja.h"
#include "tokenizer_fixtures.h"

using namespace mlamoe;
namespace fs = std::filesystem;

namespace {

const std::string kBos = "<｜begin▁of▁sentence｜>", kEos = "<｜end▁of▁sentence｜>";

fs::path data_dir() { return fs::path(test::source_dir()) / "tests" / "tokenizer" / "data" / "chat"; }

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  EXPECT_TRUE(in.good()) << p;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct RenderCase {
  std::string template_name, conversation;
  std::string label() const { return template_name + "_" + conversation; }
};

std::vector<RenderCase> render_cases() {
  std::vector<RenderCase> cases;
  std::ifstream in(data_dir() / "conversations.json");
  if (!in) return cases;
  const auto conversations = nlohmann::json::parse(in);
  std::vector<std::string> templates;
  for (const auto& e : fs::directory_iterator(data_dir() / "templates"))
    if (e.path().extension() == ".jinja") templates.push_back(e.path().stem().string());
  std::sort(templates.begin(), templates.end());
  for (const auto& t : templates)
    for (const auto& c : conversations) cases.push_back({t, c["name"].get<std::string>()});
  return cases;
}

}  // namespace

TEST(ChatTemplateData, AllCasesPresent) {
  const auto cases = render_cases();
  EXPECT_EQ(cases.size(), 5u * 5u);
  for (const auto& c : cases)
    EXPECT_TRUE(fs::exists(data_dir() / "expected" / (c.template_name + "." + c.conversation + ".txt"))) << c.label();
}

class JinjaMatchesPython : public ::testing::TestWithParam<RenderCase> {};

TEST_P(JinjaMatchesPython, SameOutput) {
  const RenderCase& c = GetParam();
  const std::string source = slurp(data_dir() / "templates" / (c.template_name + ".jinja"));
  const std::string expected = slurp(data_dir() / "expected" / (c.template_name + "." + c.conversation + ".txt"));
  nlohmann::json conv;
  for (const auto& x : nlohmann::json::parse(slurp(data_dir() / "conversations.json")))
    if (x["name"] == c.conversation) conv = x;
  ASSERT_FALSE(conv.is_null());
  std::map<std::string, jinja::Value> globals = {
      {"messages", jinja::Value::from_json(conv["messages"])},
      {"add_generation_prompt", jinja::Value::boolean(conv["add_generation_prompt"].get<bool>())},
      {"bos_token", jinja::Value::string(kBos)},
      {"eos_token", jinja::Value::string(kEos)},
  };
  jinja::Template t(source);
  if (expected.rfind("ERROR: ", 0) == 0) {
    try {
      const std::string out = t.render(globals);
      FAIL() << "jinja2 failed (" << expected << ") but we rendered:\n" << out;
    } catch (const Error& e) {
      const std::string prefix = "ERROR: raise_exception: ";
      if (expected.rfind(prefix, 0) == 0) {
        const std::string msg = expected.substr(prefix.size());
        EXPECT_NE(std::string(e.what()).find(msg), std::string::npos) << e.what();
      }
    }
    return;
  }
  EXPECT_EQ(t.render(globals), expected);
}

INSTANTIATE_TEST_SUITE_P(Data, JinjaMatchesPython, ::testing::ValuesIn(render_cases()),
                         [](const auto& info) { return info.param.label(); });

TEST(ChatTemplate, BuiltinsAreTheTestedTemplates) {
  for (const auto& name : ChatTemplate::builtin_names()) {
    const std::string* src = ChatTemplate::builtin_source(name);
    ASSERT_NE(src, nullptr) << name;
    EXPECT_EQ(*src, slurp(data_dir() / "templates" / (name + ".jinja"))) << name;
    EXPECT_EQ(ChatTemplate::recognize(*src), name);
  }
  EXPECT_EQ(ChatTemplate::recognize("{{ messages[0]['content'] }}"), "");
  EXPECT_NE(ChatTemplate::builtin_source("deepseek-v3"), nullptr);
  EXPECT_EQ(ChatTemplate::builtin_source("llama9"), nullptr);
}

TEST(ChatTemplate, R1OpensThinkingAndDropsEarlierReasoning) {
  ChatTemplate r1(*ChatTemplate::builtin_source("r1"), kBos, kEos, "r1");
  ChatTemplate v3(*ChatTemplate::builtin_source("deepseek3"), kBos, kEos, "deepseek3");
  EXPECT_TRUE(r1.opens_thinking());
  EXPECT_FALSE(v3.opens_thinking());
  const std::vector<ChatMessage> conv = {{"system", "S"}, {"user", "Q1"}, {"assistant", "<think>r</think>A1"}, {"user", "Q2"}};
  EXPECT_EQ(r1.apply(conv), kBos + "S<｜User｜>Q1<｜Assistant｜>A1" + kEos + "<｜User｜>Q2<｜Assistant｜><think>\n");
  EXPECT_EQ(v3.apply(conv, false), kBos + "S<｜User｜>Q1<｜Assistant｜><think>r</think>A1" + kEos + "<｜User｜>Q2");
}

TEST(ChatTemplate, ForModelFollowsTheVocabulary) {
  // The tiny vocabulary spells markers with ASCII bars and has <think>: r1, adapted.
  Tokenizer tiny(test::tiny_byte_vocab());
  const ChatTemplate t = ChatTemplate::for_model(tiny);
  EXPECT_EQ(t.name(), "r1");
  const std::string prompt = t.apply({{"user", "hi"}});
  EXPECT_EQ(prompt, "<｜begin▁of▁sentence｜><|User|>hi<|Assistant|><think>\n");
  // Every marker is one control token.
  const auto ids = tiny.encode(prompt, {.add_special = false});
  EXPECT_EQ(ids.size(), 1u + 1u + 2u + 1u + 1u + 1u);
  EXPECT_EQ(ChatTemplate::for_model(tiny, "deepseek2").apply({{"user", "hi"}}), "<｜begin▁of▁sentence｜>User: hi\n\nAssistant:");
}

TEST(ChatTemplate, OverrideFromFileAndErrors) {
  const std::string path = test::temp_dir() + "/custom.jinja";
  std::ofstream(path) << "{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}";
  Tokenizer tiny(test::tiny_byte_vocab());
  EXPECT_EQ(ChatTemplate::for_model(tiny, path).apply({{"user", "a"}, {"assistant", "b"}}), "[user] a\n[assistant] b\n");
  try {
    ChatTemplate::for_model(tiny, "no-such-template");
    FAIL();
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("deepseek3"), std::string::npos) << msg;
    EXPECT_NE(msg.find("r1"), std::string::npos) << msg;
  }
  EXPECT_THROW(jinja::Template("{% if x %}no end"), Error);
  EXPECT_THROW(jinja::Template("{{ 'unterminated }}"), Error);
  EXPECT_THROW(jinja::Template("{% macro m() %}{% endmacro %}"), Error);
  // Hostile nesting is an error, not a stack overflow.
  EXPECT_THROW(jinja::Template("{{ " + std::string(100000, '(') + "1" + std::string(100000, ')') + " }}"), Error);
  EXPECT_THROW(jinja::Template("{{ " + std::string(100000, '-') + "1 }}"), Error);
  EXPECT_THROW(jinja::Template("{% if " + [] { std::string n; for (int i = 0; i < 100000; ++i) n += "not "; return n; }() + "x %}{% endif %}"), Error);
  std::string deep;
  for (int i = 0; i < 10000; ++i) deep += "{% if true %}";
  EXPECT_THROW(jinja::Template(deep + "x"), Error);
  // Runtime errors name the problem.
  try {
    jinja::Template("{{ 'a' + 1 }}").render({});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("chat template: unsupported operands for +: string and int"), std::string::npos) << e.what();
  }
}
