// Hugging Face DeepseekV2ForCausalLM / DeepseekV3ForCausalLM checkpoints (safetensors,
// F32/F16/BF16 or FP8 e4m3 with 128×128 block scales) to one GGUF file in llama.cpp's
// deepseek2 layout, converted and quantized in one streaming pass:
//   - kv_b_proj is split per head into attn_k_b (W_UK, transposed so the absorbed path
//     reads rows of d_nope) and attn_v_b (W_UV);
//   - routed experts are stacked into ffn_{gate,up,down}_exps [.., .., n_expert];
//   - e_score_correction_bias becomes exp_probs_b.bias (V3);
//   - MTP modules (V3, layers num_hidden_layers..) become blocks after the main layers
//     with their nextn.* tensors, unless no_mtp; the embedding and head they share
//     with the main model are not duplicated;
//   - tokenizer.json / tokenizer_config.json, when present, become tokenizer.* metadata.
// Every source tensor is checked (present, dtype, shape) before the output is created.
#pragma once
#include <string>

#include "convert/quant_plan.h"

namespace mlamoe {

struct ConvertOptions {
  std::string hf_dir;
  std::string out_path;
  QuantRecipe recipe;
  bool no_mtp = false;
};

struct ConvertStats {
  uint64_t bytes_read = 0;     // source tensor bytes
  uint64_t bytes_written = 0;  // GGUF tensor bytes
  double seconds = 0;
};

ConvertStats convert_hf(const ConvertOptions& opts);

}  // namespace mlamoe
