// mlamoe train: next-token pretraining / SFT of a DeepSeek-architecture model in
// libtorch (see src/train/train.h and docs/training.md).
#include <cstdio>

#include "cli/trainer_command.h"
#include "common/error.h"

#ifdef MLAMOE_HAVE_TRAIN
#include "train/train.h"

namespace mlamoe::cli {
namespace {

int run_train(int argc, char** argv) {
  CLI::App app{"Train a DeepSeek-architecture model (MLA + DeepSeekMoE) with libtorch"};
  train::TrainOptions o;
  std::string balance = "aux-free";
  app.add_option("--config", o.config, "Hugging Face config.json of the model");
  app.add_option("--data", o.data, "arith | countdown | arith+countdown | FILE.jsonl (prompt/completion) | FILE.txt")->required();
  app.add_option("--out", o.out_dir, "checkpoint directory (resumed if it holds a checkpoint)")->required();
  app.add_option("--init", o.init, "start from this checkpoint directory instead of random weights");
  app.add_option("--steps", o.steps, "optimizer steps")->check(CLI::PositiveNumber);
  app.add_option("--batch", o.batch, "sequences per step")->check(CLI::PositiveNumber);
  app.add_option("--seq-len", o.seq_len, "maximum tokens per sequence")->check(CLI::PositiveNumber);
  app.add_option("--lr", o.lr, "peak learning rate (AdamW)");
  app.add_option("--min-lr-ratio", o.min_lr_ratio, "final learning rate as a fraction of the peak (cosine)");
  app.add_option("--warmup", o.warmup, "linear warmup steps");
  app.add_option("--weight-decay", o.weight_decay, "AdamW weight decay (matrices only)");
  app.add_option("--clip", o.clip, "gradient norm clipping");
  app.add_option("--balance", balance, "aux-free (routing bias, DeepSeek-V3) | aux-loss (classic balance loss)")
      ->check(CLI::IsMember({"aux-free", "aux-loss"}));
  app.add_option("--gamma", o.gamma, "routing bias update speed (aux-free)");
  app.add_option("--aux-alpha", o.aux_alpha, "balance loss weight (aux-loss)");
  app.add_option("--eval-every", o.eval_every, "validation every N steps")->check(CLI::PositiveNumber);
  app.add_option("--save-every", o.save_every, "checkpoint every N steps")->check(CLI::PositiveNumber);
  app.add_option("--val-batches", o.val_batches, "validation batches")->check(CLI::PositiveNumber);
  app.add_option("--digits", o.digits, "arith: operands have 1..N digits (default 3)")->check(CLI::Range(1, 9));
  app.add_option("--seed", o.seed, "random seed (weights and data)");
  app.add_option("-t,--threads", o.threads, "torch threads (0: default)");
  app.add_option("--max-minutes", o.max_minutes, "stop and save after this much wall time");
  app.add_option("--stop-at", o.stop_at, "stop and save at this step (resume by running again)");
  bool no_export = false;
  app.add_flag("--no-export", no_export, "do not write model.gguf at the end");
  return parse_and_run(app, argc, argv, [&] {
    if (o.config.empty() && o.init.empty()) fail("--config is required (or --init a checkpoint)");
    o.balance = balance == "aux-loss" ? train::Balance::AuxLoss : train::Balance::AuxFree;
    o.export_gguf = !no_export;
    auto s = train::run_training(o);
    std::printf("steps %lld  train loss %.4f  val loss %.4f  tokens/s %.0f  load max/mean after warmup %.3f (val %.3f)\n",
                (long long)s.steps, s.train_loss, s.val_loss, s.tokens_per_second, s.load_ratio_after_warmup,
                s.val_load_ratio);
    return 0;
  });
}

}  // namespace
}  // namespace mlamoe::cli
#endif

MLAMOE_TRAINER_COMMAND("train", "train a DeepSeek-architecture model (libtorch): pretraining/SFT", mlamoe::cli::run_train);
