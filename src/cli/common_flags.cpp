#include "cli/common_flags.h"

#include "common/error.h"
#include "kernels/kernels.h"

namespace mlamoe::cli {

void ModelFlags::add_to(CLI::App& app, bool model_required) {
  auto* m = app.add_option("-m,--model", model, "model file (GGUF)");
  if (model_required) m->required();
  app.add_option("-t,--threads", threads, "threads (default: all cores)");
  app.add_option("-c,--ctx-size", ctx, "context size in tokens (default: the model's)");
  app.add_option("--attn", attn, "attention path: absorbed (attend over latents) or naive (decompress K/V)")
      ->check(CLI::IsMember({"absorbed", "naive"}));
  app.add_flag("--verbose", verbose, "print load details");
}

AttentionMode parse_attention(const std::string& s) {
  if (s == "absorbed") return AttentionMode::Absorbed;
  if (s == "naive") return AttentionMode::Naive;
  fail("--attn: expected absorbed or naive, got '", s, "'");
}

std::unique_ptr<Model> ModelFlags::load() const {
  if (threads < 0) fail("-t: thread count must be positive");
  kernels::set_threads(threads);
  Model::LoadOptions opts;
  opts.verbose = verbose;
  return Model::load(model, opts);
}

EngineOptions ModelFlags::engine_options(const Model& m) const {
  if (ctx < 0) fail("-c: context size must be positive");
  EngineOptions o;
  o.n_ctx = ctx;
  o.attention = parse_attention(attn);
  return o;
}

}  // namespace mlamoe::cli
