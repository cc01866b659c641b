// The tiny model's tokenizer: one token per byte plus DeepSeek's control tokens. It is
// written into the exported GGUF as a standard gpt2-style vocabulary (the 256 GPT-2
// byte-to-unicode strings, control tokens of type 3, no merges) with a DeepSeek-style
// chat template, so any byte-level BPE tokenizer reproduces exactly these ids.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace mlamoe {
class GgufWriter;
}

namespace mlamoe::train {

class ChatVocab {
 public:
  static constexpr int32_t kBos = 256, kEos = 257, kUser = 258, kAssistant = 259, kThink = 260, kEndThink = 261,
                           kPad = 262, kSize = 263;
  // Token strings in id order (GPT-2 byte-to-unicode for 0..255, then the control tokens).
  static const std::vector<std::string>& token_strings();
  static std::string_view special(int32_t id);  // "<｜User｜>" ... ("" for byte tokens)

  // Text to ids; control-token strings in the text become their ids.
  static std::vector<int32_t> encode(std::string_view text);
  // Ids to text; control tokens are rendered as their strings.
  static std::string decode(const std::vector<int32_t>& ids);
  // BOS <｜User｜>question<｜Assistant｜> — the generation prompt of the chat template.
  static std::vector<int32_t> chat_prompt(std::string_view user);
  static const char* chat_template();  // Jinja, DeepSeek-style

  static void write_gguf_metadata(GgufWriter& w);  // tokenizer.ggml.* and tokenizer.chat_template
};

}  // namespace mlamoe::train
