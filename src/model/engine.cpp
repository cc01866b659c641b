// The forward pass: embeddings, then per layer
//   x += MLA(RMSNorm(x));  x += FFN(RMSNorm(x))   (FFN dense in the first layers, MoE after)
// then the final RMSNorm and the output head.
#include "model/engine.h"

#include <algorithm>
#include <map>

#include "common/error.h"
#include "kernels/kernels.h"
#include "model/layers.h"
#include "model/ops.h"
#include "model/rope.h"

namespace mlamoe {

Engine::Engine(const Model& model, EngineOptions opts, std::shared_ptr<KvCache> kv)
    : model_(model), opts_(opts), kv_(std::move(kv)) {
  const ModelConfig& c = model.config();
  n_ctx_ = opts.n_ctx > 0 ? opts.n_ctx : c.max_position_embeddings;
  if (n_ctx_ <= 0) n_ctx_ = 4096;
  if (!kv_) kv_ = std::make_shared<ContiguousKvCache>(c.n_layers, c.kv_lora_rank, c.qk_rope_head_dim, n_ctx_);
  rope_inv_freq_ = rope_inv_freq(c);
}

// Each sequence's tokens must come in order and continue its cached length.
static std::map<int32_t, int64_t> check_batch(const Batch& b, const KvCache& kv, const ModelConfig& c, int64_t n_ctx) {
  if (b.positions.size() != b.size() || b.seq_ids.size() != b.size() ||
      (!b.want_logits.empty() && b.want_logits.size() != b.size()))
    fail("batch: tokens, positions, seq_ids and want_logits must have the same length");
  std::map<int32_t, int64_t> next;  // sequence -> next expected position
  for (size_t i = 0; i < b.size(); ++i) {
    const int32_t tok = b.tokens[i], seq = b.seq_ids[i];
    if (tok < 0 || tok >= c.vocab_size) fail("token id ", tok, " is out of range (vocabulary of ", c.vocab_size, ")");
    auto it = next.find(seq);
    if (it == next.end()) it = next.emplace(seq, kv.length(seq)).first;
    if (b.positions[i] != it->second)
      fail("batch: sequence ", seq, " expects position ", it->second, ", got ", b.positions[i]);
    if (++it->second > n_ctx) fail("sequence ", seq, " exceeds the context size of ", n_ctx, " tokens (-c)");
  }
  return next;
}

std::vector<float> Engine::forward(const Batch& batch) {
  const ModelConfig& c = model_.config();
  const int64_t T = static_cast<int64_t>(batch.size()), d = c.hidden_size;
  if (T == 0) return {};
  std::map<int32_t, int64_t> lengths = check_batch(batch, *kv_, c, n_ctx_);
  for (auto& [seq, len] : lengths) kv_->reserve(seq, len);

  std::vector<float> x(static_cast<size_t>(T * d)), h(x.size()), y(x.size());
  for (int64_t t = 0; t < T; ++t) kernels::get_row(model_.token_embd, batch.tokens[static_cast<size_t>(t)], x.data() + t * d);

  const AttentionContext actx{c, batch, *kv_, rope_inv_freq_, opts_.attention};
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const LayerWeights& L = model_.layers[static_cast<size_t>(l)];
    for (int64_t t = 0; t < T; ++t) rms_norm(x.data() + t * d, L.attn_norm.data(), d, c.rms_norm_eps, h.data() + t * d);
    mla_attention(actx, L, l, h.data(), T, y.data());
    for (size_t i = 0; i < x.size(); ++i) x[i] += y[i];

    for (int64_t t = 0; t < T; ++t) rms_norm(x.data() + t * d, L.ffn_norm.data(), d, c.rms_norm_eps, h.data() + t * d);
    if (L.is_moe) moe_ffn(c, L, h.data(), T, y.data());
    else swiglu_mlp({L.ffn_gate, L.ffn_up, L.ffn_down}, h.data(), T, y.data());
    for (size_t i = 0; i < x.size(); ++i) x[i] += y[i];
  }
  for (auto& [seq, len] : lengths) kv_->set_length(seq, len);

  // Final norm and head, only for the rows that want logits.
  std::vector<float> rows;
  int64_t n_out = 0;
  for (int64_t t = 0; t < T; ++t) {
    if (!batch.want_logits.empty() && !batch.want_logits[static_cast<size_t>(t)]) continue;
    rows.resize(static_cast<size_t>((n_out + 1) * d));
    rms_norm(x.data() + t * d, model_.output_norm.data(), d, c.rms_norm_eps, rows.data() + n_out * d);
    ++n_out;
  }
  std::vector<float> logits(static_cast<size_t>(n_out * c.vocab_size));
  if (n_out) kernels::matmul(model_.output, rows.data(), n_out, logits.data());
  return logits;
}

}  // namespace mlamoe
