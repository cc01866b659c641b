// The planner's cost model, from first principles: bytes stored, bytes moved and FLOPs
// per step for a model on a deployment, turned into times with the hardware's peaks.
//
//   step time = max(compute time, memory time) + communication (− what overlaps)
//   compute   = linear FLOPs / (peak at the weight precision × compute efficiency)
//             + attention FLOPs / (BF16 peak × compute efficiency)
//   memory    = (weights read + KV read/written) / (HBM bandwidth × bandwidth efficiency)
//   comm      = expert-parallel all-to-all (dispatch + combine) over scale-up / scale-out
//               links, and tensor-parallel all-reduces over scale-up
//
// On `--hw local` the compute terms use the engine's own kernels as measured on this
// machine (planner/kernel_probe.h): each matrix class at the matmul rate for the tokens it
// sees in the step (a prompt's tokens; tokens × k / touched experts for a routed expert;
// 1 in decode), attention at the absorbed-attention kernel's rate, no efficiency factor.
//
// A decode step reads every non-expert weight once and, per MoE layer, only the experts
// the batch touches: at T tokens choosing k of E, E·(1−(1−k/E)^T) distinct experts.
// Attention work grows with the context: MLA decode reads kv_lora_rank + qk_rope_head_dim
// values per cached token and layer (absorbed form); MHA/GQA read 2 × kv_heads × d_h.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "planner/hardware.h"
#include "planner/model_shape.h"

namespace mlamoe::planner {

// A storage precision: bytes per value and the compute peak its matmuls run at.
struct Precision {
  std::string name;
  double bytes = 2;
  std::string compute = "bf16";
};
Precision weight_precision(const std::string& name);  // fp8 | bf16 | fp16 | fp32 | q8 | q4
Precision kv_precision(const std::string& name);      // fp8 | bf16 | fp16 | fp32 | <bits> (e.g. "6")

struct Deployment {
  int64_t devices = 0;  // 0: the system's device count, or 1 for a bare accelerator
  int64_t tp = 1;       // tensor parallel: one attention replica spans tp devices
  int64_t ep = 1;       // expert parallel: routed experts spread over ep devices
  int64_t batch = 0;    // concurrent sequences per attention replica; 0: min(fits, 64)
  int64_t ctx_in = 1024, ctx_out = 256;  // prompt and generated tokens per sequence
  std::string weights = "bf16", kv = "bf16";
  double weight_bytes_per_param = 0;  // > 0: the stored size per weight (a GGUF's), overriding `weights`
  std::optional<double> usd_per_hour;  // per device; default: the catalog's, if any
  // Assumptions (docs/planner.md says why each default):
  double compute_efficiency = 0.6;    // achieved / peak FLOP/s in matmuls and attention
  double bandwidth_efficiency = 0.8;  // achieved / peak HBM bandwidth
  double link_efficiency = 0.8;       // achieved / nominal link bandwidth (DeepSeek: 160 of 200 GB/s NVLink)
  double overlap = 0.0;               // share of communication hidden behind compute (0..1)
  double memory_utilization = 0.9;    // share of device memory for weights + KV (rest: activations, runtime)
};

Precision deployment_weights(const Deployment& d);  // `weights`, resized by weight_bytes_per_param

// One step of one phase on one device.
struct PhaseCost {
  double tokens = 0;  // tokens this device completes per step
  double flops = 0, linear_flops = 0, attention_flops = 0;
  double bytes = 0, weight_bytes = 0, kv_bytes = 0;
  double scale_up_bytes = 0, scale_out_bytes = 0;
  double experts_touched_per_layer = 0;  // distinct routed experts one expert group reads per layer
  double t_compute = 0, t_memory = 0, t_comm = 0, t_step = 0;
  double t_linear = 0, t_attention = 0;  // t_compute = t_linear + t_attention
  std::string bound;  // "compute", "memory" or "communication"
  double tokens_per_s() const { return t_step > 0 ? tokens / t_step : 0; }
  double arithmetic_intensity() const { return bytes > 0 ? flops / bytes : 0; }
};

struct Plan {
  ModelShape model;
  HardwareChoice hw;
  Deployment dep;  // with defaults resolved
  Precision wp, kvp;
  int64_t replicas = 1;
  double weight_bytes_per_device = 0, weight_bytes_total = 0;
  double kv_bytes_per_token = 0, kv_bytes_per_token_mha = 0, kv_bytes_per_token_per_device = 0;
  double kv_capacity_bytes_per_device = 0;
  int64_t max_sequences_per_replica = 0, max_sequences_system = 0;
  PhaseCost prefill, decode, first_token;
  double prefill_tokens_per_s = 0, prefill_tokens_per_s_system = 0;
  double decode_tokens_per_s = 0, decode_tokens_per_s_system = 0;
  double ttft_s = 0, tpot_s = 0;
  std::optional<double> usd_per_hour, usd_per_mtok_in, usd_per_mtok_out;
  std::optional<double> joules_per_token_in, joules_per_token_out;
};

// E·(1−(1−k/E)^T): expected distinct experts when T tokens each pick k of E uniformly.
double expected_distinct_experts(int64_t n_experts, int64_t k, double tokens);

// Throws mlamoe::Error with one line on impossible input: bad parallel degrees, a model
// that does not fit (naming how many devices would), a batch that does not fit.
Plan make_plan(const ModelShape& model, const HardwareChoice& hw, Deployment dep);

// Weights per device for a given split (used by make_plan and the fit search).
double weight_bytes_per_device(const ModelShape& m, const Precision& wp, int64_t tp, int64_t ep);

// "needs at least N devices of <hw> (--devices N --tp T --ep E)" or why nothing fits.
std::string fit_suggestion(const ModelShape& m, const HardwareChoice& hw, const Deployment& dep);

nlohmann::json plan_to_json(const Plan& p);

}  // namespace mlamoe::planner
