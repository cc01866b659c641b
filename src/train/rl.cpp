// GRPO (DeepSeekMath / R1): groups of sampled completions scored by rules, group-
// relative advantages, clipped ratio objective, k3 KL to a frozen reference. Plus the
// held-out evaluation that measures it.
#include "train/rl.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/files.h"
#include "common/progress.h"
#include "train/chat_vocab.h"
#include "train/checkpoint.h"
#include "train/svg_chart.h"
#include "train/tasks.h"
#include "train/train.h"

namespace mlamoe::train {

std::vector<double> group_advantages(const std::vector<double>& rewards) {
  const double n = static_cast<double>(rewards.size());
  double mean = 0, var = 0;
  for (double r : rewards) mean += r / n;
  for (double r : rewards) var += (r - mean) * (r - mean) / n;
  const double sd = std::sqrt(var);
  std::vector<double> a;
  for (double r : rewards) a.push_back(sd > 1e-9 ? (r - mean) / sd : 0.0);
  return a;
}

std::vector<std::vector<int32_t>> sample_batch(DeepSeek& model, const std::vector<std::vector<int32_t>>& prompts,
                                               int64_t max_new, double temperature) {
  torch::NoGradGuard no_grad;
  const int64_t n = prompts.size(), P = prompts.at(0).size();
  if (P + max_new > model->config().max_position_embeddings)
    fail("prompt of ", P, " tokens + ", max_new, " new tokens exceeds the context ", model->config().max_position_embeddings);
  auto x = torch::empty({n, P}, torch::kInt64);
  auto xa = x.accessor<int64_t, 2>();
  for (int64_t i = 0; i < n; ++i) {
    if (int64_t(prompts[i].size()) != P) fail("sample_batch: prompts of different lengths");
    for (int64_t t = 0; t < P; ++t) xa[i][t] = prompts[i][t];
  }
  LatentCache cache;
  auto logits = model->forward(x, 0, &cache).select(1, P - 1);
  std::vector<std::vector<int32_t>> out(n);
  std::vector<bool> done(n, false);
  int64_t n_done = 0;
  for (int64_t t = 0; t < max_new && n_done < n; ++t) {
    torch::Tensor next;
    if (temperature <= 0) next = logits.argmax(-1);
    else next = torch::multinomial(torch::softmax(logits / temperature, -1), 1).squeeze(1);
    auto nx = next.accessor<int64_t, 1>();
    for (int64_t i = 0; i < n; ++i) {
      if (done[i]) continue;
      out[i].push_back(static_cast<int32_t>(nx[i]));
      if (nx[i] == ChatVocab::kEos) done[i] = true, ++n_done;
    }
    if (n_done == n || t + 1 == max_new) break;
    logits = model->forward(next.unsqueeze(1), P + t, &cache).select(1, 0);
  }
  return out;
}

std::vector<std::vector<int32_t>> sample_completions(DeepSeek& model, const std::vector<int32_t>& prompt, int64_t n,
                                                     int64_t max_new, double temperature) {
  return sample_batch(model, std::vector<std::vector<int32_t>>(n, prompt), max_new, temperature);
}

std::pair<torch::Tensor, torch::Tensor> completion_logprobs(DeepSeek& model, const std::vector<int32_t>& prompt,
                                                            const std::vector<std::vector<int32_t>>& completions) {
  return completion_logprobs(model, std::vector<std::vector<int32_t>>(completions.size(), prompt), completions);
}

std::pair<torch::Tensor, torch::Tensor> completion_logprobs(DeepSeek& model, const std::vector<std::vector<int32_t>>& prompts,
                                                            const std::vector<std::vector<int32_t>>& completions) {
  const int64_t G = completions.size(), P = prompts.at(0).size();
  if (int64_t(prompts.size()) != G) fail("completion_logprobs: ", prompts.size(), " prompts for ", G, " completions");
  int64_t L = 1;
  for (auto& c : completions) L = std::max<int64_t>(L, c.size());
  auto seq = torch::full({G, P + L}, 0, torch::kInt64);
  auto mask = torch::zeros({G, L});
  auto s = seq.accessor<int64_t, 2>();
  auto m = mask.accessor<float, 2>();
  for (int64_t g = 0; g < G; ++g) {
    if (int64_t(prompts[g].size()) != P) fail("completion_logprobs: prompts of different lengths");
    for (int64_t i = 0; i < P; ++i) s[g][i] = prompts[g][i];
    for (size_t i = 0; i < completions[g].size(); ++i) s[g][P + i] = completions[g][i], m[g][i] = 1;
  }
  auto logits = model->forward(seq.narrow(1, 0, P + L - 1)).narrow(1, P - 1, L);
  auto logp = torch::log_softmax(logits, -1).gather(2, seq.narrow(1, P, L).unsqueeze(2)).squeeze(2);
  return {logp, mask};
}

torch::Tensor k3_kl(const torch::Tensor& new_logp, const torch::Tensor& ref_logp) {
  auto d = ref_logp - new_logp;
  return torch::exp(d) - d - 1;
}

torch::Tensor grpo_loss(const torch::Tensor& new_logp, const torch::Tensor& old_logp, const torch::Tensor& ref_logp,
                        const torch::Tensor& advantages, const torch::Tensor& mask, double clip_eps, double beta) {
  auto ratio = torch::exp(new_logp - old_logp);
  auto A = advantages.view({-1, 1});
  auto surrogate = torch::min(ratio * A, torch::clamp(ratio, 1 - clip_eps, 1 + clip_eps) * A);
  auto per_token = surrogate - beta * k3_kl(new_logp, ref_logp);
  auto per_seq = (per_token * mask).sum(1) / mask.sum(1).clamp_min(1);
  return -per_seq.mean();
}

// ---- evaluation ----

namespace {

std::string completion_text(const std::vector<int32_t>& c, bool* finished) {
  *finished = !c.empty() && c.back() == ChatVocab::kEos;
  return ChatVocab::decode(std::vector<int32_t>(c.begin(), c.end() - (*finished ? 1 : 0)));
}

Reward reward_of(const Problem& p, const std::vector<int32_t>& completion) {
  bool finished;
  std::string text = completion_text(completion, &finished);
  return finished ? score(p, text) : Reward{};  // a truncated answer earns nothing
}

EvalResult evaluate(DeepSeek& model, TaskKind kind, int digits, int64_t n, uint64_t seed, double temperature,
                    int64_t max_new, bool verbose) {
  // Problems whose prompts have the same token count decode together as one batch.
  auto problems = held_out_set(kind, n, seed, digits);
  std::map<size_t, std::vector<size_t>> by_length;
  for (size_t i = 0; i < problems.size(); ++i) by_length[ChatVocab::chat_prompt(problems[i].prompt).size()].push_back(i);
  std::vector<std::vector<int32_t>> completions(problems.size());
  for (auto& [len, idx] : by_length)
    for (size_t start = 0; start < idx.size(); start += 64) {
      std::vector<std::vector<int32_t>> prompts;
      for (size_t k = start; k < std::min(idx.size(), start + 64); ++k) prompts.push_back(ChatVocab::chat_prompt(problems[idx[k]].prompt));
      auto out = sample_batch(model, prompts, max_new, temperature);
      for (size_t k = 0; k < out.size(); ++k) completions[idx[start + k]] = std::move(out[k]);
    }
  EvalResult r;
  for (size_t i = 0; i < problems.size(); ++i) {
    const Problem& p = problems[i];
    Reward rw = reward_of(p, completions[i]);
    r.total++;
    r.correct += rw.correct;
    r.well_formed += rw.well_formed;
    if (verbose && !rw.correct) {
      bool finished;
      r.failures.push_back(p.prompt + " -> " + completion_text(completions[i], &finished) + (finished ? "" : " [truncated]") +
                           " (expected " + std::to_string(p.target) + ")");
    }
  }
  return r;
}

}  // namespace

EvalResult run_eval(const EvalOptions& o) {
  if (o.threads > 0) torch::set_num_threads(o.threads);
  if (o.n <= 0) fail("-n must be positive");
  torch::manual_seed(o.seed);
  auto model = load_model_dir(o.model);
  if (model->config().vocab_size != ChatVocab::kSize)
    fail(o.model, ": not a chat model of the byte-level vocabulary (vocab_size ", model->config().vocab_size, ")");
  return evaluate(model, parse_task(o.task), o.digits, o.n, o.seed, o.temperature, o.max_new_tokens, o.verbose);
}

// ---- GRPO ----

GrpoSummary run_grpo(const GrpoOptions& o) {
  namespace fs = std::filesystem;
  if (o.out_dir.empty()) fail("--out is required");
  if (o.group < 2) fail("--group must be at least 2 (advantages are relative within a group)");
  if (o.threads > 0) torch::set_num_threads(o.threads);
  const TaskKind kind = parse_task(o.task);
  torch::manual_seed(o.seed);
  std::mt19937_64 rng(o.seed);
  std::string config_text;
  DeepSeek policy = load_model_dir(o.model_dir, &config_text);
  DeepSeek reference = load_model_dir(o.model_dir);
  if (policy->config().vocab_size != ChatVocab::kSize)
    fail(o.model_dir, ": not a chat model of the byte-level vocabulary");
  for (auto& p : reference->parameters()) p.set_requires_grad(false);
  torch::optim::AdamW opt(policy->parameters(), torch::optim::AdamWOptions(o.lr).betas({0.9, 0.99}).weight_decay(0.0));
  fs::create_directories(o.out_dir);

  const uint64_t monitor_seed = o.seed + 1000;  // a held-out set apart from `mlamoe eval`'s default
  auto accuracy = [&] {
    return evaluate(policy, kind, o.digits, o.eval_n, monitor_seed, 0.0, o.max_new_tokens, false).accuracy();
  };
  nlohmann::json hist = {{"iter", nlohmann::json::array()},    {"reward", nlohmann::json::array()},
                         {"correct", nlohmann::json::array()}, {"format", nlohmann::json::array()},
                         {"kl", nlohmann::json::array()},      {"length", nlohmann::json::array()},
                         {"informative_groups", nlohmann::json::array()},
                         {"eval_iter", nlohmann::json::array()}, {"eval_accuracy", nlohmann::json::array()}};
  GrpoSummary summary;
  summary.accuracy_before = accuracy();
  hist["eval_iter"].push_back(0);
  hist["eval_accuracy"].push_back(summary.accuracy_before);
  std::fprintf(stderr, "held-out accuracy before GRPO: %.3f\n", summary.accuracy_before);

  auto write_outputs = [&] {
    std::vector<double> it = hist["iter"];
    Chart reward{"GRPO on " + o.task + ": reward", "iteration", "mean reward"};
    reward.series.push_back({"reward (EMA)", it, smooth(hist["reward"].get<std::vector<double>>(), 0.1), ""});
    reward.series.push_back({"correct (EMA)", it, smooth(hist["correct"].get<std::vector<double>>(), 0.1), ""});
    reward.series.push_back({"held-out accuracy", hist["eval_iter"], hist["eval_accuracy"], ""});
    reward.series.push_back({"groups with mixed rewards (EMA)", it,
                             smooth(hist["informative_groups"].get<std::vector<double>>(), 0.1), ""});
    write_svg_atomic(o.out_dir + "/reward.svg", reward);
    Chart kl{"GRPO: KL to the reference (k3)", "iteration", "KL"};
    kl.series.push_back({"KL", it, hist["kl"], ""});
    write_svg_atomic(o.out_dir + "/kl.svg", kl);
    Chart len{"GRPO: completion length", "iteration", "tokens"};
    len.series.push_back({"mean length", it, hist["length"], ""});
    write_svg_atomic(o.out_dir + "/length.svg", len);
    write_file_atomic(o.out_dir + "/grpo_log.json", hist.dump() + "\n");
  };

  Progress progress("grpo", o.iterations, "it");
  const auto t0 = std::chrono::steady_clock::now();
  auto last_report = t0;
  int64_t it = 0;
  for (; it < o.iterations; ++it) {
    // Completions of prompts of equal token length form one batch: rows are (prompt,
    // completion) pairs, each with its group-relative advantage.
    struct Batch {
      std::vector<std::vector<int32_t>> prompts, completions;
      std::vector<double> adv;
      torch::Tensor adv_t, old_logp, ref_logp, mask;
    };
    double reward_sum = 0, correct = 0, formed = 0, length = 0, n_samples = 0, informative = 0;
    std::vector<Problem> problems;
    for (int64_t q = 0; q < o.prompts; ++q) problems.push_back(training_problem(kind, rng, o.digits));
    std::map<size_t, std::vector<size_t>> by_length;
    for (size_t q = 0; q < problems.size(); ++q) by_length[ChatVocab::chat_prompt(problems[q].prompt).size()].push_back(q);
    std::vector<Batch> batches;
    double train_rows = 0;
    for (auto& [len, qs] : by_length) {
      std::vector<std::vector<int32_t>> prompts;
      for (size_t q : qs)
        for (int64_t g = 0; g < o.group; ++g) prompts.push_back(ChatVocab::chat_prompt(problems[q].prompt));
      auto completions = sample_batch(policy, prompts, o.max_new_tokens, o.temperature);
      Batch b;
      for (size_t k = 0; k < qs.size(); ++k) {
        std::vector<double> rewards;
        for (int64_t g = 0; g < o.group; ++g) {
          const auto& c = completions[k * o.group + g];
          Reward r = reward_of(problems[qs[k]], c);
          rewards.push_back(r.total());
          reward_sum += r.total(), correct += r.correct, formed += r.well_formed, length += c.size(), n_samples += 1;
        }
        // A group whose completions all scored alike carries no signal (all advantages 0).
        // By default it still contributes its KL term; --skip-uniform-groups leaves it out
        // of the update (DAPO's dynamic sampling), so the compute goes to groups that teach.
        auto adv = group_advantages(rewards);
        const bool mixed = std::any_of(adv.begin(), adv.end(), [](double x) { return x != 0; });
        informative += mixed;
        if (!mixed && o.skip_uniform_groups) continue;
        for (int64_t g = 0; g < o.group; ++g) {
          b.prompts.push_back(prompts[k * o.group + g]);
          b.completions.push_back(std::move(completions[k * o.group + g]));
        }
        b.adv.insert(b.adv.end(), adv.begin(), adv.end());
      }
      if (b.prompts.empty()) continue;
      train_rows += b.prompts.size();
      b.adv_t = torch::tensor(b.adv, torch::kFloat64).to(torch::kFloat32);
      torch::NoGradGuard no_grad;
      std::tie(b.old_logp, b.mask) = completion_logprobs(policy, b.prompts, b.completions);
      b.ref_logp = completion_logprobs(reference, b.prompts, b.completions).first;
      batches.push_back(std::move(b));
    }
    double kl_sum = 0, kl_tokens = 0;
    // Adam's first steps move every weight by ~lr whatever its gradient's size (m/sqrt(v)
    // is +-1 at first): on a trained model that is a shock, so the lr warms up linearly.
    set_lr(opt, o.lr * std::min(1.0, double(it + 1) / double(std::max<int64_t>(1, o.warmup))));
    for (int64_t u = 0; u < o.updates && !batches.empty(); ++u) {
      opt.zero_grad();
      kl_sum = 0, kl_tokens = 0;
      for (auto& b : batches) {
        auto [new_logp, mask] = completion_logprobs(policy, b.prompts, b.completions);
        // grpo_loss averages over its rows; weighting by rows makes this the mean over all completions.
        auto loss = grpo_loss(new_logp, b.old_logp, b.ref_logp, b.adv_t, mask, o.clip_eps, o.kl_beta) *
                    (double(b.prompts.size()) / train_rows);
        loss.backward();
        torch::NoGradGuard no_grad;
        kl_sum += (k3_kl(new_logp, b.ref_logp) * mask).sum().item<double>();
        kl_tokens += mask.sum().item<double>();
      }
      torch::nn::utils::clip_grad_norm_(policy->parameters(), o.max_grad_norm);
      opt.step();
    }
    const double kl = kl_sum / std::max(1.0, kl_tokens);
    hist["iter"].push_back(it + 1);
    hist["reward"].push_back(reward_sum / n_samples);
    hist["correct"].push_back(correct / n_samples);
    hist["format"].push_back(formed / n_samples);
    hist["kl"].push_back(kl);
    hist["length"].push_back(length / n_samples);
    hist["informative_groups"].push_back(informative / double(problems.size()));
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    char extra[160];
    std::snprintf(extra, sizeof extra, "reward %.3f, correct %.3f, KL %.4f, len %.1f, mixed groups %.2f",
                  reward_sum / n_samples, correct / n_samples, kl, length / n_samples, informative / double(problems.size()));
    progress.update(it + 1, extra);
    if (std::chrono::steady_clock::now() - last_report > std::chrono::seconds(30)) {
      last_report = std::chrono::steady_clock::now();
      std::fprintf(stderr, "iter %lld/%lld  %s  (%.0f s)\n", (long long)(it + 1), (long long)o.iterations, extra, secs);
    }
    bool out_of_time = o.max_minutes > 0 && secs > o.max_minutes * 60;
    if ((it + 1) % o.eval_every == 0 || it + 1 == o.iterations || out_of_time) {
      double acc = accuracy();
      hist["eval_iter"].push_back(it + 1);
      hist["eval_accuracy"].push_back(acc);
      std::fprintf(stderr, "%siter %lld: held-out accuracy %.3f\n", isatty(2) ? "\r\033[K" : "", (long long)(it + 1), acc);
      save_model_dir(policy, config_text, o.out_dir);
      write_outputs();
    }
    if (out_of_time) {
      ++it;
      std::fprintf(stderr, "stopping after %.1f minutes (--max-minutes)\n", secs / 60);
      break;
    }
  }
  progress.finish();
  summary.iterations = it;
  summary.accuracy_after = hist["eval_accuracy"].back();
  std::vector<double> rewards = hist["reward"];
  size_t k = std::max<size_t>(1, rewards.size() / 10);
  for (size_t i = 0; i < k && i < rewards.size(); ++i)
    summary.reward_first += rewards[i] / k, summary.reward_last += rewards[rewards.size() - 1 - i] / k;
  save_model_dir(policy, config_text, o.out_dir);
  write_outputs();
  nlohmann::json s = {{"iterations", summary.iterations}, {"accuracy_before", summary.accuracy_before},
                      {"accuracy_after", summary.accuracy_after}, {"reward_first", summary.reward_first},
                      {"reward_last", summary.reward_last}, {"task", o.task}, {"digits", o.digits}};
  write_file_atomic(o.out_dir + "/summary.json", s.dump(1) + "\n");
  if (o.export_gguf) export_gguf(o.out_dir, o.out_dir + "/model.gguf");
  return summary;
}

}  // namespace mlamoe::train
