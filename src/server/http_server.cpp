#include "server/http_server.h"

#include <httplib.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <random>

#include "common/error.h"
#include "server/connection.h"
#include "server/responses.h"
#include "server/text_stream.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace mlamoe::server {

namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kPollInterval = std::chrono::milliseconds(50);  // how often a waiting handler checks its client

// What the scheduler thread hands to the connection's thread, one per token or at the end.
struct Event {
  TextDelta delta;
  bool has_token = false;
  GeneratedToken token;
  bool final = false;
  FinishReason reason = FinishReason::Stop;
  SequenceUsage usage;
  std::string error;
};

// One request in flight: events flow from the scheduler to the HTTP thread.
struct Exchange {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Event> events;
  std::shared_ptr<SequenceHandle> handle;
  int fd = -1;  // the client's socket, polled for a hang-up

  void push(Event e) {
    {
      std::lock_guard lk(mu);
      events.push_back(std::move(e));
    }
    cv.notify_one();
  }
  // Waits up to one poll interval for events; cancels the sequence if the client left.
  // Returns false if it did.
  bool wait(std::deque<Event>& out) {
    {
      std::unique_lock lk(mu);
      cv.wait_for(lk, kPollInterval, [&] { return !events.empty(); });
      out.swap(events);
    }
    if (out.empty() && peer_hung_up(fd)) {
      handle->cancel();
      return false;
    }
    return true;
  }
};

std::string random_id(const char* prefix) {
  static std::atomic<uint64_t> counter{0};
  thread_local std::mt19937_64 rng(std::random_device{}() ^ (counter.fetch_add(1) << 32));
  static const char digits[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  std::string id = prefix;
  for (int i = 0; i < 24; ++i) id += digits[rng() % (sizeof(digits) - 1)];
  return id;
}

void send_error(httplib::Response& res, const ApiError& e) {
  res.status = e.status;
  res.set_content(dump(e.to_json()), "application/json");
}

const char* endpoint_label(const std::string& path) {
  if (path == "/v1/chat/completions") return "chat";
  if (path == "/v1/completions") return "completions";
  if (path.rfind("/v1/models", 0) == 0) return "models";
  if (path == "/health") return "health";
  if (path == "/metrics") return "metrics";
  return "other";
}

bool constant_time_equal(const std::string& a, const std::string& b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i % std::max<size_t>(1, b.size())]);
  return diff == 0;
}

}  // namespace

struct HttpServer::Impl {
  Scheduler& scheduler;
  const Tokenizer& tok;
  const ChatTemplate* chat;
  ServerOptions opts;
  std::function<std::optional<PrefixStats>()> prefix_stats;
  httplib::Server svr;
  Metrics metrics;
  std::vector<int32_t> end_tokens;
  ReasoningMode chat_reasoning = ReasoningMode::None;
  std::atomic<bool> draining{false};
  std::atomic<int> open_streams{0};  // SSE responses not yet fully written
  int64_t created = std::time(nullptr);

  Impl(Scheduler& s, const Tokenizer& t, const ChatTemplate* c, ServerOptions o, std::function<std::optional<PrefixStats>()> ps)
      : scheduler(s), tok(t), chat(c), opts(std::move(o)), prefix_stats(std::move(ps)) {
    for (int32_t id = 0; id < tok.n_vocab(); ++id)
      if (tok.is_end_of_generation(id)) end_tokens.push_back(id);
    if (chat && chat->opens_thinking()) chat_reasoning = ReasoningMode::StartsInside;
    else if (tok.find_token("<think>") >= 0) chat_reasoning = ReasoningMode::Detect;
    routes();
  }

  bool known_model(const std::string& name) const {
    if (name == opts.model_id) return true;
    for (const auto& a : opts.aliases)
      if (name == a) return true;
    return false;
  }

  json model_object() const { return {{"id", opts.model_id}, {"object", "model"}, {"created", created}, {"owned_by", "mlamoe"}}; }

  void routes();
  void completion(Endpoint ep, const httplib::Request& req, httplib::Response& res);
  std::vector<int32_t> prompt_tokens(const ApiRequest& r) const;
  void answer_whole(const ApiRequest& r, const ResponseMeta& meta, const std::shared_ptr<Exchange>& ex, httplib::Response& res);
  void answer_stream(const ApiRequest& r, const ResponseMeta& meta, const std::shared_ptr<Exchange>& ex, httplib::Response& res);
};

std::vector<int32_t> HttpServer::Impl::prompt_tokens(const ApiRequest& r) const {
  if (r.endpoint == Endpoint::Completion) {
    if (r.prompt_is_tokens) return r.prompt_tokens;
    return tok.encode(r.prompt);  // BOS as the vocabulary asks
  }
  if (!chat) throw invalid_request("This model has no chat template; use /v1/completions.", "messages", "unsupported_endpoint");
  std::string text;
  try {
    text = chat->apply(r.messages, true);
  } catch (const Error& e) {
    throw invalid_request(std::string("The chat template could not render these messages: ") + e.what(), "messages");
  }
  TokenizerOptions o;
  o.add_special = false;  // the template writes BOS itself
  return tok.encode(text, o);
}

void HttpServer::Impl::completion(Endpoint ep, const httplib::Request& req, httplib::Response& res) {
  if (draining) throw ApiError(503, "The server is shutting down.", "server_error", "", "shutting_down");
  const ApiRequest r = parse_request(ep, req.body, opts.limits);
  if (!known_model(r.model))
    throw ApiError(404, "The model `" + r.model + "` does not exist or you do not have access to it.", "invalid_request_error",
                   "model", "model_not_found");

  SequenceRequest seq;
  seq.prompt = prompt_tokens(r);
  const int64_t n_prompt = static_cast<int64_t>(seq.prompt.size()), n_ctx = scheduler.n_ctx();
  if (n_prompt >= n_ctx)  // refused before any work is queued
    throw invalid_request("This model's maximum context length is " + std::to_string(n_ctx) + " tokens. However, your prompt is " +
                              std::to_string(n_prompt) + " tokens long. Please reduce the length of the prompt.",
                          ep == Endpoint::Chat ? "messages" : "prompt", "context_length_exceeded");
  seq.max_tokens = r.max_tokens ? *r.max_tokens
                   : ep == Endpoint::Completion ? 16
                                                : std::max<int64_t>(1, std::min(opts.limits.max_tokens_cap, n_ctx - n_prompt));
  SamplerParams& sp = seq.sampling;
  sp.temperature = r.top_p <= 0.f ? 0.f : r.temperature;  // top_p 0 keeps only the best token
  sp.top_p = r.top_p <= 0.f ? 1.f : r.top_p;
  sp.top_k = r.top_k;
  sp.min_p = r.min_p;
  sp.repeat_penalty = r.repetition_penalty;
  sp.seed = r.seed ? *r.seed : std::random_device{}();
  seq.top_logprobs = r.logprobs ? r.top_logprobs : -1;
  if (!r.ignore_eos) seq.stop_tokens = end_tokens;

  auto ex = std::make_shared<Exchange>();
  ex->fd = find_connection_socket(req.local_addr, req.local_port, req.remote_addr, req.remote_port);
  auto text = std::make_shared<TextStream>(tok, r.stop, ep == Endpoint::Chat ? chat_reasoning : ReasoningMode::None);
  seq.on_token = [ex, text](const GeneratedToken& g) {
    Event e;
    e.delta = text->push(g.id);
    e.has_token = true;
    e.token = g;
    ex->push(std::move(e));
    return !text->stopped();
  };
  seq.on_finish = [ex, text, verbose = opts.verbose](FinishReason reason, const SequenceUsage& u, const std::string& error) {
    if (verbose)
      std::fprintf(stderr,
                   "serve: sequence done (%s): %lld prompt tokens, %lld reused from the prefix cache, %lld generated; "
                   "ttft %.3f s, total %.3f s\n",
                   finish_reason_name(reason), (long long)u.prompt_tokens, (long long)u.cached_tokens,
                   (long long)u.completion_tokens, u.ttft_seconds, u.total_seconds);
    Event e;
    e.final = true;
    e.reason = reason;
    e.usage = u;
    e.error = error;
    if (reason != FinishReason::Error && reason != FinishReason::Cancelled && error.empty()) e.delta = text->finish();
    ex->push(std::move(e));
  };
  ex->handle = scheduler.submit(std::move(seq));

  const ResponseMeta meta{ep, random_id(ep == Endpoint::Chat ? "chatcmpl-" : "cmpl-"), static_cast<int64_t>(std::time(nullptr)), r.model};
  if (r.stream) answer_stream(r, meta, ex, res);
  else answer_whole(r, meta, ex, res);
}

// The end of a sequence that is not a normal answer, as an error (or null if it is one).
static std::optional<ApiError> final_error(const Event& e) {
  if (e.reason == FinishReason::Error) return ApiError(500, "Generation failed: " + e.error, "server_error", "", "internal_error");
  if (e.reason == FinishReason::Shutdown && !e.error.empty())  // never started
    return ApiError(503, "The server is shutting down.", "server_error", "", "shutting_down");
  if (e.reason == FinishReason::Timeout && !e.error.empty())  // never started: the server was busy
    return ApiError(503, "The request timed out: " + e.error + ". Retry later.", "server_error", "", "timeout");
  return std::nullopt;
}

void HttpServer::Impl::answer_whole(const ApiRequest& r, const ResponseMeta& meta, const std::shared_ptr<Exchange>& ex,
                                    httplib::Response& res) {
  TextDelta text;
  LogprobsBuilder lp(meta.endpoint, tok);
  std::deque<Event> events;
  for (;;) {
    if (!ex->wait(events)) {
      res.status = 499;  // the client closed the connection: nobody reads this
      return;
    }
    for (Event& e : events) {
      if (e.has_token && r.logprobs) lp.add(e.token, text.content.size() + text.reasoning.size());
      text.append(e.delta);
      if (!e.final) continue;
      if (auto err = final_error(e)) return send_error(res, *err);
      if (e.reason == FinishReason::Cancelled) {
        res.status = 499;
        return;
      }
      if (e.usage.ttft_seconds > 0) metrics.count_ttft(e.usage.ttft_seconds);
      res.set_content(dump(full_response(meta, text, r.logprobs ? lp.take() : json(nullptr), finish_reason_name(e.reason), e.usage)),
                      "application/json");
      return;
    }
    events.clear();
  }
}

void HttpServer::Impl::answer_stream(const ApiRequest& r, const ResponseMeta& meta, const std::shared_ptr<Exchange>& ex,
                                     httplib::Response& res) {
  struct StreamState {
    bool started = false;
    size_t offset = 0;
  };
  auto st = std::make_shared<StreamState>();
  auto lp = std::make_shared<LogprobsBuilder>(meta.endpoint, tok);
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");
  ++open_streams;
  res.set_chunked_content_provider(
      "text/event-stream",
      [this, r, meta, ex, st, lp](size_t, httplib::DataSink& sink) {
        auto write = [&](const std::string& s) {
          if (sink.write(s.data(), s.size())) return true;
          ex->handle->cancel();
          return false;
        };
        if (!st->started) {
          st->started = true;
          if (meta.endpoint == Endpoint::Chat &&
              !write(sse_event(stream_chunk(meta, {}, nullptr, nullptr, r.include_usage, /*role_chunk=*/true))))
            return false;
        }
        std::deque<Event> events;
        if (!ex->wait(events)) return false;
        for (Event& e : events) {
          if (e.final) {
            if (auto err = final_error(e)) {
              if (!write(sse_event(err->to_json()))) return false;
            } else if (e.reason != FinishReason::Cancelled) {
              if (e.usage.ttft_seconds > 0) metrics.count_ttft(e.usage.ttft_seconds);
              if (!e.delta.empty() && !write(sse_event(stream_chunk(meta, e.delta, nullptr, nullptr, r.include_usage)))) return false;
              if (!write(sse_event(stream_chunk(meta, {}, nullptr, finish_reason_name(e.reason), r.include_usage)))) return false;
              if (r.include_usage && !write(sse_event(usage_chunk(meta, e.usage)))) return false;
            }
            if (!write(sse_done())) return false;
            sink.done();
            return true;
          }
          json logprobs = nullptr;
          if (e.has_token && r.logprobs) {
            lp->add(e.token, st->offset);
            logprobs = lp->take();
          }
          st->offset += e.delta.content.size() + e.delta.reasoning.size();
          if (e.delta.empty() && logprobs.is_null()) continue;
          if (!write(sse_event(stream_chunk(meta, e.delta, logprobs, nullptr, r.include_usage)))) return false;
        }
        return true;
      },
      [this, ex](bool success) {
        if (!success) ex->handle->cancel();  // the connection broke mid-stream
        --open_streams;
      });
}

void HttpServer::Impl::routes() {
  auto guarded = [this](Endpoint ep) {
    return [this, ep](const httplib::Request& req, httplib::Response& res) {
      try {
        completion(ep, req, res);
      } catch (const ApiError& e) {
        send_error(res, e);
      } catch (const std::bad_alloc&) {
        send_error(res, ApiError(500, "The server ran out of memory for this request.", "server_error", "", "out_of_memory"));
      } catch (const std::exception& e) {
        send_error(res, ApiError(500, std::string("Internal error: ") + e.what(), "server_error", "", "internal_error"));
      }
    };
  };
  svr.Post("/v1/chat/completions", guarded(Endpoint::Chat));
  svr.Post("/v1/completions", guarded(Endpoint::Completion));
  svr.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(dump({{"object", "list"}, {"data", json::array({model_object()})}}), "application/json");
  });
  svr.Get(R"(/v1/models/(.+))", [this](const httplib::Request& req, httplib::Response& res) {
    if (!known_model(req.matches[1].str()))
      return send_error(res, ApiError(404, "The model `" + req.matches[1].str() + "` does not exist or you do not have access to it.",
                                      "invalid_request_error", "model", "model_not_found"));
    res.set_content(dump(model_object()), "application/json");
  });
  svr.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    if (draining) res.status = 503;
    res.set_content(draining ? R"({"status":"shutting down"})" : R"({"status":"ok"})", "application/json");
  });
  svr.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    const SchedulerStats st = scheduler.stats();
    std::optional<PrefixStats> prefix = prefix_stats ? prefix_stats() : std::nullopt;
    if (!prefix && st.prefix_cache)
      prefix = PrefixStats{st.prefix_lookups, st.prefix_hits, st.prefix_tokens_requested, st.prefix_tokens_reused};
    res.set_content(metrics.render(st, prefix), "text/plain; version=0.0.4");
  });

  // The API key guards /v1/*; /health and /metrics stay open for probes.
  svr.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (opts.api_key.empty() || req.path.rfind("/v1/", 0) != 0) return httplib::Server::HandlerResponse::Unhandled;
    const std::string auth = req.get_header_value("Authorization");
    if (auth.empty()) {
      send_error(res, ApiError(401, "You didn't provide an API key. Provide it in the Authorization header as 'Bearer YOUR_KEY'.",
                               "invalid_request_error", "", "missing_api_key"));
      return httplib::Server::HandlerResponse::Handled;
    }
    if (auth.rfind("Bearer ", 0) != 0 || !constant_time_equal(auth.substr(7), opts.api_key)) {
      send_error(res, ApiError(401, "Incorrect API key provided.", "invalid_request_error", "", "invalid_api_key"));
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  // Errors cpp-httplib answers itself (no route, body too large, bad request line).
  svr.set_error_handler(httplib::Server::HandlerWithResponse([this](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;  // ours already
    if (res.status == 404)
      send_error(res, ApiError(404, "Unknown request URL: " + req.method + " " + req.path + ".", "invalid_request_error", "", "unknown_url"));
    else if (res.status == 413)
      send_error(res, ApiError(413, "The request body is larger than " + std::to_string(opts.max_body_bytes) + " bytes.",
                               "invalid_request_error", "", "request_too_large"));
    else
      send_error(res, ApiError(res.status, "The HTTP request could not be handled (status " + std::to_string(res.status) + ").",
                               res.status >= 500 ? "server_error" : "invalid_request_error"));
    return httplib::Server::HandlerResponse::Handled;
  }));
  svr.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
    send_error(res, ApiError(500, "Internal error.", "server_error", "", "internal_error"));
  });
  svr.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
    metrics.count_request(endpoint_label(req.path), res.status);
    if (opts.log_requests) std::fprintf(stderr, "serve: %s %s -> %d\n", req.method.c_str(), req.path.c_str(), res.status);
  });

  svr.set_payload_max_length(opts.max_body_bytes);
  svr.set_read_timeout(opts.timeout_seconds, 0);
  svr.set_write_timeout(opts.timeout_seconds, 0);
  svr.set_tcp_nodelay(true);  // tokens go out as they come
  const size_t threads = opts.http_threads > 0
                             ? static_cast<size_t>(opts.http_threads)
                             : static_cast<size_t>(scheduler.options().max_sequences + scheduler.options().max_queue + 8);
  svr.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
}

HttpServer::HttpServer(Scheduler& scheduler, const Tokenizer& tok, const ChatTemplate* chat, ServerOptions opts,
                       std::function<std::optional<PrefixStats>()> prefix_stats)
    : impl_(std::make_unique<Impl>(scheduler, tok, chat, std::move(opts), std::move(prefix_stats))) {}

HttpServer::~HttpServer() = default;

int HttpServer::bind() {
  auto& o = impl_->opts;
  if (o.port == 0) {
    const int port = impl_->svr.bind_to_any_port(o.host);
    if (port <= 0) fail("serve: cannot listen on ", o.host, " (any port)");
    o.port = port;
  } else if (!impl_->svr.bind_to_port(o.host, o.port)) {
    fail("serve: cannot listen on ", o.host, ":", o.port, " (in use, or not an address of this machine)");
  }
  if (!raise_listen_backlog(o.port, SOMAXCONN)) std::fprintf(stderr, "serve: warning: could not raise the listen backlog\n");
  return o.port;
}

void HttpServer::run() { impl_->svr.listen_after_bind(); }

void HttpServer::stop() {
  // The scheduler has ended every sequence, but their last events (finish_reason,
  // [DONE]) may still be on their way out: stopping the listener now would cut them.
  // Wait for the streams to be written (or their clients to go), up to 2 s.
  for (int i = 0; i < 200 && impl_->open_streams.load() > 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  impl_->svr.stop();
}

void HttpServer::begin_shutdown() { impl_->draining = true; }

}  // namespace mlamoe::server
