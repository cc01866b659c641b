// Pre-tokenization: the text is cut into pieces ("pre-tokens") by a sequence of
// regular expressions before BPE runs inside each piece. Like Hugging Face's
// `Sequence` of `Split(behavior = Isolated)` pre-tokenizers, each regex is applied to
// every piece produced by the previous ones, and both the matches and the text between
// them become pieces. The regexes are the ones of the models' tokenizer.json files, run
// with PCRE2 in UTF + Unicode-property mode, JIT-compiled.
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace mlamoe {

struct TextSpan {
  uint32_t offset, length;
};

class PreTokenizer {
 public:
  // name: the GGUF tokenizer.ggml.pre value ("deepseek-llm", "deepseek-coder",
  // "deepseek-v3", "gpt2", "default"). Throws Error listing the known names.
  explicit PreTokenizer(const std::string& name);
  ~PreTokenizer();
  PreTokenizer(const PreTokenizer&) = delete;
  PreTokenizer& operator=(const PreTokenizer&) = delete;

  const std::string& name() const { return name_; }
  static std::vector<std::string> known_names();

  // Splits valid UTF-8 `text` into pieces (appended to `out`, offsets relative to
  // `text`). Thread-safe: per-call match state.
  void split(std::string_view text, std::vector<TextSpan>& out) const;

 private:
  struct Regex;
  std::string name_;
  std::vector<std::unique_ptr<Regex>> regexes_;
};

}  // namespace mlamoe
