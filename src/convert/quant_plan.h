// Which GGUF type each tensor is stored in, for a requested precision ("q8_0",
// "q4_K", or the "q4_K_M" and "q5_K_M" mixes). Shared by gen-random, convert and quantize.
//
// Always float32: 1-D tensors (RMSNorm gains, the routing bias) and the router
// (ffn_gate_inp): they are a rounding error of the file size, and the router's
// logits decide which experts run at all, so a quantization error there changes
// the computation discretely rather than by a small amount.
//
// The q4_K_M and q5_K_M mixes (after llama.cpp's, and for the same reasons) give Q6_K to:
//  - output.weight: its error lands directly in the logits;
//  - the MLA up-projections attn_k_b/attn_v_b (or attn_kv_b): every head's keys and
//    values are decompressed through them, and they are ~1% of the parameters;
//  - the down projections (ffn_down, ffn_down_shexp, ffn_down_exps) of the first and
//    last eighth of the layers and of every third layer between: their output is
//    added to the residual stream without a norm in between, which made them the
//    most sensitive matrices in llama.cpp's perplexity studies.
// Everything else is Q4_K, or Q5_K.
//
// A row length that is not a multiple of the type's block falls back to a type that
// fits, never to fewer bits: Q4_K -> Q4_0 (both 4.5 bits/weight), Q5_K/Q6_K -> Q8_0,
// and a row that is not a multiple of 32 -> F16.
#pragma once
#include <string>
#include <string_view>

#include "convert/tensor_names.h"
#include "format/ggml_types.h"

namespace mlamoe {

struct QuantRecipe {
  GgmlType base = GgmlType::F32;
  bool k_m = false;  // the mix above (base = Q4_K or Q5_K)
  std::string name() const;
};

// "f32", "f16", "bf16", "q8_0", "q4_0", "q4_K", "q5_K", "q6_K", "q4_K_M", "q5_K_M" (any case);
// Error naming the accepted values otherwise.
QuantRecipe parse_recipe(std::string_view s);

// The type for one tensor. n_layers is the number of main layers (for the mix).
GgmlType choose_type(const QuantRecipe& r, const tn::TensorSpec& t, int64_t n_layers);

// `want`, or the fallback above when a row of `row_len` does not fit its blocks.
GgmlType fit_row_length(GgmlType want, int64_t row_len);

}  // namespace mlamoe
