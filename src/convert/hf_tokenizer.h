// A Hugging Face byte-level BPE tokenizer (tokenizer.json + tokenizer_config.json) as
// llama.cpp's tokenizer.* metadata: model "gpt2", the pre-tokenizer DeepSeek uses
// ("deepseek-v3" for deepseek_v3, "deepseek-llm" for deepseek_v2), tokens in id
// order (ids the file does not name, up to vocab_size, become "[PAD<id>]" of type
// unused), token types (added special tokens are control, other added tokens
// user-defined), merges, bos/eos/pad ids, add_bos/add_eos and the chat template.
#pragma once
#include <string>

#include "format/gguf_writer.h"
#include "model/config.h"

namespace mlamoe {

// Writes the tokenizer if dir/tokenizer.json exists; returns false if it does not.
// Error naming the file and field when it exists but cannot be used.
bool write_hf_tokenizer(const std::string& dir, const ModelConfig& cfg, const std::string& model_type, GgufWriter& w);

}  // namespace mlamoe
