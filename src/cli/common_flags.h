// Flags shared by the commands that run a model (logits, run, chat, serve, bench),
// spelled as llama.cpp spells them: -m -t -c --attn ...
#pragma once
#include <CLI/CLI.hpp>
#include <memory>
#include <string>

#include "model/engine.h"

namespace mlamoe::cli {

struct ModelFlags {
  std::string model;
  int threads = 0;
  int64_t ctx = 0;
  std::string attn = "absorbed";
  bool verbose = false;

  // Registers -m/--model, -t/--threads, -c/--ctx-size, --attn, --verbose.
  void add_to(CLI::App& app, bool model_required = true);
  // Applies -t, loads the model (with a progress line), validates -c; throws Error.
  std::unique_ptr<Model> load() const;
  EngineOptions engine_options(const Model& m) const;
};

AttentionMode parse_attention(const std::string& s);

}  // namespace mlamoe::cli
