#include "tokenizer/chat_template.h"

#include <filesystem>
#include <map>
#include <utility>

#include "common/error.h"
#include "common/files.h"
#include "tokenizer/jinja.h"
#include "tokenizer/tokenizer.h"

namespace mlamoe {

namespace {

// The official templates, as shipped in the models' tokenizer_config.json.

// DeepSeek-V2-Chat / V2-Lite-Chat.
const std::string kDeepSeek2 =
    R"({% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}{{ 'User: ' + message['content'] + '\n\n' }}{% elif message['role'] == 'assistant' %}{{ 'Assistant: ' + message['content'] + eos_token }}{% elif message['role'] == 'system' %}{{ message['content'] + '\n\n' }}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %})";

// DeepSeek-V3 (and V2.5, which uses the same markers): system prompt first, then
// <｜User｜>/<｜Assistant｜> turns, tool calls and outputs.
const std::string kDeepSeek3 =
    R"({% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}{% set ns = namespace(is_first=false, is_tool=false, is_output_first=true, system_prompt='') %}{%- for message in messages %}{%- if message['role'] == 'system' %}{% set ns.system_prompt = message['content'] %}{%- endif %}{%- endfor %}{{bos_token}}{{ns.system_prompt}}{%- for message in messages %}{%- if message['role'] == 'user' %}{%- set ns.is_tool = false -%}{{'<｜User｜>' + message['content']}}{%- endif %}{%- if message['role'] == 'assistant' and message['content'] is none %}{%- set ns.is_tool = false -%}{%- for tool in message['tool_calls']%}{%- if not ns.is_first %}{{'<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + '\n' + '```json' + '\n' + tool['function']['arguments'] + '\n' + '```' + '<｜tool▁call▁end｜>'}}{%- set ns.is_first = true -%}{%- else %}{{'\n' + '<｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + '\n' + '```json' + '\n' + tool['function']['arguments'] + '\n' + '```' + '<｜tool▁call▁end｜>'}}{{'<｜tool▁calls▁end｜><｜end▁of▁sentence｜>'}}{%- endif %}{%- endfor %}{%- endif %}{%- if message['role'] == 'assistant' and message['content'] is not none %}{%- if ns.is_tool %}{{'<｜tool▁outputs▁end｜>' + message['content'] + '<｜end▁of▁sentence｜>'}}{%- set ns.is_tool = false -%}{%- else %}{{'<｜Assistant｜>' + message['content'] + '<｜end▁of▁sentence｜>'}}{%- endif %}{%- endif %}{%- if message['role'] == 'tool' %}{%- set ns.is_tool = true -%}{%- if ns.is_output_first %}{{'<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>'}}{%- set ns.is_output_first = false %}{%- else %}{{'\n<｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>'}}{%- endif %}{%- endif %}{%- endfor -%}{% if ns.is_tool %}{{'<｜tool▁outputs▁end｜>'}}{% endif %}{% if add_generation_prompt and not ns.is_tool %}{{'<｜Assistant｜>'}}{% endif %})";

// DeepSeek-R1: like V3, but earlier answers keep only the text after </think>, and the
// generation prompt opens the reasoning block.
const std::string kR1 =
    R"({% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}{% set ns = namespace(is_first=false, is_tool=false, is_output_first=true, system_prompt='') %}{%- for message in messages %}{%- if message['role'] == 'system' %}{% set ns.system_prompt = message['content'] %}{%- endif %}{%- endfor %}{{bos_token}}{{ns.system_prompt}}{%- for message in messages %}{%- if message['role'] == 'user' %}{%- set ns.is_tool = false -%}{{'<｜User｜>' + message['content']}}{%- endif %}{%- if message['role'] == 'assistant' and message['content'] is none %}{%- set ns.is_tool = false -%}{%- for tool in message['tool_calls']%}{%- if not ns.is_first %}{{'<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + '\n' + '```json' + '\n' + tool['function']['arguments'] + '\n' + '```' + '<｜tool▁call▁end｜>'}}{%- set ns.is_first = true -%}{%- else %}{{'\n' + '<｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + '\n' + '```json' + '\n' + tool['function']['arguments'] + '\n' + '```' + '<｜tool▁call▁end｜>'}}{{'<｜tool▁calls▁end｜><｜end▁of▁sentence｜>'}}{%- endif %}{%- endfor %}{%- endif %}{%- if message['role'] == 'assistant' and message['content'] is not none %}{%- if ns.is_tool %}{{'<｜tool▁outputs▁end｜>' + message['content'] + '<｜end▁of▁sentence｜>'}}{%- set ns.is_tool = false -%}{%- else %}{% set content = message['content'] %}{% if '</think>' in content %}{% set content = content.split('</think>')[-1] %}{% endif %}{{'<｜Assistant｜>' + content + '<｜end▁of▁sentence｜>'}}{%- endif %}{%- endif %}{%- if message['role'] == 'tool' %}{%- set ns.is_tool = true -%}{%- if ns.is_output_first %}{{'<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>'}}{%- set ns.is_output_first = false %}{%- else %}{{'\n<｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>'}}{%- endif %}{%- endif %}{%- endfor -%}{% if ns.is_tool %}{{'<｜tool▁outputs▁end｜>'}}{% endif %}{% if add_generation_prompt and not ns.is_tool %}{{'<｜Assistant｜><think>\n'}}{% endif %})";

const std::map<std::string, const std::string*>& builtins() {
  static const std::map<std::string, const std::string*> m = {
      {"deepseek2", &kDeepSeek2}, {"deepseek3", &kDeepSeek3}, {"r1", &kR1}};
  return m;
}

// Names people use for the same formats.
std::string canonical(const std::string& name) {
  if (name == "deepseek-v2" || name == "deepseek-2" || name == "v2") return "deepseek2";
  if (name == "deepseek-v3" || name == "deepseek-3" || name == "v3" || name == "deepseek2.5" || name == "v2.5")
    return "deepseek3";
  if (name == "deepseek-r1" || name == "R1") return "r1";
  return name;
}

bool contains(const std::string& s, const char* what) { return s.find(what) != std::string::npos; }

// Small vocabularies may spell the markers with ASCII bars (<|User|>) instead of the
// full-width ones (<｜User｜>) of the official vocabularies: follow the vocabulary.
std::string adapt_markers(std::string src, const Tokenizer& tok) {
  if (tok.find_token("<｜User｜>") >= 0 || tok.find_token("<|User|>") < 0) return src;
  const std::string from = "｜", to = "|";
  for (size_t i = 0; (i = src.find(from, i)) != std::string::npos; i += to.size()) src.replace(i, from.size(), to);
  return src;
}

std::string token_text_or_empty(const Tokenizer& tok, int32_t id) { return id >= 0 ? tok.token_text(id) : ""; }

}  // namespace

ChatTemplate::ChatTemplate(std::string source, std::string bos_token, std::string eos_token, std::string name)
    : source_(std::move(source)), bos_(std::move(bos_token)), eos_(std::move(eos_token)), name_(std::move(name)) {
  tmpl_ = std::make_unique<jinja::Template>(source_);
  // Render an empty conversation's generation prompt to see whether it opens <think>.
  try {
    const std::string base = apply({{"user", "x"}}, false), with_prompt = apply({{"user", "x"}}, true);
    const std::string prompt = with_prompt.substr(std::min(base.size(), with_prompt.size()));
    const size_t t = prompt.rfind("<think>");
    opens_thinking_ = t != std::string::npos && prompt.find("</think>", t) == std::string::npos;
  } catch (const Error&) {
    opens_thinking_ = false;  // templates that insist on a system turn etc.
  }
}

ChatTemplate::~ChatTemplate() = default;
ChatTemplate::ChatTemplate(ChatTemplate&&) noexcept = default;
ChatTemplate& ChatTemplate::operator=(ChatTemplate&&) noexcept = default;

std::string ChatTemplate::apply(const std::vector<ChatMessage>& messages, bool add_generation_prompt) const {
  jinja::List list;
  for (const auto& m : messages)
    list.push_back(jinja::Value::make_dict({{"role", jinja::Value::string(m.role)}, {"content", jinja::Value::string(m.content)}}));
  std::map<std::string, jinja::Value> globals = {
      {"messages", jinja::Value::make_list(std::move(list))},
      {"add_generation_prompt", jinja::Value::boolean(add_generation_prompt)},
      {"bos_token", jinja::Value::string(bos_)},
      {"eos_token", jinja::Value::string(eos_)},
  };
  return tmpl_->render(globals);
}

std::vector<std::string> ChatTemplate::builtin_names() {
  std::vector<std::string> names;
  for (const auto& [n, _] : builtins()) names.push_back(n);
  return names;
}

const std::string* ChatTemplate::builtin_source(const std::string& name) {
  auto it = builtins().find(canonical(name));
  return it == builtins().end() ? nullptr : it->second;
}

std::string ChatTemplate::recognize(const std::string& s) {
  if (contains(s, "'Assistant: ' + message['content'] + eos_token")) return "deepseek2";
  const bool markers = (contains(s, "<｜User｜>") && contains(s, "<｜Assistant｜>")) ||
                       (contains(s, "<|User|>") && contains(s, "<|Assistant|>"));
  if (!markers) return "";
  if (contains(s, "<think>")) return "r1";
  return "deepseek3";
}

ChatTemplate ChatTemplate::for_model(const Tokenizer& tok, const std::string& spec) {
  const std::string bos = token_text_or_empty(tok, tok.bos()), eos = token_text_or_empty(tok, tok.eos());
  if (!spec.empty()) {
    if (const std::string* src = builtin_source(spec))
      return ChatTemplate(adapt_markers(*src, tok), bos, eos, canonical(spec));
    if (std::filesystem::is_regular_file(spec)) {
      const std::string src = read_file(spec);
      const std::string family = recognize(src);
      return ChatTemplate(src, bos, eos, spec + (family.empty() ? "" : " (" + family + ")"));
    }
    std::string names;
    for (const auto& n : builtin_names()) names += (names.empty() ? "" : ", ") + n;
    fail("--chat-template '", spec, "' is neither a built-in template (", names, ") nor a readable file");
  }
  const std::string& own = tok.chat_template();
  if (!own.empty()) {
    const std::string family = recognize(own);
    try {
      return ChatTemplate(own, bos, eos, "gguf" + (family.empty() ? "" : " (" + family + ")"));
    } catch (const Error& e) {
      // A template beyond our Jinja subset: use the built-in copy of its family.
      if (family.empty()) fail("the model's chat template cannot be used (", e.what(), "); pass --chat-template NAME|FILE");
      return ChatTemplate(adapt_markers(*builtin_source(family), tok), bos, eos, family);
    }
  }
  const bool has_markers = tok.find_token("<｜Assistant｜>") >= 0 || tok.find_token("<|Assistant|>") >= 0;
  const std::string family = !has_markers ? "deepseek2" : tok.find_token("<think>") >= 0 ? "r1" : "deepseek3";
  return ChatTemplate(adapt_markers(*builtin_source(family), tok), bos, eos, family);
}

}  // namespace mlamoe
