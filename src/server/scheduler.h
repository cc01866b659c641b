// Continuous batching. One thread owns the engine and loops over steps; each step
//  1. admits waiting requests into free sequence slots (while the KV budget allows),
//  2. drops sequences whose client went away (their KV entries are freed),
//  3. builds ONE batch: the last sampled token of every decoding sequence, plus up to
//     `prefill_chunk` prompt tokens of sequences still reading their prompt (chunked,
//     so a long prompt never stalls the running streams for more than one chunk),
//  4. runs Engine::forward once (one pass over each selected expert for all of them),
//  5. samples each sequence's next token with its own sampler and hands it over.
// A request reserves prompt + max_tokens KV positions at admission, so a running
// sequence never runs out of cache mid-stream. With a PagedKvCache, a new prompt starts
// from the longest prefix any earlier sequence published (a shared system prompt is
// computed once), and finished sequences publish theirs. With a request timeout, a
// request still waiting at its deadline ends unstarted (Timeout with an error text) and
// a running one is cut at the next step (Timeout, reported like max_tokens).
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "model/engine.h"
#include "runtime/paged_kv_cache.h"
#include "runtime/sampler.h"

namespace mlamoe::server {

struct GeneratedToken {
  int32_t id = -1;
  float logprob = 0;            // log-softmax of the model's distribution (if asked)
  std::vector<TokenProb> top;   // the most likely alternatives, best first (if asked)
};

enum class FinishReason { Stop, Length, Cancelled, Error, Shutdown, Timeout };
const char* finish_reason_name(FinishReason r);  // OpenAI's finish_reason spelling

struct SequenceUsage {
  int64_t prompt_tokens = 0;
  int64_t cached_tokens = 0;  // prompt tokens whose KV entries were reused
  int64_t completion_tokens = 0;
  double queue_seconds = 0, ttft_seconds = 0, total_seconds = 0;
};

struct SequenceRequest {
  std::vector<int32_t> prompt;
  int64_t max_tokens = 16;
  SamplerParams sampling;
  int top_logprobs = -1;  // < 0: no logprobs; else alternatives per token
  std::vector<int32_t> stop_tokens;
  // Both run on the scheduler thread and must be quick. on_token returns false to end
  // the sequence (a stop string completed); on_finish is called exactly once.
  std::function<bool(const GeneratedToken&)> on_token;
  std::function<void(FinishReason, const SequenceUsage&, const std::string& error)> on_finish;
};

// The submitter's side of a sequence: cancel() ends it at the next step.
class SequenceHandle {
 public:
  void cancel();
  bool cancelled() const { return cancelled_.load(); }

 private:
  friend class Scheduler;
  std::atomic<bool> cancelled_{false};
  std::function<void()> wake_;
};

struct SchedulerOptions {
  int max_sequences = 8;     // sequences decoded together (--parallel)
  int max_queue = 64;        // requests waiting for a slot; more answer 429
  int prefill_chunk = 64;    // prompt tokens per step, over all sequences (see BENCHMARKS.md, Serving)
  int64_t kv_tokens = 0;     // KV positions all sequences may reserve; 0: max_sequences × n_ctx
  bool share_prefixes = true;  // with a PagedKvCache: reuse and publish prompt prefixes
  double request_timeout = 0;  // seconds from submission to the last token; 0: no limit
  // Called on the scheduler thread once it is idle (nothing running or admissible) and
  // sequences were published since the last call, at most every `idle_interval`
  // seconds (serve --session saves the prefix cache there). Requests that arrive
  // meanwhile wait for it. Prefix lookups it makes are not counted in the stats.
  std::function<void()> on_idle;
  double idle_interval = 0;
};

struct SchedulerStats {
  int64_t waiting = 0, active = 0;
  int64_t last_batch_tokens = 0, last_batch_sequences = 0;
  int64_t steps = 0, prompt_tokens_total = 0, generated_tokens_total = 0, cached_tokens_total = 0;
  int64_t finished_total = 0, cancelled_total = 0, errors_total = 0, timeouts_total = 0;
  int64_t kv_tokens_reserved = 0, kv_tokens_budget = 0;
  uint64_t kv_bytes = 0;
  double prompt_tps = 0, decode_tps = 0;  // over the last 10 s
  double busy_seconds = 0;
  // Prefix reuse (a PagedKvCache only).
  bool prefix_cache = false;
  uint64_t prefix_lookups = 0, prefix_hits = 0, prefix_tokens_requested = 0, prefix_tokens_reused = 0, prefix_blocks = 0;
};

class Scheduler {
 public:
  Scheduler(Engine& engine, SchedulerOptions opts);
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Starts the step loop (requests submitted before are admitted together).
  void start();
  // Queues a request. Throws ApiError: 429 when the queue is full, 400 when it can
  // never fit (prompt + max_tokens over the context or the KV budget), 503 when
  // shutting down.
  std::shared_ptr<SequenceHandle> submit(SequenceRequest req);
  // Stops admitting; running sequences may finish for `grace_seconds`, then the rest
  // are cut (finish reason Shutdown). Waits for the loop to end.
  void shutdown(double grace_seconds);

  SchedulerStats stats() const;
  int64_t n_ctx() const { return engine_.n_ctx(); }
  const SchedulerOptions& options() const { return opts_; }

 private:
  using Clock = std::chrono::steady_clock;
  struct Waiting {
    SequenceRequest req;
    std::shared_ptr<SequenceHandle> handle;
    int64_t reserve;
    Clock::time_point queued;
  };
  struct Active;

  void loop();
  void admit_locked();
  void expire_waiting_locked(Clock::time_point now);
  bool past_deadline(Clock::time_point queued, Clock::time_point now) const;
  void step();
  void finish(Active& a, FinishReason reason, const std::string& error = "");
  void sample_row(Active& a, const float* logits);
  void record_step(int64_t prompt_tokens, int64_t decode_tokens, double seconds);

  void release_kv(Active& a, bool keep_for_reuse);
  bool has_work_locked() const;
  void run_idle_hook();

  Engine& engine_;
  PagedKvCache* paged_;  // the engine's cache if it shares prefixes, else null
  SchedulerOptions opts_;
  int64_t kv_budget_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Waiting> waiting_;
  bool started_ = false, stopping_ = false;
  Clock::time_point cut_at_;
  std::thread thread_;

  // Owned by the loop thread.
  std::vector<std::unique_ptr<Active>> active_;
  std::vector<int32_t> free_slots_;
  int64_t reserved_ = 0;
  bool published_since_idle_hook_ = false;
  Clock::time_point last_idle_hook_{};
  KvStats hidden_;  // prefix lookups made by on_idle, left out of the stats

  mutable std::mutex stats_mu_;
  SchedulerStats stats_;
  struct StepRecord {
    Clock::time_point at;
    int64_t prompt_tokens, decode_tokens;
  };
  std::deque<StepRecord> recent_;
};

}  // namespace mlamoe::server
