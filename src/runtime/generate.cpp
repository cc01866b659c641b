#include "runtime/generate.h"

#include <algorithm>
#include <chrono>

#include "common/error.h"
#include "runtime/paged_kv_cache.h"

namespace mlamoe {

using Clock = std::chrono::steady_clock;

std::vector<float> prefill(Engine& engine, int32_t seq, const std::vector<int32_t>& tokens, size_t from, int n_batch) {
  std::vector<float> last;
  const size_t step = static_cast<size_t>(std::max(1, n_batch));
  for (size_t i = from; i < tokens.size(); i += step) {
    Batch b;
    const size_t end = std::min(tokens.size(), i + step);
    for (size_t j = i; j < end; ++j) b.add(tokens[j], static_cast<int32_t>(j), seq, j + 1 == end);
    last = engine.forward(b);
  }
  return last;
}

GenerateStats generate(Engine& engine, int32_t seq, std::vector<int32_t>& tokens, const GenerateOptions& opts,
                       const std::function<bool(int32_t)>& on_token) {
  GenerateStats st;
  if (tokens.empty()) fail("empty prompt");
  const int64_t n_ctx = engine.n_ctx();
  if (static_cast<int64_t>(tokens.size()) > n_ctx)
    fail("prompt of ", tokens.size(), " tokens is longer than the context (", n_ctx, " tokens; raise -c)");

  // Reuse what the cache already holds. At least the last prompt token is recomputed,
  // for its logits.
  KvCache& kv = engine.kv();
  const int64_t limit = static_cast<int64_t>(tokens.size()) - 1;
  auto* paged = dynamic_cast<PagedKvCache*>(&kv);
  int64_t cached;
  if (paged) {
    // The paged cache knows which tokens its entries belong to: keep the common prefix
    // of the earlier turn, or else borrow the longest prefix any sequence published.
    const std::vector<int32_t> had = paged->tokens(seq);
    cached = 0;
    while (cached < limit && cached < static_cast<int64_t>(had.size()) && had[static_cast<size_t>(cached)] == tokens[static_cast<size_t>(cached)])
      ++cached;
    cached = std::min(cached, kv.length(seq));
    if (cached == 0) {
      kv.clear(seq);
      cached = paged->attach_prefix(seq, std::span<const int32_t>(tokens.data(), static_cast<size_t>(limit)));
    } else if (cached < kv.length(seq)) {
      kv.truncate(seq, cached);
    }
  } else {
    // The caller promises the cache holds a prefix of `tokens` (an earlier turn).
    cached = std::min<int64_t>(kv.length(seq), limit);
    if (cached < kv.length(seq)) kv.truncate(seq, cached);
  }
  st.reused_tokens = cached;

  auto t0 = Clock::now();
  std::vector<float> logits = prefill(engine, seq, tokens, static_cast<size_t>(cached), opts.n_batch);
  st.prompt_tokens = static_cast<int64_t>(tokens.size()) - cached;
  st.prompt_seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  if (paged) paged->publish(seq, tokens);  // other sequences may now share this prompt

  Sampler sampler(opts.sampling);
  const int64_t n_vocab = engine.model().config().vocab_size;
  auto t1 = Clock::now();
  for (int i = 0; opts.n_predict < 0 || i < opts.n_predict; ++i) {
    int32_t next = sampler.sample(logits.data(), n_vocab, tokens);
    tokens.push_back(next);
    ++st.generated;
    bool stop = std::find(opts.stop_tokens.begin(), opts.stop_tokens.end(), next) != opts.stop_tokens.end();
    if (stop) {
      st.stopped_by_token = true;
      break;
    }
    if (!on_token(next)) break;
    if (static_cast<int64_t>(tokens.size()) >= n_ctx) break;
    if (opts.n_predict >= 0 && i + 1 >= opts.n_predict) break;  // no forward for a token nobody samples from
    Batch b;
    b.add(next, static_cast<int32_t>(tokens.size() - 1), seq);
    logits = engine.forward(b);
  }
  st.decode_seconds = std::chrono::duration<double>(Clock::now() - t1).count();
  // The last sampled token has no entry yet (nothing ran it): publish what is cached.
  if (paged) paged->publish(seq, std::span<const int32_t>(tokens.data(), static_cast<size_t>(kv.length(seq))));
  return st;
}

}  // namespace mlamoe
