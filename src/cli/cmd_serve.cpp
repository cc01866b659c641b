// mlamoe serve: an OpenAI-compatible HTTP server with continuous batching
// (src/server). SIGINT/SIGTERM shut it down gracefully: new requests are refused,
// running streams get --shutdown-grace seconds to finish and are then cut cleanly
// (finish_reason "length", then [DONE]), and the process exits 0.
// With --session FILE the prefix cache outlives the process: it is saved to FILE at
// that clean shutdown and published again at the next start, so a long system prompt
// or document is not recomputed after a restart (docs/server.md, "Sessions").
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "cli/command.h"
#include "cli/common_flags.h"
#include "cli/default_model.h"
#include "common/error.h"
#include "common/parse.h"
#include "format/gguf.h"
#include "runtime/session.h"
#include "server/http_server.h"
#include "server/scheduler.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace mlamoe::cli {
namespace {

std::string mib(uint64_t bytes) {
  char s[32];
  std::snprintf(s, sizeof s, "%.1f MiB", static_cast<double>(bytes) / (1 << 20));
  return s;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// A missing file is a first start; one that cannot be used (another model, truncated,
// corrupt) is reported in one line and the server starts with an empty prefix cache.
void restore_prefixes(const std::string& path, PagedKvCache& kv, int32_t scratch, uint64_t model_id) {
  if (!std::filesystem::exists(path)) {
    std::fprintf(stderr, "serve: session %s does not exist yet; the prefix cache is saved there at shutdown\n", path.c_str());
    return;
  }
  const auto t0 = std::chrono::steady_clock::now();
  try {
    const PrefixCacheFile r = restore_prefix_cache(path, kv, scratch, model_id);
    std::fprintf(stderr, "serve: session %s: restored %llu sequences, %llu tokens (%s) in %.2f s\n", path.c_str(),
                 (unsigned long long)r.sequences, (unsigned long long)r.tokens, mib(r.bytes).c_str(), seconds_since(t0));
  } catch (const Error& e) {
    std::fprintf(stderr, "warning: not using session %s; starting with an empty prefix cache\n", e.what());
  }
}

void save_prefixes(const std::string& path, PagedKvCache& kv, int32_t scratch, uint64_t model_id, bool report = true) {
  const auto t0 = std::chrono::steady_clock::now();
  const PrefixCacheFile w = save_prefix_cache(path, kv, scratch, model_id);
  if (report)
    std::fprintf(stderr, "serve: session %s: saved %llu sequences, %llu tokens (%s) in %.2f s\n", path.c_str(),
                 (unsigned long long)w.sequences, (unsigned long long)w.tokens, mib(w.bytes).c_str(), seconds_since(t0));
}

int run_serve(int argc, char** argv) {
  CLI::App app{"Serve the model over an OpenAI-compatible HTTP API"};
  ModelFlags mf;
  mf.add_to(app, /*model_required=*/false);
  KvFlags kf;
  kf.add_to(app, /*with_session=*/false);
  app.add_option("--session", kf.session,
                 "keep the prefix cache (the KV entries of cached prompts) in this file across restarts: saved at "
                 "shutdown, restored at start");
  double session_interval = 0;
  app.add_option("--session-save-interval", session_interval,
                 "with --session, also save when idle, at most every this many seconds (0: only at shutdown)")
      ->capture_default_str();
  std::string prefix_cache = "256MiB";
  server::ServerOptions so;
  server::SchedulerOptions sched;
  std::string alias, chat_template, vocab, max_body = "8MiB";
  double grace = 5.0;
  bool quiet = false;
  app.add_option("--host", so.host, "address to listen on")->capture_default_str();
  app.add_option("--port", so.port, "port to listen on (0: any free port, printed at start)")->capture_default_str();
  app.add_option("--parallel,--np", sched.max_sequences, "sequences decoded together in one batch")->capture_default_str();
  app.add_option("--max-queue", sched.max_queue, "requests that may wait for a slot; more get 429")->capture_default_str();
  app.add_option("-b,--batch-size", sched.prefill_chunk, "prompt tokens processed per step (chunked prefill)")->capture_default_str();
  app.add_option("--kv-tokens", sched.kv_tokens, "KV positions all sequences may reserve (0: parallel x ctx)")->capture_default_str();
  app.add_option("--api-key", so.api_key, "require 'Authorization: Bearer KEY' on /v1/*");
  app.add_option("--timeout", so.timeout_seconds,
                 "seconds a request may take from arrival to its last token: a running one is then cut (finish_reason "
                 "length), one still queued gets 503; also the HTTP read/write timeout")
      ->capture_default_str();
  app.add_option("--alias", alias, "model name for /v1/models and requests (default: the file name)");
  app.add_option("--vocab", vocab, "take the tokenizer from this GGUF (e.g. for a gen-random model without one)");
  app.add_option("--chat-template", chat_template, "chat template: built-in name (deepseek2, deepseek3, r1) or Jinja file");
  app.add_option("--max-tokens", so.limits.max_tokens_cap, "largest max_tokens a request may ask for")->capture_default_str();
  app.add_option("--max-body", max_body, "largest request body (e.g. 8MiB)")->capture_default_str();
  app.add_option("--shutdown-grace", grace, "seconds running streams may finish after SIGINT/SIGTERM")->capture_default_str();
  app.add_option("--kv-prefix-cache", prefix_cache, "KV memory kept after requests end for prefix reuse (0: no prefix reuse)")
      ->capture_default_str();
  app.add_flag("--quiet", quiet, "no line per request on stderr");
  return parse_and_run(app, argc, argv, [&] {
    if (mf.model.empty()) mf.model = default_model_path();
    if (so.port < 0 || so.port > 65535) fail("--port: expected 0..65535, got ", so.port);
    if (sched.max_sequences < 1 || sched.max_sequences > 1024) fail("--parallel: expected 1..1024, got ", sched.max_sequences);
    if (sched.max_queue < 0) fail("--max-queue: must not be negative");
    if (sched.prefill_chunk < 1) fail("-b: must be at least 1");
    if (so.timeout_seconds < 1) fail("--timeout: must be at least 1 second");
    if (so.limits.max_tokens_cap < 1) fail("--max-tokens: must be at least 1");
    if (session_interval < 0) fail("--session-save-interval: must not be negative");
    so.max_body_bytes = parse_byte_size(max_body);
    if (so.max_body_bytes < 1024) fail("--max-body: must be at least 1KiB");
    so.log_requests = !quiet;
    so.verbose = mf.verbose;
    sched.request_timeout = so.timeout_seconds;

    // Signals go to one waiting thread (blocked everywhere else, before any thread starts).
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
    signal(SIGPIPE, SIG_IGN);  // a client that vanished must not kill the server

    // A file without a tokenizer fails here, before the weights are loaded (and re-laid out).
    if (vocab.empty() && !GgufFile::open(mf.model)->has("tokenizer.ggml.tokens"))
      fail(mf.model, ": the model has no tokenizer data (tokenizer.ggml.tokens); pass --vocab VOCAB.gguf");
    auto model = mf.load();
    std::unique_ptr<Tokenizer> tok;
    if (!vocab.empty()) tok = Tokenizer::from_file(vocab);
    else if (model->gguf().has("tokenizer.ggml.tokens")) tok = Tokenizer::from_gguf(model->gguf());
    else fail(mf.model, ": the model has no tokenizer data (tokenizer.ggml.tokens); pass --vocab VOCAB.gguf");
    if (tok->n_vocab() > model->config().vocab_size)
      fail(vocab.empty() ? mf.model : vocab, ": the tokenizer has ", tok->n_vocab(), " tokens, more than the model's ", model->config().vocab_size);
    std::unique_ptr<ChatTemplate> chat;
    try {
      chat = std::make_unique<ChatTemplate>(ChatTemplate::for_model(*tok, chat_template));
    } catch (const Error& e) {
      if (!chat_template.empty()) throw;
      std::fprintf(stderr, "serve: no usable chat template (%s): /v1/chat/completions is off\n", e.what());
    }
    // The paged cache: blocks per sequence, shared prompt prefixes, optional SSD tier.
    const EngineOptions eo = mf.engine_options(*model);
    PagedKvOptions ko = kf.options();
    ko.max_ctx = eo.n_ctx > 0 ? eo.n_ctx : model->config().max_position_embeddings;
    const ModelConfig& mc = model->config();
    const uint64_t prefix_bytes = parse_byte_size(prefix_cache);
    sched.share_prefixes = prefix_bytes > 0;
    if (prefix_bytes > 0) {
      const PagedKvCache probe(mc.n_layers, mc.kv_lora_rank, mc.qk_rope_head_dim, ko);  // for the block size
      ko.max_prefix_blocks = std::max<uint64_t>(1, prefix_bytes / (probe.bytes_per_token() * static_cast<uint64_t>(ko.block_tokens)));
    }
    auto kv = std::make_shared<PagedKvCache>(mc.n_layers, mc.kv_lora_rank, mc.qk_rope_head_dim, ko);
    Engine engine(*model, eo, kv);
    // --session: the cached prefixes go through one sequence id no request slot uses.
    const int32_t session_seq = sched.max_sequences;
    uint64_t model_id = 0;
    if (!kf.session.empty()) {
      if (prefix_bytes == 0) fail("--session keeps the prefix cache across restarts: it needs --kv-prefix-cache above 0");
      model_id = model_identity(*model);
      restore_prefixes(kf.session, *kv, session_seq, model_id);
      if (session_interval > 0) {
        // A crash then loses at most what came after the last idle moment.
        sched.idle_interval = session_interval;
        sched.on_idle = [&, verbose = mf.verbose] {
          try {
            save_prefixes(kf.session, *kv, session_seq, model_id, verbose);
          } catch (const Error& e) {
            std::fprintf(stderr, "warning: serve: could not save the session: %s\n", e.what());
          }
        };
      }
    }
    so.model_id = alias.empty() ? std::filesystem::path(mf.model).filename().string() : alias;
    so.aliases = {std::filesystem::path(mf.model).stem().string()};

    server::Scheduler scheduler(engine, sched);
    server::HttpServer http(scheduler, *tok, chat.get(), so);
    const int port = http.bind();
    std::fprintf(stderr, "serve: listening on http://%s:%d  model %s, %d parallel, context %lld, chat template %s\n",
                 so.host.c_str(), port, so.model_id.c_str(), sched.max_sequences, static_cast<long long>(engine.n_ctx()),
                 chat ? chat->name().c_str() : "none");
    std::fflush(stderr);
    scheduler.start();

    std::atomic<bool> serving_done{false}, by_signal{false};
    std::thread waiter([&] {
      int sig = 0;
      sigwait(&stop_signals, &sig);
      if (!serving_done) {
        by_signal = true;
        std::fprintf(stderr, "serve: %s received, shutting down (running streams get %.1f s)\n", sig == SIGINT ? "SIGINT" : "SIGTERM", grace);
      }
      http.begin_shutdown();
      scheduler.shutdown(grace);
      // stop() only works once the server is listening: repeat until run() returned.
      while (!serving_done) {
        http.stop();
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    });
    http.run();
    serving_done = true;
    if (!by_signal) pthread_kill(waiter.native_handle(), SIGTERM);  // wake it: run() ended on its own
    waiter.join();
    // The scheduler has stopped: the cache is idle and every sequence is published.
    if (!kf.session.empty()) save_prefixes(kf.session, *kv, session_seq, model_id);
    if (!by_signal) fail("serve: the HTTP server stopped unexpectedly");
    std::fprintf(stderr, "serve: stopped\n");
    return 0;
  });
}

}  // namespace
MLAMOE_COMMAND("serve", "serve the model over an OpenAI-compatible HTTP API (continuous batching)", run_serve);
}  // namespace mlamoe::cli
