// `mlamoe serve` end to end on a fixture model: a real server on 127.0.0.1 (a free
// port), driven with curl and with the official OpenAI Node SDK (npm ci of
// tests/server/node into a temporary directory). Protocol, batching seen from the
// outside, errors, disconnects, the queue limit and graceful shutdown.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <future>
#include <thread>

#include "server/serve_harness.h"

using namespace mlamoe::test::serve;
using mlamoe::test::shared_dir;
using mlamoe::test::temp_dir;

TEST(Serve, EndpointsWithCurl) {
  Server s({"-c", "512"});
  auto health = curl(s, "GET", "/health");
  EXPECT_EQ(health.status, 200);
  EXPECT_EQ(health.as_json()["status"], "ok");
  auto models = curl(s, "GET", "/v1/models").as_json();
  EXPECT_EQ(models["data"][0]["id"], "model.gguf");

  auto chat = post(s, "/v1/chat/completions", chat_body("Hello", 10));
  ASSERT_EQ(chat.status, 200) << chat.body;
  const json c = chat.as_json();
  EXPECT_EQ(c["object"], "chat.completion");
  const std::string text = c["choices"][0]["message"]["content"];
  EXPECT_EQ(c["usage"]["total_tokens"], c["usage"]["prompt_tokens"].get<int>() + c["usage"]["completion_tokens"].get<int>());

  // Streamed, the same greedy request gives the same text, framed as SSE.
  auto body = chat_body("Hello", 10, true);
  body["stream_options"] = {{"include_usage", true}};
  auto stream = post(s, "/v1/chat/completions", body);
  ASSERT_EQ(stream.status, 200);
  bool done = false;
  auto events = sse_events(stream.body, &done);
  EXPECT_TRUE(done) << "no data: [DONE]";
  ASSERT_GE(events.size(), 3u);
  EXPECT_EQ(events.front()["choices"][0]["delta"]["role"], "assistant");
  std::string streamed;
  for (size_t i = 0; i + 1 < events.size(); ++i) {
    EXPECT_EQ(events[i]["object"], "chat.completion.chunk");
    streamed += events[i]["choices"][0]["delta"].value("content", "");
  }
  EXPECT_EQ(streamed, text);
  EXPECT_TRUE(events.back()["choices"].empty());
  EXPECT_EQ(events.back()["usage"]["completion_tokens"], c["usage"]["completion_tokens"]);

  // Completions, streamed and not.
  auto cmpl = post(s, "/v1/completions", {{"model", "model"}, {"prompt", "abc"}, {"max_tokens", 5}, {"temperature", 0}, {"logprobs", 2}});
  ASSERT_EQ(cmpl.status, 200) << cmpl.body;
  EXPECT_EQ(cmpl.as_json()["object"], "text_completion");
  EXPECT_EQ(cmpl.as_json()["choices"][0]["logprobs"]["tokens"].size(), cmpl.as_json()["usage"]["completion_tokens"].get<size_t>());
  auto cstream = post(s, "/v1/completions", {{"model", "model"}, {"prompt", "abc"}, {"max_tokens", 5}, {"temperature", 0}, {"stream", true}});
  auto cev = sse_events(cstream.body, &done);
  EXPECT_TRUE(done);
  std::string ctext;
  for (auto& e : cev) ctext += e["choices"][0]["text"].get<std::string>();
  EXPECT_EQ(ctext, cmpl.as_json()["choices"][0]["text"]);

  EXPECT_NE(curl(s, "GET", "/metrics").body.find("mlamoe_requests_total{endpoint=\"chat\",status=\"200\"} 2"), std::string::npos);
  EXPECT_EQ(s.stop(SIGTERM), 0) << s.log();
}

TEST(Serve, ConcurrentRequestsGetTheirAloneAnswers) {
  Server s({"-c", "512", "--parallel", "8"});
  const std::vector<std::string> users = {"one", "two two", "three three three", "4", "five!", "sixty-six", "seven", "eight"};
  constexpr int kTokens = 48;
  std::vector<std::string> alone;
  for (const auto& u : users) alone.push_back(post(s, "/v1/chat/completions", chat_body(u, kTokens)).as_json()["choices"][0]["message"]["content"]);
  // Whether two requests meet in one step depends on when the 8 curl processes get the
  // CPU (on a loaded 2-core machine they can arrive one after another: CI once counted
  // exactly 8 × 24 steps). Every round must give the alone answers; at least one of
  // three rounds must have shared a step (8 requests one at a time take ≥ 8 × (kTokens − 1)).
  bool shared = false;
  for (int round = 0; round < 3 && !shared; ++round) {
    const int64_t steps_before = metric(s, "mlamoe_steps_total");
    std::vector<std::future<Reply>> together;
    for (const auto& u : users) together.push_back(std::async(std::launch::async, [&, u] { return post(s, "/v1/chat/completions", chat_body(u, kTokens)); }));
    for (size_t i = 0; i < users.size(); ++i) {
      const Reply r = together[i].get();
      ASSERT_EQ(r.status, 200) << r.body;
      EXPECT_EQ(r.as_json()["choices"][0]["message"]["content"], alone[i]) << users[i] << " round " << round;
    }
    shared = metric(s, "mlamoe_steps_total") - steps_before < 8 * (kTokens - 1);
  }
  EXPECT_TRUE(shared) << "in three rounds of 8 concurrent requests no two ever shared a step";
  EXPECT_EQ(s.stop(SIGINT), 0);
}

TEST(Serve, ErrorsAreOpenAIErrorObjects) {
  Server s({"-c", "256", "--max-body", "64KiB"});
  expect_error(curl(s, "POST", "/v1/chat/completions", "{not json"), 400, "invalid_json");
  expect_error(curl(s, "POST", "/v1/chat/completions", ""), 400, "invalid_json");
  expect_error(curl(s, "POST", "/v1/chat/completions", std::string("\x00\xff\xfe", 3)), 400, "invalid_json");
  expect_error(post(s, "/v1/chat/completions", {{"model", "model"}, {"messages", "hi"}}), 400, "invalid_type");
  expect_error(post(s, "/v1/chat/completions", {{"model", "model"}, {"messages", {{{"role", "user"}, {"content", "x"}}}}, {"wat", 1}}), 400,
               "unknown_parameter");
  expect_error(post(s, "/v1/chat/completions", {{"model", "nope"}, {"messages", {{{"role", "user"}, {"content", "x"}}}}}), 404, "model_not_found");
  // A prompt over the context is refused before any work.
  expect_error(post(s, "/v1/completions", {{"model", "model"}, {"prompt", std::string(300, 'a')}}), 400, "context_length_exceeded");
  expect_error(post(s, "/v1/completions", {{"model", "model"}, {"prompt", "abc"}, {"max_tokens", 300}}), 400, "context_length_exceeded");
  expect_error(curl(s, "POST", "/v1/completions", std::string(100 * 1024, 'x')), 413, "request_too_large");
  expect_error(curl(s, "GET", "/v1/nowhere"), 404, "unknown_url");
  expect_error(curl(s, "GET", "/v1/models/nope"), 404, "model_not_found");
  EXPECT_EQ(metric(s, "mlamoe_prompt_tokens_total"), 0) << "no refused request reached the engine";
  EXPECT_TRUE(s.alive());
  EXPECT_EQ(s.stop(SIGTERM), 0);
}

TEST(Serve, SharedPromptPrefixIsReused) {
  Server s({"-c", "1024", "--kv-block", "16"});
  const std::string system(200, 's');
  auto ask = [&](const std::string& user) {
    json b = chat_body(user, 4);
    b["messages"] = {{{"role", "system"}, {"content", system}}, {{"role", "user"}, {"content", user}}};
    return post(s, "/v1/chat/completions", b).as_json();
  };
  const json first = ask("first question"), second = ask("second question");
  EXPECT_EQ(first["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
  EXPECT_GE(second["usage"]["prompt_tokens_details"]["cached_tokens"].get<int>(), 192) << second.dump();
  EXPECT_GE(metric(s, "mlamoe_prefix_hits_total"), 1);
  // Reused entries give the same answer as computing them again.
  EXPECT_EQ(ask("first question")["choices"][0]["message"]["content"], first["choices"][0]["message"]["content"]);
  EXPECT_EQ(s.stop(SIGTERM), 0);
}

TEST(Serve, ApiKey) {
  Server s({"--api-key", "k123"});
  const json body = chat_body("x", 2);
  expect_error(post(s, "/v1/chat/completions", body), 401, "missing_api_key");
  expect_error(post(s, "/v1/chat/completions", body, {"Authorization: Bearer nope"}), 401, "invalid_api_key");
  expect_error(curl(s, "GET", "/v1/models", "", {"Authorization: Bearer k12"}), 401, "invalid_api_key");
  EXPECT_EQ(post(s, "/v1/chat/completions", body, {"Authorization: Bearer k123"}).status, 200);
  EXPECT_EQ(curl(s, "GET", "/health").status, 200);  // probes need no key
  EXPECT_EQ(s.stop(SIGTERM), 0);
}

TEST(Serve, DisconnectFreesTheSequence) {
  Server s({"-c", "8192", "--parallel", "2", "--kv-prefix-cache", "0"});
  auto body = chat_body("go on", 8000, true);
  body["ignore_eos"] = true;
  body["temperature"] = 1.0;
  // curl gives up after 1 s, mid-stream.
  std::ofstream(temp_dir() + "/long.json") << body.dump();
  sh("curl -s -N --max-time 1 -o /dev/null -H 'Content-Type: application/json' --data-binary @" + temp_dir() + "/long.json " +
     shell_quote(s.url("/v1/chat/completions")));
  int64_t cancelled = 0;
  for (int i = 0; i < 100 && cancelled < 1; ++i) {
    cancelled = metric(s, "mlamoe_sequences_cancelled_total");
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(cancelled, 1);
  EXPECT_LT(metric(s, "mlamoe_generated_tokens_total"), 7999) << "the sequence ran to the end";
  EXPECT_EQ(metric(s, "mlamoe_kv_cache_bytes"), 0);
  EXPECT_EQ(metric(s, "mlamoe_active_sequences"), 0);
  EXPECT_EQ(post(s, "/v1/chat/completions", chat_body("still there?", 3)).status, 200);
  EXPECT_EQ(s.stop(SIGTERM), 0);
}

TEST(Serve, FullQueueAnswers429AndShutdownCutsStreamsCleanly) {
  Server s({"-c", "8192", "--parallel", "1", "--max-queue", "1", "--shutdown-grace", "0.2"});
  auto body = chat_body("long", 8000, true);
  body["ignore_eos"] = true;
  auto running = std::async(std::launch::async, [&] { return post(s, "/v1/chat/completions", body); });
  for (int i = 0; i < 200 && metric(s, "mlamoe_active_sequences") < 1; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  auto queued = std::async(std::launch::async, [&] { return post(s, "/v1/chat/completions", body); });
  for (int i = 0; i < 200 && metric(s, "mlamoe_queue_depth") < 1; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  expect_error(post(s, "/v1/chat/completions", chat_body("third", 2)), 429, "queue_full");

  // SIGTERM: the running stream ends with a finish_reason and [DONE]; the queued stream
  // (its 200 and headers already sent) gets an error event, then [DONE]; exit 0.
  EXPECT_EQ(s.stop(SIGTERM), 0) << s.log();
  const Reply r = running.get();
  EXPECT_EQ(r.status, 200);
  bool done = false;
  auto events = sse_events(r.body, &done);
  EXPECT_TRUE(done) << "stream not ended cleanly";
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back()["choices"][0]["finish_reason"], "length");
  const Reply q = queued.get();
  auto qevents = sse_events(q.body, &done);
  EXPECT_TRUE(done);
  ASSERT_FALSE(qevents.empty());
  EXPECT_EQ(qevents.back()["error"]["code"], "shutting_down") << q.body;
  // A non-streamed request after the shutdown began would get 503; the port is closed now.
  EXPECT_NE(curl(s, "GET", "/health").status, 200);
}

TEST(Serve, OpenAINodeSdk) {
  ASSERT_EQ(sh("node --version >/dev/null 2>&1 && npm --version >/dev/null 2>&1").first, 0) << "node and npm are needed (apt-get install nodejs npm)";
  // npm ci into a scratch copy: the source tree stays clean.
  const std::string dir = temp_dir() + "/node";
  std::filesystem::create_directories(dir);
  for (const char* f : {"package.json", "package-lock.json", "openai_client.mjs"})
    std::filesystem::copy_file(mlamoe::test::source_dir() + "/tests/server/node/" + f, dir + "/" + f,
                               std::filesystem::copy_options::overwrite_existing);
  auto [rc, out] = sh("cd " + shell_quote(dir) + " && npm ci --no-audit --no-fund --loglevel=error 2>&1");
  ASSERT_EQ(rc, 0) << "npm ci failed (needs the npm registry):\n" << out;

  Server s({"-c", "8192", "--api-key", "test-key", "--kv-prefix-cache", "0"});
  auto [nrc, nout] = sh("node " + shell_quote(dir + "/openai_client.mjs") + " " + shell_quote(s.url("/v1")) + " model.gguf test-key 2>&1");
  EXPECT_EQ(nrc, 0) << nout;
  EXPECT_NE(nout.find("ALL OK"), std::string::npos) << nout;
  // The stream the SDK abandoned was cancelled, not run to its 4000 tokens.
  EXPECT_GE(metric(s, "mlamoe_sequences_cancelled_total"), 1);
  EXPECT_EQ(metric(s, "mlamoe_kv_cache_bytes"), 0);
  EXPECT_EQ(s.stop(SIGTERM), 0);
}
