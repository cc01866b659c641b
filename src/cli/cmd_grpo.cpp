// mlamoe grpo: reinforcement learning with group-relative advantages (DeepSeekMath,
// R1) on tasks with rule-checked answers.
#include <cstdio>

#include "cli/trainer_command.h"
#include "common/error.h"

#ifdef MLAMOE_HAVE_TRAIN
#include "train/train.h"

namespace mlamoe::cli {
namespace {

int run_grpo(int argc, char** argv) {
  CLI::App app{"GRPO: sample groups of completions, reward them by rules, reinforce the better ones"};
  train::GrpoOptions o;
  app.add_option("--model", o.model_dir, "checkpoint directory to start from (also the KL reference)")->required();
  app.add_option("--task", o.task, "arith | countdown")->check(CLI::IsMember({"arith", "countdown"}));
  app.add_option("--out", o.out_dir, "output checkpoint directory")->required();
  app.add_option("--iterations", o.iterations, "sampling + update rounds")->check(CLI::PositiveNumber);
  app.add_option("--prompts", o.prompts, "prompts per iteration")->check(CLI::PositiveNumber);
  app.add_option("-G,--group", o.group, "completions per prompt")->check(CLI::PositiveNumber);
  app.add_option("--updates", o.updates, "policy updates per batch of samples")->check(CLI::PositiveNumber);
  app.add_option("--max-new", o.max_new_tokens, "maximum completion tokens")->check(CLI::PositiveNumber);
  app.add_option("--lr", o.lr, "learning rate (AdamW)");
  app.add_option("--warmup", o.warmup, "iterations of linear learning-rate warmup")->check(CLI::NonNegativeNumber);
  app.add_option("--clip-eps", o.clip_eps, "policy ratio clip");
  app.add_option("--beta", o.kl_beta, "KL penalty weight");
  app.add_option("--temp", o.temperature, "sampling temperature")->check(CLI::PositiveNumber);
  app.add_option("--eval-every", o.eval_every, "held-out accuracy every N iterations")->check(CLI::PositiveNumber);
  app.add_option("--eval-n", o.eval_n, "held-out problems per evaluation")->check(CLI::PositiveNumber);
  app.add_option("--digits", o.digits, "arith: operands have 1..N digits (default 3)")->check(CLI::Range(1, 9));
  app.add_flag("--skip-uniform-groups", o.skip_uniform_groups,
               "leave groups whose completions all scored alike out of the update (DAPO's dynamic sampling)");
  app.add_option("--seed", o.seed, "random seed");
  app.add_option("-t,--threads", o.threads, "torch threads (0: default)");
  app.add_option("--max-minutes", o.max_minutes, "stop and save after this much wall time");
  return parse_and_run(app, argc, argv, [&] {
    auto s = train::run_grpo(o);
    std::printf("iterations %lld  held-out accuracy %.3f -> %.3f  reward %.3f -> %.3f\n", (long long)s.iterations,
                s.accuracy_before, s.accuracy_after, s.reward_first, s.reward_last);
    return 0;
  });
}

}  // namespace
}  // namespace mlamoe::cli
#endif

MLAMOE_TRAINER_COMMAND("grpo", "reinforcement learning with GRPO on arith/countdown (libtorch)", mlamoe::cli::run_grpo);
