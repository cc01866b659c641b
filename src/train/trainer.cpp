// Next-token pretraining / SFT of the DeepSeek model: AdamW, warmup + cosine,
// gradient clipping, auxiliary-loss-free (or aux-loss) expert balancing, atomic
// checkpoints that resume exactly, progress, logs and SVG curves.
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/error.h"
#include "common/files.h"
#include "common/progress.h"
#include "train/chat_vocab.h"
#include "train/checkpoint.h"
#include "train/svg_chart.h"
#include "train/tasks.h"
#include "train/train.h"

namespace mlamoe::train {

namespace fs = std::filesystem;

// ---- checkpoints ----

DeepSeek load_model_dir(const std::string& dir, std::string* config_text) {
  std::string text = read_file(dir + "/config.json");
  DeepSeek model(ModelConfig::from_hf_json_text(text, dir + "/config.json"));
  load_tensor_map(model, read_safetensors(dir + "/model.safetensors"), dir + "/model.safetensors");
  if (config_text) *config_text = text;
  return model;
}

void save_model_dir(DeepSeek& model, const std::string& config_text, const std::string& dir) {
  fs::create_directories(dir);
  write_file_atomic(dir + "/config.json", config_text);
  write_safetensors_atomic(dir + "/model.safetensors", to_tensor_map(model));
}

void save_optimizer(torch::optim::Optimizer& opt, const std::string& path) {
  torch::serialize::OutputArchive archive;
  opt.save(archive);
  std::ostringstream os;
  archive.save_to(os);
  write_file_atomic(path, os.str());
}

void load_optimizer(torch::optim::Optimizer& opt, const std::string& path) {
  std::istringstream is(read_file(path));
  torch::serialize::InputArchive archive;
  try {
    archive.load_from(is);
    opt.load(archive);
  } catch (const c10::Error& e) {
    fail(path, ": cannot read optimizer state: ", e.what_without_backtrace());
  }
}

double lr_at(int64_t step, int64_t warmup, int64_t total, double peak, double min_ratio) {
  if (step < warmup) return peak * double(step + 1) / double(warmup);
  double progress = total > warmup ? double(step - warmup) / double(total - warmup) : 1.0;
  progress = std::min(1.0, std::max(0.0, progress));
  return peak * (min_ratio + (1 - min_ratio) * 0.5 * (1 + std::cos(M_PI * progress)));
}

void set_lr(torch::optim::AdamW& opt, double lr) {
  for (auto& g : opt.param_groups()) static_cast<torch::optim::AdamWOptions&>(g.options()).lr(lr);
}

// ---- data ----

namespace {

struct Example {
  std::vector<int32_t> tokens;
  size_t loss_from = 0;  // targets before this index (the prompt) carry no loss
};

Example chat_example(const std::string& prompt, const std::string& completion) {
  Example e;
  e.tokens = ChatVocab::chat_prompt(prompt);
  e.loss_from = e.tokens.size() - 1;  // predicting the first completion token counts
  for (int32_t t : ChatVocab::encode(completion)) e.tokens.push_back(t);
  e.tokens.push_back(ChatVocab::kEos);
  return e;
}

// Training examples: generated task problems, a JSONL of prompt/completion pairs, or
// windows of a text file (bytes). Validation is held out in each case.
class DataSource {
 public:
  DataSource(const std::string& spec, int64_t seq_len, int64_t vocab, int digits) : seq_len_(seq_len), digits_(digits) {
    if (spec == "arith" || spec == "countdown" || spec == "arith+countdown") {
      if (spec != "countdown") tasks_.push_back(TaskKind::Arith);
      if (spec != "arith") tasks_.push_back(TaskKind::Countdown);
      need_chat_vocab(vocab, spec);
    } else if (spec.ends_with(".jsonl")) {
      std::istringstream in(read_file(spec));
      std::string line;
      int64_t n = 0;
      while (std::getline(in, line)) {
        ++n;
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
        nlohmann::json j;
        try {
          j = nlohmann::json::parse(line);
        } catch (const std::exception&) {
          fail(spec, ":", n, ": invalid JSON");
        }
        if (!j.is_object() || !j.contains("prompt") || !j.contains("completion") || !j["prompt"].is_string() ||
            !j["completion"].is_string())
          fail(spec, ":", n, ": expected {\"prompt\": string, \"completion\": string}");
        (n % 20 == 0 ? val_pairs_ : pairs_).push_back(chat_example(j["prompt"], j["completion"]));
      }
      if (pairs_.empty() || val_pairs_.empty()) fail(spec, ": needs at least 20 examples (every 20th is held out)");
      need_chat_vocab(vocab, spec);
    } else {
      text_ = read_file(spec);
      if (text_.size() < size_t(seq_len) * 20) fail(spec, ": text too short for sequence length ", seq_len);
      if (vocab < 256) fail(spec, ": byte-level text needs vocab_size >= 256");
      val_start_ = text_.size() - text_.size() / 20;
    }
  }

  Example sample(std::mt19937_64& rng) {
    if (!tasks_.empty()) {
      Problem p = training_problem(tasks_[rng() % tasks_.size()], rng, digits_);
      return chat_example(p.prompt, p.solution);
    }
    if (!pairs_.empty()) return pairs_[rng() % pairs_.size()];
    return window(rng() % (val_start_ - seq_len_ - 1));
  }

  std::vector<Example> validation(int64_t n) {
    std::vector<Example> out;
    if (!tasks_.empty()) {
      for (TaskKind k : tasks_)
        for (auto& p : held_out_set(k, n / int64_t(tasks_.size()), 999, digits_)) out.push_back(chat_example(p.prompt, p.solution));
    } else if (!val_pairs_.empty()) {
      for (int64_t i = 0; i < n; ++i) out.push_back(val_pairs_[i % val_pairs_.size()]);
    } else {
      size_t span = text_.size() - val_start_ - seq_len_ - 1;
      for (int64_t i = 0; i < n; ++i) out.push_back(window(val_start_ + (span * i) / std::max<int64_t>(n, 1)));
    }
    return out;
  }

 private:
  static void need_chat_vocab(int64_t vocab, const std::string& spec) {
    if (vocab != ChatVocab::kSize)
      fail("data ", spec, " uses the byte-level chat vocabulary: the config's vocab_size must be ", ChatVocab::kSize,
           ", found ", vocab);
  }
  Example window(size_t at) {
    Example e;
    for (int64_t i = 0; i <= seq_len_; ++i) e.tokens.push_back(static_cast<unsigned char>(text_[at + i]));
    return e;
  }
  int64_t seq_len_;
  int digits_;
  std::vector<TaskKind> tasks_;
  std::vector<Example> pairs_, val_pairs_;
  std::string text_;
  size_t val_start_ = 0;
};

// Inputs [B, T] and targets [B, T] (-100 where no loss), right-padded.
std::pair<torch::Tensor, torch::Tensor> make_batch(const std::vector<Example>& examples, int64_t max_len, int64_t pad_id) {
  int64_t T = 0;
  for (auto& e : examples) T = std::max<int64_t>(T, int64_t(e.tokens.size()) - 1);
  if (T > max_len) fail("an example has ", T + 1, " tokens, more than the sequence length ", max_len);
  const int64_t B = examples.size();
  auto inputs = torch::full({B, T}, pad_id, torch::kInt64);
  auto targets = torch::full({B, T}, -100, torch::kInt64);
  auto in = inputs.accessor<int64_t, 2>();
  auto tg = targets.accessor<int64_t, 2>();
  for (int64_t b = 0; b < B; ++b) {
    auto& t = examples[b].tokens;
    for (size_t i = 0; i + 1 < t.size(); ++i) {
      in[b][i] = t[i];
      if (i >= examples[b].loss_from) tg[b][i] = t[i + 1];
    }
  }
  return {inputs, targets};
}

double worst_load_ratio(const std::vector<torch::Tensor>& counts) {
  double worst = 0;
  for (auto& c : counts) worst = std::max(worst, (c.max() / c.mean().clamp_min(1e-9)).item<double>());
  return worst;
}

std::string patched_config(const std::string& text, const std::string& where, Balance balance) {
  nlohmann::json j = nlohmann::json::parse(text);
  // The routing bias exists only under auxiliary-loss-free balancing (V3's noaux_tc).
  j["topk_method"] = balance == Balance::AuxFree ? "noaux_tc" : (j.value("n_group", 1) > 1 ? "group_limited_greedy" : "greedy");
  j["bos_token_id"] = ChatVocab::kBos;
  j["eos_token_id"] = ChatVocab::kEos;
  return j.dump(1);
}

}  // namespace

TrainSummary run_training(const TrainOptions& o) {
  if (o.out_dir.empty()) fail("--out is required");
  if (o.steps <= 0 || o.batch <= 0 || o.seq_len <= 1) fail("--steps, --batch and --seq-len must be positive");
  if (o.threads > 0) torch::set_num_threads(o.threads);
  const bool resuming = fs::exists(o.out_dir + "/trainer_state.json");
  std::string config_text;
  if (resuming) config_text = read_file(o.out_dir + "/config.json");
  else if (!o.init.empty()) config_text = patched_config(read_file(o.init + "/config.json"), o.init, o.balance);
  else config_text = patched_config(read_file(o.config), o.config, o.balance);
  ModelConfig cfg = ModelConfig::from_hf_json_text(config_text, resuming ? o.out_dir + "/config.json" : o.config);
  if (o.seq_len > cfg.max_position_embeddings)
    fail("--seq-len ", o.seq_len, " exceeds the model's max_position_embeddings ", cfg.max_position_embeddings);

  DeepSeek model(cfg);
  model->init_weights(o.seed);
  if (resuming) load_tensor_map(model, read_safetensors(o.out_dir + "/model.safetensors"), o.out_dir);
  else if (!o.init.empty()) load_tensor_map(model, read_safetensors(o.init + "/model.safetensors"), o.init);

  std::vector<torch::Tensor> decay, no_decay;
  for (auto& p : model->named_parameters()) (p.value().dim() >= 2 ? decay : no_decay).push_back(p.value());
  torch::optim::AdamW opt({torch::optim::OptimizerParamGroup(decay, std::make_unique<torch::optim::AdamWOptions>(
                                                                        torch::optim::AdamWOptions(o.lr).betas({0.9, 0.95}).weight_decay(o.weight_decay))),
                           torch::optim::OptimizerParamGroup(no_decay, std::make_unique<torch::optim::AdamWOptions>(
                                                                           torch::optim::AdamWOptions(o.lr).betas({0.9, 0.95}).weight_decay(0.0)))},
                          torch::optim::AdamWOptions(o.lr));

  // AdamW skips a parameter whose gradient is undefined, while zero_grad() leaves a
  // defined gradient at zero: a routed expert that gets no tokens in a step is moved by
  // its momentum (and decayed) only if it has ever had a gradient. A resumed run starts
  // with fresh tensors without gradients, so it would skip such experts where the
  // uninterrupted run moves them. Defining every gradient up front makes the update
  // independent of that history, and resuming exact.
  for (auto& p : model->parameters()) p.mutable_grad() = torch::zeros_like(p);

  DataSource data(o.data, o.seq_len, cfg.vocab_size, o.digits);
  const int64_t pad_id = cfg.vocab_size > ChatVocab::kPad ? ChatVocab::kPad : 0;
  auto val_examples = data.validation(o.val_batches * o.batch);
  std::mt19937_64 rng(o.seed);

  // History (kept in trainer_state.json so curves continue across resumes).
  nlohmann::json hist = {{"step", nlohmann::json::array()}, {"loss", nlohmann::json::array()},
                         {"lr", nlohmann::json::array()},   {"load_ratio", nlohmann::json::array()},
                         {"val_step", nlohmann::json::array()}, {"val_loss", nlohmann::json::array()}};
  int64_t step = 0;
  if (resuming) {
    auto st = nlohmann::json::parse(read_file(o.out_dir + "/trainer_state.json"));
    step = st.at("step").get<int64_t>();
    if (st.value("digits", kDefaultDigits) != o.digits)
      fail(o.out_dir, "/trainer_state.json: this run was started with --digits ", st.value("digits", kDefaultDigits),
           ", resumed with --digits ", o.digits);
    hist = st.at("history");
    std::istringstream(st.at("rng").get<std::string>()) >> rng;
    load_optimizer(opt, o.out_dir + "/optimizer.pt");
    std::fprintf(stderr, "resuming %s at step %lld\n", o.out_dir.c_str(), (long long)step);
  }

  auto validate = [&](std::vector<torch::Tensor>* counts_out) {
    torch::NoGradGuard no_grad;
    model->eval();
    double loss_sum = 0, n_tokens = 0;
    std::vector<torch::Tensor> counts;
    for (size_t i = 0; i < val_examples.size(); i += o.batch) {
      std::vector<Example> chunk(val_examples.begin() + i, val_examples.begin() + std::min(val_examples.size(), i + o.batch));
      auto [x, y] = make_batch(chunk, o.seq_len, pad_id);
      RoutingStats stats;
      auto logits = model->forward(x, 0, nullptr, &stats);
      auto loss = torch::nn::functional::cross_entropy(
          logits.view({-1, cfg.vocab_size}), y.view({-1}),
          torch::nn::functional::CrossEntropyFuncOptions().ignore_index(-100).reduction(torch::kSum));
      loss_sum += loss.item<double>();
      n_tokens += (y != -100).sum().item<double>();
      if (counts.empty()) counts = stats.expert_counts;
      else for (size_t l = 0; l < counts.size(); ++l) counts[l] += stats.expert_counts[l];
    }
    model->train();
    if (counts_out) *counts_out = counts;
    return loss_sum / std::max(1.0, n_tokens);
  };

  auto write_curves = [&] {
    Chart loss{"Training loss (" + std::string(o.balance == Balance::AuxFree ? "aux-loss-free" : "aux-loss") + ")", "step", "cross-entropy"};
    std::vector<double> steps = hist["step"], losses = hist["loss"], vs = hist["val_step"], vl = hist["val_loss"];
    loss.series.push_back({"train (EMA)", steps, smooth(losses, 0.05), ""});
    loss.series.push_back({"validation", vs, vl, ""});
    write_svg_atomic(o.out_dir + "/loss.svg", loss);
    Chart load{"Expert load: max / mean (worst MoE layer)", "step", "max/mean"};
    load.series.push_back({"per step (EMA)", steps, smooth(hist["load_ratio"].get<std::vector<double>>(), 0.05), ""});
    write_svg_atomic(o.out_dir + "/expert_load.svg", load);
  };

  auto save = [&] {
    save_model_dir(model, config_text, o.out_dir);
    save_optimizer(opt, o.out_dir + "/optimizer.pt");
    std::ostringstream rs;
    rs << rng;
    nlohmann::json st = {{"step", step}, {"history", hist}, {"rng", rs.str()}, {"data", o.data}, {"digits", o.digits}};
    write_file_atomic(o.out_dir + "/trainer_state.json", st.dump());  // last: marks the checkpoint complete
    write_curves();
  };

  fs::create_directories(o.out_dir);
  if (!resuming) write_file_atomic(o.out_dir + "/config.json", config_text);
  std::string load_log = o.out_dir + "/expert_load.jsonl";
  FILE* load_file = std::fopen(load_log.c_str(), resuming ? "a" : "w");  // a log, appended; not state
  if (!load_file) fail(load_log, ": cannot open for writing");

  model->train();
  auto biases = model->routing_biases();
  Progress progress("train", o.steps, "steps");
  progress.update(step);
  const auto t0 = std::chrono::steady_clock::now();
  double tokens_done = 0, last_loss = 0, ratio_sum = 0;
  int64_t ratio_n = 0, start_step = step;
  auto last_report = t0;
  while (step < o.steps) {
    double lr = lr_at(step, o.warmup, o.steps, o.lr, o.min_lr_ratio);
    set_lr(opt, lr);
    std::vector<Example> batch;
    for (int64_t b = 0; b < o.batch; ++b) batch.push_back(data.sample(rng));
    auto [x, y] = make_batch(batch, o.seq_len, pad_id);
    RoutingStats stats;
    stats.want_aux_loss = o.balance == Balance::AuxLoss;
    auto logits = model->forward(x, 0, nullptr, &stats);
    auto loss = torch::nn::functional::cross_entropy(logits.view({-1, cfg.vocab_size}), y.view({-1}),
                                                     torch::nn::functional::CrossEntropyFuncOptions().ignore_index(-100));
    auto total = stats.aux_loss.defined() ? loss + o.aux_alpha * stats.aux_loss : loss;
    opt.zero_grad();
    total.backward();
    torch::nn::utils::clip_grad_norm_(model->parameters(), o.clip);
    opt.step();
    if (o.balance == Balance::AuxFree) {
      for (size_t l = 0; l < biases.size(); ++l) update_routing_bias(biases[l], stats.expert_counts[l], o.gamma);
    }
    ++step;
    last_loss = loss.item<double>();
    double ratio = worst_load_ratio(stats.expert_counts);
    if (step > o.warmup) ratio_sum += ratio, ++ratio_n;
    tokens_done += (y != -100).sum().item<double>();
    hist["step"].push_back(step);
    hist["loss"].push_back(last_loss);
    hist["lr"].push_back(lr);
    hist["load_ratio"].push_back(ratio);
    if (step % 10 == 0 || step == o.steps) {
      nlohmann::json loads = nlohmann::json::array();
      for (auto& c : stats.expert_counts) loads.push_back(std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel()));
      std::fprintf(load_file, "%s\n", nlohmann::json({{"step", step}, {"expert_tokens", loads}}).dump().c_str());
      std::fflush(load_file);
    }
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    double tps = tokens_done / std::max(secs, 1e-9);
    char extra[160];
    std::snprintf(extra, sizeof extra, "loss %.4f, %.0f tok/s, load max/mean %.2f", last_loss, tps, ratio);
    progress.update(step, extra);
    if (std::chrono::steady_clock::now() - last_report > std::chrono::seconds(30)) {  // for logs (no TTY)
      last_report = std::chrono::steady_clock::now();
      double eta = (o.steps - step) * secs / std::max<int64_t>(1, step - start_step);
      std::fprintf(stderr, "step %lld/%lld  %s  lr %.2e  ETA %.0f s\n", (long long)step, (long long)o.steps, extra, lr, eta);
    }
    bool out_of_time = (o.max_minutes > 0 && secs > o.max_minutes * 60) || (o.stop_at > 0 && step >= o.stop_at);
    if (step % o.eval_every == 0 || step == o.steps || out_of_time) {
      double vl = validate(nullptr);
      hist["val_step"].push_back(step);
      hist["val_loss"].push_back(vl);
      std::fprintf(stderr, "%sstep %lld: val loss %.4f\n", isatty(2) ? "\r\033[K" : "", (long long)step, vl);
    }
    if (step % o.save_every == 0 || step == o.steps || out_of_time) save();
    if (out_of_time) {
      std::fprintf(stderr, "stopping at step %lld after %.1f minutes\n", (long long)step, secs / 60);
      break;
    }
  }
  std::fclose(load_file);
  progress.finish();
  if (step == start_step) save();  // nothing ran (already complete): still leave consistent files

  TrainSummary s;
  s.steps = step;
  s.train_loss = last_loss;
  std::vector<torch::Tensor> val_counts;
  s.val_loss = validate(&val_counts);
  s.val_load_ratio = worst_load_ratio(val_counts);
  s.load_ratio_after_warmup = ratio_n ? ratio_sum / ratio_n : 0.0;
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  s.tokens_per_second = tokens_done / std::max(secs, 1e-9);
  nlohmann::json summary = {{"steps", s.steps}, {"train_loss", s.train_loss}, {"val_loss", s.val_loss},
                            {"load_ratio_after_warmup", s.load_ratio_after_warmup}, {"val_load_ratio", s.val_load_ratio},
                            {"tokens_per_second", s.tokens_per_second}, {"data", o.data}, {"digits", o.digits},
                            {"balance", o.balance == Balance::AuxFree ? "aux-free" : "aux-loss"}};
  write_file_atomic(o.out_dir + "/summary.json", summary.dump(1) + "\n");
  if (o.export_gguf) export_gguf(o.out_dir, o.out_dir + "/model.gguf");
  return s;
}

}  // namespace mlamoe::train
