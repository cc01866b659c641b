// mlamoe plan: map a model onto real hardware — memory, KV cache, roofline throughput,
// latency, cost and energy — from the shapes in its config and the catalog in data/hardware.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "cli/command.h"
#include "common/error.h"
#include "common/files.h"
#include "format/gguf.h"
#include "kernels/kernels.h"
#include "model/engine.h"
#include "planner/cost_model.h"
#include "planner/hardware.h"
#include "planner/kernel_probe.h"
#include "planner/model_shape.h"
#include "planner/roofline_svg.h"

namespace mlamoe::cli {
namespace {

using namespace mlamoe::planner;

std::string num(double v, const char* f = "%.3g") {
  char b[64];
  std::snprintf(b, sizeof b, f, v);
  return b;
}
std::string gb(double bytes) { return num(bytes / 1e9, "%.2f") + " GB"; }
std::string billions(int64_t n) { return num(double(n) / 1e9, "%.2f") + "B"; }
std::string money(const std::optional<double>& v) { return v ? "$" + num(*v, "%.3f") : "—"; }
std::string rate(double v) { return v >= 100 ? num(v, "%.0f") : num(v, "%.3g"); }

void parse_ctx(const std::string& s, Deployment& d) {
  auto colon = s.find(':');
  try {
    if (colon == std::string::npos) throw std::invalid_argument(s);
    size_t a = 0, b = 0;
    d.ctx_in = std::stoll(s.substr(0, colon), &a);
    d.ctx_out = std::stoll(s.substr(colon + 1), &b);
    if (a != colon || b != s.size() - colon - 1) throw std::invalid_argument(s);
  } catch (const std::exception&) {
    fail("--ctx '", s, "': expected IN:OUT token counts, e.g. 2048:512");
  }
}

std::vector<int64_t> parse_sweep(const std::string& s) {
  auto bad = [&] { fail("--sweep '", s, "': expected batch=FROM..TO, e.g. batch=1..256"); };
  if (s.rfind("batch=", 0) != 0) bad();
  auto dots = s.find("..");
  if (dots == std::string::npos) bad();
  int64_t lo = 0, hi = 0;
  try {
    size_t a = 0, b = 0;
    lo = std::stoll(s.substr(6, dots - 6), &a);
    hi = std::stoll(s.substr(dots + 2), &b);
    if (a != dots - 6 || b != s.size() - dots - 2) bad();
  } catch (const std::invalid_argument&) {
    bad();
  } catch (const std::out_of_range&) {
    bad();
  }
  if (lo < 1 || hi < lo || hi > 1'000'000) fail("--sweep: need 1 <= FROM <= TO <= 1000000");
  std::vector<int64_t> out;
  for (int64_t b = lo; b < hi; b *= 2) out.push_back(b);
  out.push_back(hi);
  return out;
}

// The shortest prompt (from an empty cache) that the engine's default attention mode
// (--attn auto) decompresses: it depends on how the file stores W_UK and W_UV (one
// legacy attn_kv_b, as Hugging Face checkpoints do, or attn_k_b/attn_v_b).
int64_t naive_prefill_from_tokens(const std::string& model) {
  bool legacy_kv_b = true;
  if (std::filesystem::path(model).extension() == ".gguf") {
    legacy_kv_b = false;
    const auto file = GgufFile::open(model);
    for (const GgufTensor& t : file->tensors())
      if (t.name.find("attn_kv_b") != std::string::npos) legacy_kv_b = true;
  }
  for (int64_t n = 1; n <= (int64_t(1) << 20); ++n)
    if (naive_attention_pays(legacy_kv_b, n, n)) return n;
  return 0;
}

// --hw local: time the engine's own kernels for this model's shapes and weight type, and
// take the measured figures as they are (efficiency 1, the engine's f32 KV cache) unless
// the flags say otherwise.
void measure_local_kernels(const std::string& model, const ModelShape& shape, HardwareChoice& hw, Deployment& d,
                           const CLI::App& app, bool verbose) {
  GgmlType type = GgmlType::Q4_0;
  std::string mix;
  if (app.count("--weights")) {
    const std::map<std::string, GgmlType> types{{"q4", GgmlType::Q4_0}, {"q8", GgmlType::Q8_0}, {"bf16", GgmlType::BF16},
                                                {"fp16", GgmlType::F16}, {"fp32", GgmlType::F32}};
    auto it = types.find(d.weights);
    if (it == types.end()) fail("--hw local --weights ", d.weights, ": mlamoe has no such matmul kernel (q4, q8, bf16, fp16, fp32)");
    type = it->second;
  } else if (shape.file_bytes_per_param > 0) {
    WeightTypeMix m = weight_type_mix(model);
    type = m.dominant;
    mix = m.summary;
  } else {
    fail("--hw local with ", model, ": pass --weights (q4, q8, bf16 ...) to say which kernels to time");
  }
  hw.device.kernels = measure_engine_kernels(shape, type);
  hw.device.kernels->naive_prefill_from_tokens = naive_prefill_from_tokens(model);
  if (!app.count("--compute-eff")) d.compute_efficiency = 1.0;
  if (!app.count("--bw-eff")) d.bandwidth_efficiency = 1.0;
  if (!app.count("--kv")) d.kv = "fp32";
  if (verbose) {
    const MeasuredKernels& k = *hw.device.kernels;
    std::fprintf(stderr, "local: %d threads, read bandwidth %.2f GB/s, fp32 FMA %.1f GFLOP/s%s%s\n", k.threads,
                 hw.device.memory_bandwidth_gbps, hw.device.peak_tflops("fp32") * 1e3, mix.empty() ? "" : ", weights ",
                 mix.c_str());
    for (auto& [t, pts] : k.matmul_gmacs) {
      std::fprintf(stderr, "local: matmul %-5s GMAC/s at tokens", t.c_str());
      for (auto& [n, g] : pts) std::fprintf(stderr, "  %lld: %.1f", (long long)n, g);
      std::fprintf(stderr, "\n");
    }
    std::fprintf(stderr, "local: absorbed MLA attention %.1f GFLOP/s on one thread, %.1f on %d\n",
                 k.attention_gflops_one_thread, k.attention_gflops_all_threads, k.threads);
    std::fprintf(stderr, "local: naive MLA attention %.1f GFLOP/s on %d threads, taken for prompts of %lld+ tokens\n",
                 k.dense_attention_gflops_all_threads, k.threads, (long long)k.naive_prefill_from_tokens);
    std::fprintf(stderr, "local: one-token matmul streams %.2f GB/s of %s weights from memory (read bandwidth %.2f)\n",
                 k.decode_stream_gbps, k.weight_type.c_str(), hw.device.memory_bandwidth_gbps);
  }
}

void print_plan(const Plan& p) {
  const auto& m = p.model;
  const auto& d = p.dep;
  const auto& a = p.hw.device;
  std::printf("model        %s  (%s; %s total, %s active = %.1f%%%s)\n", m.name.c_str(), m.attention_name().c_str(),
              billions(m.params_total()).c_str(), billions(m.params_active()).c_str(),
              100.0 * m.params_active() / m.params_total(),
              m.mtp_params ? (", MTP " + billions(m.mtp_params) + " apart").c_str() : "");
  std::printf("hardware     %s: %lld x %s (%s), %.0f GB at %.0f GB/s, %s TFLOP/s %s dense, scale-up domain %lld\n",
              p.hw.system ? p.hw.system->id.c_str() : a.id.c_str(), (long long)d.devices, a.id.c_str(), a.name.c_str(),
              a.memory_gb, a.memory_bandwidth_gbps, num(a.peak_tflops(p.wp.compute)).c_str(),
              a.peak_precision(p.wp.compute).c_str(),
              (long long)p.hw.scale_up_domain());
  std::printf("deployment   tp %lld, ep %lld, %lld replicas, batch %lld per replica, ctx %lld:%lld, weights %s, KV %s\n",
              (long long)d.tp, (long long)d.ep, (long long)p.replicas, (long long)d.batch, (long long)d.ctx_in,
              (long long)d.ctx_out, p.wp.name.c_str(), p.kvp.name.c_str());
  std::printf("\nmemory per device\n");
  std::printf("  weights                 %s  (all devices: %s)\n", gb(p.weight_bytes_per_device).c_str(),
              gb(p.weight_bytes_total).c_str());
  std::printf("  KV per token            %s  (%lld values/layer; MHA would be %s, %lld values: %+.1f%%)\n",
              (num(p.kv_bytes_per_token / 1024, "%.1f") + " KiB").c_str(), (long long)m.kv_values_per_token_layer(),
              (num(p.kv_bytes_per_token_mha / 1024, "%.1f") + " KiB").c_str(), (long long)m.mha_values_per_token_layer(),
              -100.0 * (1.0 - p.kv_bytes_per_token / p.kv_bytes_per_token_mha));
  std::printf("  KV room                 %s  -> %lld sequences per replica, %lld in all\n",
              gb(p.kv_capacity_bytes_per_device).c_str(), (long long)p.max_sequences_per_replica,
              (long long)p.max_sequences_system);
  std::printf("\n%-9s %12s %12s %10s %10s %10s %9s %12s %s\n", "phase", "tok/s/dev", "tok/s all", "compute", "memory",
              "comm", "step", "FLOP/byte", "bound");
  auto row = [&](const char* name, const PhaseCost& s, double per_dev, double all) {
    std::printf("%-9s %12s %12s %8.2fms %8.2fms %8.2fms %7.2fms %12.1f %s\n", name, rate(per_dev).c_str(),
                rate(all).c_str(), s.t_compute * 1e3, s.t_memory * 1e3, s.t_comm * 1e3, s.t_step * 1e3,
                s.arithmetic_intensity(), s.bound.c_str());
  };
  row("prefill", p.prefill, p.prefill_tokens_per_s, p.prefill_tokens_per_s_system);
  row("decode", p.decode, p.decode_tokens_per_s, p.decode_tokens_per_s_system);
  std::printf("  compute = matmuls + attention: prefill %.2f + %.2f ms, decode %.2f + %.2f ms\n", p.prefill.t_linear * 1e3,
              p.prefill.t_attention * 1e3, p.decode.t_linear * 1e3, p.decode.t_attention * 1e3);
  if (const auto& k = a.kernels)
    std::printf("  local kernels (%d threads): %s matmul %.1f GMAC/s at 1 token, %.1f at 512; MLA attention %.1f GFLOP/s "
                "(1 thread), %.1f (all)\n",
                k->threads, k->weight_type.c_str(), k->matmul_gmacs_at(k->weight_type, 1),
                k->matmul_gmacs_at(k->weight_type, 512), k->attention_gflops_one_thread, k->attention_gflops_all_threads);
  if (m.is_moe())
    std::printf("  decode touches %.1f of %lld routed experts per layer per expert copy\n",
                p.decode.experts_touched_per_layer, (long long)m.n_routed_experts);
  std::printf("\nlatency      TTFT %.3f s (one %lld-token prompt, idle system), %.1f ms per output token = %.1f tok/s per sequence\n",
              p.ttft_s, (long long)d.ctx_in, p.tpot_s * 1e3, 1.0 / p.tpot_s);
  std::printf("cost         %s per M input, %s per M output tokens%s\n", money(p.usd_per_mtok_in).c_str(),
              money(p.usd_per_mtok_out).c_str(),
              p.usd_per_hour ? (" (at $" + num(*p.usd_per_hour, "%.2f") + "/device-hour)").c_str() : " (pass --price USD_PER_HOUR)");
  if (p.joules_per_token_in)
    std::printf("energy       %.3g J per input token, %.3g J per output token (%.0f W per device)\n", *p.joules_per_token_in,
                *p.joules_per_token_out, *p.hw.watts_per_device());
  std::printf("assumptions  compute %.0f%% of peak, HBM %.0f%%, links %.0f%%, %.0f%% of communication overlapped, %.0f%% of memory usable\n",
              100 * d.compute_efficiency, 100 * d.bandwidth_efficiency, 100 * d.link_efficiency, 100 * d.overlap,
              100 * d.memory_utilization);
}

void print_sweep(const ModelShape& m, const HardwareChoice& hw, const Deployment& base, const std::vector<int64_t>& batches,
                 bool json) {
  nlohmann::json rows = nlohmann::json::array();
  if (!json)
    std::printf("%7s %12s %12s %10s %9s %12s %9s %9s %s\n", "batch", "decode/dev", "decode/all", "tok/s/seq", "TPOT",
                "prefill/dev", "TTFT", "experts", "bound");
  for (int64_t b : batches) {
    Deployment d = base;
    d.batch = b;
    try {
      Plan p = make_plan(m, hw, d);
      if (json) {
        rows.push_back({{"batch", b}, {"decode_tokens_per_s", p.decode_tokens_per_s},
                        {"decode_tokens_per_s_system", p.decode_tokens_per_s_system}, {"tpot_s", p.tpot_s},
                        {"prefill_tokens_per_s", p.prefill_tokens_per_s}, {"ttft_s", p.ttft_s},
                        {"experts_touched_per_layer", p.decode.experts_touched_per_layer}, {"bound", p.decode.bound}});
      } else {
        std::printf("%7lld %12s %12s %10.1f %7.2fms %12s %8.3fs %9.1f %s\n", (long long)b, rate(p.decode_tokens_per_s).c_str(),
                    rate(p.decode_tokens_per_s_system).c_str(), 1.0 / p.tpot_s, p.tpot_s * 1e3,
                    rate(p.prefill_tokens_per_s).c_str(), p.ttft_s, p.decode.experts_touched_per_layer, p.decode.bound.c_str());
      }
    } catch (const Error& e) {
      if (b == batches.front()) throw;  // nothing fits: the error says why
      if (json) rows.push_back({{"batch", b}, {"error", e.what()}});
      else std::printf("%7lld  does not fit (%s)\n", (long long)b, e.what());
      break;
    }
  }
  if (json) std::printf("%s\n", nlohmann::json{{"sweep", rows}}.dump(1).c_str());
}

void print_compare(const std::string& data_dir, const std::string& user_model, const HardwareChoice& hw,
                   const Deployment& base, bool json) {
  std::vector<ModelShape> rows;
  if (!user_model.empty()) rows.push_back(load_model_shape(user_model, data_dir));
  for (const char* name : {"deepseek-v2-lite", "deepseek-v2", "deepseek-v3"}) {
    ModelShape m = load_model_shape(name, data_dir);
    rows.push_back(m);
    rows.push_back(m.with_standard_attention(m.n_heads));
    if (m.n_heads >= 8) rows.push_back(m.with_standard_attention(8));
    rows.push_back(m.with_standard_attention(1));
  }
  rows.push_back(load_model_shape("deepseek-llm-67b", data_dir));
  nlohmann::json out = nlohmann::json::array();
  const std::string hw_id = hw.system ? hw.system->id : hw.device.id;
  if (!json)
    std::printf("on %s, weights %s, KV %s, ctx %lld:%lld\n%-32s %9s %8s %8s %10s %8s %10s %8s %11s %11s %9s\n",
                hw_id.c_str(), base.weights.c_str(), base.kv.c_str(), (long long)base.ctx_in, (long long)base.ctx_out,
                "model", "total", "active", "KV/tok/L", "KV/token", "vs MHA", "weights/d", "max seq", "decode/dev",
                "prefill/dev", "$/M out");
  for (const ModelShape& m : rows) {
    Deployment d = base;
    if (!m.is_moe()) d.ep = 1;
    const Precision kvp = kv_precision(d.kv);
    const double kv_tok = m.kv_values_per_token() * kvp.bytes;
    const double vs_mha = -100.0 * (1.0 - double(m.kv_values_per_token_layer()) / m.mha_values_per_token_layer());
    nlohmann::json j{{"model", m.name}, {"attention", m.attention_name()}, {"params_total", m.params_total()},
                     {"params_active", m.params_active()}, {"kv_values_per_token_layer", m.kv_values_per_token_layer()},
                     {"kv_bytes_per_token", kv_tok}, {"kv_vs_mha_percent", vs_mha}};
    std::string tail;
    try {
      Plan p = make_plan(m, hw, d);
      j.update(plan_to_json(p));
      tail = num(p.weight_bytes_per_device / 1e9, "%.1f") + " GB" + "   " + std::to_string(p.max_sequences_system);
      char b[160];
      std::snprintf(b, sizeof b, "%10s %8lld %11s %11s %9s", (num(p.weight_bytes_per_device / 1e9, "%.1f") + " GB").c_str(),
                    (long long)p.max_sequences_system, rate(p.decode_tokens_per_s).c_str(),
                    rate(p.prefill_tokens_per_s).c_str(), money(p.usd_per_mtok_out).c_str());
      tail = b;
    } catch (const Error& e) {
      j["error"] = e.what();
      std::string msg = e.what();
      auto at = msg.find("needs at least");
      tail = "  does not fit" + (at != std::string::npos ? ": " + msg.substr(at) : "");
    }
    out.push_back(j);
    if (!json)
      std::printf("%-32s %9s %8s %8lld %10s %+7.1f%% %s\n", m.name.c_str(), billions(m.params_total()).c_str(),
                  billions(m.params_active()).c_str(), (long long)m.kv_values_per_token_layer(),
                  (num(kv_tok / 1024, "%.1f") + " KiB").c_str(), vs_mha, tail.c_str());
  }
  if (json) std::printf("%s\n", nlohmann::json{{"hardware", hw_id}, {"compare", out}}.dump(1).c_str());
}

void print_catalog(const Catalog& c) {
  std::printf("%-16s %-9s %8s %10s %12s %10s %10s %10s %7s\n", "id", "kind", "memory", "bandwidth", "HBM computed",
              "bf16 TF", "fp8 TF", "fp4 TF", "TDP W");
  for (auto& [id, a] : c.accelerators()) {
    auto pk = [&](const char* k) {
      auto it = a.peak_dense_tflops.find(k);
      return it == a.peak_dense_tflops.end() ? std::string("—") : num(it->second, "%.0f");
    };
    std::string hbm = a.hbm_bandwidth_gbps() ? num(*a.hbm_bandwidth_gbps(), "%.0f") + " GB/s" : "—";
    std::printf("%-16s %-9s %5.0f GB %5.0f GB/s %12s %10s %10s %10s %7s\n", id.c_str(), "device", a.memory_gb,
                a.memory_bandwidth_gbps, hbm.c_str(), pk("bf16").c_str(), pk("fp8").c_str(), pk("fp4").c_str(),
                a.tdp_w ? num(*a.tdp_w, "%.0f").c_str() : "—");
  }
  for (auto& [id, s] : c.systems())
    std::printf("%-16s %-9s %lld x %s, scale-up domain %lld\n", id.c_str(), "system", (long long)s.devices,
                s.accelerator.c_str(), (long long)s.scale_up_domain);
  std::printf("%-16s %-9s measured when used (read bandwidth, the engine's matmul and attention kernels, fp32 FMA peak)\n", "local", "local");
  std::printf("\nHBM generations (stack bandwidth = bus x pin rate / 8, capacity = die x height / 8):\n");
  for (auto& [name, h] : c.hbm_generations())
    std::printf("  %-6s %5lld-bit x %.2f Gb/s = %7.1f GB/s   %2.0f Gb x %2lld-Hi = %4.0f GB\n", name.c_str(),
                (long long)h.bus_width_bits, h.pin_rate_gbps, h.bandwidth_gbps(), h.die_gbit, (long long)h.stack_height,
                h.capacity_gb());
}

int run_plan(int argc, char** argv) {
  CLI::App app{"Plan a deployment: memory, KV cache, roofline throughput, latency, cost and energy"};
  std::string model, hw_id, ctx = "1024:256", sweep, svg, hw_dir;
  Deployment d;
  double price = -1;
  bool json = false, compare = false;
  app.add_option("--model,-m", model, "GGUF file, HF config.json, or a name under data/models (deepseek-v3)");
  app.add_option("--hw", hw_id, "hardware id from data/hardware (h800, hgx-h800, gb200-nvl72, local ...); 'list' shows them")
      ->required();
  app.add_option("--devices", d.devices, "devices in the deployment (default: the system's, or 1)");
  app.add_option("--tp", d.tp, "tensor-parallel degree (devices per attention replica)");
  app.add_option("--ep", d.ep, "expert-parallel degree (devices the routed experts are spread over)");
  app.add_option("--batch", d.batch, "concurrent sequences per replica (default: what fits, at most 64)");
  app.add_option("--ctx", ctx, "prompt and output tokens per sequence, IN:OUT");
  app.add_option("--weights", d.weights, "weight precision: fp8, bf16, fp16, fp32, q8, q4 (default: a GGUF's own, else bf16)");
  app.add_option("--kv", d.kv, "KV cache precision: fp8, bf16, fp16, fp32, or bits per value");
  app.add_option("--price", price, "USD per device-hour (default: the catalog's, if any)");
  app.add_option("--compute-eff", d.compute_efficiency, "achieved share of peak FLOP/s");
  app.add_option("--bw-eff", d.bandwidth_efficiency, "achieved share of peak HBM bandwidth");
  app.add_option("--link-eff", d.link_efficiency, "achieved share of nominal link bandwidth");
  app.add_option("--overlap", d.overlap, "share of communication hidden behind compute (0..1)");
  app.add_option("--mem-util", d.memory_utilization, "share of device memory for weights and KV cache");
  app.add_flag("--json", json, "print one JSON object");
  app.add_option("--svg", svg, "write the roofline with the prefill and decode operating points");
  app.add_option("--sweep", sweep, "batch=FROM..TO: throughput and latency at doubling batch sizes");
  app.add_flag("--compare", compare, "V2-Lite, V2, V3 with MLA vs MHA/GQA/MQA, and DeepSeek 67B, side by side");
  int threads = 0;
  bool verbose = false;
  app.add_option("-t,--threads", threads, "--hw local: threads the probes use, as mlamoe bench -t (default: all cores)");
  app.add_flag("-v,--verbose", verbose, "--hw local: print the measured bandwidth and kernel rates to stderr");
  app.add_option("--hw-dir", hw_dir, "hardware catalog directory (default: $MLAMOE_DATA/hardware or the source tree's)");
  return parse_and_run(app, argc, argv, [&]() -> int {
    const std::string data_dir = default_data_dir();
    Catalog catalog = Catalog::load(hw_dir.empty() ? (std::filesystem::path(data_dir) / "hardware").string() : hw_dir);
    if (hw_id == "list") {
      print_catalog(catalog);
      return 0;
    }
    parse_ctx(ctx, d);
    if (price >= 0) d.usd_per_hour = price;
    else if (app.count("--price")) fail("--price must not be negative");
    weight_precision(d.weights);  // bad precision names fail before anything is measured
    kv_precision(d.kv);
    if (model.empty() && !compare) fail("--model is required (a GGUF file, an HF config.json or a name under data/models)");
    if (threads < 0) fail("-t: thread count must be positive");
    kernels::set_threads(threads);
    HardwareChoice hw = catalog.resolve(hw_id);
    if (compare) {
      print_compare(data_dir, model, hw, d, json);
      return 0;
    }
    ModelShape shape = load_model_shape(model, data_dir);
    if (!app.count("--weights")) d.weight_bytes_per_param = shape.file_bytes_per_param;
    if (hw.device.kind == "local") measure_local_kernels(model, shape, hw, d, app, verbose);
    if (!sweep.empty()) {
      print_sweep(shape, hw, d, parse_sweep(sweep), json);
      return 0;
    }
    Plan p = make_plan(shape, hw, d);
    if (!svg.empty()) write_file_atomic(svg, roofline_svg(p));
    if (json) std::printf("%s\n", plan_to_json(p).dump(1).c_str());
    else print_plan(p);
    if (!svg.empty() && !json) std::printf("roofline     written to %s\n", svg.c_str());
    return 0;
  });
}

}  // namespace
MLAMOE_COMMAND("plan", "map a model onto hardware: memory, KV cache, throughput, latency, cost", run_plan);
}  // namespace mlamoe::cli
