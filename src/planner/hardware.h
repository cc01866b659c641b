// The hardware catalog: accelerators, systems and HBM generations read from
// data/hardware/*.json, plus "local", measured on this machine at run time.
// Every figure is a per-device peak as its vendor states it, dense (never sparse),
// one number per precision; HBM stack bandwidth and capacity are computed from the
// generation's bus width, pin rate, die density and stack height, never stored.
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace mlamoe::planner {

// One HBM stack: bandwidth = bus_width_bits × pin_rate / 8, capacity = die × height / 8.
struct HbmStack {
  std::string generation;
  int64_t bus_width_bits = 1024;
  double pin_rate_gbps = 0;  // Gb/s per pin
  double die_gbit = 0;       // DRAM die density in Gbit
  int64_t stack_height = 0;  // dies per stack (4-Hi, 8-Hi, 12-Hi, 16-Hi)
  double bandwidth_gbps() const { return bus_width_bits * pin_rate_gbps / 8.0; }  // GB/s
  double capacity_gb() const { return die_gbit * stack_height / 8.0; }             // GB
};

struct Link {
  std::string name;
  double gbps_per_direction = 0;  // GB/s each way per device
};

// The engine's own kernels measured on this machine (planner/kernel_probe.h); only the
// local entry has them. The cost model then times matmuls and attention with these
// rates instead of a datasheet peak × an efficiency.
struct MeasuredKernels {
  std::string weight_type;  // the rates the cost model uses: matmul[weight_type]
  int threads = 1;
  // GMAC/s of kernels::matmul per weight type ("q4_0", "q8_0"), at tokens per matrix.
  std::map<std::string, std::map<int64_t, double>> matmul_gmacs;
  double attention_gflops_one_thread = 0;   // one token's heads on one thread (decode)
  double attention_gflops_all_threads = 0;  // 4-token groups on every thread (prefill)
  // The naive path (K/V decompressed per head, kernels::dense_attention_accumulate): one
  // head's tile of 32 queries per item on every thread, GFLOP/s counting
  // 2·(d_nope + d_rope + d_v) per query and key (0: not measured).
  double dense_attention_gflops_all_threads = 0;
  // Prompts of at least this many tokens take the naive path in the engine's default
  // attention mode for this file (0: never, e.g. W_UK stored as attn_k_b).
  int64_t naive_prefill_from_tokens = 0;
  // GB/s of weights kernels::matmul consumes for one token from a matrix far larger than
  // the caches: a decode step's rate, with whatever overlap of arithmetic and memory
  // traffic the kernel achieves on this machine (0: not measured).
  double decode_stream_gbps = 0;
  // GMAC/s of `type` at `tokens` per matrix: interpolated in log(tokens) between the
  // measured points, clamped at the ends.
  double matmul_gmacs_at(const std::string& type, double tokens) const;
};

struct Accelerator {
  std::string id, name, vendor;
  std::string kind = "accelerator";  // or "local"
  std::map<std::string, double> peak_dense_tflops;  // "fp32", "bf16", "fp8", "int8", "fp4" ...
  double memory_gb = 0;              // usable capacity, GB (1e9 bytes)
  double memory_bandwidth_gbps = 0;  // datasheet (or measured) GB/s
  std::optional<HbmStack> hbm;
  int64_t hbm_stacks = 0;
  Link scale_up, scale_out;
  int64_t scale_up_domain = 1;  // devices that share the scale-up fabric
  std::optional<double> tdp_w, usd_per_hour;
  std::vector<std::string> sources;
  std::string notes;
  std::optional<MeasuredKernels> kernels;  // local only, once measured for a model

  // Peak for a precision, falling back to the next wider one that exists
  // (fp4 → fp8 → bf16 → fp16 → fp32); 0 if none.
  double peak_tflops(const std::string& precision) const;
  std::string peak_precision(const std::string& precision) const;  // which entry peak_tflops() used
  // Computed from the HBM stacks, when the entry describes them.
  std::optional<double> hbm_bandwidth_gbps() const;
  std::optional<double> hbm_capacity_gb() const;
};

struct System {
  std::string id, name, accelerator;
  int64_t devices = 1;
  int64_t scale_up_domain = 1;
  std::optional<double> system_power_kw;
  std::map<std::string, double> stated;  // totals as published, for cross-checks
  std::vector<std::string> sources;
  std::string notes;
};

// What `--hw` resolves to: one accelerator and, for a system, its device count and domain.
struct HardwareChoice {
  Accelerator device;
  std::optional<System> system;
  int64_t default_devices() const { return system ? system->devices : 1; }
  int64_t scale_up_domain() const { return system ? system->scale_up_domain : device.scale_up_domain; }
  // Power per device for energy: the system's wall power shared out when known, else TDP.
  std::optional<double> watts_per_device() const;
};

class Catalog {
 public:
  // Reads every *.json in `dir`; Error naming the file and field on bad data.
  static Catalog load(const std::string& dir);
  const std::map<std::string, Accelerator>& accelerators() const { return accelerators_; }
  const std::map<std::string, System>& systems() const { return systems_; }
  const std::map<std::string, HbmStack>& hbm_generations() const { return hbm_; }
  std::vector<std::string> ids() const;  // every name --hw accepts, sorted
  // Error "unknown hardware 'x' (known: ...)" when absent. "local" measures this machine.
  HardwareChoice resolve(const std::string& id) const;

 private:
  std::map<std::string, Accelerator> accelerators_;
  std::map<std::string, System> systems_;
  std::map<std::string, HbmStack> hbm_;
  bool has_local_ = false;
  Accelerator local_template_;
};

// data/ directory: $MLAMOE_DATA if set, else the source tree's data/ (compile definition).
std::string default_data_dir();

// The local machine: read bandwidth from kernels::measure_read_bandwidth_gbps(), fp32 peak
// from the FMA probe, capacity from physical RAM.
Accelerator measure_local(const Accelerator& base);

}  // namespace mlamoe::planner
