// The OpenAI-compatible HTTP front end (cpp-httplib): routes, API-key check, request
// validation and tokenization on the connection's thread, then the scheduler; answers
// as one JSON body or as server-sent events. A client that disconnects cancels its
// sequence. Every error is an OpenAI-style error object.
#pragma once
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "server/metrics.h"
#include "server/request.h"
#include "server/scheduler.h"

namespace mlamoe {
class Tokenizer;
class ChatTemplate;
}  // namespace mlamoe

namespace mlamoe::server {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;                   // 0: any free port (see HttpServer::bind)
  std::string api_key;               // empty: no authentication
  std::string model_id;              // the name /v1/models lists and requests must use
  std::vector<std::string> aliases;  // other accepted names
  size_t max_body_bytes = 8u << 20;
  RequestLimits limits;
  int timeout_seconds = 600;         // HTTP read/write timeout (the scheduler's request timeout too, see cmd_serve)
  int http_threads = 0;              // 0: enough for every slot and queued request
  bool log_requests = true;          // one line per request on stderr
  bool verbose = false;              // one line per finished sequence: tokens, prefix reuse, timings
};

class HttpServer {
 public:
  // `chat` may be null (no chat endpoint); `prefix_stats` (optional) reports the KV
  // cache's prefix reuse for /metrics.
  HttpServer(Scheduler& scheduler, const Tokenizer& tok, const ChatTemplate* chat, ServerOptions opts,
             std::function<std::optional<PrefixStats>()> prefix_stats = nullptr);
  ~HttpServer();
  // Binds the listening socket; returns the port. Throws Error if it cannot.
  int bind();
  // Serves until stop(); returns when every connection is closed.
  void run();
  // Stops accepting and ends run(). Thread-safe; call after the scheduler has ended
  // or cut the running sequences.
  void stop();
  // New requests are refused with 503 (the first step of a graceful shutdown).
  void begin_shutdown();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mlamoe::server
