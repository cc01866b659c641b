// `mlamoe tokenize` / `mlamoe detokenize` end to end, on the shared DeepSeek LLM vocabulary.
#include <gtest/gtest.h>

#include "test_paths.h"

using mlamoe::test::run_mlamoe;

namespace {
std::string vocab() { return mlamoe::test::shared_dir() + "/tokenizer/ggml-vocab-deepseek-llm.gguf"; }
}  // namespace

TEST(CliTokenize, PrintsIdsWithBos) {
  auto r = run_mlamoe({"tokenize", "-m", vocab(), "-p", "Hello world"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "100000 17464 1843\n3 tokens\n");
}

TEST(CliTokenize, IdsOnlyRoundTripsThroughDetokenize) {
  const std::string text = "深度求索 DeepSeek-V3: 671B 参数，37B 激活。🚀\n  indented";
  auto r = run_mlamoe({"tokenize", "-m", vocab(), "-p", text, "--ids-only", "--no-bos"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_FALSE(r.out.empty());
  EXPECT_EQ(r.out.find(' '), std::string::npos);
  auto d = run_mlamoe({"detokenize", "-m", vocab(), "--tokens", r.out.substr(0, r.out.size() - 1)});
  ASSERT_EQ(d.exit_code, 0) << d.err;
  EXPECT_EQ(d.out, text + "\n");
}

TEST(CliTokenize, ShowPrintsPieces) {
  auto r = run_mlamoe({"tokenize", "-m", vocab(), "-p", "Hello world\n", "--show"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("  100000  '<｜begin▁of▁sentence｜>'"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("   17464  'Hello'"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("    1843  ' world'"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("'\\n'"), std::string::npos) << r.out;
}

TEST(CliTokenize, DetokenizeCanOmitControlTokens) {
  auto r = run_mlamoe({"detokenize", "-m", vocab(), "--tokens", "100000,17464,1843", "--no-special"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "Hello world\n");
  auto s = run_mlamoe({"detokenize", "-m", vocab(), "--tokens", "100000, 17464, 1843"});
  EXPECT_EQ(s.out, "<｜begin▁of▁sentence｜>Hello world\n");
}

TEST(CliTokenize, BadInputGivesOneLineErrors) {
  auto out_of_range = run_mlamoe({"detokenize", "-m", vocab(), "--tokens", "1,999999"});
  EXPECT_EQ(out_of_range.exit_code, 1);
  EXPECT_NE(out_of_range.err.find("999999"), std::string::npos) << out_of_range.err;

  auto no_model = run_mlamoe({"tokenize", "-m", "/nonexistent.gguf", "-p", "x"});
  EXPECT_EQ(no_model.exit_code, 1);
  EXPECT_NE(no_model.err.find("/nonexistent.gguf"), std::string::npos) << no_model.err;

  // A model GGUF without tokenizer metadata.
  const std::string no_vocab = mlamoe::test::temp_dir() + "/no-vocab.gguf";
  {
    std::string b = "GGUF";
    auto u32 = [&](uint32_t x) { b.append(reinterpret_cast<const char*>(&x), 4); };
    auto u64 = [&](uint64_t x) { b.append(reinterpret_cast<const char*>(&x), 8); };
    u32(3), u64(0), u64(1);
    const std::string k = "general.architecture", v = "deepseek2";
    u64(k.size()), b += k, u32(8), u64(v.size()), b += v;
    FILE* f = std::fopen(no_vocab.c_str(), "wb");
    std::fwrite(b.data(), 1, b.size(), f);
    std::fclose(f);
  }
  auto r = run_mlamoe({"tokenize", "-m", no_vocab, "-p", "x"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("no tokenizer data"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;

  auto both = run_mlamoe({"tokenize", "-m", vocab()});
  EXPECT_NE(both.exit_code, 0);
}

TEST(CliTokenize, InvalidUtf8IsReplacedLikeTheReference) {
  auto bad = run_mlamoe({"tokenize", "-m", vocab(), "-p", "a\xff" "b", "--ids-only", "--no-bos"});
  auto fffd = run_mlamoe({"tokenize", "-m", vocab(), "-p", "a\xEF\xBF\xBD" "b", "--ids-only", "--no-bos"});
  ASSERT_EQ(bad.exit_code, 0) << bad.err;
  EXPECT_EQ(bad.out, fffd.out);
}
