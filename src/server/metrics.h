// GET /metrics: Prometheus text exposition (version 0.0.4) of the request counters
// kept here and the scheduler's figures (queue depth, batch size, tokens, throughput,
// KV-cache use, prefix reuse when the cache does it).
#pragma once
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>

#include "server/scheduler.h"

namespace mlamoe::server {

struct PrefixStats {
  uint64_t lookups = 0, hits = 0, tokens_requested = 0, tokens_reused = 0;
};

class Metrics {
 public:
  // One finished HTTP request on `endpoint` ("chat", "completions", ...) with `status`.
  void count_request(const std::string& endpoint, int status);
  void count_ttft(double seconds);
  std::string render(const SchedulerStats& s, const std::optional<PrefixStats>& prefix) const;

 private:
  mutable std::mutex mu_;
  std::map<std::pair<std::string, int>, uint64_t> requests_;
  // Time to first token: cumulative histogram buckets (seconds).
  static constexpr double kBuckets[] = {0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
  uint64_t ttft_counts_[std::size(kBuckets)] = {};
  uint64_t ttft_n_ = 0;
  double ttft_sum_ = 0;
};

}  // namespace mlamoe::server
