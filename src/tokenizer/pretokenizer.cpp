#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer/pretokenizer.h"

#include <pcre2.h>

#include <algorithm>
#include <utility>

#include "common/error.h"
#include "tokenizer/utf8.h"

namespace mlamoe {

namespace {

// The regex sequences, in PCRE2 syntax, as written in each model's tokenizer.json.
struct PreTokenizerSpec {
  const char* name;
  std::vector<const char*> patterns;
};

// GPT-2's original pattern (tokenizer.ggml.pre = "gpt2").
constexpr const char* kGpt2 = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S))";

const std::vector<PreTokenizerSpec>& specs() {
  static const std::vector<PreTokenizerSpec> all = {
      // DeepSeek LLM / V2 / V2.5: newlines, Latin/Greek/Cyrillic... letters, ASCII and
      // full-width punctuation, trailing whitespace, CJK runs, then single digits
      // (the `Digits(individual_digits = true)` step).
      {"deepseek-llm",
       {R"([\r\n])",
        // "Cased" letters of many scripts. Written as code points: in literal form some
        // of them (U+1F7D, U+1FBE, U+2126, U+212A ...) are silently folded by Unicode
        // normalization into other characters, which would change the ranges.
        R"(\s?[A-Za-z\x{B5}\x{C0}-\x{D6}\x{D8}-\x{F6}\x{F8}-\x{1BA}\x{1BC}-\x{1BF}\x{1C4}-\x{293}\x{295}-)"
        R"(\x{2AF}\x{370}-\x{373}\x{376}\x{377}\x{37B}-\x{37D}\x{37F}\x{386}\x{388}-\x{38A}\x{38C}\x{38E}-)"
        R"(\x{3A1}\x{3A3}-\x{3F5}\x{3F7}-\x{481}\x{48A}-\x{52F}\x{531}-\x{556}\x{10A0}-\x{10C5}\x{13A0}-)"
        R"(\x{13F5}\x{13F8}-\x{13FD}\x{1C90}-\x{1CBA}\x{1CBD}-\x{1CBF}\x{1D00}-\x{1D2B}\x{1D6B}-\x{1D77})"
        R"(\x{1D79}-\x{1D9A}\x{1E00}-\x{1F15}\x{1F18}-\x{1F1D}\x{1F20}-\x{1F45}\x{1F48}-\x{1F4D}\x{1F50}-)"
        R"(\x{1F57}\x{1F59}\x{1F5B}\x{1F5D}\x{1F5F}-\x{1F7D}\x{1F80}-\x{1FB4}\x{1FB6}-\x{1FBC}\x{1FBE})"
        R"(\x{1FC2}-\x{1FC4}\x{1FC6}-\x{1FCC}\x{1FD0}-\x{1FD3}\x{1FD6}-\x{1FDB}\x{1FE0}-\x{1FEC}\x{1FF2}-)"
        R"(\x{1FF4}\x{1FF6}-\x{1FFC}\x{2102}\x{2107}\x{210A}-\x{2113}\x{2115}\x{2119}-\x{211D}\x{2124})"
        R"(\x{2126}\x{2128}\x{212A}-\x{212D}\x{212F}-\x{2134}\x{2139}\x{213C}-\x{213F}\x{2145}-\x{2149})"
        R"(\x{214E}\x{2183}\x{2184}\x{2C00}-\x{2C7B}\x{2C7E}-\x{2CE4}\x{2CEB}-\x{2CEE}\x{2CF2}\x{2CF3})"
        R"(\x{A640}-\x{A66D}\x{A680}-\x{A69B}\x{A722}-\x{A76F}\x{A771}-\x{A787}\x{A78B}-\x{A78E}\x{AB70}-)"
        R"(\x{ABBF}\x{FB00}-\x{FB06}\x{FB13}-\x{FB17}\x{FF21}-\x{FF3A}\x{FF41}-\x{FF5A}\x{10400}-\x{1044F})"
        R"(\x{104B0}-\x{104D3}\x{104D8}-\x{104FB}\x{10C80}-\x{10CB2}\x{10CC0}-\x{10CF2}\x{118A0}-\x{118DF})"
        R"(\x{1E900}-\x{1E943}]+)",
        R"(\s?[!-/:-~\x{FF01}-\x{FF0F}\x{FF1A}-\x{FF5E}\x{2018}-\x{201F}\x{3000}-\x{3002}]+)",  // ASCII/full-width punctuation
        R"(\s+$)",
        R"([\x{4E00}-\x{9FA5}\x{0800}-\x{4E00}\x{AC00}-\x{D7FF}]+)",  // 一-龥, U+0800-一, 가-퟿
        R"(\p{N})"}},
      // DeepSeek Coder: the same idea with Unicode classes.
      {"deepseek-coder",
       {R"([\r\n])", R"(\s?\p{L}+)", R"(\s?\p{P}+)", R"([\x{4E00}-\x{9FA5}\x{0800}-\x{4E00}\x{AC00}-\x{D7FF}]+)", R"(\p{N})"}},
      // DeepSeek V3 / R1: numbers in groups of up to three, CJK and kana runs, then a
      // GPT-4-style pattern.
      {"deepseek-v3",
       {R"(\p{N}{1,3})",
        R"([\x{4E00}-\x{9FA5}\x{3040}-\x{309F}\x{30A0}-\x{30FF}]+)",  // CJK, hiragana, katakana
        R"([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"}},
      {"gpt2", {kGpt2}},
      // llama.cpp's pattern for BPE vocabularies whose GGUF has no tokenizer.ggml.pre.
      {"default", {R"([\p{P}\$\+<=>\^~\|]+)", kGpt2, R"(\p{N}+)", R"([0-9][0-9][0-9])"}},
  };
  return all;
}

// Names other tools write for the same pre-tokenizers.
std::string canonical_name(const std::string& name) {
  if (name == "deepseek3-llm" || name == "deepseek-v3-llm") return "deepseek-v3";
  if (name.empty()) return "default";
  return name;
}

}  // namespace

struct PreTokenizer::Regex {
  pcre2_code* code = nullptr;
  std::string pattern;
  ~Regex() {
    if (code) pcre2_code_free(code);
  }
};

PreTokenizer::PreTokenizer(const std::string& requested) : name_(canonical_name(requested)) {
  const PreTokenizerSpec* spec = nullptr;
  for (const auto& s : specs())
    if (name_ == s.name) spec = &s;
  if (!spec) {
    std::string known;
    for (const auto& n : known_names()) known += (known.empty() ? "" : ", ") + n;
    fail("unknown pre-tokenizer '", requested, "' (tokenizer.ggml.pre); known: ", known);
  }
  for (const char* pattern : spec->patterns) {
    auto re = std::make_unique<Regex>();
    re->pattern = pattern;
    int err = 0;
    PCRE2_SIZE err_offset = 0;
    // UCP: \s, \w and \d follow Unicode properties like the Rust/Oniguruma engines do.
    re->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern), PCRE2_ZERO_TERMINATED,
                             PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY, &err, &err_offset, nullptr);
    if (!re->code) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(err, msg, sizeof msg);
      fail("pre-tokenizer ", name_, ": regex does not compile at ", err_offset, ": ", reinterpret_cast<char*>(msg));
    }
    pcre2_jit_compile(re->code, PCRE2_JIT_COMPLETE);  // falls back to the interpreter if JIT is unavailable
    regexes_.push_back(std::move(re));
  }
}

PreTokenizer::~PreTokenizer() = default;

std::vector<std::string> PreTokenizer::known_names() {
  std::vector<std::string> names;
  for (const auto& s : specs()) names.push_back(s.name);
  return names;
}

namespace {
struct MatchState {
  pcre2_match_data* data = nullptr;
  pcre2_match_context* ctx = nullptr;
  pcre2_jit_stack* stack = nullptr;
  MatchState() {
    data = pcre2_match_data_create(4, nullptr);
    ctx = pcre2_match_context_create(nullptr);
    stack = pcre2_jit_stack_create(32 * 1024, 1024 * 1024, nullptr);
    pcre2_jit_stack_assign(ctx, nullptr, stack);
  }
  ~MatchState() {
    pcre2_match_data_free(data);
    pcre2_match_context_free(ctx);
    pcre2_jit_stack_free(stack);
  }
};
}  // namespace

void PreTokenizer::split(std::string_view text, std::vector<TextSpan>& out) const {
  thread_local MatchState state;
  std::vector<TextSpan> pieces{{0, static_cast<uint32_t>(text.size())}}, next;
  if (text.empty()) return;
  for (const auto& re : regexes_) {
    next.clear();
    next.reserve(pieces.size() * 2);
    for (const TextSpan piece : pieces) {
      // Each piece is its own subject: `$` and look-aheads see the piece's end.
      const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data() + piece.offset);
      PCRE2_SIZE start = 0, emitted = 0;
      while (start < piece.length) {
        const int rc = pcre2_match(re->code, subject, piece.length, start, PCRE2_NO_UTF_CHECK, state.data, state.ctx);
        if (rc < 0) {
          if (rc != PCRE2_ERROR_NOMATCH) fail("pre-tokenizer ", name_, ": regex match failed (", rc, ")");
          break;
        }
        const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(state.data);
        const PCRE2_SIZE m0 = ov[0], m1 = ov[1];
        if (m1 == m0) {  // empty match: step over one character
          start = m0 + utf8::sequence_length(static_cast<uint8_t>(text[piece.offset + m0]));
          continue;
        }
        if (m0 > emitted) next.push_back({piece.offset + static_cast<uint32_t>(emitted), static_cast<uint32_t>(m0 - emitted)});
        next.push_back({piece.offset + static_cast<uint32_t>(m0), static_cast<uint32_t>(m1 - m0)});
        emitted = start = m1;
      }
      if (emitted < piece.length)
        next.push_back({piece.offset + static_cast<uint32_t>(emitted), static_cast<uint32_t>(piece.length - emitted)});
    }
    std::swap(pieces, next);
  }
  out.insert(out.end(), pieces.begin(), pieces.end());
}

}  // namespace mlamoe
