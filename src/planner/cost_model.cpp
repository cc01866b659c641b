#include "planner/cost_model.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "common/error.h"

namespace mlamoe::planner {

Precision weight_precision(const std::string& name) {
  if (name == "fp8") return {name, 1.0, "fp8"};  // + one fp32 scale per 128×128 block: negligible
  if (name == "bf16" || name == "fp16") return {name, 2.0, name};
  if (name == "fp32") return {name, 4.0, "fp32"};
  if (name == "q8") return {name, 8.5 / 8, "bf16"};   // Q8_0: 32 int8 + one fp16 scale
  if (name == "q4") return {name, 4.5 / 8, "bf16"};   // Q4_K: 4.5 bits per weight, dequantized to bf16 math
  fail("--weights '", name, "': expected fp8, bf16, fp16, fp32, q8 or q4");
}

Precision kv_precision(const std::string& name) {
  if (name == "fp8") return {name, 1.0, "bf16"};
  if (name == "bf16" || name == "fp16") return {name, 2.0, "bf16"};
  if (name == "fp32") return {name, 4.0, "fp32"};
  char* end = nullptr;
  double bits = std::strtod(name.c_str(), &end);
  if (!name.empty() && end && *end == '\0' && bits >= 1 && bits <= 32) return {name + " bits", bits / 8, "bf16"};
  fail("--kv '", name, "': expected fp8, bf16, fp16, fp32 or a number of bits per value (e.g. 6)");
}

Precision deployment_weights(const Deployment& d) {
  Precision p = weight_precision(d.weights);
  if (d.weight_bytes_per_param > 0) {
    char name[64];
    std::snprintf(name, sizeof name, "file (%.2f bits/weight)", d.weight_bytes_per_param * 8);
    p.name = name;
    p.bytes = d.weight_bytes_per_param;
  }
  return p;
}

double expected_distinct_experts(int64_t n_experts, int64_t k, double tokens) {
  if (n_experts <= 0 || tokens <= 0) return 0;
  const double p_miss = 1.0 - double(k) / double(n_experts);
  return n_experts * (1.0 - std::pow(p_miss, tokens));
}

static int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

double weight_bytes_per_device(const ModelShape& m, const Precision& wp, int64_t tp, int64_t ep) {
  double routed = ep > 1 ? double(ceil_div(m.n_routed_experts, ep)) * m.moe_layers() * m.expert_params()
                         : double(m.routed_params()) / tp;
  return (double(m.params_non_routed()) / tp + routed) * wp.bytes;
}

namespace {

struct Ctx {
  const ModelShape& m;
  const HardwareChoice& hw;
  const Deployment& dep;
  Precision wp, kvp;
  double kv_per_token_device;  // bytes per cached token on one device
};

// tokens: tokens of one attention replica in this step; moe_tokens: tokens entering one
// full copy of the routed experts; attn_ctx: mean context each query attends over;
// logit_tokens: tokens whose logits the step computes (a prompt needs only its last).
PhaseCost step(const Ctx& c, double tokens, double moe_tokens, double attn_ctx, bool absorbed, double kv_read_tokens,
               double logit_tokens) {
  const ModelShape& m = c.m;
  const Accelerator& a = c.hw.device;
  const Deployment& d = c.dep;
  const double tp = double(d.tp), ep = double(d.ep);
  PhaseCost s;
  s.tokens = tokens / tp;

  // FLOPs on one device.
  const double routed_flops_per_token = 2.0 * m.moe_layers() * m.experts_per_token * double(m.expert_params());
  const double head_flops_per_token = 2.0 * double(m.head_params());
  const double body_flops = m.linear_flops_per_token() - routed_flops_per_token - head_flops_per_token;
  const double routed_flops = d.ep > 1 ? moe_tokens * routed_flops_per_token / ep : tokens * routed_flops_per_token / tp;
  const double body_and_head_flops = (tokens * body_flops + logit_tokens * head_flops_per_token) / tp;
  s.linear_flops = body_and_head_flops + routed_flops;
  s.attention_flops = tokens * m.attention_flops_per_token(attn_ctx, absorbed) / tp;
  s.flops = s.linear_flops + s.attention_flops;

  // Bytes through HBM on one device: every non-expert weight but the embedding table (only
  // its looked-up rows), the experts this step touches, and the KV cache.
  const double non_routed_read = double(m.params_non_routed() - m.embedding_params()) / tp;
  double experts_here = 0;
  if (m.is_moe()) {
    s.experts_touched_per_layer = expected_distinct_experts(m.n_routed_experts, m.experts_per_token, moe_tokens);
    const double touched_share = s.experts_touched_per_layer / m.n_routed_experts;
    experts_here = d.ep > 1 ? ceil_div(m.n_routed_experts, d.ep) * touched_share
                            : m.n_routed_experts * touched_share / tp;
  }
  s.weight_bytes = (non_routed_read + experts_here * m.moe_layers() * m.expert_params()) * c.wp.bytes;
  s.kv_bytes = kv_read_tokens * c.kv_per_token_device;
  s.bytes = s.weight_bytes + s.kv_bytes;

  // Communication of one device. Expert parallelism: each token's hidden state goes to k
  // experts (dispatch, FP8 when the weights are FP8, else BF16) and comes back (combine,
  // BF16). Copies inside the scale-up domain use its links; a token crosses to another
  // domain once per distinct remote domain (then fans out over that domain's links).
  const double dmodel = double(m.d_model);
  if (m.is_moe() && d.ep > 1) {
    const double domain = double(std::min<int64_t>(c.hw.scale_up_domain(), d.ep));
    const double domains = std::ceil(ep / domain);
    const double k = double(m.experts_per_token);
    const double per_copy = dmodel * (c.wp.bytes <= 1.0 ? 1.0 : 2.0) + dmodel * 2.0;
    const double local_copies = k * (domain - 1) / ep;
    const double remote_domains = (domains - 1) * (1.0 - std::pow(1.0 - 1.0 / domains, k));
    s.scale_up_bytes += s.tokens * m.moe_layers() * local_copies * per_copy;
    s.scale_out_bytes += s.tokens * m.moe_layers() * remote_domains * per_copy;
  }
  // Tensor parallelism: two ring all-reduces of the BF16 hidden states per layer.
  if (d.tp > 1) s.scale_up_bytes += 2.0 * m.n_layers * 2.0 * (tp - 1) / tp * tokens * dmodel * 2.0;
  const double up_bw = a.scale_up.gbps_per_direction * 1e9 * d.link_efficiency;
  const double out_bw = a.scale_out.gbps_per_direction * 1e9 * d.link_efficiency;
  const double t_up = s.scale_up_bytes > 0 ? s.scale_up_bytes / up_bw : 0;
  const double t_out = s.scale_out_bytes > 0 ? s.scale_out_bytes / out_bw : 0;
  s.t_comm = std::max(t_up, t_out);

  if (a.kernels) {
    // This machine, timed with the engine's own kernels: each class of matrix at the rate
    // the matmul kernel reaches with as many tokens as that matrix sees in this step.
    const MeasuredKernels& k = *a.kernels;
    const double eff = d.compute_efficiency;
    auto macs_time = [&](double flops, double tokens_per_matrix) {
      return flops > 0 ? flops / 2.0 / (k.matmul_gmacs_at(k.weight_type, std::max(1.0, tokens_per_matrix)) * 1e9 * eff) : 0.0;
    };
    const double tokens_per_expert =
        s.experts_touched_per_layer > 0 ? moe_tokens * m.experts_per_token / s.experts_touched_per_layer : 0;
    s.t_linear = macs_time(tokens * body_flops / tp, tokens) + macs_time(logit_tokens * head_flops_per_token / tp, logit_tokens) +
                 macs_time(routed_flops, tokens_per_expert);
    // The engine shares attention out in groups of 4 tokens (all heads), and cuts a group's
    // keys into 1024-key ranges only when there are fewer than 4 groups per thread: a
    // short-context decode step runs on one thread.
    const double groups = std::ceil(tokens / 4), threads = double(k.threads);
    const double items = groups < 4 * threads ? groups * std::ceil(attn_ctx / 1024) : groups;
    double attention_rate = items >= threads ? k.attention_gflops_all_threads : k.attention_gflops_one_thread;
    // The naive path (long prompts): threads over (head, 32-query tile) items.
    if (!absorbed && k.dense_attention_gflops_all_threads > 0) attention_rate = k.dense_attention_gflops_all_threads;
    s.t_attention = s.attention_flops > 0 && attention_rate > 0 ? s.attention_flops / (attention_rate * 1e9 * eff) : 0;
  } else {
    const double linear_peak = a.peak_tflops(c.wp.compute) * 1e12 * d.compute_efficiency;
    const double attention_peak = a.peak_tflops("bf16") * 1e12 * d.compute_efficiency;
    s.t_linear = s.linear_flops / linear_peak;
    s.t_attention = s.attention_flops / attention_peak;
  }
  s.t_compute = s.t_linear + s.t_attention;
  s.t_memory = s.bytes / (a.memory_bandwidth_gbps * 1e9 * d.bandwidth_efficiency);
  if (a.kernels && a.kernels->decode_stream_gbps > 0) {
    // This machine: weights stream at the rate the engine's matmul consumes them from
    // memory (measured), which on a CPU is below the read bandwidth when its cores
    // alternate between arithmetic and waiting for lines instead of overlapping them.
    const double stream = std::min(a.memory_bandwidth_gbps, a.kernels->decode_stream_gbps) * 1e9 * d.bandwidth_efficiency;
    s.t_memory = s.weight_bytes / stream + s.kv_bytes / (a.memory_bandwidth_gbps * 1e9 * d.bandwidth_efficiency);
  }
  const double busy = std::max(s.t_compute, s.t_memory);
  s.t_step = busy + s.t_comm - d.overlap * std::min(s.t_comm, busy);
  s.bound = s.t_comm > busy ? "communication" : s.t_compute >= s.t_memory ? "compute" : "memory";
  return s;
}

void validate(const ModelShape& m, const HardwareChoice& hw, const Deployment& d) {
  const std::string hw_id = hw.system ? hw.system->id : hw.device.id;
  if (d.devices < 1) fail("--devices must be at least 1, found ", d.devices);
  if (d.tp < 1 || d.ep < 1) fail("--tp and --ep must be at least 1");
  if (d.devices % d.tp) fail("--devices ", d.devices, " is not a multiple of --tp ", d.tp);
  if (d.devices % d.ep) fail("--devices ", d.devices, " is not a multiple of --ep ", d.ep);
  if (m.n_heads % d.tp) fail("--tp ", d.tp, " does not divide the model's ", m.n_heads, " attention heads");
  if (d.ep > 1 && !m.is_moe()) fail("--ep ", d.ep, ": ", m.name, " is dense (no routed experts to spread)");
  if (d.ep > m.n_routed_experts && m.is_moe())
    fail("--ep ", d.ep, " exceeds the model's ", m.n_routed_experts, " routed experts");
  if (d.tp > hw.scale_up_domain())
    fail("--tp ", d.tp, " exceeds the scale-up domain of ", hw_id, " (", hw.scale_up_domain(), " devices)");
  if (d.ep > hw.scale_up_domain() && hw.device.scale_out.gbps_per_direction <= 0)
    fail("--ep ", d.ep, " exceeds the scale-up domain of ", hw_id, " (", hw.scale_up_domain(), ") and it has no scale-out link");
  if (d.ctx_in < 1 || d.ctx_out < 1) fail("--ctx IN:OUT needs IN >= 1 and OUT >= 1");
  if (d.batch < 0) fail("--batch must not be negative");
  auto in_unit = [](double v, const char* what, bool zero_ok) {
    if (!(v <= 1.0) || !(zero_ok ? v >= 0.0 : v > 0.0)) fail(what, " must be in ", zero_ok ? "[0, 1]" : "(0, 1]", ", found ", v);
  };
  in_unit(d.compute_efficiency, "--compute-eff", false);
  in_unit(d.bandwidth_efficiency, "--bw-eff", false);
  in_unit(d.link_efficiency, "--link-eff", false);
  in_unit(d.memory_utilization, "--mem-util", false);
  in_unit(d.overlap, "--overlap", true);
}

double kv_per_token_device(const ModelShape& m, const Precision& kvp, int64_t tp) {
  // MLA's latent (and MQA's single head) cannot be split by heads: every TP rank keeps it all.
  return m.kv_values_per_token() * kvp.bytes / double(std::min(tp, m.kv_heads_for_sharding()));
}

}  // namespace

std::string fit_suggestion(const ModelShape& m, const HardwareChoice& hw, const Deployment& dep) {
  const Precision wp = deployment_weights(dep), kvp = kv_precision(dep.kv);
  const double usable = hw.device.memory_gb * 1e9 * dep.memory_utilization;
  const int64_t domain = hw.scale_up_domain();
  const bool scale_out = hw.device.scale_out.gbps_per_direction > 0;
  const std::string& hw_id = hw.device.id;
  for (int64_t n = 1; n <= 65536; ++n) {
    std::vector<std::pair<int64_t, int64_t>> splits;  // (tp, ep)
    for (int64_t tp = std::min(n, domain); tp >= 1; --tp)
      if (n % tp == 0 && m.n_heads % tp == 0) {
        if (m.is_moe() && n <= m.n_routed_experts && (n <= domain || scale_out)) splits.push_back({tp, n});
        if (tp == n) splits.push_back({tp, 1});
      }
    for (auto [tp, ep] : splits) {
      double need = weight_bytes_per_device(m, wp, tp, ep) +
                    kv_per_token_device(m, kvp, tp) * double(dep.ctx_in + dep.ctx_out);
      if (need <= usable) {
        std::ostringstream os;
        os << "needs at least " << n << " devices of " << hw_id << " (e.g. --devices " << n << " --tp " << tp << " --ep " << ep << ")";
        return os.str();
      }
    }
    if (n > domain && !scale_out) break;
  }
  std::ostringstream os;
  os << "no split of " << hw_id << " holds it (tensor parallelism stops at the " << domain
     << "-device scale-up domain; try a smaller --weights precision or a larger device)";
  return os.str();
}

Plan make_plan(const ModelShape& m, const HardwareChoice& hw, Deployment d) {
  Plan p;
  p.model = m;
  p.hw = hw;
  if (d.devices == 0) d.devices = hw.default_devices();
  validate(m, hw, d);
  p.wp = deployment_weights(d);
  p.kvp = kv_precision(d.kv);
  const Accelerator& a = hw.device;
  p.replicas = d.devices / d.tp;

  p.weight_bytes_per_device = weight_bytes_per_device(m, p.wp, d.tp, d.ep);
  p.weight_bytes_total = double(m.params_total()) * p.wp.bytes;
  p.kv_bytes_per_token = m.kv_values_per_token() * p.kvp.bytes;
  p.kv_bytes_per_token_mha = double(m.mha_values_per_token_layer()) * m.n_layers * p.kvp.bytes;
  p.kv_bytes_per_token_per_device = kv_per_token_device(m, p.kvp, d.tp);
  p.kv_capacity_bytes_per_device = a.memory_gb * 1e9 * d.memory_utilization - p.weight_bytes_per_device;
  const double seq_bytes = p.kv_bytes_per_token_per_device * double(d.ctx_in + d.ctx_out);
  p.max_sequences_per_replica =
      p.kv_capacity_bytes_per_device > 0 ? int64_t(std::floor(p.kv_capacity_bytes_per_device / seq_bytes)) : 0;
  const std::string hw_id = hw.system ? hw.system->id : a.id;
  if (p.max_sequences_per_replica < 1) {
    std::ostringstream os;
    os.precision(3);
    os << m.name << " (" << p.wp.name << ") does not fit on " << d.devices << " x " << a.id
       << (hw.system ? " (" + hw_id + ")" : std::string()) << " with --tp " << d.tp
       << " --ep " << d.ep << ": " << p.weight_bytes_per_device / 1e9 << " GB of weights per device, "
       << a.memory_gb * d.memory_utilization << " GB usable; " << fit_suggestion(m, hw, d);
    fail(os.str());
  }
  p.max_sequences_system = p.max_sequences_per_replica * p.replicas;
  if (d.batch == 0) d.batch = std::min<int64_t>(p.max_sequences_per_replica, 64);
  if (d.batch > p.max_sequences_per_replica)
    fail("--batch ", d.batch, " does not fit: each replica holds at most ", p.max_sequences_per_replica, " sequences of ",
         d.ctx_in, "+", d.ctx_out, " tokens on ", hw_id);
  p.dep = d;

  const Ctx c{m, hw, d, p.wp, p.kvp, p.kv_bytes_per_token_per_device};
  const double B = double(d.batch), in = double(d.ctx_in), out = double(d.ctx_out);
  const double spread = d.ep > 1 ? double(d.ep) / d.tp : 1.0;  // replicas feeding one expert copy
  const double causal_ctx = (in + 1) / 2;                        // mean keys per prompt query
  // Prefill: the whole batch of prompts in one step; K/V written once and read once; logits
  // for each prompt's last token. It runs decompressed on accelerators; mlamoe itself
  // (--hw local) decompresses for prompts as long as its default attention mode does on
  // this file, and runs absorbed otherwise. Decompressing the prompt's own keys costs
  // the MACs absorbing its queries and up-projecting its outputs would (W_UK and W_UV
  // once per token either way), so the matmul count is the same on both paths.
  const bool prefill_absorbed =
      a.kernels.has_value() && !(a.kernels->naive_prefill_from_tokens > 0 && in >= double(a.kernels->naive_prefill_from_tokens));
  p.prefill = step(c, B * in, B * in * spread, causal_ctx, prefill_absorbed, 2 * B * in, B);
  // Time to first token: one prompt alone on an idle deployment.
  p.first_token = step(c, in, in, causal_ctx, prefill_absorbed, 2 * in, 1);
  // Decode: one token for each of B sequences at the mean context of the generation.
  const double decode_ctx = in + out / 2;
  p.decode = step(c, B, B * spread, decode_ctx, true, B * (decode_ctx + 1), B);

  p.prefill_tokens_per_s = p.prefill.tokens_per_s();
  p.prefill_tokens_per_s_system = p.prefill_tokens_per_s * d.devices;
  p.decode_tokens_per_s = p.decode.tokens_per_s();
  p.decode_tokens_per_s_system = p.decode_tokens_per_s * d.devices;
  p.ttft_s = p.first_token.t_step;
  p.tpot_s = p.decode.t_step;
  p.usd_per_hour = d.usd_per_hour ? d.usd_per_hour : a.usd_per_hour;
  if (p.usd_per_hour) {
    p.usd_per_mtok_in = *p.usd_per_hour / 3600.0 / p.prefill_tokens_per_s * 1e6;
    p.usd_per_mtok_out = *p.usd_per_hour / 3600.0 / p.decode_tokens_per_s * 1e6;
  }
  if (auto w = hw.watts_per_device()) {
    p.joules_per_token_in = *w / p.prefill_tokens_per_s;
    p.joules_per_token_out = *w / p.decode_tokens_per_s;
  }
  return p;
}

static nlohmann::json phase_json(const PhaseCost& s) {
  return {{"tokens_per_step", s.tokens},      {"flops", s.flops},
          {"linear_flops", s.linear_flops},   {"attention_flops", s.attention_flops},
          {"bytes", s.bytes},                 {"weight_bytes", s.weight_bytes},
          {"kv_bytes", s.kv_bytes},           {"scale_up_bytes", s.scale_up_bytes},
          {"scale_out_bytes", s.scale_out_bytes},
          {"experts_touched_per_layer", s.experts_touched_per_layer},
          {"t_compute_s", s.t_compute},       {"t_linear_s", s.t_linear},
          {"t_attention_s", s.t_attention},   {"t_memory_s", s.t_memory},
          {"t_comm_s", s.t_comm},             {"t_step_s", s.t_step},
          {"arithmetic_intensity", s.arithmetic_intensity()}, {"bound", s.bound}};
}

nlohmann::json plan_to_json(const Plan& p) {
  auto opt = [](const std::optional<double>& v) { return v ? nlohmann::json(*v) : nlohmann::json(nullptr); };
  const auto& m = p.model;
  const auto& d = p.dep;
  nlohmann::json j;
  j["model"] = m.name;
  j["attention"] = m.attention_name();
  j["hardware"] = p.hw.system ? p.hw.system->id : p.hw.device.id;
  j["accelerator"] = p.hw.device.id;
  j["devices"] = d.devices;
  j["tp"] = d.tp;
  j["ep"] = d.ep;
  j["replicas"] = p.replicas;
  j["batch"] = d.batch;
  j["ctx_in"] = d.ctx_in;
  j["ctx_out"] = d.ctx_out;
  j["weights"] = p.wp.name;
  j["kv"] = p.kvp.name;
  j["params_total"] = m.params_total();
  j["params_active"] = m.params_active();
  j["params_mtp"] = m.mtp_params;
  j["weight_bytes_total"] = p.weight_bytes_total;
  j["weight_bytes_per_device"] = p.weight_bytes_per_device;
  j["kv_values_per_token_layer"] = m.kv_values_per_token_layer();
  j["kv_values_per_token_layer_mha"] = m.mha_values_per_token_layer();
  j["kv_bytes_per_token"] = p.kv_bytes_per_token;
  j["kv_bytes_per_token_mha"] = p.kv_bytes_per_token_mha;
  j["kv_bytes_per_token_per_device"] = p.kv_bytes_per_token_per_device;
  j["kv_capacity_bytes_per_device"] = p.kv_capacity_bytes_per_device;
  j["max_concurrent_sequences"] = p.max_sequences_system;
  j["max_concurrent_sequences_per_replica"] = p.max_sequences_per_replica;
  j["prefill_tokens_per_s"] = p.prefill_tokens_per_s;
  j["prefill_tokens_per_s_system"] = p.prefill_tokens_per_s_system;
  j["decode_tokens_per_s"] = p.decode_tokens_per_s;
  j["decode_tokens_per_s_system"] = p.decode_tokens_per_s_system;
  j["decode_tokens_per_s_per_sequence"] = p.tpot_s > 0 ? 1.0 / p.tpot_s : 0.0;
  j["ttft_s"] = p.ttft_s;
  j["tpot_s"] = p.tpot_s;
  j["usd_per_hour"] = opt(p.usd_per_hour);
  j["usd_per_mtok_in"] = opt(p.usd_per_mtok_in);
  j["usd_per_mtok_out"] = opt(p.usd_per_mtok_out);
  j["joules_per_token_in"] = opt(p.joules_per_token_in);
  j["joules_per_token_out"] = opt(p.joules_per_token_out);
  j["peak_tflops_linear"] = p.hw.device.peak_tflops(p.wp.compute);
  j["peak_tflops_bf16"] = p.hw.device.peak_tflops("bf16");
  j["memory_bandwidth_gbps"] = p.hw.device.memory_bandwidth_gbps;
  if (const auto& k = p.hw.device.kernels) {
    nlohmann::json rates;
    for (auto& [type, pts] : k->matmul_gmacs)
      for (auto& [tokens, gmacs] : pts) rates[type][std::to_string(tokens)] = gmacs;
    j["local_kernels"] = {{"weight_type", k->weight_type},
                          {"threads", k->threads},
                          {"matmul_gmacs_by_tokens", rates},
                          {"attention_gflops_one_thread", k->attention_gflops_one_thread},
                          {"attention_gflops_all_threads", k->attention_gflops_all_threads},
                          {"dense_attention_gflops_all_threads", k->dense_attention_gflops_all_threads},
                          {"naive_prefill_from_tokens", k->naive_prefill_from_tokens},
                          {"decode_stream_gbps", k->decode_stream_gbps},
                          {"fp32_fma_gflops", p.hw.device.peak_tflops("fp32") * 1e3}};
  }
  j["prefill"] = phase_json(p.prefill);
  j["decode"] = phase_json(p.decode);
  j["first_token"] = phase_json(p.first_token);
  j["assumptions"] = {{"compute_efficiency", d.compute_efficiency}, {"bandwidth_efficiency", d.bandwidth_efficiency},
                      {"link_efficiency", d.link_efficiency},       {"overlap", d.overlap},
                      {"memory_utilization", d.memory_utilization}};
  return j;
}

}  // namespace mlamoe::planner
