// What prefill and decode are bound by on this CPU when the engine runs them: the
// throughput of the engine's own kernels, measured, not a datasheet peak.
//
//   matmul     kernels::matmul on a synthetic weight matrix of the model's routed-expert
//              shape (moe_intermediate × d_model, quantized with the same quantizer a
//              GGUF writer uses, re-laid out exactly as Model::load does for the int8
//              kernels), at several token counts per matrix: 1 (a decode step) up to 512
//              (a prompt). Reported as GMAC/s per weight type.
//   attention  kernels::latent_attention_accumulate (absorbed MLA: scores over the
//              latent c_kv and k_rope, online softmax, weighted sum of latents) on one
//              thread for one token's heads (how the engine runs a short-context decode
//              step) and on all threads for groups of 4 tokens' heads (prefill).
//              Reported as GFLOP/s counting 2·(2·d_c + d_R) FLOPs per query row and key,
//              the planner's own attention count.
//   naive      kernels::dense_attention_accumulate (decompressed K/V, the engine's path
//              for long prompts on legacy attn_kv_b files): a 32-query tile of one head
//              per thread, 2·(d_nope + d_R + d_v) FLOPs per query and key.
//
// The planner divides its FLOP counts by these rates; nothing is fitted to `mlamoe bench`.
#pragma once
#include <string>

#include "format/ggml_types.h"
#include "planner/hardware.h"
#include "planner/model_shape.h"

namespace mlamoe::planner {

// The weight type holding most of a GGUF file's matrix bytes (Q4_0 for a Q4_0 file even
// when a few tensors are kept wider), and the share of bytes it holds.
struct WeightTypeMix {
  GgmlType dominant = GgmlType::F32;
  double dominant_share = 0;
  std::string summary;  // "q4_0 97.1%, q8_0 2.9%"
};
WeightTypeMix weight_type_mix(const std::string& gguf_path);

// Token counts per matrix at which the matmul rate is measured.
inline constexpr int64_t kProbeTokens[] = {1, 4, 16, 64, 256, 512};

// Measures the engine's kernels for `m` with weights of `type` (and, for reference, Q8_0
// and Q4_0 as well) using kernels::threads() threads.
MeasuredKernels measure_engine_kernels(const ModelShape& m, GgmlType type);

}  // namespace mlamoe::planner
