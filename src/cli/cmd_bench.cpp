// mlamoe bench: prompt processing (pp) and token generation (tg) speed, and how close
// decode comes to the memory-bandwidth roofline: a decode step must stream
// Model::bytes_per_token() bytes, so no engine can exceed membw / bytes_per_token.
// Like llama-bench: random tokens, pp as one batch from an empty cache with logits for
// the last token only, tg one token at a time from an empty cache; one untimed warm-up.
// With -d N (or --session FILE) the tests start from an N-token context instead of an
// empty cache (the context is kept, each repetition truncates back to it); the KV flags
// choose the cache (RAM budget, disk tier, storage type) the tests run on.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <sys/resource.h>

#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "cli/common_flags.h"
#include "common/error.h"
#include "common/progress.h"
#include "kernels/kernels.h"
#include "kernels/membw.h"
#include "kernels/phase_profile.h"

namespace mlamoe::cli {
namespace {

struct Stats {
  double median = 0, min = 0, max = 0;
};

Stats summarize(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return {n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]), v.front(), v.back()};
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Back to the first `depth` positions of sequence 0 (the -d / --session context).
void reset_to_depth(Engine& engine, int64_t depth) {
  if (depth == 0) engine.kv().clear(0);
  else engine.kv().truncate(0, depth);
}

// Tokens per second of one prompt of p tokens, after `depth` cached positions.
double run_pp(Engine& engine, const std::vector<int32_t>& tokens, int64_t p, int64_t depth) {
  reset_to_depth(engine, depth);
  Batch b;
  for (int64_t i = 0; i < p; ++i) b.add(tokens[static_cast<size_t>(i)], static_cast<int32_t>(depth + i), 0, i == p - 1);
  const auto t0 = std::chrono::steady_clock::now();
  engine.forward(b);
  return static_cast<double>(p) / seconds_since(t0);
}

// Tokens per second of n decode steps of one token each, after `depth` cached positions.
double run_tg(Engine& engine, const std::vector<int32_t>& tokens, int64_t n, int64_t depth) {
  reset_to_depth(engine, depth);
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < n; ++i) {
    Batch b;
    b.add(tokens[static_cast<size_t>(i)], static_cast<int32_t>(depth + i), 0);
    engine.forward(b);
  }
  return static_cast<double>(n) / seconds_since(t0);
}

// One tg repetition against the roofline of the bandwidth measured alongside it. This
// VM's read bandwidth drifts 2-3x within a minute, so one probe at the end can belong
// to another regime than the decode it judges. The steps run in segments of
// kProbeEvery tokens with a (untimed) probe between segments; each segment's roofline
// time is its bytes over the mean of the probes on either side of it.
struct TgRun {
  double tok_s = 0, roofline_fraction = 0, seconds = 0;
  std::vector<double> gbps;
};
constexpr int64_t kProbeEvery = 16;

TgRun run_tg_against_roofline(Engine& engine, const std::vector<int32_t>& tokens, int64_t n, int64_t depth,
                              kernels::ReadBandwidthProbe& probe, double bytes_per_token) {
  reset_to_depth(engine, depth);
  TgRun run;
  run.gbps.push_back(probe.gbps(3));
  double spent = 0, roofline_s = 0;
  for (int64_t i0 = 0; i0 < n; i0 += kProbeEvery) {
    const int64_t i1 = std::min(n, i0 + kProbeEvery);
    const auto t0 = std::chrono::steady_clock::now();
    for (int64_t i = i0; i < i1; ++i) {
      Batch b;
      b.add(tokens[static_cast<size_t>(i)], static_cast<int32_t>(depth + i), 0);
      engine.forward(b);
    }
    spent += seconds_since(t0);
    run.gbps.push_back(probe.gbps(3));
    const double gbps = 0.5 * (run.gbps[run.gbps.size() - 2] + run.gbps.back());
    roofline_s += static_cast<double>(i1 - i0) * bytes_per_token / (gbps * 1e9);
  }
  run.seconds = spent;
  run.tok_s = static_cast<double>(n) / spent;
  run.roofline_fraction = roofline_s / spent;
  return run;
}

// --phases: the decode steps of every tg repetition, phase by phase. A phase's time is
// its wall time, from its start to the barrier that ends it (the longest thread's work +
// wait); "outside" is what no phase covers: the serial steps between them (norms, RoPE,
// routing, the cache) and starting the parallel regions.
nlohmann::json report_phases(double decode_s, int64_t tokens, uint64_t roofline_bytes_per_token) {
  const std::vector<kernels::PhaseTotals> totals = kernels::phase_profile();
  const double per_token_ms = 1e3 / static_cast<double>(tokens);
  std::printf("decode by phase (%lld tokens, %d threads): ms/token, share of decode, share of it spent waiting at its barrier, weights read\n",
              static_cast<long long>(tokens), kernels::threads());
  nlohmann::json out = nlohmann::json::array();
  double covered = 0;
  uint64_t bytes = 0;
  for (size_t p = 0; p < totals.size(); ++p) {
    const kernels::PhaseTotals& t = totals[p];
    if (t.count == 0) continue;
    const double span = t.span_s, gbps = span > 0 ? static_cast<double>(t.weight_bytes) / span / 1e9 : 0;
    const double wait_share = t.work_s + t.wait_s > 0 ? t.wait_s / (t.work_s + t.wait_s) : 0;
    const char* name = kernels::phase_name(static_cast<kernels::Phase>(p));
    covered += span;
    bytes += t.weight_bytes;
    std::printf("  %-17s %7.2f ms %6.1f%%  waiting %5.1f%%", name, span * per_token_ms, 100.0 * span / decode_s, 100.0 * wait_share);
    if (t.weight_bytes) std::printf("  %8s at %5.1f GB/s", human_bytes(static_cast<double>(t.weight_bytes) / static_cast<double>(tokens)).c_str(), gbps);
    std::printf("\n");
    out.push_back({{"phase", name}, {"ms_per_token", span * per_token_ms}, {"share", span / decode_s}, {"wait_share", wait_share},
                   {"weight_bytes_per_token", static_cast<double>(t.weight_bytes) / static_cast<double>(tokens)}, {"weight_gbps", gbps}});
  }
  const double outside = std::max(0.0, decode_s - covered);
  std::printf("  %-17s %7.2f ms %6.1f%%\n", "outside phases", outside * per_token_ms, 100.0 * outside / decode_s);
  const double kernel_bpt = static_cast<double>(bytes) / static_cast<double>(tokens);
  std::printf("weights read by the products: %s per token (the roofline counts %s)\n", human_bytes(kernel_bpt).c_str(),
              human_bytes(static_cast<double>(roofline_bytes_per_token)).c_str());
  out.push_back({{"phase", "outside phases"}, {"ms_per_token", outside * per_token_ms}, {"share", outside / decode_s}});
  return {{"phases", out}, {"weight_bytes_per_token", kernel_bpt}};
}

// The threads' exchange cost, which tells the host's placement of the cores apart on
// VMs whose read bandwidth moves with it (BENCHMARKS.md, "Two regimes are two placements").
void print_round_trip(double ns) {
  if (ns > 0) std::printf("cores: %.0f ns a cache line's round trip between threads 0 and 1\n", ns);
}

// NaN (one thread, or no measurement) as JSON null.
nlohmann::json json_number(double v) { return v == v ? nlohmann::json(v) : nlohmann::json(nullptr); }

// getrusage's high-water mark of resident memory (weights, KV, scratch).
double peak_rss_bytes() {
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_maxrss) * 1024.0;
}

nlohmann::json stats_json(const std::optional<Stats>& s) {
  if (!s) return nullptr;
  return {{"median", s->median}, {"min", s->min}, {"max", s->max}};
}

int run_bench(int argc, char** argv) {
  CLI::App app{"Measure prompt processing and token generation speed against the memory-bandwidth roofline"};
  ModelFlags mf;
  mf.add_to(app, /*model_required=*/false);
  int64_t n_prompt = 512, n_gen = 128;
  int reps = 5;
  bool json = false, membw_only = false, phases = false;
  app.add_option("-p,--n-prompt", n_prompt, "prompt tokens processed as one batch (0: skip pp)");
  app.add_option("-n,--n-gen", n_gen, "tokens generated one at a time (0: skip tg)");
  app.add_option("-r,--repetitions", reps, "repetitions of each test (median, min, max reported)");
  app.add_flag("--json", json, "print one JSON object as the last line");
  app.add_flag("--membw", membw_only, "only measure and print the read bandwidth");
  app.add_flag("--phases", phases, "time the tg steps phase by phase: per-thread work, barrier waits, weight bytes read");
  int64_t depth = 0;
  app.add_option("-d,--depth", depth, "tokens of context (random, prefilled once) the tests start from");
  KvFlags kf;
  kf.add_to(app);  // --session FILE: the saved context is the depth instead
  return parse_and_run(app, argc, argv, [&] {
    if (reps < 1) fail("-r: repetitions must be at least 1");
    if (n_prompt < 0 || n_gen < 0) fail("-p/-n: token counts must be >= 0");
    if (depth < 0) fail("-d: depth must be >= 0");
    if (depth > 0 && !kf.session.empty()) fail("-d and --session both give the context; use one");
    if (mf.threads < 0) fail("-t: thread count must be positive");
    // JSON "isa" is the vector family (avx512, avx2, scalar), which tools compare;
    // "isa_level" says which kernels within it ran (avxvnni is an avx2 level).
    const std::string isa = kernels::isa_name(kernels::active_isa()), isa_family = kernels::isa_family_name(kernels::active_isa());
    if (membw_only) {
      kernels::set_threads(mf.threads);
      const double bw = kernels::measure_read_bandwidth_gbps(), trip = kernels::core_round_trip_ns();
      std::printf("membw: %.2f GB/s (threads %d, isa %s)\n", bw, kernels::threads(), isa.c_str());
      print_round_trip(trip);
      if (json)
        std::printf("%s\n", nlohmann::json{{"membw_gbps", bw}, {"core_round_trip_ns", json_number(trip)}, {"threads", kernels::threads()},
                                           {"isa", isa_family}, {"isa_level", isa}}
                                .dump()
                                .c_str());
      return 0;
    }
    if (mf.model.empty()) fail("-m: a model file is required (or --membw alone)");
    const auto load_start = std::chrono::steady_clock::now();
    auto model = mf.load();
    const double load_s = seconds_since(load_start);
    EngineOptions opts = mf.engine_options(*model);
    auto kv = kf.make_cache(*model);
    std::mt19937 rng(1234);
    std::uniform_int_distribution<int32_t> pick(0, static_cast<int32_t>(model->config().vocab_size - 1));
    if (!kf.session.empty()) {
      if (!std::filesystem::exists(kf.session)) fail("--session ", kf.session, ": no such file");
      depth = static_cast<int64_t>(kf.restore_session(*kv, *model, 0).size());
      if (depth == 0) fail("--session ", kf.session, ": not usable with this model (see the warning above)");
    }
    const int64_t needed = depth + std::max(n_prompt, n_gen);
    if (opts.n_ctx == 0) opts.n_ctx = std::max<int64_t>(needed, 1);
    if (opts.n_ctx < needed) fail("-c ", opts.n_ctx, ": smaller than the depth ", depth, " + -p ", n_prompt, " / -n ", n_gen);
    Engine engine(*model, opts, kv);
    if (depth > 0 && kf.session.empty()) {
      std::vector<int32_t> context(static_cast<size_t>(depth));
      for (auto& t : context) t = pick(rng);
      const auto t0 = std::chrono::steady_clock::now();
      for (int64_t i = 0; i < depth; i += 256) {  // chunks, as generate() prefills
        Batch b;
        for (int64_t j = i; j < std::min(depth, i + 256); ++j) b.add(context[static_cast<size_t>(j)], static_cast<int32_t>(j), 0, j == depth - 1);
        engine.forward(b);
      }
      std::fprintf(stderr, "depth: %lld tokens prefilled in %.2f s\n", static_cast<long long>(depth), seconds_since(t0));
    }

    std::vector<int32_t> tokens(static_cast<size_t>(std::max(n_prompt, n_gen)));
    for (auto& t : tokens) t = pick(rng);

    // Warm-up (untimed): faults the mapped weights in and grows every scratch buffer.
    if (n_prompt > 0) run_pp(engine, tokens, n_prompt, depth);
    if (n_gen > 0) run_tg(engine, tokens, std::min<int64_t>(n_gen, 4), depth);

    std::optional<Stats> pp, tg, tg_share;
    std::vector<double> v, shares, probes;
    if (n_prompt > 0) {
      for (int r = 0; r < reps; ++r) {
        v.push_back(run_pp(engine, tokens, n_prompt, depth));
        std::fprintf(stderr, "pp%lld %d/%d: %.2f tok/s\n", static_cast<long long>(n_prompt), r + 1, reps, v.back());
      }
      pp = summarize(v);
    }
    v.clear();
    // Before the bandwidth probe, whose buffer is not the model's.
    const double peak_rss = peak_rss_bytes(), file_bytes = static_cast<double>(std::filesystem::file_size(model->path()));
    const uint64_t bpt = model->bytes_per_token();
    kernels::ReadBandwidthProbe probe(size_t(512) << 20);
    double decode_s = 0;
    if (phases) {
      kernels::reset_phase_profile();
      kernels::set_phase_profiling(true);
    }
    if (n_gen > 0) {
      for (int r = 0; r < reps; ++r) {
        const TgRun run = run_tg_against_roofline(engine, tokens, n_gen, depth, probe, static_cast<double>(bpt));
        decode_s += run.seconds;
        v.push_back(run.tok_s);
        shares.push_back(run.roofline_fraction);
        probes.insert(probes.end(), run.gbps.begin(), run.gbps.end());
        std::fprintf(stderr, "tg%lld %d/%d: %.2f tok/s, %.1f%% of the roofline at %.1f-%.1f GB/s\n", static_cast<long long>(n_gen),
                     r + 1, reps, v.back(), 100.0 * shares.back(), *std::min_element(run.gbps.begin(), run.gbps.end()),
                     *std::max_element(run.gbps.begin(), run.gbps.end()));
      }
      tg = summarize(v);
      tg_share = summarize(shares);
    } else {
      probes.push_back(probe.gbps(5));
    }
    kernels::set_phase_profiling(false);
    const double trip = kernels::core_round_trip_ns();  // next to the last probe: the same placement
    const Stats bw_stats = summarize(probes);
    const KvStats kv_stats = kv->stats();
    engine.kv().clear(0);

    const double bw = bw_stats.median;
    const double roofline = bw * 1e9 / static_cast<double>(bpt);
    std::printf("model: %s (%s of weights, %s streamed per token)\n", model->path().c_str(),
                human_bytes(static_cast<double>(model->weight_bytes())).c_str(), human_bytes(static_cast<double>(bpt)).c_str());
    std::printf("threads: %d, isa: %s\n", kernels::threads(), isa.c_str());
    const std::string tiles = model->tiles_from_cache()
                                  ? "tiles mapped from the tile cache"
                                  : human_bytes(static_cast<double>(model->tiled_weight_bytes())) + " re-laid out for the int8 kernels";
    std::printf("load: %.2f s (%s); peak RSS %s = %.1f%% of the file\n", load_s, tiles.c_str(), human_bytes(peak_rss).c_str(),
                100.0 * peak_rss / file_bytes);
    if (kernels::active_isa() == kernels::Isa::Scalar)
      std::printf("decode prefetch: off (only the SIMD tiled kernels prefetch)\n");
    else if (const kernels::PrefetchChoice& pf = model->prefetch_choice(); pf.tuned)
      std::printf("decode prefetch: %s (one-token products at load: %.1f GB/s with, %.1f without)\n", pf.on ? "on" : "off",
                  pf.gbps_on, pf.gbps_off);
    else
      std::printf("decode prefetch: %s (%s)\n", kernels::decode_prefetch() ? "on" : "off",
                  kernels::decode_prefetch_forced() ? "MLAMOE_PREFETCH" : "not measured");
    if (pp)
      std::printf("pp%lld: %8.2f tok/s (median of %d, min %.2f, max %.2f)\n", static_cast<long long>(n_prompt), pp->median, reps,
                  pp->min, pp->max);
    if (tg)
      std::printf("tg%lld: %8.2f tok/s (median of %d, min %.2f, max %.2f)\n", static_cast<long long>(n_gen), tg->median, reps,
                  tg->min, tg->max);
    std::printf("membw: %.2f GB/s (median of %zu probes, min %.2f, max %.2f) -> roofline tg %.2f tok/s\n", bw, probes.size(),
                bw_stats.min, bw_stats.max, roofline);
    print_round_trip(trip);
    if (tg_share)
      std::printf("tg at %.1f%% of roofline (median of %d repetitions, min %.1f%%, max %.1f%%; each against the bandwidth probed every %lld tokens)\n",
                  100.0 * tg_share->median, reps, 100.0 * tg_share->min, 100.0 * tg_share->max, static_cast<long long>(kProbeEvery));
    const KvBytesPerToken kvb = kv_bytes_per_token(model->config(), parse_kv_type(kf.type));
    std::printf("%s\n", describe_kv_bytes(kvb, kf.type).c_str());
    if (depth > 0) std::printf("depth: %lld tokens of context before each test\n", static_cast<long long>(depth));
    nlohmann::json phase_json;
    if (phases && n_gen > 0) phase_json = report_phases(decode_s, n_gen * reps, bpt);
    if (mf.verbose) std::fprintf(stderr, "%s\n", describe_kv(kv_stats).c_str());
    if (json) {
      nlohmann::json j{{"pp", stats_json(pp)},        {"tg", stats_json(tg)},       {"membw_gbps", bw},
                       {"bytes_per_token", bpt},      {"roofline_tg", roofline},    {"threads", kernels::threads()},
                       {"tg_roofline_fraction", stats_json(tg_share)},
                       {"isa", isa_family},           {"isa_level", isa},           {"model", model->path()},
                       {"n_prompt", n_prompt},        {"core_round_trip_ns", json_number(trip)},
                       {"n_gen", n_gen},              {"repetitions", reps},
                       {"depth", depth},              {"load_s", load_s},           {"peak_rss_bytes", peak_rss},
                       {"decode_prefetch", kernels::decode_prefetch()},
                       {"tiles_from_cache", model->tiles_from_cache()},
                       {"kv_bytes_per_token", {{"stored", kvb.stored}, {"type", kf.type}, {"mla_16bit", kvb.mla},
                                               {"mha_16bit", kvb.mha}, {"gqa8_16bit", kvb.gqa8}, {"mqa_16bit", kvb.mqa}}}};
      if (!phase_json.is_null()) j["decode_phases"] = phase_json;
      std::printf("%s\n", j.dump().c_str());
    }
    return 0;
  });
}

}  // namespace
MLAMOE_COMMAND("bench", "prompt/generation tokens per second and % of the memory-bandwidth roofline", run_bench);
}  // namespace mlamoe::cli
