// libFuzzer target: the tokenizer (encode/decode of arbitrary bytes with the shared
// DeepSeek LLM vocabulary); decode(encode(x)) == x for valid UTF-8 x.
#include <cstddef>
#include <cstdint>
#include <memory>

#include "fuzz_paths.h"
#include "tokenizer/tokenizer_exercise.h"

static std::unique_ptr<mlamoe::Tokenizer> g_tokenizer;

// The 100k-token vocabulary is loaded once before the first input: its load (seconds
// under ASan on a busy machine) must not count against the first input's time limit.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  g_tokenizer = mlamoe::Tokenizer::from_file(mlamoe::fuzz::shared_dir() + "/tokenizer/ggml-vocab-deepseek-llm.gguf");
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  mlamoe::test::exercise_tokenizer(*g_tokenizer, data, size);
  return 0;
}
