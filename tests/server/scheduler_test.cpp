// Continuous batching on a fixture model (DeepSeek's reference weights): several
// requests decoded together, with chunked prompts mixed into decode steps, produce
// exactly the tokens each produces alone through runtime/generate; cancellation,
// limits, the queue and shutdown behave.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <future>
#include <map>
#include <optional>
#include <thread>

#include "model/engine.h"
#include "runtime/generate.h"
#include "runtime/session.h"
#include "server/api_error.h"
#include "server/scheduler.h"
#include "test_paths.h"

using namespace mlamoe;
using namespace mlamoe::server;

namespace {

const Model& fixture_model() {
  static std::unique_ptr<Model> m = Model::load(test::shared_dir() + "/fixtures/v3/model.gguf");
  return *m;
}

std::vector<int32_t> prompt_of(const std::string& s) { return {s.begin(), s.end()}; }

// A paged cache for the fixture model with small blocks (4 tokens), so short prompts
// span several and prefix sharing is exercised; `prefix_blocks` bounds the prefix cache.
std::shared_ptr<PagedKvCache> small_paged_kv(const Model& m, std::optional<uint64_t> prefix_blocks = std::nullopt) {
  PagedKvOptions ko;
  ko.block_tokens = 4;
  ko.max_ctx = 128;
  if (prefix_blocks) ko.max_prefix_blocks = *prefix_blocks;
  return std::make_shared<PagedKvCache>(m.config().n_layers, m.config().kv_lora_rank, m.config().qk_rope_head_dim, ko);
}

// One request's outcome, filled by the scheduler's callbacks.
struct Outcome {
  std::vector<int32_t> tokens;
  std::vector<GeneratedToken> details;
  std::promise<void> done;
  FinishReason reason = FinishReason::Error;
  SequenceUsage usage;
  std::string error;
};

SequenceRequest request(const std::vector<int32_t>& prompt, int64_t max_tokens, const std::shared_ptr<Outcome>& out,
                        float temperature = 0.f, uint64_t seed = 1) {
  SequenceRequest r;
  r.prompt = prompt;
  r.max_tokens = max_tokens;
  r.sampling.temperature = temperature;
  r.sampling.seed = seed;
  r.on_token = [out](const GeneratedToken& g) {
    out->tokens.push_back(g.id);
    out->details.push_back(g);
    return true;
  };
  r.on_finish = [out](FinishReason reason, const SequenceUsage& u, const std::string& e) {
    out->reason = reason;
    out->usage = u;
    out->error = e;
    out->done.set_value();
  };
  return r;
}

// The tokens generate() gives for `prompt` alone in a fresh engine.
std::vector<int32_t> alone(const std::vector<int32_t>& prompt, int n, float temperature = 0.f, uint64_t seed = 1) {
  Engine engine(fixture_model(), EngineOptions{128});
  GenerateOptions g;
  g.n_predict = n;
  g.sampling.temperature = temperature;
  g.sampling.seed = seed;
  std::vector<int32_t> tokens = prompt;
  std::vector<int32_t> out;
  generate(engine, 0, tokens, g, [&](int32_t t) {
    out.push_back(t);
    return true;
  });
  return out;
}

void wait(Outcome& o) {
  ASSERT_EQ(o.done.get_future().wait_for(std::chrono::seconds(60)), std::future_status::ready) << "request never finished";
}

}  // namespace

class BatchedDecode : public ::testing::TestWithParam<int> {};  // prefill chunk

TEST_P(BatchedDecode, GivesEachRequestItsAloneTokens) {
  const std::vector<std::string> prompts = {"The quick brown fox", "A", "DeepSeek-V3 uses MLA", "0123456789abcdef", "xy"};
  const int n = 24;
  Engine engine(fixture_model(), EngineOptions{128});
  SchedulerOptions o;
  o.max_sequences = 8;
  o.prefill_chunk = GetParam();
  Scheduler s(engine, o);
  std::vector<std::shared_ptr<Outcome>> outs;
  for (const auto& p : prompts) {
    outs.push_back(std::make_shared<Outcome>());
    s.submit(request(prompt_of(p), n, outs.back()));
  }
  s.start();
  for (auto& o : outs) wait(*o);
  int64_t total = 0, prompt_tokens = 0;
  for (size_t i = 0; i < prompts.size(); ++i) {
    EXPECT_EQ(outs[i]->reason, FinishReason::Length);
    EXPECT_EQ(outs[i]->tokens, alone(prompt_of(prompts[i]), n)) << "prompt '" << prompts[i] << "'";
    EXPECT_EQ(outs[i]->usage.completion_tokens, n);
    EXPECT_EQ(outs[i]->usage.prompt_tokens, static_cast<int64_t>(prompts[i].size()));
    total += n;
    prompt_tokens += static_cast<int64_t>(prompts[i].size());
  }
  // They really shared forward passes: decode rode along with the prompt chunks, and
  // after the last prompt every step decoded all (one at a time would take 5 × 23).
  const auto st = s.stats();
  const int64_t prefill_steps = (prompt_tokens + GetParam() - 1) / GetParam();
  EXPECT_LE(st.steps, prefill_steps + n - 1);
  EXPECT_EQ(st.generated_tokens_total + static_cast<int64_t>(prompts.size()), total);  // the first token comes from prefill
  EXPECT_EQ(engine.kv().bytes_used(), 0u) << "every sequence's KV entries are freed";
}

INSTANTIATE_TEST_SUITE_P(PrefillChunks, BatchedDecode, ::testing::Values(256, 3, 1));

TEST(Scheduler, SeededSamplingIsPerSequence) {
  // Temperature sampling with its own seed per request: batched == alone.
  Engine engine(fixture_model(), EngineOptions{128});
  Scheduler s(engine, {});
  auto a = std::make_shared<Outcome>(), b = std::make_shared<Outcome>();
  s.submit(request(prompt_of("hello"), 16, a, 1.0f, 7));
  s.submit(request(prompt_of("hello"), 16, b, 1.0f, 8));
  s.start();
  wait(*a);
  wait(*b);
  EXPECT_EQ(a->tokens, alone(prompt_of("hello"), 16, 1.0f, 7));
  EXPECT_EQ(b->tokens, alone(prompt_of("hello"), 16, 1.0f, 8));
  EXPECT_NE(a->tokens, b->tokens);
}

TEST(Scheduler, LogprobsMatchTheModel) {
  Engine engine(fixture_model(), EngineOptions{128});
  Scheduler s(engine, {});
  auto o = std::make_shared<Outcome>();
  auto r = request(prompt_of("abc"), 3, o);
  r.top_logprobs = 4;
  s.submit(std::move(r));
  s.start();
  wait(*o);
  ASSERT_EQ(o->details.size(), 3u);
  for (const auto& g : o->details) {
    ASSERT_EQ(g.top.size(), 4u);
    EXPECT_EQ(g.top[0].token, g.id);  // greedy picks the most likely
    EXPECT_FLOAT_EQ(g.top[0].logprob, g.logprob);
    EXPECT_LT(g.logprob, 0.f);
    EXPECT_GE(g.top[0].logprob, g.top[3].logprob);
  }
}

TEST(Scheduler, StopTokenAndCallbackEndTheSequence) {
  const auto ref = alone(prompt_of("stop here"), 10);
  Engine engine(fixture_model(), EngineOptions{128});
  Scheduler s(engine, {});
  auto by_token = std::make_shared<Outcome>(), by_text = std::make_shared<Outcome>();
  auto r = request(prompt_of("stop here"), 10, by_token);
  r.stop_tokens = {ref[3]};
  s.submit(std::move(r));
  auto r2 = request(prompt_of("stop here"), 10, by_text);
  r2.on_token = [o = by_text](const GeneratedToken& g) {
    o->tokens.push_back(g.id);
    return o->tokens.size() < 2;  // e.g. a stop string completed
  };
  s.submit(std::move(r2));
  s.start();
  wait(*by_token);
  wait(*by_text);
  EXPECT_EQ(by_token->reason, FinishReason::Stop);
  // Ends before the first occurrence of the stop token, which is not emitted.
  const auto first = std::find(ref.begin(), ref.end(), ref[3]) - ref.begin();
  EXPECT_EQ(by_token->tokens, std::vector<int32_t>(ref.begin(), ref.begin() + first));
  EXPECT_EQ(by_text->reason, FinishReason::Stop);
  EXPECT_EQ(by_text->tokens.size(), 2u);
}

TEST(Scheduler, CancelFreesTheSequence) {
  Engine engine(fixture_model(), EngineOptions{128});
  Scheduler s(engine, {});
  auto o = std::make_shared<Outcome>();
  auto r = request(prompt_of("long"), 100, o);
  // The first token holds the scheduler until the test has cancelled: deterministic.
  std::promise<void> first, cancelled;
  std::shared_future<void> cancelled_f = cancelled.get_future().share();
  r.on_token = [o, &first, cancelled_f](const GeneratedToken& g) {
    o->tokens.push_back(g.id);
    if (o->tokens.size() == 1) {
      first.set_value();
      cancelled_f.wait();
    }
    return true;
  };
  auto h = s.submit(std::move(r));
  s.start();
  first.get_future().wait();
  h->cancel();
  cancelled.set_value();
  wait(*o);
  EXPECT_EQ(o->reason, FinishReason::Cancelled);
  EXPECT_EQ(o->tokens.size(), 1u) << "stopped at the next step";
  EXPECT_EQ(s.stats().kv_tokens_reserved, 0);
  EXPECT_EQ(engine.kv().bytes_used(), 0u);
  EXPECT_EQ(s.stats().cancelled_total, 1);
}

TEST(Scheduler, RefusesWhatCannotFitBeforeAnyWork) {
  Engine engine(fixture_model(), EngineOptions{64});
  SchedulerOptions o;
  o.max_queue = 2;
  o.kv_tokens = 40;
  Scheduler s(engine, o);
  auto status_of = [&](SequenceRequest r) {
    try {
      s.submit(std::move(r));
      return 0;
    } catch (const ApiError& e) {
      return e.status;
    }
  };
  auto o1 = std::make_shared<Outcome>();
  EXPECT_EQ(status_of(request(std::vector<int32_t>(64, 'a'), 1, o1)), 400);  // prompt fills the context
  EXPECT_EQ(status_of(request(std::vector<int32_t>(30, 'a'), 40, o1)), 400);  // prompt + max_tokens > context
  EXPECT_EQ(status_of(request(std::vector<int32_t>(30, 'a'), 20, o1)), 400);  // over the KV budget
  EXPECT_EQ(status_of(request({}, 5, o1)), 400);
  EXPECT_EQ(status_of(request({300}, 5, o1)), 400);  // token outside the vocabulary
  // Not started: the queue fills up, then 429.
  auto a = std::make_shared<Outcome>(), b = std::make_shared<Outcome>(), c = std::make_shared<Outcome>();
  EXPECT_EQ(status_of(request(prompt_of("a"), 5, a)), 0);
  EXPECT_EQ(status_of(request(prompt_of("b"), 5, b)), 0);
  EXPECT_EQ(status_of(request(prompt_of("c"), 5, c)), 429);
  s.start();
  wait(*a);
  wait(*b);
  EXPECT_EQ(a->reason, FinishReason::Length);
}

TEST(Scheduler, KvBudgetQueuesInsteadOfOvercommitting) {
  // Two requests reserving 30 positions each with a budget of 40 run one after the other.
  Engine engine(fixture_model(), EngineOptions{64});
  SchedulerOptions o;
  o.kv_tokens = 40;
  Scheduler s(engine, o);
  auto a = std::make_shared<Outcome>(), b = std::make_shared<Outcome>();
  s.submit(request(std::vector<int32_t>(10, 'a'), 20, a));
  s.submit(request(std::vector<int32_t>(10, 'b'), 20, b));
  s.start();
  wait(*a);
  wait(*b);
  EXPECT_EQ(a->reason, FinishReason::Length);
  EXPECT_EQ(b->reason, FinishReason::Length);
  EXPECT_EQ(b->tokens, alone(std::vector<int32_t>(10, 'b'), 20));
  EXPECT_GE(b->usage.queue_seconds, 0.0);
}

TEST(Scheduler, ShutdownEndsEverything) {
  Engine engine(fixture_model(), EngineOptions{128});
  SchedulerOptions o;
  o.max_sequences = 1;
  Scheduler s(engine, o);
  auto running = std::make_shared<Outcome>(), queued = std::make_shared<Outcome>();
  std::promise<void> first;
  auto r = request(prompt_of("x"), 120, running);
  r.on_token = [running, &first](const GeneratedToken& g) {
    running->tokens.push_back(g.id);
    if (running->tokens.size() == 1) first.set_value();
    return true;
  };
  s.submit(std::move(r));
  s.submit(request(prompt_of("y"), 5, queued));
  s.start();
  first.get_future().wait();
  s.shutdown(0);
  wait(*running);
  wait(*queued);
  EXPECT_EQ(queued->reason, FinishReason::Shutdown);
  EXPECT_TRUE(running->reason == FinishReason::Shutdown || running->reason == FinishReason::Length);
  EXPECT_THROW(s.submit(request(prompt_of("z"), 5, std::make_shared<Outcome>())), ApiError);
}

TEST(Scheduler, PrefixReuseThroughThePagedCacheGivesTheSameTokens) {
  const Model& m = fixture_model();
  auto kv = small_paged_kv(m);
  Engine engine(m, EngineOptions{128}, kv);
  Scheduler s(engine, {});
  s.start();
  const auto shared = prompt_of("A shared system prompt. ");
  auto with = [&](const std::string& tail) {
    auto p = shared;
    p.insert(p.end(), tail.begin(), tail.end());
    return p;
  };
  auto first = std::make_shared<Outcome>();
  s.submit(request(with("one"), 12, first));
  wait(*first);
  auto second = std::make_shared<Outcome>(), third = std::make_shared<Outcome>();
  s.submit(request(with("two"), 12, second));
  s.submit(request(with("one"), 12, third));
  wait(*second);
  wait(*third);
  EXPECT_EQ(first->usage.cached_tokens, 0);
  EXPECT_GE(second->usage.cached_tokens, 20);  // whole 4-token blocks of the shared part
  EXPECT_GE(third->usage.cached_tokens, static_cast<int64_t>(shared.size()));
  EXPECT_EQ(first->tokens, alone(with("one"), 12));
  EXPECT_EQ(second->tokens, alone(with("two"), 12));
  EXPECT_EQ(third->tokens, first->tokens);
  EXPECT_GE(s.stats().prefix_hits, 2u);
}

TEST(Scheduler, RequestTimeoutCutsRunningAndEndsQueuedRequests) {
  // One slot. The running request's third token takes longer than the timeout; when
  // the step ends, the queued request is past its deadline and ends unstarted, and the
  // running one is cut with the tokens it has.
  Engine engine(fixture_model(), EngineOptions{128});
  SchedulerOptions o;
  o.max_sequences = 1;
  o.request_timeout = 1.0;
  Scheduler s(engine, o);
  auto running = std::make_shared<Outcome>(), queued = std::make_shared<Outcome>();
  auto r = request(prompt_of("slow"), 100, running);
  r.on_token = [running](const GeneratedToken& g) {
    running->tokens.push_back(g.id);
    if (running->tokens.size() == 3) std::this_thread::sleep_for(std::chrono::milliseconds(1300));
    return true;
  };
  s.submit(std::move(r));
  s.submit(request(prompt_of("late"), 5, queued));
  s.start();
  wait(*running);
  wait(*queued);
  EXPECT_EQ(running->reason, FinishReason::Timeout);
  EXPECT_STREQ(finish_reason_name(running->reason), "length");
  EXPECT_TRUE(running->error.empty()) << "a cut answer is still an answer";
  EXPECT_EQ(running->tokens.size(), 3u);
  EXPECT_EQ(running->usage.completion_tokens, 3);
  EXPECT_GE(running->usage.total_seconds, 1.0);
  EXPECT_EQ(queued->reason, FinishReason::Timeout);
  EXPECT_TRUE(queued->tokens.empty());
  EXPECT_FALSE(queued->error.empty()) << "never started: the HTTP layer answers 503";
  EXPECT_EQ(s.stats().timeouts_total, 2);
  EXPECT_EQ(s.stats().kv_tokens_reserved, 0);
  EXPECT_EQ(engine.kv().bytes_used(), 0u);
}

TEST(Scheduler, NoRequestTimeoutMeansNoCut) {
  Engine engine(fixture_model(), EngineOptions{128});
  Scheduler s(engine, {});
  auto o = std::make_shared<Outcome>();
  auto r = request(prompt_of("slow"), 6, o);
  r.on_token = [o](const GeneratedToken& g) {
    o->tokens.push_back(g.id);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    return true;
  };
  s.submit(std::move(r));
  s.start();
  wait(*o);
  EXPECT_EQ(o->reason, FinishReason::Length);
  EXPECT_EQ(o->tokens.size(), 6u);
}

// The raw KV rows (storage type, every layer) of a sequence the prefix tree holds,
// read through `scratch`.
std::string cached_rows(PagedKvCache& kv, int32_t scratch, const std::vector<int32_t>& tokens) {
  std::string rows;
  const auto n = static_cast<int64_t>(tokens.size());
  EXPECT_EQ(kv.attach_prefix(scratch, tokens), n);
  for (int64_t l = 0; l < kv.n_layers(); ++l)
    kv.for_each_raw_run(scratch, l, n, [&](int64_t, int64_t cnt, const uint8_t* c, const uint8_t* r) {
      rows.append(reinterpret_cast<const char*>(c), static_cast<size_t>(cnt) * kv.c_kv_row_bytes());
      rows.append(reinterpret_cast<const char*>(r), static_cast<size_t>(cnt) * kv.k_rope_row_bytes());
    });
  kv.clear(scratch);
  return rows;
}

// serve --session: the prefix cache saved after the scheduler stopped and restored into
// a fresh cache (a restarted server) holds the same sequences with bit-identical rows,
// a shared document stored once in the file; a request sharing the prefix reuses it
// and gets exactly the tokens and logprobs the saved cache gives it.
TEST(Scheduler, PrefixCacheSavedAtShutdownAndRestoredIsExact) {
  const Model& m = fixture_model();
  SchedulerOptions so;
  so.max_sequences = 2;
  so.prefill_chunk = 16;  // the document goes in over several steps
  const int32_t scratch = so.max_sequences;  // no request slot uses it
  const uint64_t id = model_identity(m);
  const std::string path = test::temp_dir() + "/prefixes.session";
  const auto doc = prompt_of("A long document every request starts with, then a question: ");
  auto with = [&](const std::string& tail) {
    auto p = doc;
    p.insert(p.end(), tail.begin(), tail.end());
    return p;
  };
  auto run = [&](Engine& e, const std::vector<std::vector<int32_t>>& prompts) {
    Scheduler s(e, so);
    std::vector<std::shared_ptr<Outcome>> outs;
    for (const auto& p : prompts) {
      outs.push_back(std::make_shared<Outcome>());
      auto r = request(p, 6, outs.back());
      r.top_logprobs = 2;
      s.submit(std::move(r));
    }
    s.start();
    for (auto& o : outs) wait(*o);
    return outs;
  };

  auto kv_a = small_paged_kv(m);
  Engine ea(m, EngineOptions{128}, kv_a);
  run(ea, {with("one?"), with("two?"), prompt_of("Something else entirely.")});
  const auto saved = kv_a->cached_sequences();
  ASSERT_GE(saved.size(), 3u);
  const PrefixCacheFile w = save_prefix_cache(path, *kv_a, scratch, id);
  EXPECT_EQ(w.sequences, saved.size());
  EXPECT_LE(w.stored_tokens + doc.size() / 4 * 4, w.tokens) << "the document's blocks are stored once";
  EXPECT_EQ(kv_a->length(scratch), 0);
  EXPECT_EQ(kv_a->cached_sequences(), saved) << "saving does not reorder the cache";

  auto kv_b = small_paged_kv(m);
  Engine eb(m, EngineOptions{128}, kv_b);
  const PrefixCacheFile r = restore_prefix_cache(path, *kv_b, scratch, id);
  EXPECT_EQ(r.sequences, w.sequences);
  EXPECT_EQ(r.tokens, w.tokens);
  EXPECT_EQ(r.bytes, w.bytes);
  EXPECT_EQ(kv_b->length(scratch), 0);
  EXPECT_EQ(kv_b->cached_sequences(), saved);
  EXPECT_EQ(kv_b->stats().blocks_in_prefix_tree, kv_a->stats().blocks_in_prefix_tree);
  for (const auto& seq : saved) EXPECT_TRUE(cached_rows(*kv_b, scratch, seq) == cached_rows(*kv_a, scratch, seq)) << "rows differ";

  // The first request after the "restart" reuses the document.
  const auto probe = with("three?");
  const auto before = run(ea, {probe})[0], after = run(eb, {probe})[0];
  EXPECT_GE(after->usage.cached_tokens, static_cast<int64_t>(doc.size()));
  EXPECT_EQ(after->usage.cached_tokens, before->usage.cached_tokens);
  EXPECT_EQ(after->tokens, before->tokens);
  ASSERT_EQ(after->details.size(), before->details.size());
  for (size_t i = 0; i < after->details.size(); ++i) EXPECT_EQ(after->details[i].logprob, before->details[i].logprob) << i;
  EXPECT_EQ(after->tokens, alone(probe, 6)) << "and the tokens of an engine without any cache";
}

// A prefix budget smaller than the file: the most recently used sequences are kept.
TEST(Scheduler, RestoredPrefixCacheKeepsTheMostRecentWithinItsBudget) {
  const Model& m = fixture_model();
  auto kv_a = small_paged_kv(m);
  Engine ea(m, EngineOptions{128}, kv_a);
  {
    Scheduler s(ea, {});
    s.start();
    for (const char* p : {"first prompt, the oldest", "second prompt", "third prompt, the newest"}) {
      auto o = std::make_shared<Outcome>();
      s.submit(request(prompt_of(p), 2, o));
      wait(*o);
    }
  }
  const auto saved = kv_a->cached_sequences();
  ASSERT_EQ(saved.size(), 3u);
  const std::string path = test::temp_dir() + "/budget.session";
  save_prefix_cache(path, *kv_a, 99, model_identity(m));
  auto kv_b = small_paged_kv(m, (saved[2].size() + 3) / 4);  // room for the newest only
  restore_prefix_cache(path, *kv_b, 99, model_identity(m));
  EXPECT_EQ(kv_b->cached_sequences(), std::vector<std::vector<int32_t>>{saved[2]});
}

// The idle hook (serve --session-save-interval): called once the scheduler is idle after
// publishing, never while a sequence runs, not again without new sequences; the prefix
// lookups it makes (saving attaches every cached sequence) stay out of the stats.
TEST(Scheduler, IdleHookRunsWhenIdleAfterPublishingAndIsNotCounted) {
  const Model& m = fixture_model();
  auto kv = small_paged_kv(m);
  Engine engine(m, EngineOptions{128}, kv);
  SchedulerOptions so;
  so.max_sequences = 2;
  std::atomic<int> calls{0}, calls_while_active{0};
  Scheduler* self = nullptr;
  const std::string path = test::temp_dir() + "/idle.session";
  so.on_idle = [&] {
    if (self->stats().active != 0) ++calls_while_active;
    save_prefix_cache(path, *kv, so.max_sequences, 1);
    ++calls;
  };
  auto wait_calls = [&](int n) {
    for (int i = 0; i < 400 && calls < n; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    return calls.load();
  };
  {
    Scheduler idle(engine, so);
    self = &idle;
    idle.start();
    EXPECT_EQ(wait_calls(1), 0) << "nothing published yet";
  }
  Scheduler s(engine, so);
  self = &s;
  auto a = std::make_shared<Outcome>(), b = std::make_shared<Outcome>();
  // Submitted before start, so both are admitted in the first step: submitted after it,
  // a loaded CI machine once descheduled this thread until a had finished and the hook
  // had run, and b's sequence then earned a second call.
  s.submit(request(prompt_of("a prompt that gets saved"), 48, a));
  s.submit(request(prompt_of("the other prompt"), 6, b));  // shares no token with a
  s.start();
  wait(*a);
  wait(*b);
  EXPECT_EQ(wait_calls(1), 1);
  EXPECT_EQ(wait_calls(2), 1) << "no new sequence, no new call";
  EXPECT_EQ(calls_while_active, 0);
  EXPECT_TRUE(std::filesystem::exists(path));
  auto c = std::make_shared<Outcome>();
  s.submit(request(prompt_of("a prompt that gets saved, again"), 4, c));
  wait(*c);
  EXPECT_EQ(wait_calls(2), 2);
  // Four requests looked up the cache (the last one refreshes the stats after the
  // second save); the saves' lookups are not counted.
  auto d = std::make_shared<Outcome>();
  s.submit(request(prompt_of("x"), 1, d));
  wait(*d);
  SchedulerStats st = s.stats();
  for (int i = 0; i < 200 && st.prefix_lookups < 4; ++i) {  // the loop copies the stats right after the step
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    st = s.stats();
  }
  EXPECT_EQ(st.prefix_lookups, 4u);
  EXPECT_EQ(st.prefix_hits, 1u) << "only the third request shares a prefix";
}
