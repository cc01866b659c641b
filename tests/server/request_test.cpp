// Request parsing and validation: what OpenAI's API accepts is accepted with the same
// meaning, and everything else is a 400 naming the parameter.
#include <gtest/gtest.h>

#include "server/request.h"

using namespace mlamoe::server;

namespace {

ApiRequest chat(const std::string& body) { return parse_request(Endpoint::Chat, body); }
ApiRequest completion(const std::string& body) { return parse_request(Endpoint::Completion, body); }

// The body is refused with a 400 whose param is `param`.
void expect_rejected(Endpoint ep, const std::string& body, const std::string& param, const std::string& code = "") {
  try {
    parse_request(ep, body);
    ADD_FAILURE() << "accepted: " << body;
  } catch (const ApiError& e) {
    EXPECT_EQ(e.status, 400) << body;
    EXPECT_EQ(e.type, "invalid_request_error");
    EXPECT_EQ(e.param, param) << body << " -> " << e.what();
    if (!code.empty()) {
      EXPECT_EQ(e.code, code) << body << " -> " << e.what();
    }
    auto j = e.to_json();
    ASSERT_TRUE(j.contains("error"));
    for (const char* k : {"message", "type", "param", "code"}) EXPECT_TRUE(j["error"].contains(k)) << k;
  }
}

const std::string kMsgs = R"("messages":[{"role":"user","content":"hi"}])";

}  // namespace

TEST(Request, ChatDefaultsAreOpenAIs) {
  auto r = chat(R"({"model":"m",)" + kMsgs + "}");
  EXPECT_EQ(r.model, "m");
  ASSERT_EQ(r.messages.size(), 1u);
  EXPECT_EQ(r.messages[0].role, "user");
  EXPECT_EQ(r.messages[0].content, "hi");
  EXPECT_FALSE(r.max_tokens.has_value());
  EXPECT_FLOAT_EQ(r.temperature, 1.0f);
  EXPECT_FLOAT_EQ(r.top_p, 1.0f);
  EXPECT_FALSE(r.stream);
  EXPECT_FALSE(r.logprobs);
  EXPECT_FALSE(r.seed.has_value());
}

TEST(Request, ChatAllSupportedFields) {
  auto r = chat(R"({"model":"m","messages":[{"role":"developer","content":"be brief"},
      {"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]},
      {"role":"assistant","content":null},{"role":"user","content":"c","name":"me"}],
      "max_tokens":7,"temperature":0,"top_p":0.5,"stop":["x","yy"],"seed":-3,"n":1,
      "logprobs":true,"top_logprobs":3,"stream":true,"stream_options":{"include_usage":true},
      "frequency_penalty":0,"presence_penalty":0.0,"user":"u","top_k":5,"min_p":0.1,"logit_bias":{},"ignore_eos":true})");
  ASSERT_EQ(r.messages.size(), 4u);
  EXPECT_EQ(r.messages[0].role, "system");  // developer is the system turn
  EXPECT_EQ(r.messages[1].content, "ab");
  EXPECT_EQ(r.messages[2].content, "");
  EXPECT_EQ(*r.max_tokens, 7);
  EXPECT_EQ(r.temperature, 0.0f);
  EXPECT_FLOAT_EQ(r.top_p, 0.5f);
  EXPECT_EQ(r.stop, (std::vector<std::string>{"x", "yy"}));
  EXPECT_EQ(*r.seed, static_cast<uint64_t>(-3));
  EXPECT_TRUE(r.logprobs);
  EXPECT_EQ(r.top_logprobs, 3);
  EXPECT_TRUE(r.stream);
  EXPECT_TRUE(r.include_usage);
  EXPECT_EQ(r.top_k, 5);
  EXPECT_FLOAT_EQ(r.min_p, 0.1f);
  EXPECT_TRUE(r.ignore_eos);
}

TEST(Request, NullMeansDefault) {
  auto r = chat(R"({"model":"m",)" + kMsgs + R"(,"max_tokens":null,"temperature":null,"stop":null,"seed":null})");
  EXPECT_FALSE(r.max_tokens.has_value());
  EXPECT_FLOAT_EQ(r.temperature, 1.0f);
  EXPECT_TRUE(r.stop.empty());
}

TEST(Request, CompletionPromptForms) {
  EXPECT_EQ(completion(R"({"model":"m","prompt":"abc"})").prompt, "abc");
  EXPECT_EQ(completion(R"({"model":"m","prompt":["abc"]})").prompt, "abc");
  auto t = completion(R"({"model":"m","prompt":[1,2,3],"logprobs":2,"max_tokens":4})");
  EXPECT_TRUE(t.prompt_is_tokens);
  EXPECT_EQ(t.prompt_tokens, (std::vector<int32_t>{1, 2, 3}));
  EXPECT_TRUE(t.logprobs);
  EXPECT_EQ(t.top_logprobs, 2);
  EXPECT_EQ(completion(R"({"model":"m","prompt":[[5,6]]})").prompt_tokens, (std::vector<int32_t>{5, 6}));
  EXPECT_EQ(completion(R"({"model":"m","prompt":"x","stop":"\n"})").stop, (std::vector<std::string>{"\n"}));
}

TEST(Request, MalformedJson) {
  expect_rejected(Endpoint::Chat, "{", "", "invalid_json");
  expect_rejected(Endpoint::Chat, "", "", "invalid_json");
  expect_rejected(Endpoint::Chat, "[1,2]", "", "invalid_json");
  expect_rejected(Endpoint::Chat, "\"text\"", "", "invalid_json");
  expect_rejected(Endpoint::Chat, R"({"model":"m",)" + kMsgs + "}  trailing", "", "invalid_json");
  expect_rejected(Endpoint::Chat, std::string("{\"model\":\"\xff\xfe\"}"), "", "invalid_json");
}

TEST(Request, MissingRequired) {
  expect_rejected(Endpoint::Chat, "{" + kMsgs + "}", "model", "missing_required_parameter");
  expect_rejected(Endpoint::Chat, R"({"model":"m"})", "messages", "missing_required_parameter");
  expect_rejected(Endpoint::Completion, R"({"model":"m"})", "prompt", "missing_required_parameter");
  expect_rejected(Endpoint::Chat, R"({"model":"m","messages":[{"content":"x"}]})", "messages[0].role");
  expect_rejected(Endpoint::Chat, R"({"model":"m","messages":[{"role":"user"}]})", "messages[0].content");
}

TEST(Request, WrongTypes) {
  const std::string head = R"({"model":"m",)" + kMsgs + ",";
  expect_rejected(Endpoint::Chat, head + R"("temperature":"0.5"})", "temperature", "invalid_type");
  expect_rejected(Endpoint::Chat, head + R"("max_tokens":2.5})", "max_tokens", "invalid_type");
  expect_rejected(Endpoint::Chat, head + R"("max_tokens":"16"})", "max_tokens", "invalid_type");
  expect_rejected(Endpoint::Chat, head + R"("stream":"yes"})", "stream", "invalid_type");
  expect_rejected(Endpoint::Chat, head + R"("stop":[1]})", "stop[0]", "invalid_type");
  expect_rejected(Endpoint::Chat, head + R"("seed":true})", "seed", "invalid_type");
  expect_rejected(Endpoint::Chat, R"({"model":5,)" + kMsgs + "}", "model", "invalid_type");
  expect_rejected(Endpoint::Chat, R"({"model":"m","messages":{"role":"user"}})", "messages", "invalid_type");
  expect_rejected(Endpoint::Chat, R"({"model":"m","messages":["hi"]})", "messages[0]", "invalid_type");
  expect_rejected(Endpoint::Chat, R"({"model":"m","messages":[{"role":"user","content":5}]})", "messages[0].content", "invalid_type");
  expect_rejected(Endpoint::Completion, R"({"model":"m","prompt":{"a":1}})", "prompt", "invalid_type");
  expect_rejected(Endpoint::Completion, R"({"model":"m","prompt":[1,"a"]})", "prompt");
  expect_rejected(Endpoint::Completion, R"({"model":"m","prompt":[-1]})", "prompt[0]", "invalid_value");
  // 16.0 is an integer.
  EXPECT_EQ(*chat(head + R"("max_tokens":16.0})").max_tokens, 16);
}

TEST(Request, OutOfRange) {
  const std::string head = R"({"model":"m",)" + kMsgs + ",";
  expect_rejected(Endpoint::Chat, head + R"("temperature":2.5})", "temperature", "invalid_value");
  expect_rejected(Endpoint::Chat, head + R"("temperature":-1})", "temperature", "invalid_value");
  expect_rejected(Endpoint::Chat, head + R"("top_p":1.5})", "top_p", "invalid_value");
  expect_rejected(Endpoint::Chat, head + R"("max_tokens":0})", "max_tokens", "invalid_value");
  expect_rejected(Endpoint::Chat, head + R"("max_tokens":100000000})", "max_tokens", "invalid_value");
  expect_rejected(Endpoint::Chat, head + R"("top_logprobs":21,"logprobs":true})", "top_logprobs", "invalid_value");
  expect_rejected(Endpoint::Chat, head + R"("top_logprobs":2})", "top_logprobs");  // needs logprobs: true
  expect_rejected(Endpoint::Chat, head + R"("stop":["a","b","c","d","e"]})", "stop", "invalid_value");
  expect_rejected(Endpoint::Chat, R"({"model":"m","messages":[]})", "messages", "invalid_value");
  expect_rejected(Endpoint::Chat, R"({"model":"m","messages":[{"role":"wizard","content":"x"}]})", "messages[0].role", "invalid_value");
  expect_rejected(Endpoint::Completion, R"({"model":"m","prompt":"x","logprobs":6})", "logprobs", "invalid_value");
}

TEST(Request, UnknownAndUnsupportedFields) {
  const std::string head = R"({"model":"m",)" + kMsgs + ",";
  expect_rejected(Endpoint::Chat, head + R"("foo":1})", "foo", "unknown_parameter");
  expect_rejected(Endpoint::Chat, head + R"("prompt":"x"})", "prompt", "unknown_parameter");  // completions-only
  expect_rejected(Endpoint::Completion, R"({"model":"m","prompt":"x","messages":[]})", "messages", "unknown_parameter");
  expect_rejected(Endpoint::Chat, head + R"("stream":true,"stream_options":{"bogus":true}})", "stream_options.bogus", "unknown_parameter");
  expect_rejected(Endpoint::Chat, R"({"model":"m","messages":[{"role":"user","content":"x","extra":1}]})", "messages[0].extra", "unknown_parameter");
  // Known to OpenAI, but only their neutral value is accepted here.
  expect_rejected(Endpoint::Chat, head + R"("n":2})", "n", "unsupported_parameter");
  expect_rejected(Endpoint::Chat, head + R"("frequency_penalty":0.5})", "frequency_penalty", "unsupported_parameter");
  expect_rejected(Endpoint::Chat, head + R"("tools":[{"type":"function"}]})", "tools", "unsupported_parameter");
  expect_rejected(Endpoint::Chat, head + R"("logit_bias":{"5":10}})", "logit_bias", "unsupported_parameter");
  expect_rejected(Endpoint::Chat, head + R"("response_format":{"type":"json_object"}})", "response_format", "unsupported_parameter");
  expect_rejected(Endpoint::Chat, R"({"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{}}]}]})",
                  "messages[0].content[0].type", "unsupported_parameter");
  expect_rejected(Endpoint::Completion, R"({"model":"m","prompt":"x","echo":true})", "echo", "unsupported_parameter");
  expect_rejected(Endpoint::Completion, R"({"model":"m","prompt":["a","b"]})", "prompt", "unsupported_parameter");
  // stream_options without stream, as OpenAI refuses it.
  expect_rejected(Endpoint::Chat, head + R"("stream_options":{"include_usage":true}})", "stream_options");
  // Neutral values pass.
  EXPECT_NO_THROW(chat(head + R"("n":1,"tools":[],"tool_choice":"none","response_format":{"type":"text"},"store":false})"));
}

TEST(Request, LimitsAreConfigurable) {
  RequestLimits lim;
  lim.max_tokens_cap = 10;
  lim.max_stop = 1;
  EXPECT_NO_THROW(parse_request(Endpoint::Chat, R"({"model":"m",)" + kMsgs + R"(,"max_tokens":10})", lim));
  EXPECT_THROW(parse_request(Endpoint::Chat, R"({"model":"m",)" + kMsgs + R"(,"max_tokens":11})", lim), ApiError);
  EXPECT_THROW(parse_request(Endpoint::Chat, R"({"model":"m",)" + kMsgs + R"(,"stop":["a","b"]})", lim), ApiError);
}

TEST(Request, HostileInputNeverEscapesAsAnotherException) {
  // Deep nesting, huge numbers, odd unicode: always ApiError (400) or success.
  const std::vector<std::string> bodies = {
      std::string(100000, '['),
      R"({"model":"m",)" + kMsgs + R"(,"max_tokens":1e400})",
      R"({"model":"m",)" + kMsgs + R"(,"seed":18446744073709551615})",
      R"({"model":"m",)" + kMsgs + R"(,"temperature":1e-320})",
      R"({"model":"m","messages":[{"role":"user","content":"\ud800"}]})",
      R"({"model":"m","messages":[{"role":"user","content":[{"type":"text"}]}]})",
      R"({"model":"m","messages":[{"role":"user","content":[5]}]})",
      R"({"model":"m","messages":[null]})",
  };
  for (const auto& b : bodies) {
    try {
      parse_request(Endpoint::Chat, b);
    } catch (const ApiError& e) {
      EXPECT_EQ(e.status, 400);
    } catch (const std::exception& e) {
      ADD_FAILURE() << "non-API exception for " << b.substr(0, 80) << ": " << e.what();
    }
  }
}
