// tokenizer.json / tokenizer_config.json -> tokenizer.* metadata: a tokenizer.json
// written from the shared DeepSeek LLM vocabulary converts back to the same tokens,
// types, merges and special ids.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/files.h"
#include "convert/hf_tokenizer.h"
#include "format/gguf.h"
#include "format/gguf_writer.h"
#include "test_paths.h"

namespace mlamoe {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

TEST(HfTokenizer, RoundTripsTheDeepSeekVocabulary) {
  auto v = GgufFile::open(test::shared_dir() + "/tokenizer/ggml-vocab-deepseek-llm.gguf");
  const auto& tokens = v->find("tokenizer.ggml.tokens")->as_string_array();
  auto types = v->find("tokenizer.ggml.token_type")->as_int_array();
  const auto& merges = v->find("tokenizer.ggml.merges")->as_string_array();
  json vocab = json::object(), added = json::array(), merge_list = json::array();
  for (size_t i = 0; i < tokens.size(); ++i) {
    std::string t(tokens[i]);
    if (types[i] == 3) added.push_back({{"id", i}, {"content", t}, {"special", true}});
    else if (types[i] == 4) added.push_back({{"id", i}, {"content", t}, {"special", false}});
    else vocab[t] = i;
  }
  // Newer tokenizers.json files write merges as pairs: use that form for half.
  for (size_t i = 0; i < merges.size(); ++i) {
    std::string m(merges[i]);
    if (i % 2) merge_list.push_back(m);
    else merge_list.push_back({m.substr(0, m.find(' ')), m.substr(m.find(' ') + 1)});
  }
  std::string dir = test::temp_dir() + "/tok";
  fs::create_directories(dir);
  write_file_atomic(dir + "/tokenizer.json",
                    json{{"added_tokens", added}, {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", merge_list}}}}.dump());
  const int64_t bos = v->get_int("tokenizer.ggml.bos_token_id", -1), eos = v->get_int("tokenizer.ggml.eos_token_id", -1);
  write_file_atomic(dir + "/tokenizer_config.json",
                    json{{"add_bos_token", true}, {"add_eos_token", false},
                         {"bos_token", {{"content", std::string(tokens[bos])}}}, {"eos_token", std::string(tokens[eos])},
                         {"pad_token", std::string(tokens[eos])}, {"chat_template", "{{ bos_token }}"}}.dump());
  ModelConfig cfg;
  cfg.vocab_size = static_cast<int64_t>(tokens.size());
  std::string out = test::temp_dir() + "/tok.gguf";
  {
    GgufWriter w(out);
    ASSERT_TRUE(write_hf_tokenizer(dir, cfg, "deepseek_v2", w));
    w.finish();
  }
  auto g = GgufFile::open(out);
  for (const char* key : {"tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.tokens", "tokenizer.ggml.token_type",
                          "tokenizer.ggml.merges", "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                          "tokenizer.ggml.padding_token_id", "tokenizer.ggml.add_bos_token", "tokenizer.ggml.add_eos_token"}) {
    SCOPED_TRACE(key);
    ASSERT_TRUE(g->find(key));
    EXPECT_EQ(g->find(key)->to_string(1u << 20), v->find(key)->to_string(1u << 20));
  }
  EXPECT_EQ(g->get_string("tokenizer.chat_template"), "{{ bos_token }}");

  // A model whose vocab_size is larger gets unused [PAD] tokens; a smaller one is refused.
  cfg.vocab_size = static_cast<int64_t>(tokens.size()) + 2;
  {
    GgufWriter w(test::temp_dir() + "/tok_pad.gguf");
    write_hf_tokenizer(dir, cfg, "deepseek_v3", w);
    w.finish();
  }
  auto p = GgufFile::open(test::temp_dir() + "/tok_pad.gguf");
  EXPECT_EQ(p->find("tokenizer.ggml.tokens")->as_string_array().back(), "[PAD" + std::to_string(tokens.size() + 1) + "]");
  EXPECT_EQ(p->find("tokenizer.ggml.token_type")->as_int_array().back(), 5);
  EXPECT_EQ(p->get_string("tokenizer.ggml.pre"), "deepseek-v3");
  cfg.vocab_size = 1000;
  GgufWriter w(test::temp_dir() + "/tok_small.gguf");
  EXPECT_THROW(write_hf_tokenizer(dir, cfg, "deepseek_v2", w), Error);
}

TEST(HfTokenizer, AbsentTokenizerWritesNothing) {
  ModelConfig cfg;
  cfg.vocab_size = 10;
  std::string dir = test::temp_dir() + "/no_tok";
  fs::create_directories(dir);
  GgufWriter w(test::temp_dir() + "/no_tok.gguf");
  EXPECT_FALSE(write_hf_tokenizer(dir, cfg, "deepseek_v2", w));
  EXPECT_FALSE(w.has("tokenizer.ggml.model"));
}

}  // namespace
}  // namespace mlamoe
