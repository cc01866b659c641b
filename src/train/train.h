// What the CLI asks of the trainer. Torch-free on purpose: only src/train/*.cpp
// include libtorch, so the rest of the project compiles fast.
//
// A checkpoint directory holds config.json + model.safetensors (a Hugging Face
// checkpoint, F32), optimizer.pt, trainer_state.json, logs and SVG curves, and
// model.gguf, the export `mlamoe run` loads.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace mlamoe::train {

enum class Balance {
  AuxFree,  // DeepSeek-V3: bias_i += gamma * sign(mean_load - load_i) after each step, selection only
  AuxLoss,  // classic expert-level balance loss alpha * sum_i f_i P_i, no bias
};

struct TrainOptions {
  std::string config;   // HF config.json of the model
  std::string data;     // "arith", "countdown", "arith+countdown", or a .jsonl (prompt/completion) or .txt file
  std::string out_dir;
  std::string init;     // optional checkpoint directory to start from (SFT after pretraining)
  int64_t steps = 1000, batch = 32, seq_len = 128, warmup = 50;
  double lr = 2e-3, min_lr_ratio = 0.1, weight_decay = 0.1, clip = 1.0;
  Balance balance = Balance::AuxFree;
  double gamma = 1e-3;      // bias update speed
  double aux_alpha = 0.01;  // aux-loss weight
  int64_t eval_every = 100, save_every = 200, val_batches = 8;
  uint64_t seed = 1;
  int threads = 0;          // 0: torch's default
  bool export_gguf = true;
  double max_minutes = 0;   // >0: stop (and save) after this much wall time
  int64_t stop_at = 0;      // >0: stop (and save) at this step, as if interrupted; rerun to resume
  int digits = 3;           // arith data: operands of 1..digits digits
};

struct TrainSummary {
  int64_t steps = 0;
  double train_loss = 0, val_loss = 0;
  double tokens_per_second = 0;
  double load_ratio_after_warmup = 0;  // mean over steps after warmup of max_layer(max/mean expert load)
  double val_load_ratio = 0;           // max/mean expert load over the validation set (worst layer)
};
TrainSummary run_training(const TrainOptions& opts);

struct GrpoOptions {
  std::string model_dir;  // checkpoint to start from (also the frozen reference)
  std::string task = "arith";
  std::string out_dir;
  int64_t iterations = 100, prompts = 8, group = 8, updates = 2, max_new_tokens = 64;
  int64_t warmup = 10;  // iterations of linear learning-rate warmup
  bool skip_uniform_groups = false;  // leave groups whose rewards are all equal out of the update
  double lr = 2e-4, clip_eps = 0.2, kl_beta = 0.04, temperature = 1.0, max_grad_norm = 1.0;
  int64_t eval_every = 10, eval_n = 100;
  int digits = 3;  // arith: operands of 1..digits digits (training and monitor problems)
  uint64_t seed = 1;
  int threads = 0;
  double max_minutes = 0;
  bool export_gguf = true;
};
struct GrpoSummary {
  int64_t iterations = 0;
  double accuracy_before = 0, accuracy_after = 0;  // held-out, greedy
  double reward_first = 0, reward_last = 0;        // mean over the first/last 10% of iterations
};
GrpoSummary run_grpo(const GrpoOptions& opts);

struct EvalOptions {
  std::string model;  // checkpoint directory (libtorch)
  std::string task = "arith";
  int64_t n = 200;
  uint64_t seed = 1;
  bool verbose = false;
  double temperature = 0;  // 0: greedy
  int64_t max_new_tokens = 64;
  int digits = 3;  // arith: operands of 1..digits digits
  int threads = 0;
};
struct EvalResult {
  int64_t correct = 0, total = 0, well_formed = 0;
  std::vector<std::string> failures;  // "prompt -> completion" (when verbose)
  double accuracy() const { return total ? double(correct) / double(total) : 0.0; }
};
EvalResult run_eval(const EvalOptions& opts);

// Writes <checkpoint>/model.safetensors + config.json as GGUF (deepseek2 layout, F32)
// with the byte-level chat vocabulary.
void export_gguf(const std::string& checkpoint_dir, const std::string& gguf_path);

// GRPO's group-relative advantage: (r - mean) / std over one group (population std);
// all zeros when every completion scored the same.
std::vector<double> group_advantages(const std::vector<double>& rewards);

}  // namespace mlamoe::train
