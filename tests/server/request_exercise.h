// What a request-parser fuzz input goes through, shared by fuzz/server_request_fuzz.cpp
// and the ctest replay (tests/server/fuzz_replay_test.cpp): the first byte picks the
// endpoint, the rest is the HTTP body. A 400 (ApiError) is the only acceptable failure,
// and an accepted request must respect the limits.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "server/request.h"

namespace mlamoe::test {

inline void check_request(bool ok) {
  if (!ok) __builtin_trap();
}

inline void exercise_request(const uint8_t* data, size_t size) {
  if (size == 0) return;
  const auto endpoint = (data[0] & 1) ? server::Endpoint::Completion : server::Endpoint::Chat;
  const std::string body(reinterpret_cast<const char*>(data) + 1, size - 1);
  const server::RequestLimits limits;
  try {
    const server::ApiRequest r = server::parse_request(endpoint, body, limits);
    check_request(r.endpoint == endpoint);
    check_request(!r.max_tokens || (*r.max_tokens >= 0 && *r.max_tokens <= limits.max_tokens_cap));
    check_request(r.stop.size() <= limits.max_stop);
    check_request(r.messages.size() <= limits.max_messages);
    check_request(r.top_logprobs >= 0 && r.top_logprobs <= limits.max_top_logprobs);
  } catch (const server::ApiError& e) {
    check_request(e.status == 400);
  }
}

}  // namespace mlamoe::test
