#include "server/metrics.h"

#include <sstream>

namespace mlamoe::server {

void Metrics::count_request(const std::string& endpoint, int status) {
  std::lock_guard lk(mu_);
  ++requests_[{endpoint, status}];
}

void Metrics::count_ttft(double seconds) {
  std::lock_guard lk(mu_);
  for (size_t i = 0; i < std::size(kBuckets); ++i)
    if (seconds <= kBuckets[i]) ++ttft_counts_[i];
  ++ttft_n_;
  ttft_sum_ += seconds;
}

namespace {

struct Writer {
  std::ostringstream os;
  void family(const char* name, const char* type, const char* help) {
    os << "# HELP " << name << " " << help << "\n# TYPE " << name << " " << type << "\n";
  }
  template <typename T>
  void metric(const char* name, const char* type, const char* help, T value) {
    family(name, type, help);
    os << name << " " << value << "\n";
  }
};

}  // namespace

std::string Metrics::render(const SchedulerStats& s, const std::optional<PrefixStats>& prefix) const {
  Writer w;
  w.os.precision(10);
  {
    std::lock_guard lk(mu_);
    w.family("mlamoe_requests_total", "counter", "HTTP requests answered, by endpoint and status code.");
    for (const auto& [key, n] : requests_)
      w.os << "mlamoe_requests_total{endpoint=\"" << key.first << "\",status=\"" << key.second << "\"} " << n << "\n";
    w.family("mlamoe_time_to_first_token_seconds", "histogram", "Time from arrival to the first generated token.");
    for (size_t i = 0; i < std::size(kBuckets); ++i)
      w.os << "mlamoe_time_to_first_token_seconds_bucket{le=\"" << kBuckets[i] << "\"} " << ttft_counts_[i] << "\n";
    w.os << "mlamoe_time_to_first_token_seconds_bucket{le=\"+Inf\"} " << ttft_n_ << "\n";
    w.os << "mlamoe_time_to_first_token_seconds_sum " << ttft_sum_ << "\n";
    w.os << "mlamoe_time_to_first_token_seconds_count " << ttft_n_ << "\n";
  }
  w.metric("mlamoe_queue_depth", "gauge", "Requests waiting for a sequence slot.", s.waiting);
  w.metric("mlamoe_active_sequences", "gauge", "Sequences being processed (prompt or decode).", s.active);
  w.metric("mlamoe_batch_tokens", "gauge", "Tokens in the last forward pass.", s.last_batch_tokens);
  w.metric("mlamoe_batch_sequences", "gauge", "Sequences in the last forward pass.", s.last_batch_sequences);
  w.metric("mlamoe_steps_total", "counter", "Forward passes (scheduler steps).", s.steps);
  w.metric("mlamoe_busy_seconds_total", "counter", "Time spent in forward passes.", s.busy_seconds);
  w.metric("mlamoe_prompt_tokens_total", "counter", "Prompt tokens processed (not reused from the cache).", s.prompt_tokens_total);
  w.metric("mlamoe_generated_tokens_total", "counter", "Tokens decoded.", s.generated_tokens_total);
  w.metric("mlamoe_prompt_tokens_per_second", "gauge", "Prompt tokens processed per second over the last 10 s.", s.prompt_tps);
  w.metric("mlamoe_decode_tokens_per_second", "gauge", "Tokens decoded per second over the last 10 s.", s.decode_tps);
  w.metric("mlamoe_sequences_finished_total", "counter", "Sequences that ended (any reason).", s.finished_total);
  w.metric("mlamoe_sequences_cancelled_total", "counter", "Sequences ended because the client went away.", s.cancelled_total);
  w.metric("mlamoe_sequences_failed_total", "counter", "Sequences ended by an internal error.", s.errors_total);
  w.metric("mlamoe_sequences_timed_out_total", "counter", "Requests ended by the request timeout (--timeout), queued or running.",
           s.timeouts_total);
  w.metric("mlamoe_kv_cache_bytes", "gauge", "Bytes of KV-cache entries held.", s.kv_bytes);
  w.metric("mlamoe_kv_cache_reserved_tokens", "gauge", "KV positions reserved by admitted sequences.", s.kv_tokens_reserved);
  w.metric("mlamoe_kv_cache_budget_tokens", "gauge", "KV positions all sequences may reserve.", s.kv_tokens_budget);
  w.metric("mlamoe_kv_cache_usage_ratio", "gauge", "Reserved over budget KV positions.",
           s.kv_tokens_budget ? double(s.kv_tokens_reserved) / double(s.kv_tokens_budget) : 0.0);
  if (s.prefix_cache)
    w.metric("mlamoe_kv_cache_prefix_blocks", "gauge", "KV blocks kept for prefix reuse (bounded by --kv-prefix-cache).", s.prefix_blocks);
  if (prefix) {
    w.metric("mlamoe_prefix_lookups_total", "counter", "Prompts looked up in the prefix cache.", prefix->lookups);
    w.metric("mlamoe_prefix_hits_total", "counter", "Prompts that reused at least one cached token.", prefix->hits);
    w.metric("mlamoe_prefix_hit_rate", "gauge", "Prefix-cache hits over lookups.",
             prefix->lookups ? double(prefix->hits) / double(prefix->lookups) : 0.0);
    w.metric("mlamoe_prefix_reused_tokens_total", "counter", "Prompt tokens whose KV entries were reused.", prefix->tokens_reused);
    w.metric("mlamoe_prefix_token_reuse_ratio", "gauge", "Reused over looked-up prompt tokens.",
             prefix->tokens_requested ? double(prefix->tokens_reused) / double(prefix->tokens_requested) : 0.0);
  }
  return w.os.str();
}

}  // namespace mlamoe::server
