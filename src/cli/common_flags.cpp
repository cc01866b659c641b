#include "cli/common_flags.h"

#include <algorithm>
#include <random>

#include <cstdio>
#include <filesystem>

#include "common/error.h"
#include "common/parse.h"
#include "common/progress.h"
#include "kernels/kernels.h"
#include "runtime/session.h"

namespace mlamoe::cli {

void ModelFlags::add_to(CLI::App& app, bool model_required) {
  auto* m = app.add_option("-m,--model", model, "model file (GGUF)");
  if (model_required) m->required();
  app.add_option("-t,--threads", threads, "threads (default: all cores)");
  app.add_option("-c,--ctx-size", ctx, "context size in tokens (default: the model's)");
  app.add_option("--attn", attn,
                 "attention path: absorbed (attend over latents), naive (decompress K/V) or auto (per sequence, the cheaper)")
      ->check(CLI::IsMember({"absorbed", "naive", "auto"}));
  app.add_flag("--verbose", verbose, "print load details");
  app.add_flag("--no-repack", no_repack, "use Q4_0/Q8_0/Q4_K/Q5_K/Q6_K weights in place instead of re-laying them out for the int8 kernels");
  app.add_option("--tile-cache", tile_cache,
                 "keep the re-laid-out weights in this file: later loads map it instead of laying out again "
                 "(checked against the model file and this build; rewritten when stale)");
}

void SamplingFlags::add_to(CLI::App& app) {
  app.add_option("--temp", params.temperature, "temperature (0: greedy)");
  app.add_option("--top-k", params.top_k, "top-k (0: off)");
  app.add_option("--top-p", params.top_p, "top-p (1: off)");
  app.add_option("--min-p", params.min_p, "min-p (0: off)");
  app.add_option("--repeat-penalty", params.repeat_penalty, "repetition penalty (1: off)");
  app.add_option("--repeat-last-n", params.repeat_last_n, "tokens the repetition penalty looks back");
  app.add_option("-s,--seed", seed, "random seed (-1: random)");
}

SamplerParams SamplingFlags::resolve() const {
  SamplerParams p = params;
  p.seed = seed < 0 ? std::random_device{}() : static_cast<uint64_t>(seed);
  return p;
}

AttentionMode parse_attention(const std::string& s) {
  if (s == "absorbed") return AttentionMode::Absorbed;
  if (s == "naive") return AttentionMode::Naive;
  if (s == "auto") return AttentionMode::Auto;
  fail("--attn: expected absorbed, naive or auto, got '", s, "'");
}

std::unique_ptr<Model> ModelFlags::load() const {
  if (threads < 0) fail("-t: thread count must be positive");
  if (no_repack && !tile_cache.empty()) fail("--tile-cache keeps the re-laid-out weights; it cannot go with --no-repack");
  kernels::set_threads(threads);
  Model::LoadOptions opts;
  opts.verbose = verbose;
  opts.repack = !no_repack;
  opts.tile_cache = tile_cache;
  return Model::load(model, opts);
}

EngineOptions ModelFlags::engine_options(const Model& m) const {
  if (ctx < 0) fail("-c: context size must be positive");
  EngineOptions o;
  o.n_ctx = ctx;
  o.attention = parse_attention(attn);
  return o;
}

void KvFlags::add_to(CLI::App& app, bool with_session) {
  app.add_option("--kv-ram-budget", ram_budget,
                 "RAM for the KV cache, e.g. 256MiB (KiB/MiB/GiB suffixes; default: unlimited)");
  app.add_option("--kv-disk", disk_dir, "directory for KV blocks that do not fit the RAM budget (SSD tier)");
  app.add_option("--kv-type", type, "KV cache storage: f32, f16, bf16 or q8_0")
      ->check(CLI::IsMember({"f32", "f16", "bf16", "q8_0"}));
  app.add_option("--kv-block", block_tokens, "tokens per KV block (the unit of sharing and of the SSD tier)");
  if (with_session)
    app.add_option("--session", session, "save the conversation's tokens and KV here and reuse them next time");
}

PagedKvOptions KvFlags::options() const {
  PagedKvOptions o;
  if (block_tokens <= 0 || block_tokens > 65536) fail("--kv-block: expected 1..65536 tokens, got ", block_tokens);
  o.block_tokens = block_tokens;
  o.type = parse_kv_type(type);
  if (!ram_budget.empty()) {
    try {
      o.ram_budget = parse_byte_size(ram_budget);
    } catch (const Error& e) {
      fail("--kv-ram-budget: ", e.what());
    }
    if (o.ram_budget == 0) fail("--kv-ram-budget: must be more than 0 bytes");
  }
  o.disk_dir = disk_dir;
  if (!disk_dir.empty() && std::filesystem::exists(disk_dir) && !std::filesystem::is_directory(disk_dir))
    fail("--kv-disk ", disk_dir, ": not a directory");
  return o;
}

std::shared_ptr<PagedKvCache> KvFlags::make_cache(const Model& m) const {
  const ModelConfig& c = m.config();
  return std::make_shared<PagedKvCache>(c.n_layers, c.kv_lora_rank, c.qk_rope_head_dim, options());
}

std::vector<int32_t> KvFlags::restore_session(PagedKvCache& kv, const Model& m, int32_t seq) const {
  if (session.empty() || !std::filesystem::exists(session)) return {};
  try {
    return load_session(session, kv, seq, model_identity(m));
  } catch (const Error& e) {
    std::fprintf(stderr, "warning: not using session %s; recomputing the conversation\n", e.what());
    return {};
  }
}

void KvFlags::save_session(const PagedKvCache& kv, const Model& m, int32_t seq) const {
  if (session.empty()) return;
  mlamoe::save_session(session, kv, seq, model_identity(m));
}

std::string describe_kv(const KvStats& s) {
  char line[512];
  std::snprintf(line, sizeof line,
                "kv: prefix hits %llu/%llu lookups, %llu/%llu tokens reused (%.1f%%), %llu copy-on-write; "
                "RAM %s (peak %s), %llu pages written to disk, %llu read (%llu ahead of the sweep)",
                (unsigned long long)s.prefix_hits, (unsigned long long)s.prefix_lookups,
                (unsigned long long)s.prefix_tokens_reused, (unsigned long long)s.prefix_tokens_requested,
                100.0 * s.token_reuse_rate(), (unsigned long long)s.cow_copies,
                human_bytes(static_cast<double>(s.resident_bytes)).c_str(),
                human_bytes(static_cast<double>(s.peak_resident_bytes)).c_str(), (unsigned long long)s.pages_written,
                (unsigned long long)s.pages_read, (unsigned long long)s.pages_prefetched);
  return line;
}

KvBytesPerToken kv_bytes_per_token(const ModelConfig& c, GgmlType type) {
  const auto at16 = [&](int64_t values_per_layer) { return static_cast<uint64_t>(values_per_layer * c.n_layers * 2); };
  return {mlamoe::kv_bytes_per_token(c.n_layers, c.kv_lora_rank, c.qk_rope_head_dim, type),
          at16(c.kv_values_per_token_layer()), at16(c.mha_values_per_token_layer()), at16(c.gqa_values_per_token_layer(std::min<int64_t>(8, c.n_heads))),
          at16(c.gqa_values_per_token_layer(1))};
}

std::string describe_kv_bytes(const KvBytesPerToken& b, const std::string& type) {
  const auto h = [](uint64_t v) { return human_bytes(static_cast<double>(v)); };
  char line[384];
  std::snprintf(line, sizeof line,
                "kv: %s/token stored (--kv-type %s); at 16 bits: MLA %s, MHA %s, GQA-8 %s, MQA %s (MLA = %.1f%% of MHA)",
                h(b.stored).c_str(), type.c_str(), h(b.mla).c_str(), h(b.mha).c_str(), h(b.gqa8).c_str(), h(b.mqa).c_str(),
                100.0 * static_cast<double>(b.mla) / static_cast<double>(b.mha));
  return line;
}

}  // namespace mlamoe::cli
