// A byte-level BPE tokenizer built from GGUF metadata (tokenizer.ggml.model = "gpt2"),
// as used by every DeepSeek model: special tokens are cut out first, the remaining text
// is pre-tokenized by the model's regexes, and BPE merges run inside each pre-token on
// its bytes. Decoding maps tokens back to exact bytes.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer/pretokenizer.h"

namespace mlamoe {

class GgufFile;

// tokenizer.ggml.token_type values (llama.cpp's llama_token_type).
enum class TokenType : int32_t {
  Undefined = 0, Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6,
};

struct TokenizerOptions {
  bool add_special = true;    // prepend BOS / append EOS as the vocabulary's add_*_token says
  bool parse_special = true;  // recognise control tokens (<｜begin▁of▁sentence｜>...) in text
};

class Tokenizer {
 public:
  // Reads tokenizer.ggml.* from `gguf`; throws Error naming the file and field if the
  // file has no tokenizer, is not byte-level BPE, or is inconsistent.
  static std::unique_ptr<Tokenizer> from_gguf(const GgufFile& gguf);
  static std::unique_ptr<Tokenizer> from_file(const std::string& path);

  // The in-memory description (tests build small vocabularies with it).
  struct Vocab {
    std::vector<std::string> tokens;  // GPT-2 byte-unicode text, as stored in GGUF
    std::vector<TokenType> types;     // empty: all Normal
    std::vector<std::string> merges;  // "left right", highest priority first
    std::string pre = "default";
    int32_t bos = -1, eos = -1, pad = -1, eot = -1;
    bool add_bos = false, add_eos = false;
    std::string chat_template;
  };
  explicit Tokenizer(Vocab vocab, std::string source = "<vocab>");
  ~Tokenizer();

  std::vector<int32_t> encode(std::string_view text, const TokenizerOptions& opts = {}) const;

  // Bytes of one token. Control tokens render as their text only if `special`.
  std::string_view token_bytes(int32_t id, bool special = false) const;
  std::string decode(const std::vector<int32_t>& ids, bool special = false) const;

  int32_t n_vocab() const { return static_cast<int32_t>(text_.size()); }
  const std::string& token_text(int32_t id) const { return text_.at(id); }
  TokenType token_type(int32_t id) const { return type_.at(id); }
  int32_t find_token(std::string_view text) const;  // -1 if absent
  bool is_control(int32_t id) const;
  // End of generation: EOS, EOT, or a control token such as <｜end▁of▁sentence｜>.
  bool is_end_of_generation(int32_t id) const;

  int32_t bos() const { return bos_; }
  int32_t eos() const { return eos_; }
  int32_t pad() const { return pad_; }
  bool add_bos() const { return add_bos_; }
  bool add_eos() const { return add_eos_; }
  const std::string& pre_tokenizer_name() const { return pre_->name(); }
  const std::string& chat_template() const { return chat_template_; }
  size_t n_merges() const { return merge_rank_.size(); }

  // BPE of one pre-token's bytes, appended to out (exposed for the reference test).
  void bpe(std::string_view bytes, std::vector<int32_t>& out) const;
  // Straightforward O(n^2) BPE: repeatedly merge the best-ranked adjacent pair.
  void bpe_reference(std::string_view bytes, std::vector<int32_t>& out) const;

 private:
  struct SpecialMatcher;
  void encode_plain(std::string_view text, std::vector<int32_t>& out) const;

  std::string source_;
  std::vector<std::string> text_;
  std::vector<TokenType> type_;
  std::vector<std::string> bytes_;  // decoded bytes of every token (raw text for specials)
  std::unordered_map<std::string_view, int32_t> text_to_id_;
  int32_t byte_token_[256];
  // (left id << 32 | right id) -> (rank << 32 | merged id)
  std::unordered_map<uint64_t, uint64_t> merge_rank_;
  std::unique_ptr<PreTokenizer> pre_;
  std::unique_ptr<SpecialMatcher> special_;
  int32_t bos_ = -1, eos_ = -1, pad_ = -1, eot_ = -1;
  bool add_bos_ = false, add_eos_ = false;
  std::string chat_template_;
};

// Turns a stream of tokens into text without ever splitting a UTF-8 character:
// bytes of an incomplete character are held back until the rest arrives.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tok, bool special = false) : tok_(tok), special_(special) {}
  std::string push(int32_t id);  // the text that became complete
  std::string flush();           // whatever is held back (possibly invalid UTF-8)
  void reset() { pending_.clear(); }

 private:
  const Tokenizer& tok_;
  bool special_;
  std::string pending_;
};

}  // namespace mlamoe
