// The JSON a response carries, in OpenAI's shapes: chat.completion and its
// chat.completion.chunk stream, text_completion (streamed the same way), usage,
// logprobs (chat: per-token objects; completions: parallel arrays), and the SSE
// framing `data: {...}\n\n` ... `data: [DONE]\n\n`.
#pragma once
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "server/request.h"
#include "server/scheduler.h"
#include "server/text_stream.h"

namespace mlamoe {
class Tokenizer;
}

namespace mlamoe::server {

using json = nlohmann::ordered_json;  // fields in the order OpenAI writes them

// Serializes without ever throwing: invalid UTF-8 (a token that is half a character)
// becomes U+FFFD.
std::string dump(const json& j);
std::string sse_event(const json& j);
inline const char* sse_done() { return "data: [DONE]\n\n"; }

struct ResponseMeta {
  Endpoint endpoint;
  std::string id;  // chatcmpl-... / cmpl-...
  int64_t created;
  std::string model;
};

json usage_json(const SequenceUsage& u);

// Logprobs of generated tokens, accumulated in the endpoint's format.
class LogprobsBuilder {
 public:
  LogprobsBuilder(Endpoint endpoint, const Tokenizer& tok) : endpoint_(endpoint), tok_(tok) {}
  void add(const GeneratedToken& g, size_t text_offset);
  json take();  // what was added since the last take()
  bool empty() const { return n_ == 0; }

 private:
  Endpoint endpoint_;
  const Tokenizer& tok_;
  json chat_ = json::array();
  json tokens_ = json::array(), token_logprobs_ = json::array(), top_ = json::array(), offsets_ = json::array();
  size_t n_ = 0;
};

// One streamed chunk. `role_chunk`: the chat stream's first chunk, announcing the role.
json stream_chunk(const ResponseMeta& m, const TextDelta& delta, const json& logprobs, const char* finish_reason,
                  bool with_usage_field, bool role_chunk = false);
json usage_chunk(const ResponseMeta& m, const SequenceUsage& u);
// The whole answer of a non-streamed request.
json full_response(const ResponseMeta& m, const TextDelta& text, const json& logprobs, const char* finish_reason,
                   const SequenceUsage& u);

}  // namespace mlamoe::server
