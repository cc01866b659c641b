#include "convert/gen_random.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "common/error.h"
#include "common/progress.h"
#include "convert/metadata.h"
#include "convert/tensor_names.h"
#include "convert/tensor_stream.h"
#include "format/gguf.h"
#include "format/gguf_writer.h"

namespace mlamoe {

namespace {

uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Standard deviation of a tensor's entries, by what it multiplies.
float init_scale(const tn::TensorSpec& t) {
  using tn::Role;
  switch (t.role) {
    case Role::Norm: return 0.0f;  // constant 1, see below
    case Role::RoutingBias: return 0.01f;
    case Role::Embedding: return 1.0f;
    // attn_k_b [d_nope, kv_lora, H] decompresses c_kv (kv_lora wide) into keys.
    case Role::AttnKB: return 1.0f / std::sqrt(static_cast<float>(t.ne[1]));
    default: return 1.0f / std::sqrt(static_cast<float>(t.fan_in()));
  }
}

}  // namespace

void random_normal_row(uint64_t seed, uint64_t tensor, uint64_t row, float scale, float* out, int64_t n) {
  uint64_t state = seed * 0xD1B54A32D192ED03ull ^ (tensor + 1) * 0x9E3779B97F4A7C15ull ^ row * 0xA0761D6478BD642Full;
  splitmix64(state);
  const float k = scale * std::sqrt(3.0f) / 65536.0f;
  for (int64_t i = 0; i < n; ++i) {
    uint64_t r = splitmix64(state);
    // Four 16-bit uniforms: their sum has mean 2*65536 and variance 4/12 (in units of 65536^2).
    int64_t s = int64_t(r & 0xFFFF) + int64_t((r >> 16) & 0xFFFF) + int64_t((r >> 32) & 0xFFFF) + int64_t(r >> 48);
    out[i] = static_cast<float>(s - 131070) * k;  // 131070 = 4 * 65535 / 2
  }
}

ModelConfig gen_random_config(const GenRandomOptions& o) {
  ModelConfig cfg = ModelConfig::from_hf_json(o.config_path);
  if (o.layers == 0 || o.layers < -1) fail("--layers must be positive, found ", o.layers);
  if (o.layers > 0) {
    if (o.layers > cfg.n_layers)
      fail("--layers ", o.layers, " exceeds the ", cfg.n_layers, " layers of ", o.config_path);
    cfg.n_layers = o.layers;
    cfg.first_k_dense_replace = std::min(cfg.first_k_dense_replace, cfg.n_layers);
  }
  cfg.name = "random " + (cfg.name.empty() ? std::string("deepseek") : cfg.name);
  return cfg;
}

void gen_random(const GenRandomOptions& o) {
  ModelConfig cfg = gen_random_config(o);
  tn::LayoutOptions layout;
  layout.legacy_kv_b = o.legacy_kv_b;
  std::unique_ptr<GgufFile> vocab;
  if (!o.vocab_path.empty()) vocab = GgufFile::open(o.vocab_path);

  GgufWriter w(o.out_path);
  write_model_metadata(cfg, w, layout);
  set_file_type(w, o.recipe.base, o.recipe.k_m);
  if (vocab) copy_tokenizer_metadata(*vocab, cfg, w);

  std::vector<tn::TensorSpec> specs = tn::model_tensors(cfg, layout);
  std::vector<GgmlType> types;
  for (auto& t : specs) {
    types.push_back(choose_type(o.recipe, t, cfg.n_layers));
    w.add_tensor(t.name, t.ne, types.back());
  }
  w.begin();
  Progress progress("gen-random " + o.out_path, w.total_tensor_bytes());
  for (size_t i = 0; i < specs.size(); ++i) {
    const tn::TensorSpec& t = specs[i];
    const float scale = init_scale(t);
    const bool ones = t.role == tn::Role::Norm;
    const int64_t row_len = t.ne[0];
    write_rows(w, types[i], t.n_elements() / row_len, row_len,
               [&](int64_t first, int64_t n, float* out) {
                 for (int64_t r = 0; r < n; ++r) {
                   float* row = out + r * row_len;
                   if (ones) std::fill(row, row + row_len, 1.0f);
                   else random_normal_row(o.seed, i, static_cast<uint64_t>(first + r), scale, row, row_len);
                 }
               },
               &progress);
  }
  w.finish();
  progress.finish();
}

}  // namespace mlamoe
