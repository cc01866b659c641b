// Flags shared by the commands that run a model (logits, run, chat, serve, bench),
// spelled as llama.cpp spells them: -m -t -c --attn ...
#pragma once
#include <CLI/CLI.hpp>
#include <memory>
#include <string>

#include "model/engine.h"
#include "runtime/sampler.h"
#include "runtime/paged_kv_cache.h"

namespace mlamoe::cli {

struct ModelFlags {
  std::string model;
  int threads = 0;
  int64_t ctx = 0;
  std::string attn = "auto";  // per sequence, the cheaper path (model/mla.cpp naive_is_cheaper)
  bool verbose = false;
  bool no_repack = false;
  std::string tile_cache;

  // Registers -m/--model, -t/--threads, -c/--ctx-size, --attn, --verbose, --no-repack.
  void add_to(CLI::App& app, bool model_required = true);
  // Applies -t, loads the model (with a progress line), validates -c; throws Error.
  std::unique_ptr<Model> load() const;
  EngineOptions engine_options(const Model& m) const;
};

// --temp --top-k --top-p --min-p --repeat-penalty --repeat-last-n -s/--seed.
struct SamplingFlags {
  SamplerParams params;
  int64_t seed = -1;  // -1: a random seed
  void add_to(CLI::App& app);
  SamplerParams resolve() const;  // params with the seed filled in
};

AttentionMode parse_attention(const std::string& s);

// Flags of the latent KV cache (paged, prefix-sharing, RAM+SSD tiered), shared by
// logits, run, chat, serve and bench:
//   --kv-ram-budget 256MiB  --kv-disk DIR  --kv-type f32|f16|bf16|q8_0  --kv-block N
//   --session FILE (not for logits)
// Usage: KvFlags kf; kf.add_to(app); ... auto kv = kf.make_cache(*model);
//        Engine engine(*model, mf.engine_options(*model), kv);
struct KvFlags {
  std::string ram_budget;  // empty: unlimited
  std::string disk_dir;    // empty: RAM only
  std::string type = "f32";
  int64_t block_tokens = 32;
  std::string session;     // empty: none

  void add_to(CLI::App& app, bool with_session = true);
  PagedKvOptions options() const;  // validates; throws Error naming the flag
  std::shared_ptr<PagedKvCache> make_cache(const Model& m) const;

  // --session: restores `seq` from the file if it exists and belongs to this model;
  // otherwise says why on stderr (the conversation is then recomputed) and leaves `seq`
  // empty. Returns the restored token ids.
  std::vector<int32_t> restore_session(PagedKvCache& kv, const Model& m, int32_t seq) const;
  // --session: saves `seq` (its published tokens) atomically. No-op without --session.
  void save_session(const PagedKvCache& kv, const Model& m, int32_t seq) const;
};

// One line for --verbose: prefix reuse and tier traffic.
std::string describe_kv(const KvStats& s);

// KV cache bytes per token (all layers): what mlamoe stores with `type`, and MLA, MHA
// (same heads), GQA (8 groups; one per head if there are fewer heads) and MQA at 16
// bits per value, as the papers count.
struct KvBytesPerToken {
  uint64_t stored, mla, mha, gqa8, mqa;
};
KvBytesPerToken kv_bytes_per_token(const ModelConfig& c, GgmlType type);
// "kv: 60.8 KiB/token stored (f32); 16-bit: MLA 30.4 KiB, MHA 216 KiB, GQA-8 ..., MQA ..."
std::string describe_kv_bytes(const KvBytesPerToken& b, const std::string& type);

}  // namespace mlamoe::cli
