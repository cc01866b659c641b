// mlamoe info: what a model file is — architecture, shapes, tensor types, parameter
// counts (total vs active per token) and the latent KV cache against MHA/GQA/MQA.
#include <cstdio>
#include <map>

#include "cli/command.h"
#include "common/error.h"
#include "common/progress.h"
#include "format/gguf.h"
#include "model/config.h"
#include "runtime/paged_kv_cache.h"

namespace mlamoe::cli {
namespace {

void print_kv_table(const ModelConfig& c) {
  const double per_val = 2.0;  // bytes per cached value at f16/bf16, as the papers count
  auto row = [&](const char* name, int64_t values) {
    const double bytes = static_cast<double>(values) * c.n_layers * per_val;
    std::printf("  %-24s %8lld values/token/layer  %10s/token  (%5.1f%% of MHA)\n", name, static_cast<long long>(values),
                human_bytes(bytes).c_str(), 100.0 * values / c.mha_values_per_token_layer());
  };
  std::printf("KV cache per token (%lld layers, 16-bit values):\n", static_cast<long long>(c.n_layers));
  row("MLA (c_kv + k_rope)", c.kv_values_per_token_layer());
  row("MHA (same heads)", c.mha_values_per_token_layer());
  if (c.n_heads >= 8) row("GQA (8 groups)", c.gqa_values_per_token_layer(8));
  row("MQA (1 group)", c.gqa_values_per_token_layer(1));
  std::printf("  MLA saves %.1f%% against MHA\n",
              100.0 * (1.0 - static_cast<double>(c.kv_values_per_token_layer()) / c.mha_values_per_token_layer()));
  // What mlamoe's paged cache stores for this model with each --kv-type.
  std::printf("  mlamoe KV bytes/token (--kv-type):");
  for (const char* t : {"f32", "f16", "bf16", "q8_0"}) {
    const uint64_t b = kv_bytes_per_token(c.n_layers, c.kv_lora_rank, c.qk_rope_head_dim, parse_kv_type(t));
    std::printf(" %s %s", t, human_bytes(static_cast<double>(b)).c_str());
  }
  std::printf("\n");
}

void print_tensor_summary(const GgufFile& f) {
    std::map<std::string, std::pair<int, uint64_t>> by_type;
    int64_t elements = 0;
    for (const auto& t : f.tensors()) {
      auto& e = by_type[std::string(type_name(t.type))];
      e.first++;
      e.second += t.nbytes;
      elements += t.n_elements();
    }
    std::printf("tensors:      ");
    for (auto& [name, e] : by_type)
      std::printf(" %s ×%d (%s)", name.c_str(), e.first, human_bytes(static_cast<double>(e.second)).c_str());
    std::printf("; %s elements in the file\n", human_count(static_cast<double>(elements)).c_str());
}

int run_info(int argc, char** argv) {
  CLI::App app{"Describe a model file"};
  std::string path;
  bool show_tensors = false, show_metadata = false;
  app.add_option("model", path, "model file (GGUF) or a Hugging Face config.json")->required();
  app.add_flag("--tensors", show_tensors, "list every tensor");
  app.add_flag("--metadata", show_metadata, "list every metadata key");
  return parse_and_run(app, argc, argv, [&] {
    // A config.json describes the shapes without weights: enough for every count below.
    const bool is_json = path.size() > 5 && path.compare(path.size() - 5, 5, ".json") == 0;
    std::unique_ptr<GgufFile> f;
    ModelConfig c;
    if (is_json) {
      c = ModelConfig::from_hf_json(path);
      std::printf("config:        %s (Hugging Face config.json, no weights)\n", path.c_str());
    } else {
      f = GgufFile::open(path);
      c = ModelConfig::from_gguf(*f);
      std::printf("file:          %s (%s, GGUF v%u, %zu tensors, %zu metadata keys)\n", path.c_str(),
                  human_bytes(static_cast<double>(f->file_size())).c_str(), f->version(), f->tensors().size(),
                  f->metadata().size());
    }
    std::printf("architecture:  %s%s%s\n", c.architecture.c_str(), c.name.empty() ? "" : "  name: ", c.name.c_str());
    std::printf("shape:         d_model %lld, %lld layers (%lld dense first), %lld heads, vocab %lld, context %lld\n",
                (long long)c.hidden_size, (long long)c.n_layers, (long long)c.first_k_dense_replace, (long long)c.n_heads,
                (long long)c.vocab_size, (long long)c.max_position_embeddings);
    std::printf("MLA:           q_lora_rank %lld%s, kv_lora_rank %lld, qk_nope %lld, qk_rope %lld, v_head %lld\n",
                (long long)c.q_lora_rank, c.q_lora_rank ? "" : " (no query compression)", (long long)c.kv_lora_rank,
                (long long)c.qk_nope_head_dim, (long long)c.qk_rope_head_dim, (long long)c.v_head_dim);
    std::printf("rope:          theta %g", c.rope_theta);
    if (c.rope_scaling.yarn)
      std::printf(", YaRN factor %g over %lld, beta %g/%g, mscale_all_dim %g", c.rope_scaling.factor,
                  (long long)c.rope_scaling.original_ctx, c.rope_scaling.beta_fast, c.rope_scaling.beta_slow,
                  c.rope_scaling.mscale_all_dim);
    std::printf("\n");
    if (c.n_routed_experts > 0) {
      std::printf("MoE:           %lld routed + %lld shared experts of %lld, top-%lld, %s scores%s, groups %lld/%lld, "
                  "weights %s× %g\n",
                  (long long)c.n_routed_experts, (long long)c.n_shared_experts, (long long)c.moe_intermediate_size,
                  (long long)c.num_experts_per_tok, c.scoring_func == ScoringFunc::Sigmoid ? "sigmoid" : "softmax",
                  c.has_routing_bias ? " + routing bias (selection only)" : "", (long long)c.topk_group,
                  (long long)c.n_group, c.norm_topk_prob ? "normalized " : "", c.routed_scaling_factor);
    }
    const double total = static_cast<double>(c.params_total()), active = static_cast<double>(c.params_active());
    std::printf("parameters:    %s total, %s active per token (%.1f%%)", human_count(total).c_str(),
                human_count(active).c_str(), 100.0 * active / total);
    if (c.params_mtp()) std::printf(", MTP module %s counted apart", human_count(static_cast<double>(c.params_mtp())).c_str());
    std::printf("\n");
    if (f) print_tensor_summary(*f);
    print_kv_table(c);
    if (f && show_tensors)
      for (const auto& t : f->tensors())
        std::printf("  %-36s %-6s %-22s %s\n", t.name.c_str(), std::string(type_name(t.type)).c_str(),
                    t.shape_string().c_str(), human_bytes(static_cast<double>(t.nbytes)).c_str());
    if (f && show_metadata)
      for (const auto& [k, v] : f->metadata()) std::printf("  %-48s %s\n", k.c_str(), v.to_string().c_str());
    return 0;
  });
}

}  // namespace
MLAMOE_COMMAND("info", "describe a model: shapes, parameters (total vs active), KV cache vs MHA", run_info);
}  // namespace mlamoe::cli
