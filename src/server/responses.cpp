#include "server/responses.h"

#include "tokenizer/tokenizer.h"

namespace mlamoe::server {

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

std::string sse_event(const json& j) { return "data: " + dump(j) + "\n\n"; }

json usage_json(const SequenceUsage& u) {
  return {{"prompt_tokens", u.prompt_tokens},
          {"completion_tokens", u.completion_tokens},
          {"total_tokens", u.prompt_tokens + u.completion_tokens},
          {"prompt_tokens_details", {{"cached_tokens", u.cached_tokens}}}};
}

namespace {

json byte_values(std::string_view s) {
  json b = json::array();
  for (unsigned char c : s) b.push_back(static_cast<int>(c));
  return b;
}

json header(const ResponseMeta& m, bool chunk) {
  const char* object = m.endpoint == Endpoint::Chat ? (chunk ? "chat.completion.chunk" : "chat.completion") : "text_completion";
  return {{"id", m.id}, {"object", object}, {"created", m.created}, {"model", m.model}, {"system_fingerprint", "mlamoe-0.1.0"}};
}

}  // namespace

void LogprobsBuilder::add(const GeneratedToken& g, size_t text_offset) {
  ++n_;
  const std::string_view text = tok_.token_bytes(g.id, true);
  if (endpoint_ == Endpoint::Chat) {
    json top = json::array();
    for (const auto& t : g.top) {
      const std::string_view tt = tok_.token_bytes(t.token, true);
      top.push_back({{"token", std::string(tt)}, {"logprob", t.logprob}, {"bytes", byte_values(tt)}});
    }
    chat_.push_back({{"token", std::string(text)}, {"logprob", g.logprob}, {"bytes", byte_values(text)}, {"top_logprobs", top}});
    return;
  }
  tokens_.push_back(std::string(text));
  token_logprobs_.push_back(g.logprob);
  json top = json::object();
  for (const auto& t : g.top) top[std::string(tok_.token_bytes(t.token, true))] = t.logprob;
  top_.push_back(top);
  offsets_.push_back(text_offset);
}

json LogprobsBuilder::take() {
  json out;
  if (endpoint_ == Endpoint::Chat) {
    out = {{"content", chat_}, {"refusal", nullptr}};
    chat_ = json::array();
  } else {
    out = {{"tokens", tokens_}, {"token_logprobs", token_logprobs_}, {"top_logprobs", top_}, {"text_offset", offsets_}};
    tokens_ = token_logprobs_ = top_ = offsets_ = json::array();
  }
  n_ = 0;
  return out;
}

json stream_chunk(const ResponseMeta& m, const TextDelta& delta, const json& logprobs, const char* finish_reason,
                  bool with_usage_field, bool role_chunk) {
  json j = header(m, true);
  json choice;
  if (m.endpoint == Endpoint::Chat) {
    json d = json::object();
    if (role_chunk) {
      d["role"] = "assistant";
      d["content"] = "";
    }
    if (!delta.content.empty()) d["content"] = delta.content;
    if (!delta.reasoning.empty()) d["reasoning_content"] = delta.reasoning;
    choice = {{"index", 0}, {"delta", d}, {"logprobs", logprobs}, {"finish_reason", finish_reason ? json(finish_reason) : json(nullptr)}};
  } else {
    choice = {{"index", 0}, {"text", delta.content + delta.reasoning}, {"logprobs", logprobs},
              {"finish_reason", finish_reason ? json(finish_reason) : json(nullptr)}};
  }
  j["choices"] = json::array({choice});
  if (with_usage_field) j["usage"] = nullptr;
  return j;
}

json usage_chunk(const ResponseMeta& m, const SequenceUsage& u) {
  json j = header(m, true);
  j["choices"] = json::array();
  j["usage"] = usage_json(u);
  return j;
}

json full_response(const ResponseMeta& m, const TextDelta& text, const json& logprobs, const char* finish_reason,
                   const SequenceUsage& u) {
  json j = header(m, false);
  json choice;
  if (m.endpoint == Endpoint::Chat) {
    json msg = {{"role", "assistant"}, {"content", text.content}, {"refusal", nullptr}};
    if (!text.reasoning.empty()) msg["reasoning_content"] = text.reasoning;
    choice = {{"index", 0}, {"message", msg}, {"logprobs", logprobs}, {"finish_reason", finish_reason}};
  } else {
    choice = {{"index", 0}, {"text", text.content + text.reasoning}, {"logprobs", logprobs}, {"finish_reason", finish_reason}};
  }
  j["choices"] = json::array({choice});
  j["usage"] = usage_json(u);
  return j;
}

}  // namespace mlamoe::server
