// Replays the tokenizer and chat-template fuzz corpora (and their crash regressions)
// through the fuzz targets' own code, so plain ctest keeps them fixed without clang.
#include <gtest/gtest.h>

#include "chat_template_exercise.h"
#include "fuzz_inputs.h"
#include "test_paths.h"
#include "tokenizer_exercise.h"

namespace mlamoe {
namespace {

TEST(FuzzReplay, TokenizerCorpusAndRegressions) {
  const auto tok = Tokenizer::from_file(test::shared_dir() + "/tokenizer/ggml-vocab-deepseek-llm.gguf");
  test::replay_fuzz_inputs("tokenizer", "tokenizer", 20,
                           [&](const uint8_t* data, size_t size) { test::exercise_tokenizer(*tok, data, size); });
}

TEST(FuzzReplay, ChatTemplateCorpusAndRegressions) {
  test::replay_fuzz_inputs("chat_template", "tokenizer", 5, test::exercise_chat_template);
}

}  // namespace
}  // namespace mlamoe
