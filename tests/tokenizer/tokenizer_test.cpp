// The tokenizer against the reference ids of ../shared/tokenizer (produced by the
// models' own Hugging Face tokenizer), plus round trips, the fast-vs-reference BPE
// check, small hand-built vocabularies and bad input.
#include <gtest/gtest.h>

#include <filesystem>
#include <random>
#include <fstream>
#include <sstream>

#include "common/error.h"
#include "format/gguf.h"
#include "test_paths.h"
#include "tokenizer/sample_text.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"
#include "tokenizer_fixtures.h"

using namespace mlamoe;

namespace {

std::string vocab_path() { return test::shared_dir() + "/tokenizer/ggml-vocab-deepseek-llm.gguf"; }

const Tokenizer& deepseek_llm() {
  static std::unique_ptr<Tokenizer> tok = Tokenizer::from_file(vocab_path());
  return *tok;
}

struct VocabCase {
  size_t index;
  std::string text;
  std::vector<int32_t> ids;
};

// The llama.cpp test format: inputs separated by "\n__ggml_vocab_test__\n", one line
// of space-separated ids per input in .out.
std::vector<VocabCase> load_cases(const std::string& base) {
  std::vector<VocabCase> cases;
  std::ifstream inp(base + ".inp", std::ios::binary), outp(base + ".out");
  if (!inp || !outp) return cases;
  std::stringstream ss;
  ss << inp.rdbuf();
  const std::string raw = ss.str(), sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> texts;
  for (size_t pos = 0; pos < raw.size();) {
    const size_t next = raw.find(sep, pos);
    if (next == std::string::npos) {
      texts.push_back(raw.substr(pos));
      break;
    }
    texts.push_back(raw.substr(pos, next - pos));
    pos = next + sep.size();
  }
  std::string line;
  for (size_t i = 0; i < texts.size() && std::getline(outp, line); ++i) {
    std::istringstream ids(line);
    VocabCase c{i, texts[i], {}};
    for (int32_t id; ids >> id;) c.ids.push_back(id);
    cases.push_back(std::move(c));
  }
  return cases;
}

std::vector<VocabCase> deepseek_llm_cases() { return load_cases(vocab_path()); }

}  // namespace

TEST(TokenizerShared, FixtureHasAllCases) {
  ASSERT_TRUE(std::filesystem::exists(vocab_path())) << vocab_path();
  EXPECT_EQ(deepseek_llm_cases().size(), 46u);
}

class DeepSeekLlmVocab : public ::testing::TestWithParam<VocabCase> {};

TEST_P(DeepSeekLlmVocab, MatchesReferenceIds) {
  const VocabCase& c = GetParam();
  const auto ids = deepseek_llm().encode(c.text, {.add_special = false, .parse_special = true});
  EXPECT_EQ(ids, c.ids) << "input: '" << c.text << "'";
  EXPECT_EQ(deepseek_llm().decode(ids), c.text);
}

INSTANTIATE_TEST_SUITE_P(Shared, DeepSeekLlmVocab, ::testing::ValuesIn(deepseek_llm_cases()),
                         [](const auto& info) { return "case" + std::to_string(info.param.index); });

TEST(TokenizerShared, MetadataIsRead) {
  const Tokenizer& t = deepseek_llm();
  EXPECT_EQ(t.n_vocab(), 102400);
  EXPECT_EQ(t.pre_tokenizer_name(), "deepseek-llm");
  EXPECT_EQ(t.bos(), 100000);
  EXPECT_EQ(t.eos(), 100001);
  EXPECT_TRUE(t.add_bos());
  EXPECT_FALSE(t.add_eos());
  EXPECT_GT(t.n_merges(), 99000u);
  const auto with_bos = t.encode("Hello world");
  ASSERT_FALSE(with_bos.empty());
  EXPECT_EQ(with_bos.front(), 100000);
  EXPECT_EQ(with_bos, (std::vector<int32_t>{100000, 17464, 1843}));
}

TEST(TokenizerShared, ControlTokensOnlyWhenParsingSpecial) {
  const Tokenizer& t = deepseek_llm();
  const std::string text = "<｜begin▁of▁sentence｜>Hi<｜end▁of▁sentence｜>";
  const auto special = t.encode(text, {.add_special = false, .parse_special = true});
  ASSERT_EQ(special.size(), 3u);
  EXPECT_EQ(special.front(), 100000);
  EXPECT_EQ(special.back(), 100001);
  const auto plain = t.encode(text, {.add_special = false, .parse_special = false});
  EXPECT_GT(plain.size(), 3u);
  for (int32_t id : plain) EXPECT_FALSE(t.is_control(id));
  EXPECT_EQ(t.decode(plain), text);
  // Control tokens print only when asked to.
  EXPECT_EQ(t.decode(special), "Hi");
  EXPECT_EQ(t.decode(special, true), text);
  EXPECT_TRUE(t.is_end_of_generation(100001));
}

TEST(TokenizerShared, UserDefinedTokensAreMatchedBeforeBpe) {
  const Tokenizer& t = deepseek_llm();
  // 'ø' (100002) is a user-defined token: it is cut out of the text even without
  // parse_special, like llama.cpp and HF's added tokens.
  const auto ids = t.encode("søster", {.add_special = false, .parse_special = false});
  EXPECT_NE(std::find(ids.begin(), ids.end(), 100002), ids.end());
  EXPECT_EQ(t.decode(ids), "søster");
}

TEST(TokenizerShared, InvalidUtf8BecomesReplacementCharacter) {
  const Tokenizer& t = deepseek_llm();
  const TokenizerOptions o{.add_special = false, .parse_special = true};
  // Each byte that does not start a well-formed sequence becomes U+FFFD (llama.cpp).
  EXPECT_EQ(t.encode("a\xff" "b", o), t.encode("a\xEF\xBF\xBD" "b", o));
  EXPECT_EQ(t.encode("\xE4\xB8", o), t.encode("\xEF\xBF\xBD\xEF\xBF\xBD", o));
  EXPECT_EQ(t.encode("x\x80\x80y", o), t.encode("x\xEF\xBF\xBD\xEF\xBF\xBDy", o));
  // An overlong form is read as the code point it spells.
  EXPECT_EQ(t.encode("\xC1\x81", o), t.encode("A", o));
}

TEST(TokenizerShared, LongMixedTextRoundTrips) {
  const Tokenizer& t = deepseek_llm();
  for (uint32_t seed : {1u, 2u, 3u}) {
    const std::string text = mixed_language_sample(200 * 1024, seed);
    const auto ids = t.encode(text, {.add_special = false, .parse_special = true});
    EXPECT_EQ(t.decode(ids), text) << "seed " << seed;
    // Compression sanity: a real BPE vocabulary merges most bytes.
    EXPECT_LT(ids.size(), text.size() / 2);
  }
}

TEST(TokenizerShared, FastBpeAgreesWithReferenceBpe) {
  const Tokenizer& t = deepseek_llm();
  const std::string text = mixed_language_sample(100 * 1024, 7);
  PreTokenizer pre("deepseek-llm");
  std::vector<TextSpan> pieces;
  pre.split(text, pieces);
  ASSERT_GT(pieces.size(), 1000u);
  size_t covered = 0;
  for (const auto& p : pieces) {
    const std::string_view piece = std::string_view(text).substr(p.offset, p.length);
    std::vector<int32_t> fast, slow;
    t.bpe(piece, fast);
    t.bpe_reference(piece, slow);
    ASSERT_EQ(fast, slow) << "piece '" << piece << "'";
    EXPECT_EQ(p.offset, covered);
    covered += p.length;
  }
  EXPECT_EQ(covered, text.size());  // the pieces tile the text
}

TEST(TokenizerShared, ArbitraryBytesNeverBreakIt) {
  const Tokenizer& t = deepseek_llm();
  std::mt19937 rng(42);
  for (int round = 0; round < 50; ++round) {
    std::string bytes(1 + rng() % 2000, '\0');
    for (auto& c : bytes) c = static_cast<char>(rng() % 4 == 0 ? rng() % 256 : "a \xe4\xb8\xad<|>0\n"[rng() % 11]);
    const auto ids = t.encode(bytes, {.add_special = false, .parse_special = true});
    for (int32_t id : ids) ASSERT_TRUE(id >= 0 && id < t.n_vocab());
    EXPECT_EQ(t.decode(ids, true), utf8::sanitize(bytes));
  }
}

TEST(TokenizerShared, StreamDecoderNeverSplitsACharacter) {
  const Tokenizer& t = deepseek_llm();
  const std::string text = mixed_language_sample(20 * 1024, 11) + "🦙";
  const auto ids = t.encode(text, {.add_special = false});
  StreamDecoder stream(t);
  std::string joined;
  size_t held_back = 0;
  for (int32_t id : ids) {
    const std::string piece = stream.push(id);
    EXPECT_TRUE(utf8::is_valid(piece)) << "token " << id;
    if (piece.empty() && !t.token_bytes(id).empty()) ++held_back;
    joined += piece;
  }
  joined += stream.flush();
  EXPECT_EQ(joined, text);
  EXPECT_GT(held_back, 0u);  // the text has characters split across tokens
}

TEST(PreTokenizer, UnknownNameListsKnownOnes) {
  try {
    PreTokenizer p("qwen9");
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("qwen9"), std::string::npos) << msg;
    for (const char* n : {"deepseek-llm", "deepseek-coder", "deepseek-v3", "gpt2", "default"})
      EXPECT_NE(msg.find(n), std::string::npos) << msg;
  }
}

TEST(PreTokenizer, DeepSeekV3SplitsDigitsInThreesAndCjkRuns) {
  PreTokenizer p("deepseek-v3");
  const std::string text = "1234567 你好世界 Hello, world!";
  std::vector<TextSpan> spans;
  p.split(text, spans);
  std::vector<std::string> pieces;
  for (auto s : spans) pieces.push_back(text.substr(s.offset, s.length));
  EXPECT_EQ(pieces, (std::vector<std::string>{"123", "456", "7", " ", "你好世界", " Hello", ",", " world", "!"}));
}

TEST(PreTokenizer, DeepSeekCoderSplitsLettersPunctuationDigits) {
  PreTokenizer p("deepseek-coder");
  const std::string text = "int x=42;\n";
  std::vector<TextSpan> spans;
  p.split(text, spans);
  std::vector<std::string> pieces;
  for (auto s : spans) pieces.push_back(text.substr(s.offset, s.length));
  EXPECT_EQ(pieces, (std::vector<std::string>{"int", " x", "=", "4", "2", ";", "\n"}));
}

// A byte-level vocabulary with no merges and a few control tokens, like the tiny model
// the project trains: every byte is one token, control tokens are recognised.
TEST(TinyVocab, EmptyMergesAndControlTokens) {
  Tokenizer t(test::tiny_byte_vocab());
  const TokenizerOptions o{.add_special = false, .parse_special = true};
  const std::string text = "<|User|>你好 world<|Assistant|><think>hm</think>ok";
  const auto ids = t.encode(text, o);
  const int32_t user = t.find_token("<|User|>"), think = t.find_token("<think>");
  ASSERT_GE(user, 256);
  ASSERT_GE(think, 256);
  EXPECT_EQ(ids.front(), user);
  EXPECT_NE(std::find(ids.begin(), ids.end(), think), ids.end());
  // "你好 world" is 12 bytes -> 12 byte tokens.
  EXPECT_EQ(ids[1], static_cast<int32_t>(static_cast<uint8_t>("你"[0])));
  EXPECT_EQ(std::count_if(ids.begin(), ids.end(), [](int32_t id) { return id < 256; }), 12 + 2 + 2);
  EXPECT_EQ(t.decode(ids, true), text);
  const auto with_bos = t.encode("a");
  EXPECT_EQ(with_bos, (std::vector<int32_t>{t.bos(), 'a'}));
}

TEST(TinyVocab, FewMergesApplyInRankOrder) {
  auto v = test::tiny_byte_vocab();
  // " the": "Ġ t" (rank 0) makes "Ġt", then "Ġt h" (rank 2) beats nothing else, so the
  // lower-ranked "t h" never applies and "th e" cannot: the result is "Ġth" + "e".
  for (const char* t : {"Ġt", "th", "Ġth", "the"}) {
    v.tokens.push_back(t);
    v.types.push_back(TokenType::Normal);
  }
  v.merges = {"Ġ t", "t h", "Ġt h", "th e"};
  Tokenizer t(v);
  const auto ids = t.encode(" the", {.add_special = false});
  ASSERT_EQ(ids.size(), 2u);
  EXPECT_EQ(t.token_text(ids[0]), "Ġth");
  EXPECT_EQ(t.token_text(ids[1]), "e");
  std::vector<int32_t> slow;
  t.bpe_reference(" the", slow);
  EXPECT_EQ(ids, slow);
}

TEST(TokenizerErrors, GgufWithoutTokenizer) {
  const auto bytes = test::gguf_with_metadata({{"general.architecture", "deepseek2"}});
  auto gguf = GgufFile::from_memory(bytes.data(), bytes.size(), "no-vocab.gguf");
  try {
    Tokenizer::from_gguf(*gguf);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no-vocab.gguf: no tokenizer data"), std::string::npos) << e.what();
  }
}

TEST(TokenizerErrors, GgufWithUnknownPreTokenizer) {
  const auto bytes = test::gguf_with_metadata({{"tokenizer.ggml.model", "gpt2"}, {"tokenizer.ggml.pre", "nonsense"}},
                                              {"a", "b"});
  auto gguf = GgufFile::from_memory(bytes.data(), bytes.size(), "bad-pre.gguf");
  try {
    Tokenizer::from_gguf(*gguf);
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("nonsense"), std::string::npos) << msg;
    EXPECT_NE(msg.find("deepseek-v3"), std::string::npos) << msg;
  }
}

TEST(TokenizerErrors, NonBpeModelIsRejected) {
  const auto bytes = test::gguf_with_metadata({{"tokenizer.ggml.model", "llama"}}, {"a"});
  auto gguf = GgufFile::from_memory(bytes.data(), bytes.size(), "spm.gguf");
  EXPECT_THROW(Tokenizer::from_gguf(*gguf), Error);
}
