// A loaded DeepSeek-V2/V3 model: its config and typed views of its weights, which stay
// in the memory-mapped GGUF file (quantized blocks are never copied or expanded).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "common/mapped_file.h"
#include "format/gguf.h"
#include "kernels/kernels.h"
#include "model/config.h"
#include "model/tile_cache.h"

namespace mlamoe {

using kernels::WeightView;

// One expert's three matrices (W1 gate, W3 up, W2 down) inside the stacked expert
// tensors; the kernel layer's FFN type, so experts go to the fused kernels as they are.
using ExpertWeights = kernels::FfnWeights;

struct LayerWeights {
  std::vector<float> attn_norm, ffn_norm;   // RMSNorm gains (float32 copies: tiny)
  // MLA
  WeightView wq;                            // d -> H*(d_nope+d_rope)   (no q compression)
  WeightView wq_a, wq_b;                    // d -> q_lora -> H*(d_nope+d_rope)
  std::vector<float> q_a_norm;
  WeightView wkv_a;                         // d -> kv_lora (c_kv) + d_rope (k_rope)
  std::vector<float> kv_a_norm;
  std::vector<WeightView> w_uk;             // per head: kv_lora rows × d_nope  (absorbed into q)
  std::vector<WeightView> w_uv;             // per head: d_v rows × kv_lora     (absorbed into o)
  WeightView wkv_b;                         // legacy attn_kv_b: H*(d_nope+d_v) rows × kv_lora
  std::vector<WeightView> w_uk_rows;        // legacy, int8 kernels: per head W_UK (d_nope rows × kv_lora),
                                            // tiled: the naive path's keys, the absorbed query
                                            // (kernels::matmul_transposed)
  WeightView wo;                            // H*d_v -> d
  // FFN: dense (first layers) or DeepSeekMoE
  WeightView ffn_gate, ffn_up, ffn_down;    // dense
  WeightView router;                        // d -> n_routed (gate logits)
  std::vector<float> routing_bias;          // e_score_correction_bias (V3), selection only
  std::vector<ExpertWeights> experts;       // routed experts
  ExpertWeights shared;                     // all shared experts as one wider MLP (untiled
                                            // when routed_and_shared holds them)
  // The routed experts followed by the shared experts taken apart again (the shared
  // MLP is n_shared experts side by side), when they have the routed experts' shape:
  // then one MoE pass runs both kinds. Empty otherwise.
  std::vector<ExpertWeights> routed_and_shared;
  bool is_moe = false;
};

class Model {
 public:
  struct LoadOptions {
    bool verbose = false;
    // Re-lay out Q4_0/Q8_0 matrices in tiles for the int8 kernels when the CPU has them
    // (kernels/tiled.h); off: every weight is used in place from the file.
    bool repack = true;
    // A tile cache file (model/tile_cache.h): the laid-out weights are mapped from it
    // when it was made from this file by this build, else laid out and written there.
    std::string tile_cache;
  };
  // Opens, validates and maps a GGUF file; throws Error naming the file and tensor.
  static std::unique_ptr<Model> load(const std::string& path, const LoadOptions& opts);
  static std::unique_ptr<Model> load(const std::string& path) { return load(path, LoadOptions{}); }

  const ModelConfig& config() const { return config_; }
  const GgufFile& gguf() const { return *gguf_; }
  const std::string& path() const { return gguf_->path(); }

  WeightView token_embd, output;
  std::vector<float> output_norm;
  std::vector<LayerWeights> layers;

  // Bytes of weights one decode step must stream for one token (attention + dense
  // FFNs + shared experts + top-k routed experts + head): the roofline numerator.
  uint64_t bytes_per_token() const;
  uint64_t weight_bytes() const;  // all tensors
  uint64_t tiled_weight_bytes() const { return tiled_.size(); }  // laid out at this load
  bool tiles_from_cache() const { return tile_cache_.is_open(); }
  // Whether decode prefetches in software, as measured on these weights at load.
  const kernels::PrefetchChoice& prefetch_choice() const { return prefetch_choice_; }

 private:
  Model() = default;
  void tile_weights(const LoadOptions& opts);
  std::vector<WeightView*> matrices_to_tile();
  const uint8_t* lay_out(const std::vector<WeightView*>& views, const std::vector<TiledMatrix>& layout, bool verbose);
  void transpose_legacy_w_uk();
  void split_shared_experts();
  bool keep_legacy_w_uk_rows(LayerWeights& L);
  std::unique_ptr<GgufFile> gguf_;
  AnonymousMemory tiled_;  // the re-laid-out matrices, if laid out at this load
  TileCache tile_cache_;   // or mapped from a tile cache
  kernels::PrefetchChoice prefetch_choice_;
  std::vector<float> legacy_w_uk_;  // W_UK^T per head, from a legacy attn_kv_b (float32)
  ModelConfig config_;
};

}  // namespace mlamoe
