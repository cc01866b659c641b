// mlamoe bench: prompt processing (pp) and token generation (tg) speed, and how close
// decode comes to the memory-bandwidth roofline: a decode step must stream
// Model::bytes_per_token() bytes, so no engine can exceed membw / bytes_per_token.
// Like llama-bench: random tokens, pp as one batch from an empty cache with logits for
// the last token only, tg one token at a time from an empty cache; one untimed warm-up.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "cli/common_flags.h"
#include "common/error.h"
#include "common/progress.h"
#include "kernels/kernels.h"
#include "kernels/membw.h"

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

// Tokens per second of one prompt of p tokens, from an empty cache.
double run_pp(Engine& engine, const std::vector<int32_t>& tokens, int64_t p) {
  engine.kv().clear(0);
  Batch b;
  for (int64_t i = 0; i < p; ++i) b.add(tokens[static_cast<size_t>(i)], static_cast<int32_t>(i), 0, i == p - 1);
  const auto t0 = std::chrono::steady_clock::now();
  engine.forward(b);
  return static_cast<double>(p) / seconds_since(t0);
}

// Tokens per second of n decode steps of one token each, from an empty cache.
double run_tg(Engine& engine, const std::vector<int32_t>& tokens, int64_t n) {
  engine.kv().clear(0);
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < n; ++i) {
    Batch b;
    b.add(tokens[static_cast<size_t>(i)], static_cast<int32_t>(i), 0);
    engine.forward(b);
  }
  return static_cast<double>(n) / seconds_since(t0);
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
  bool json = false, membw_only = false;
  app.add_option("-p,--n-prompt", n_prompt, "prompt tokens processed as one batch (0: skip pp)");
  app.add_option("-n,--n-gen", n_gen, "tokens generated one at a time (0: skip tg)");
  app.add_option("-r,--repetitions", reps, "repetitions of each test (median, min, max reported)");
  app.add_flag("--json", json, "print one JSON object as the last line");
  app.add_flag("--membw", membw_only, "only measure and print the read bandwidth");
  return parse_and_run(app, argc, argv, [&] {
    if (reps < 1) fail("-r: repetitions must be at least 1");
    if (n_prompt < 0 || n_gen < 0) fail("-p/-n: token counts must be >= 0");
    if (mf.threads < 0) fail("-t: thread count must be positive");
    const std::string isa = kernels::isa_name(kernels::active_isa());
    if (membw_only) {
      kernels::set_threads(mf.threads);
      const double bw = kernels::measure_read_bandwidth_gbps();
      std::printf("membw: %.2f GB/s (threads %d, isa %s)\n", bw, kernels::threads(), isa.c_str());
      if (json) std::printf("%s\n", nlohmann::json{{"membw_gbps", bw}, {"threads", kernels::threads()}, {"isa", isa}}.dump().c_str());
      return 0;
    }
    if (mf.model.empty()) fail("-m: a model file is required (or --membw alone)");
    auto model = mf.load();
    EngineOptions opts = mf.engine_options(*model);
    if (opts.n_ctx == 0) opts.n_ctx = std::max<int64_t>(std::max(n_prompt, n_gen), 1);
    if (opts.n_ctx < std::max(n_prompt, n_gen)) fail("-c ", opts.n_ctx, ": smaller than -p ", n_prompt, " / -n ", n_gen);
    Engine engine(*model, opts);

    std::mt19937 rng(1234);
    std::uniform_int_distribution<int32_t> pick(0, static_cast<int32_t>(model->config().vocab_size - 1));
    std::vector<int32_t> tokens(static_cast<size_t>(std::max(n_prompt, n_gen)));
    for (auto& t : tokens) t = pick(rng);

    // Warm-up (untimed): faults the mapped weights in and grows every scratch buffer.
    if (n_prompt > 0) run_pp(engine, tokens, n_prompt);
    if (n_gen > 0) run_tg(engine, tokens, std::min<int64_t>(n_gen, 4));

    std::optional<Stats> pp, tg;
    std::vector<double> v;
    if (n_prompt > 0) {
      for (int r = 0; r < reps; ++r) {
        v.push_back(run_pp(engine, tokens, n_prompt));
        std::fprintf(stderr, "pp%lld %d/%d: %.2f tok/s\n", static_cast<long long>(n_prompt), r + 1, reps, v.back());
      }
      pp = summarize(v);
    }
    v.clear();
    if (n_gen > 0) {
      for (int r = 0; r < reps; ++r) {
        v.push_back(run_tg(engine, tokens, n_gen));
        std::fprintf(stderr, "tg%lld %d/%d: %.2f tok/s\n", static_cast<long long>(n_gen), r + 1, reps, v.back());
      }
      tg = summarize(v);
    }
    engine.kv().clear(0);

    const double bw = kernels::measure_read_bandwidth_gbps();
    const uint64_t bpt = model->bytes_per_token();
    const double roofline = bw * 1e9 / static_cast<double>(bpt);
    std::printf("model: %s (%s of weights, %s streamed per token)\n", model->path().c_str(),
                human_bytes(static_cast<double>(model->weight_bytes())).c_str(), human_bytes(static_cast<double>(bpt)).c_str());
    std::printf("threads: %d, isa: %s\n", kernels::threads(), isa.c_str());
    if (pp)
      std::printf("pp%lld: %8.2f tok/s (median of %d, min %.2f, max %.2f)\n", static_cast<long long>(n_prompt), pp->median, reps,
                  pp->min, pp->max);
    if (tg)
      std::printf("tg%lld: %8.2f tok/s (median of %d, min %.2f, max %.2f)\n", static_cast<long long>(n_gen), tg->median, reps,
                  tg->min, tg->max);
    std::printf("membw: %.2f GB/s -> roofline tg %.2f tok/s", bw, roofline);
    if (tg) std::printf(", tg at %.1f%% of roofline", 100.0 * tg->median / roofline);
    std::printf("\n");
    if (json) {
      nlohmann::json j{{"pp", stats_json(pp)},        {"tg", stats_json(tg)},       {"membw_gbps", bw},
                       {"bytes_per_token", bpt},      {"roofline_tg", roofline},    {"threads", kernels::threads()},
                       {"isa", isa},                  {"model", model->path()},     {"n_prompt", n_prompt},
                       {"n_gen", n_gen},              {"repetitions", reps}};
      std::printf("%s\n", j.dump().c_str());
    }
    return 0;
  });
}

}  // namespace
MLAMOE_COMMAND("bench", "prompt/generation tokens per second and % of the memory-bandwidth roofline", run_bench);
}  // namespace mlamoe::cli
