// Parsing and validation of /v1/chat/completions and /v1/completions bodies, as
// strict as OpenAI's API: wrong types, out-of-range values and unknown fields are
// refused with a 400 naming the parameter, before any work is queued. Fields OpenAI
// knows but this server does not implement are accepted only with their neutral value.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "server/api_error.h"
#include "tokenizer/chat_template.h"

namespace mlamoe::server {

enum class Endpoint { Chat, Completion };

struct RequestLimits {
  int64_t max_tokens_cap = 8192;  // the largest max_tokens a request may ask for
  int max_top_logprobs = 20;      // chat top_logprobs (completions' logprobs allow 5)
  size_t max_stop = 4;            // stop sequences
  size_t max_messages = 4096;
};

struct ApiRequest {
  Endpoint endpoint = Endpoint::Chat;
  std::string model;
  // Chat: the conversation. Completion: text, or token ids if given as integers.
  std::vector<ChatMessage> messages;
  std::string prompt;
  std::vector<int32_t> prompt_tokens;
  bool prompt_is_tokens = false;

  std::optional<int64_t> max_tokens;  // absent: the rest of the context (chat) / 16 (completions)
  float temperature = 1.0f;           // OpenAI's defaults: plain sampling from the model
  float top_p = 1.0f;
  int top_k = 0;                      // extensions (llama.cpp spelling), off by default
  float min_p = 0.0f;
  float repetition_penalty = 1.0f;
  bool ignore_eos = false;            // extension (llama.cpp): generate max_tokens regardless
  std::optional<uint64_t> seed;
  std::vector<std::string> stop;

  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  bool logprobs = false;
  int top_logprobs = 0;  // alternatives per token (chat top_logprobs / completions logprobs)
};

// Parses a request body; throws ApiError (400) naming the offending parameter.
ApiRequest parse_request(Endpoint endpoint, const std::string& body, const RequestLimits& limits = {});

}  // namespace mlamoe::server
