#include "train/chat_vocab.h"

#include "common/error.h"
#include "format/gguf_writer.h"

namespace mlamoe::train {

static const char* const kSpecials[] = {
    "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜User｜>", "<｜Assistant｜>", "<think>", "</think>",
    "<｜▁pad▁｜>",
};
static_assert(sizeof(kSpecials) / sizeof(kSpecials[0]) == ChatVocab::kSize - 256);

static std::string utf8(uint32_t cp) {
  std::string s;
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else if (cp < 0x800) {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    s += static_cast<char>(0xE0 | (cp >> 12));
    s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return s;
}

const std::vector<std::string>& ChatVocab::token_strings() {
  static const std::vector<std::string> tokens = [] {
    // GPT-2's byte-to-unicode: printable bytes stand for themselves, the others are
    // shifted to code points 256, 257, ... in byte order.
    std::vector<std::string> t(kSize);
    uint32_t next = 256;
    for (uint32_t b = 0; b < 256; ++b) {
      bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
      t[b] = utf8(printable ? b : next++);
    }
    for (int32_t i = 256; i < kSize; ++i) t[i] = kSpecials[i - 256];
    return t;
  }();
  return tokens;
}

std::string_view ChatVocab::special(int32_t id) { return id >= 256 && id < kSize ? kSpecials[id - 256] : ""; }

std::vector<int32_t> ChatVocab::encode(std::string_view text) {
  std::vector<int32_t> ids;
  size_t i = 0;
  while (i < text.size()) {
    int32_t matched = -1;
    if (text[i] == '<')
      for (int32_t s = 256; s < kSize; ++s)
        if (text.substr(i).starts_with(kSpecials[s - 256])) {
          matched = s;
          break;
        }
    if (matched >= 0) {
      ids.push_back(matched);
      i += std::string_view(kSpecials[matched - 256]).size();
    } else {
      ids.push_back(static_cast<unsigned char>(text[i++]));
    }
  }
  return ids;
}

std::string ChatVocab::decode(const std::vector<int32_t>& ids) {
  std::string s;
  for (int32_t id : ids) {
    if (id < 0 || id >= kSize) fail("token id ", id, " is outside the vocabulary (", kSize, ")");
    if (id < 256) s += static_cast<char>(id);
    else s += kSpecials[id - 256];
  }
  return s;
}

std::vector<int32_t> ChatVocab::chat_prompt(std::string_view user) {
  std::vector<int32_t> ids{kBos, kUser};
  for (int32_t t : encode(user)) ids.push_back(t);
  ids.push_back(kAssistant);
  return ids;
}

const char* ChatVocab::chat_template() {
  return "{{ bos_token }}"
         "{% for message in messages %}"
         "{% if message['role'] == 'system' %}{{ message['content'] }}"
         "{% elif message['role'] == 'user' %}{{ '<｜User｜>' + message['content'] }}"
         "{% elif message['role'] == 'assistant' %}{{ '<｜Assistant｜>' + message['content'] + '<｜end▁of▁sentence｜>' }}"
         "{% endif %}{% endfor %}"
         "{% if add_generation_prompt %}{{ '<｜Assistant｜>' }}{% endif %}";
}

void ChatVocab::write_gguf_metadata(GgufWriter& w) {
  w.set_string("tokenizer.ggml.model", "gpt2");
  w.set_string("tokenizer.ggml.pre", "gpt2");
  w.set_string_array("tokenizer.ggml.tokens", token_strings());
  std::vector<int32_t> types(kSize, 1);  // 1 normal, 3 control
  for (int32_t i = 256; i < kSize; ++i) types[i] = 3;
  w.set_array("tokenizer.ggml.token_type", GgufType::INT32, types.data(), types.size());
  w.set_string_array("tokenizer.ggml.merges", std::vector<std::string>{});
  w.set_u32("tokenizer.ggml.bos_token_id", kBos);
  w.set_u32("tokenizer.ggml.eos_token_id", kEos);
  w.set_u32("tokenizer.ggml.padding_token_id", kPad);
  w.set_bool("tokenizer.ggml.add_bos_token", true);
  w.set_bool("tokenizer.ggml.add_eos_token", false);
  w.set_string("tokenizer.chat_template", chat_template());
}

}  // namespace mlamoe::train
