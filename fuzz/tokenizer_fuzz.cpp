// libFuzzer target: the tokenizer (encode/decode of arbitrary bytes with the shared
// DeepSeek LLM vocabulary); decode(encode(x)) == x for valid UTF-8 x.
#include <cstddef>
#include <cstdint>
#include <memory>

#include "fuzz_paths.h"
#include "tokenizer/tokenizer_exercise.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::unique_ptr<mlamoe::Tokenizer> tok =
      mlamoe::Tokenizer::from_file(mlamoe::fuzz::shared_dir() + "/tokenizer/ggml-vocab-deepseek-llm.gguf");
  mlamoe::test::exercise_tokenizer(*tok, data, size);
  return 0;
}
