// mlamoe eval: accuracy on held-out problems of a task (problems never drawn for
// training), ending with one line "accuracy: X.XXX (k/N)".
#include <cstdio>

#include "cli/trainer_command.h"
#include "common/error.h"

#ifdef MLAMOE_HAVE_TRAIN
#include "train/train.h"

namespace mlamoe::cli {
namespace {

int run_eval(int argc, char** argv) {
  CLI::App app{"Evaluate a model on held-out arithmetic or Countdown problems"};
  train::EvalOptions o;
  app.add_option("-m,--model", o.model, "checkpoint directory (config.json + model.safetensors)")->required();
  app.add_option("--task", o.task, "arith | countdown")->required()->check(CLI::IsMember({"arith", "countdown"}));
  app.add_option("-n", o.n, "number of problems")->check(CLI::PositiveNumber);
  app.add_option("--digits", o.digits, "arith: operands have 1..N digits (default 3)")->check(CLI::Range(1, 9));
  app.add_option("--seed", o.seed, "which held-out problems");
  app.add_option("--temp", o.temperature, "sampling temperature (0: greedy)")->check(CLI::NonNegativeNumber);
  app.add_option("--max-new", o.max_new_tokens, "maximum completion tokens")->check(CLI::PositiveNumber);
  app.add_option("-t,--threads", o.threads, "torch threads (0: default)");
  app.add_flag("-v,--verbose", o.verbose, "print every failure");
  return parse_and_run(app, argc, argv, [&] {
    auto r = train::run_eval(o);
    for (auto& f : r.failures) std::printf("FAIL %s\n", f.c_str());
    std::printf("well-formed: %.3f (%lld/%lld)\n", r.total ? double(r.well_formed) / r.total : 0.0,
                (long long)r.well_formed, (long long)r.total);
    std::printf("accuracy: %.3f (%lld/%lld)\n", r.accuracy(), (long long)r.correct, (long long)r.total);
    return 0;
  });
}

}  // namespace
}  // namespace mlamoe::cli
#endif

MLAMOE_TRAINER_COMMAND("eval", "accuracy on held-out arith/countdown problems", mlamoe::cli::run_eval);
