// Model hyperparameters as GGUF metadata: the exact inverse of ModelConfig::from_gguf,
// with llama.cpp's `deepseek2` keys, and the bits of metadata every writer shares.
#pragma once
#include <string>

#include "convert/tensor_names.h"
#include "format/gguf.h"
#include "format/gguf_writer.h"
#include "model/config.h"

namespace mlamoe {

// general.architecture/name and every deepseek2.* key. With the current layout
// (attn_k_b/attn_v_b) the attention is described as llama.cpp does for MLA: one
// shared "KV head" of key_length = kv_lora + d_rope and value_length = kv_lora, the
// per-head sizes in key_length_mla/value_length_mla; the legacy layout writes the
// per-head view only. bos/eos go to tokenizer.ggml.* when the config has them.
void write_model_metadata(const ModelConfig& cfg, GgufWriter& w, const tn::LayoutOptions& layout = {});

// Copies every tokenizer.* key of a vocabulary file (token list, merges, types,
// special ids, pre-tokenizer, chat template). Error if its token count is not
// cfg.vocab_size.
void copy_tokenizer_metadata(const GgufFile& vocab, const ModelConfig& cfg, GgufWriter& w);

// general.file_type (llama.cpp's LLAMA_FTYPE numbering) for a file mostly of `type`
// (`mix` for the Q4_K_M/Q5_K_M-style mix of that base type).
void set_file_type(GgufWriter& w, GgmlType type, bool mix = false);

}  // namespace mlamoe
