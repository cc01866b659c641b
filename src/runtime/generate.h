// Prompt processing then token-by-token decode through the latent KV cache, for one
// sequence. (The server's continuous batching drives Engine::forward itself.)
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "model/engine.h"
#include "runtime/sampler.h"

namespace mlamoe {

struct GenerateOptions {
  int n_predict = 128;     // < 0: until end of generation or the context is full
  int n_batch = 256;       // prompt tokens per forward pass (bounds activation memory)
  SamplerParams sampling;
  std::vector<int32_t> stop_tokens;  // end of generation (EOS, EOT ...)
};

struct GenerateStats {
  int64_t prompt_tokens = 0;  // tokens actually processed (not reused from the cache)
  int64_t reused_tokens = 0;  // prompt tokens whose KV entries were already cached
  int64_t generated = 0;
  double prompt_seconds = 0, decode_seconds = 0;
  bool stopped_by_token = false;
  double prompt_tps() const { return prompt_seconds > 0 ? prompt_tokens / prompt_seconds : 0; }
  double decode_tps() const { return decode_seconds > 0 ? generated / decode_seconds : 0; }
};

// Runs `tokens` (the whole conversation so far) for sequence `seq`: entries already in
// the cache for a matching prefix are reused, the rest is prefilled, then up to
// n_predict tokens are sampled. on_token(token) returns false to stop early. The
// generated tokens are appended to `tokens`.
GenerateStats generate(Engine& engine, int32_t seq, std::vector<int32_t>& tokens, const GenerateOptions& opts,
                       const std::function<bool(int32_t)>& on_token);

// Feeds tokens [from, to) of `tokens` to the engine in chunks; returns the logits of the
// last one.
std::vector<float> prefill(Engine& engine, int32_t seq, const std::vector<int32_t>& tokens, size_t from, int n_batch);

}  // namespace mlamoe
