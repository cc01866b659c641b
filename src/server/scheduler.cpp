#include "server/scheduler.h"

#include <algorithm>
#include <exception>

#include "server/api_error.h"

namespace mlamoe::server {

const char* finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::Stop: return "stop";
    case FinishReason::Length: return "length";
    case FinishReason::Cancelled: return "cancelled";
    case FinishReason::Error: return "error";
    case FinishReason::Shutdown: return "length";  // cut short, like running out of tokens
    case FinishReason::Timeout: return "length";
  }
  return "stop";
}

void SequenceHandle::cancel() {
  if (!cancelled_.exchange(true) && wake_) wake_();
}

struct Scheduler::Active {
  SequenceRequest req;
  std::shared_ptr<SequenceHandle> handle;
  int32_t slot;
  int64_t reserve;
  std::vector<int32_t> tokens;  // prompt, then generated tokens
  size_t n_prompt;
  size_t n_cached = 0;          // positions whose KV entries are in the cache
  Sampler sampler;
  SequenceUsage usage;
  Clock::time_point queued, admitted;
  bool decoding = false;        // the prompt is in; tokens.back() is the next input

  Active(Waiting&& w, int32_t slot)
      : req(std::move(w.req)), handle(std::move(w.handle)), slot(slot), reserve(w.reserve),
        tokens(req.prompt), n_prompt(req.prompt.size()), sampler(req.sampling), queued(w.queued), admitted(Clock::now()) {
    usage.prompt_tokens = static_cast<int64_t>(n_prompt);
    usage.queue_seconds = std::chrono::duration<double>(admitted - queued).count();
  }
};

Scheduler::Scheduler(Engine& engine, SchedulerOptions opts)
    : engine_(engine), paged_(dynamic_cast<PagedKvCache*>(&engine.kv())), opts_(opts) {
  opts_.max_sequences = std::max(1, opts_.max_sequences);
  opts_.max_queue = std::max(0, opts_.max_queue);
  opts_.prefill_chunk = std::max(1, opts_.prefill_chunk);
  kv_budget_ = opts_.kv_tokens > 0 ? opts_.kv_tokens : opts_.max_sequences * engine_.n_ctx();
  for (int32_t s = opts_.max_sequences - 1; s >= 0; --s) free_slots_.push_back(s);
  stats_.kv_tokens_budget = kv_budget_;
  stats_.prefix_cache = paged_ != nullptr;
}

Scheduler::~Scheduler() { shutdown(0); }

void Scheduler::start() {
  std::lock_guard lk(mu_);
  if (started_ || stopping_) return;
  started_ = true;
  thread_ = std::thread([this] { loop(); });
}

std::shared_ptr<SequenceHandle> Scheduler::submit(SequenceRequest req) {
  const int64_t n_prompt = static_cast<int64_t>(req.prompt.size()), n_ctx = engine_.n_ctx();
  if (n_prompt == 0) throw invalid_request("The prompt is empty.", "prompt");
  if (req.max_tokens < 1) throw invalid_request("max_tokens must be at least 1.", "max_tokens");
  // The sequence needs positions for its prompt and every token but the last sampled one.
  const int64_t reserve = std::min(n_ctx, n_prompt + req.max_tokens);
  if (n_prompt >= n_ctx || n_prompt + req.max_tokens > n_ctx)
    throw invalid_request("This model's maximum context length is " + std::to_string(n_ctx) + " tokens. However, you requested " +
                              std::to_string(n_prompt + req.max_tokens) + " tokens (" + std::to_string(n_prompt) +
                              " in the messages, " + std::to_string(req.max_tokens) + " in the completion). Please reduce the length of the messages or completion.",
                          "messages", "context_length_exceeded");
  if (reserve > kv_budget_)
    throw invalid_request("The request needs " + std::to_string(reserve) + " KV-cache positions, more than the server's budget of " +
                              std::to_string(kv_budget_) + ".", "max_tokens", "context_length_exceeded");
  for (int32_t t : req.prompt)
    if (t < 0 || t >= engine_.model().config().vocab_size)
      throw invalid_request("Token id " + std::to_string(t) + " is out of range (vocabulary of " +
                                std::to_string(engine_.model().config().vocab_size) + ").", "prompt");

  auto handle = std::make_shared<SequenceHandle>();
  handle->wake_ = [this] {
    std::lock_guard lk(mu_);
    cv_.notify_all();
  };
  std::lock_guard lk(mu_);
  if (stopping_) throw ApiError(503, "The server is shutting down.", "server_error", "", "shutting_down");
  if (static_cast<int>(waiting_.size()) >= opts_.max_queue)
    throw ApiError(429, "The server is busy: " + std::to_string(waiting_.size()) + " requests are already waiting. Retry later.",
                   "rate_limit_error", "", "queue_full");
  waiting_.push_back({std::move(req), handle, reserve, Clock::now()});
  cv_.notify_all();
  return handle;
}

void Scheduler::shutdown(double grace_seconds) {
  std::deque<Waiting> left;  // requests that never started end at once
  {
    std::lock_guard lk(mu_);
    if (!stopping_) {
      stopping_ = true;
      cut_at_ = Clock::now() + std::chrono::milliseconds(static_cast<int64_t>(std::max(0.0, grace_seconds) * 1000));
    }
    left.swap(waiting_);
    cv_.notify_all();
  }
  for (auto& w : left) {
    SequenceUsage u;
    u.prompt_tokens = static_cast<int64_t>(w.req.prompt.size());
    if (w.req.on_finish) w.req.on_finish(FinishReason::Shutdown, u, "the server is shutting down");
  }
  if (thread_.joinable()) thread_.join();
}

bool Scheduler::past_deadline(Clock::time_point queued, Clock::time_point now) const {
  return opts_.request_timeout > 0 && std::chrono::duration<double>(now - queued).count() >= opts_.request_timeout;
}

void Scheduler::expire_waiting_locked(Clock::time_point now) {
  if (opts_.request_timeout <= 0) return;
  for (auto it = waiting_.begin(); it != waiting_.end();) {
    if (!past_deadline(it->queued, now)) {
      ++it;
      continue;
    }
    Waiting gone = std::move(*it);
    it = waiting_.erase(it);
    SequenceUsage u;
    u.prompt_tokens = static_cast<int64_t>(gone.req.prompt.size());
    u.queue_seconds = u.total_seconds = std::chrono::duration<double>(now - gone.queued).count();
    if (gone.req.on_finish) gone.req.on_finish(FinishReason::Timeout, u, "no sequence slot became free within the request timeout");
    std::lock_guard sl(stats_mu_);
    ++stats_.timeouts_total;
  }
}

void Scheduler::admit_locked() {
  while (!waiting_.empty() && !free_slots_.empty()) {
    Waiting& w = waiting_.front();
    if (w.handle->cancelled()) {
      Waiting gone = std::move(w);
      waiting_.pop_front();
      SequenceUsage u;
      u.prompt_tokens = static_cast<int64_t>(gone.req.prompt.size());
      if (gone.req.on_finish) gone.req.on_finish(FinishReason::Cancelled, u, "");
      std::lock_guard sl(stats_mu_);
      ++stats_.cancelled_total;
      continue;
    }
    if (reserved_ + w.reserve > kv_budget_) break;  // first come, first served: wait for room
    const int32_t slot = free_slots_.back();
    free_slots_.pop_back();
    reserved_ += w.reserve;
    auto a = std::make_unique<Active>(std::move(w), slot);
    waiting_.pop_front();
    engine_.kv().clear(slot);
    if (paged_ && opts_.share_prefixes) {
      // At least the last prompt token is computed: its logits give the first token.
      a->n_cached = static_cast<size_t>(paged_->attach_prefix(slot, std::span<const int32_t>(a->tokens.data(), a->n_prompt - 1)));
      a->usage.cached_tokens = static_cast<int64_t>(a->n_cached);
    }
    active_.push_back(std::move(a));
  }
}

void Scheduler::release_kv(Active& a, bool keep_for_reuse) {
  if (paged_ && keep_for_reuse) {
    published_since_idle_hook_ = true;
    const int64_t n = std::min<int64_t>(engine_.kv().length(a.slot), static_cast<int64_t>(a.tokens.size()));
    paged_->publish(a.slot, std::span<const int32_t>(a.tokens.data(), static_cast<size_t>(n)));
    paged_->release(a.slot);
    if (paged_->options().max_prefix_blocks) paged_->trim_prefix_cache(paged_->options().max_prefix_blocks);
  } else {
    engine_.kv().clear(a.slot);
  }
}

void Scheduler::finish(Active& a, FinishReason reason, const std::string& error) {
  // After a failed step the entries may be half written: never share those.
  release_kv(a, reason != FinishReason::Error && opts_.share_prefixes);
  free_slots_.push_back(a.slot);
  reserved_ -= a.reserve;
  a.usage.completion_tokens = static_cast<int64_t>(a.tokens.size() - a.n_prompt);
  a.usage.total_seconds = std::chrono::duration<double>(Clock::now() - a.queued).count();
  {
    std::lock_guard sl(stats_mu_);
    stats_.kv_tokens_reserved = reserved_;
    ++stats_.finished_total;
    if (reason == FinishReason::Cancelled) ++stats_.cancelled_total;
    if (reason == FinishReason::Error) ++stats_.errors_total;
    if (reason == FinishReason::Timeout) ++stats_.timeouts_total;
  }
  if (a.req.on_finish) a.req.on_finish(reason, a.usage, error);
  a.slot = -1;  // marks it for removal
}

void Scheduler::sample_row(Active& a, const float* logits) {
  const int64_t n_vocab = engine_.model().config().vocab_size;
  GeneratedToken g;
  g.id = a.sampler.sample(logits, n_vocab, a.tokens);
  if (a.req.top_logprobs >= 0) {
    g.logprob = Sampler::logprob_of(logits, n_vocab, g.id);
    if (a.req.top_logprobs > 0) g.top = Sampler::top_logprobs(logits, n_vocab, a.req.top_logprobs);
  }
  if (a.tokens.size() == a.n_prompt)
    a.usage.ttft_seconds = std::chrono::duration<double>(Clock::now() - a.queued).count();
  if (std::find(a.req.stop_tokens.begin(), a.req.stop_tokens.end(), g.id) != a.req.stop_tokens.end()) {
    finish(a, FinishReason::Stop);
    return;
  }
  a.tokens.push_back(g.id);
  const bool go_on = !a.req.on_token || a.req.on_token(g);
  const int64_t generated = static_cast<int64_t>(a.tokens.size() - a.n_prompt);
  if (!go_on) finish(a, FinishReason::Stop);
  else if (generated >= a.req.max_tokens || static_cast<int64_t>(a.tokens.size()) >= engine_.n_ctx()) finish(a, FinishReason::Length);
  else a.decoding = true;
}

void Scheduler::step() {
  Batch batch;
  std::vector<Active*> rows;  // which sequence each logits row belongs to
  int64_t n_decode = 0, n_prefill = 0;
  for (auto& a : active_) {
    if (!a->decoding) continue;
    batch.add(a->tokens.back(), static_cast<int32_t>(a->tokens.size() - 1), a->slot, true);
    rows.push_back(a.get());
    ++n_decode;
  }
  // Prompt chunks, oldest request first, within the per-step budget.
  std::vector<std::pair<Active*, size_t>> advanced;
  int64_t budget = opts_.prefill_chunk;
  for (auto& a : active_) {
    if (a->decoding || budget == 0) continue;
    const size_t n = std::min<size_t>(static_cast<size_t>(budget), a->n_prompt - a->n_cached);
    for (size_t i = a->n_cached; i < a->n_cached + n; ++i) {
      const bool last = i + 1 == a->n_prompt;
      batch.add(a->tokens[i], static_cast<int32_t>(i), a->slot, last);
      if (last) rows.push_back(a.get());
    }
    advanced.emplace_back(a.get(), n);
    budget -= static_cast<int64_t>(n);
    n_prefill += static_cast<int64_t>(n);
  }
  if (batch.size() == 0) return;

  const auto t0 = Clock::now();
  std::vector<float> logits;
  try {
    logits = engine_.forward(batch);
  } catch (const std::exception& e) {
    // The cache may hold a partial step of these sequences: end them all.
    for (auto& a : active_)
      if (a->slot >= 0) finish(*a, FinishReason::Error, e.what());
    return;
  }
  for (auto& [a, n] : advanced) {
    a->n_cached += n;
    // A prompt that is in becomes reusable at once (concurrent requests with the same
    // system prompt share it).
    if (paged_ && opts_.share_prefixes && a->n_cached == a->n_prompt) {
      paged_->publish(a->slot, std::span<const int32_t>(a->tokens.data(), a->n_prompt));
      published_since_idle_hook_ = true;
    }
  }
  const int64_t n_vocab = engine_.model().config().vocab_size;
  for (size_t r = 0; r < rows.size(); ++r) {
    Active& a = *rows[r];
    sample_row(a, logits.data() + r * static_cast<size_t>(n_vocab));
  }
  record_step(n_prefill, n_decode, std::chrono::duration<double>(Clock::now() - t0).count());
  std::lock_guard sl(stats_mu_);
  stats_.last_batch_tokens = static_cast<int64_t>(batch.size());
  stats_.last_batch_sequences = static_cast<int64_t>(n_decode + advanced.size());
}

void Scheduler::record_step(int64_t prompt_tokens, int64_t decode_tokens, double seconds) {
  const auto now = Clock::now();
  std::lock_guard sl(stats_mu_);
  ++stats_.steps;
  stats_.prompt_tokens_total += prompt_tokens;
  stats_.generated_tokens_total += decode_tokens;
  stats_.busy_seconds += seconds;
  recent_.push_back({now, prompt_tokens, decode_tokens});
  while (!recent_.empty() && now - recent_.front().at > std::chrono::seconds(10)) recent_.pop_front();
}

bool Scheduler::has_work_locked() const {
  return stopping_ || !active_.empty() || (!waiting_.empty() && !free_slots_.empty());
}

void Scheduler::run_idle_hook() {
  const KvStats before = paged_ ? paged_->stats() : KvStats{};
  try {
    opts_.on_idle();
  } catch (...) {
    // The hook reports its own failures; the scheduler goes on serving.
  }
  const KvStats after = paged_ ? paged_->stats() : KvStats{};
  hidden_.prefix_lookups += after.prefix_lookups - before.prefix_lookups;
  hidden_.prefix_hits += after.prefix_hits - before.prefix_hits;
  hidden_.prefix_tokens_requested += after.prefix_tokens_requested - before.prefix_tokens_requested;
  hidden_.prefix_tokens_reused += after.prefix_tokens_reused - before.prefix_tokens_reused;
  published_since_idle_hook_ = false;
  last_idle_hook_ = Clock::now();
}

void Scheduler::loop() {
  for (;;) {
    {
      std::unique_lock lk(mu_);
      if (opts_.on_idle && published_since_idle_hook_ && !has_work_locked()) {
        const auto due = last_idle_hook_ + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(opts_.idle_interval));
        if (!cv_.wait_until(lk, due, [&] { return has_work_locked(); })) {
          lk.unlock();
          run_idle_hook();
          continue;
        }
      }
      cv_.wait(lk, [&] { return has_work_locked(); });
      if (stopping_ && active_.empty()) break;
      if (!stopping_) {
        expire_waiting_locked(Clock::now());
        admit_locked();
      } else if (Clock::now() >= cut_at_) {
        for (auto& a : active_) finish(*a, FinishReason::Shutdown);
      }
    }
    // A client that went away: its sequence ends here and its KV entries are freed. A
    // sequence past its deadline ends with what it has.
    const auto now = Clock::now();
    for (auto& a : active_) {
      if (a->slot >= 0 && a->handle->cancelled()) finish(*a, FinishReason::Cancelled);
      else if (a->slot >= 0 && past_deadline(a->queued, now)) finish(*a, FinishReason::Timeout);
    }
    std::erase_if(active_, [](auto& a) { return a->slot < 0; });
    step();
    std::erase_if(active_, [](auto& a) { return a->slot < 0; });
    const uint64_t kv_bytes = engine_.kv().bytes_used();
    const KvStats ks = paged_ ? paged_->stats() : KvStats{};
    std::lock_guard sl(stats_mu_);
    stats_.prefix_lookups = ks.prefix_lookups - hidden_.prefix_lookups;
    stats_.prefix_hits = ks.prefix_hits - hidden_.prefix_hits;
    stats_.prefix_tokens_requested = ks.prefix_tokens_requested - hidden_.prefix_tokens_requested;
    stats_.prefix_tokens_reused = ks.prefix_tokens_reused - hidden_.prefix_tokens_reused;
    stats_.prefix_blocks = ks.blocks_in_prefix_tree;
    stats_.active = static_cast<int64_t>(active_.size());
    stats_.kv_tokens_reserved = reserved_;
    stats_.kv_bytes = kv_bytes;
  }
  std::lock_guard sl(stats_mu_);
  stats_.active = 0;
  stats_.kv_tokens_reserved = reserved_;
  stats_.kv_bytes = engine_.kv().bytes_used();
}

SchedulerStats Scheduler::stats() const {
  SchedulerStats s;
  {
    std::lock_guard sl(stats_mu_);
    s = stats_;
    if (!recent_.empty()) {
      const double window = 10.0;
      int64_t p = 0, d = 0;
      const auto now = Clock::now();
      for (auto& r : recent_)
        if (now - r.at <= std::chrono::seconds(10)) {
          p += r.prompt_tokens;
          d += r.decode_tokens;
        }
      s.prompt_tps = p / window;
      s.decode_tps = d / window;
    }
  }
  std::lock_guard lk(mu_);
  s.waiting = static_cast<int64_t>(waiting_.size());
  return s;
}

}  // namespace mlamoe::server
