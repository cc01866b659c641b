// Chat templates: turn a conversation into the prompt text a DeepSeek chat model was
// trained on. The GGUF's own tokenizer.chat_template is rendered with the Jinja subset
// (src/tokenizer/jinja.h); the official DeepSeek templates are recognized by their
// markers, and built-in copies of them (deepseek2, deepseek3, r1) serve models without
// a template or override it (--chat-template NAME|FILE).
#pragma once
#include <memory>
#include <string>
#include <vector>

namespace mlamoe {

namespace jinja {
class Template;
}
class Tokenizer;

struct ChatMessage {
  std::string role;  // "system", "user", "assistant"
  std::string content;
};

class ChatTemplate {
 public:
  // `spec`: "" (the model's template, else a built-in chosen from its vocabulary), a
  // built-in name, or a path to a Jinja file. Throws Error naming the problem.
  static ChatTemplate for_model(const Tokenizer& tok, const std::string& spec = "");
  // A template from source text, with explicit BOS/EOS token text (tests).
  ChatTemplate(std::string source, std::string bos_token, std::string eos_token, std::string name = "custom");
  ~ChatTemplate();
  ChatTemplate(ChatTemplate&&) noexcept;
  ChatTemplate& operator=(ChatTemplate&&) noexcept;

  std::string apply(const std::vector<ChatMessage>& messages, bool add_generation_prompt = true) const;

  const std::string& name() const { return name_; }
  const std::string& source() const { return source_; }
  // The generation prompt opens a reasoning block ("<｜Assistant｜><think>\n", R1): the
  // model's output starts inside <think>...</think>.
  bool opens_thinking() const { return opens_thinking_; }

  static std::vector<std::string> builtin_names();
  static const std::string* builtin_source(const std::string& name);  // nullptr if unknown
  // Which official DeepSeek template `source` is ("deepseek2", "deepseek3", "r1"), or "".
  static std::string recognize(const std::string& source);

 private:
  std::string source_, bos_, eos_, name_;
  std::unique_ptr<jinja::Template> tmpl_;
  bool opens_thinking_ = false;
};

}  // namespace mlamoe
