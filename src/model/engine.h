// The forward pass of a DeepSeek-V2/V3 model over a batch of tokens that may belong
// to several sequences. Prompt processing passes many positions of one sequence;
// batched decode passes one position of many sequences; both are the same call.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "model/kv_cache.h"
#include "model/model.h"

namespace mlamoe {

enum class AttentionMode {
  Absorbed,  // fold W_UK into the query and W_UV into the output; attend over latents
  Naive,     // decompress per-head K and V from the latents, then standard attention
  Auto,      // per sequence, whichever of the two costs less for its queries (mla.cpp)
};

// Auto's rule: a sequence bringing `queries` new tokens over `keys` cached positions
// (its own included) takes the naive path in a layer whose W_UK and W_UV come as one
// legacy attn_kv_b matrix (`legacy_kv_b`) or as attn_k_b/attn_v_b. The planner prices
// prompts by it too.
bool naive_attention_pays(bool legacy_kv_b, int64_t queries, int64_t keys);

struct Batch {
  std::vector<int32_t> tokens;
  std::vector<int32_t> positions;  // position of each token within its sequence
  std::vector<int32_t> seq_ids;
  std::vector<uint8_t> want_logits;  // empty: logits for every token
  void add(int32_t token, int32_t pos, int32_t seq, bool logits = true) {
    tokens.push_back(token);
    positions.push_back(pos);
    seq_ids.push_back(seq);
    want_logits.push_back(logits ? 1 : 0);
  }
  size_t size() const { return tokens.size(); }
};

struct EngineOptions {
  int64_t n_ctx = 0;  // 0: the model's context length
  AttentionMode attention = AttentionMode::Absorbed;
};

class Engine {
 public:
  // Uses `kv` if given (e.g. a paged/tiered cache from src/runtime), else a contiguous one.
  Engine(const Model& model, EngineOptions opts, std::shared_ptr<KvCache> kv = nullptr);

  // Runs the batch. Positions of a sequence must continue its cached length (tokens of
  // one sequence in order); entries are appended to the KV cache. Returns logits for the
  // tokens with want_logits (all if empty), in batch order: rows × vocab.
  std::vector<float> forward(const Batch& batch);

  const Model& model() const { return model_; }
  KvCache& kv() { return *kv_; }
  int64_t n_ctx() const { return n_ctx_; }
  AttentionMode attention() const { return opts_.attention; }
  void set_attention(AttentionMode m) { opts_.attention = m; }

 private:
  struct Scratch;
  const Model& model_;
  EngineOptions opts_;
  int64_t n_ctx_;
  std::shared_ptr<KvCache> kv_;
  std::vector<float> rope_inv_freq_;  // per rotary pair, YaRN-corrected
};

}  // namespace mlamoe
