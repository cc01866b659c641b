// The DeepSeek-V2/V3 architecture in libtorch, written like DeepSeek's reference
// model.py: MLA with optional query compression and a compressed latent c_kv plus a
// decoupled rotary key k_rope (interleaved pairs, YaRN), RMSNorm, and DeepSeekMoE with
// shared + routed experts, softmax or sigmoid scores, group-limited routing and a
// routing bias used for selection only. Parameter names are the Hugging Face ones
// ("model.layers.3.self_attn.kv_a_proj_with_mqa.weight"), so an HF checkpoint loads by
// name and our checkpoints are HF checkpoints. Include only from train/*.cpp.
#pragma once
#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

#include "model/config.h"
#include "train/tensor_file.h"

namespace mlamoe::train {

// Rotary tables for positions [0, max_positions): cos/sin of shape [positions, d_rope/2],
// with YaRN's frequency ramp when the config stretches the context.
struct RopeTables {
  torch::Tensor cos, sin;
};
RopeTables make_rope_tables(const ModelConfig& c, int64_t max_positions);
// Rotates interleaved pairs (x0,x1),(x2,x3)... of the last dim; x: [B, T, H, d_rope].
torch::Tensor apply_rotary(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin);

// Latent KV cache of one generation batch: per layer the normalized c_kv [B, T, d_c]
// and the rotated k_rope [B, T, d_rope] — all that MLA needs to keep.
struct LatentCache {
  std::vector<torch::Tensor> c_kv, k_rope;
  int64_t length = 0;
};

// What the routers did in one forward: per MoE layer, the number of token slots each
// routed expert received, and the classic auxiliary balance loss (if asked for).
struct RoutingStats {
  bool want_aux_loss = false;
  std::vector<torch::Tensor> expert_counts;  // [n_routed] float, per MoE layer
  torch::Tensor aux_loss;                    // scalar sum over layers (undefined if not asked)
};

struct RMSNormImpl : torch::nn::Module {
  RMSNormImpl(int64_t dim, double eps);
  torch::Tensor forward(const torch::Tensor& x);
  torch::Tensor weight;
  double eps;
};
TORCH_MODULE(RMSNorm);

// One SwiGLU MLP: down(silu(gate(x)) * up(x)). Used for dense layers, experts, shared experts.
struct MlpImpl : torch::nn::Module {
  MlpImpl(int64_t dim, int64_t inter);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::Linear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};
};
TORCH_MODULE(Mlp);

struct MlaImpl : torch::nn::Module {
  explicit MlaImpl(const ModelConfig& c);
  // x: [B, T, d]; positions start at `start_pos`; with a cache, c_kv/k_rope are appended.
  torch::Tensor forward(const torch::Tensor& x, int64_t start_pos, const RopeTables& rope, LatentCache* cache,
                        size_t layer);
  ModelConfig cfg;
  double softmax_scale;
  torch::nn::Linear q_proj{nullptr}, q_a_proj{nullptr}, q_b_proj{nullptr};
  RMSNorm q_a_layernorm{nullptr};
  torch::nn::Linear kv_a_proj_with_mqa{nullptr};  // W_DKV and W_KR stacked: d -> d_c + d_rope
  RMSNorm kv_a_layernorm{nullptr};
  torch::nn::Linear kv_b_proj{nullptr};  // W_UK and W_UV stacked per head: d_c -> H*(d_nope + d_v)
  torch::nn::Linear o_proj{nullptr};
};
TORCH_MODULE(Mla);

// The router: scores s = softmax|sigmoid(x W_g^T); selection on s + bias (bias only
// for choosing experts), restricted to the topk_group best groups; weights from s.
struct GateImpl : torch::nn::Module {
  explicit GateImpl(const ModelConfig& c);
  // Returns (weights [N, k], indices [N, k]) and the raw scores [N, n_routed] through `scores_out`.
  std::pair<torch::Tensor, torch::Tensor> forward(const torch::Tensor& x, torch::Tensor* scores_out);
  ModelConfig cfg;
  torch::Tensor weight;                  // [n_routed, d]
  torch::Tensor e_score_correction_bias; // [n_routed] buffer, updated outside autograd
};
TORCH_MODULE(Gate);

struct MoeImpl : torch::nn::Module {
  explicit MoeImpl(const ModelConfig& c);
  torch::Tensor forward(const torch::Tensor& x, RoutingStats* stats);
  ModelConfig cfg;
  Gate gate{nullptr};
  torch::nn::ModuleList experts{nullptr};
  Mlp shared_experts{nullptr};  // all shared experts as one wider MLP, as HF stores them
};
TORCH_MODULE(Moe);

struct DecoderLayerImpl : torch::nn::Module {
  DecoderLayerImpl(const ModelConfig& c, int64_t layer);
  torch::Tensor forward(const torch::Tensor& x, int64_t start_pos, const RopeTables& rope, LatentCache* cache,
                        RoutingStats* stats, size_t layer);
  RMSNorm input_layernorm{nullptr}, post_attention_layernorm{nullptr};
  Mla self_attn{nullptr};
  Mlp dense_mlp{nullptr};  // registered as "mlp" when the layer is dense
  Moe moe{nullptr};        // registered as "mlp" when the layer is MoE
};
TORCH_MODULE(DecoderLayer);

struct BackboneImpl : torch::nn::Module {
  explicit BackboneImpl(const ModelConfig& c);
  torch::nn::Embedding embed_tokens{nullptr};
  torch::nn::ModuleList layers{nullptr};
  RMSNorm norm{nullptr};
};
TORCH_MODULE(Backbone);

class DeepSeekImpl : public torch::nn::Module {
 public:
  explicit DeepSeekImpl(const ModelConfig& c);
  // tokens: [B, T] int64 at positions start_pos.. ; returns logits [B, T, vocab].
  torch::Tensor forward(const torch::Tensor& tokens, int64_t start_pos = 0, LatentCache* cache = nullptr,
                        RoutingStats* stats = nullptr);
  const ModelConfig& config() const { return cfg_; }
  // Every MoE layer's routing bias buffer, in layer order.
  std::vector<torch::Tensor> routing_biases();
  // Initialization for training from scratch (normal(0, 0.02), norms 1, bias 0).
  void init_weights(uint64_t seed);
  // All parameters and buffers by HF name (views sharing storage with the model).
  std::map<std::string, torch::Tensor> state();
  // Copies `tensors` (HF names, float32) into the model; every model tensor must be
  // present with the right shape, unknown names are an error unless `allow_extra`.
  void load_state(const std::map<std::string, torch::Tensor>& tensors, const std::string& where,
                  bool allow_extra = false);

 private:
  ModelConfig cfg_;
  Backbone model_{nullptr};
  torch::nn::Linear lm_head_{nullptr};
  RopeTables rope_;
};
TORCH_MODULE(DeepSeek);

// Auxiliary-loss-free balancing (DeepSeek-V3): bias_i += gamma * sign(mean load - load_i),
// raising under-loaded experts' chance of selection and lowering over-loaded ones'.
void update_routing_bias(torch::Tensor& bias, const torch::Tensor& expert_counts, double gamma);

// Between the model and name -> float32 maps (checkpoints, HF files, GGUF export).
TensorMap to_tensor_map(DeepSeek& model);
void load_tensor_map(DeepSeek& model, const TensorMap& tensors, const std::string& where, bool allow_extra = false);
torch::Tensor to_torch(const NamedTensor& t);

}  // namespace mlamoe::train
