// Output text: stop sequences cut exactly (even across tokens), reasoning is split from
// the answer, UTF-8 is never split, and the SSE / JSON shapes are OpenAI's.
#include <gtest/gtest.h>

#include "server/responses.h"
#include "server/text_stream.h"
#include "test_paths.h"
#include "tokenizer/tokenizer.h"

using namespace mlamoe;
using namespace mlamoe::server;

namespace {

// Feeds `pieces` one by one and concatenates what comes out, then the flush.
std::string run_stop(std::vector<std::string> stops, const std::vector<std::string>& pieces, bool* stopped = nullptr) {
  StopMatcher m(std::move(stops));
  std::string out;
  for (const auto& p : pieces) out += m.push(p);
  out += m.flush();
  if (stopped) *stopped = m.stopped();
  return out;
}

TextDelta run_reasoning(ReasoningMode mode, const std::vector<std::string>& pieces) {
  ReasoningSplitter r(mode);
  TextDelta out;
  for (const auto& p : pieces) out.append(r.push(p));
  out.append(r.flush());
  return out;
}

// The fixtures' byte-level vocabulary: token i is byte i.
std::unique_ptr<Tokenizer> byte_tokenizer() {
  auto tok = Tokenizer::from_file(mlamoe::test::shared_dir() + "/fixtures/v3/model.gguf");
  EXPECT_EQ(tok->token_bytes('a'), "a");
  return tok;
}

}  // namespace

TEST(StopMatcher, CutsAtTheStopSequence) {
  bool stopped = false;
  EXPECT_EQ(run_stop({"END"}, {"hello ", "EN", "D and more"}, &stopped), "hello ");
  EXPECT_TRUE(stopped);
  EXPECT_EQ(run_stop({"\n\n"}, {"a\n", "\nb"}, &stopped), "a");
  EXPECT_TRUE(stopped);
  // A partial match that does not complete is released.
  EXPECT_EQ(run_stop({"END"}, {"E", "N", "x"}, &stopped), "ENx");
  EXPECT_FALSE(stopped);
  EXPECT_EQ(run_stop({"END"}, {"ab", "EN"}, &stopped), "abEN");  // flushed at the end
  // The earliest of several stops wins; no stops pass everything.
  EXPECT_EQ(run_stop({"cd", "b"}, {"abcd"}), "a");
  EXPECT_EQ(run_stop({}, {"a", "b"}), "ab");
}

TEST(StopMatcher, HoldsBackOnlyWhatMayMatch) {
  StopMatcher m({"xyz"});
  EXPECT_EQ(m.push("abx"), "ab");
  EXPECT_EQ(m.push("y"), "");
  EXPECT_EQ(m.push("q"), "xyq");
  EXPECT_FALSE(m.stopped());
}

TEST(Reasoning, SplitsThinkFromAnswer) {
  auto d = run_reasoning(ReasoningMode::Detect, {"<th", "ink>", "let me ", "see</th", "ink>\n\n", "Answer: 4"});
  EXPECT_EQ(d.reasoning, "let me see");
  EXPECT_EQ(d.content, "Answer: 4");
  // R1's prompt already opened the block.
  d = run_reasoning(ReasoningMode::StartsInside, {"hmm", "</think>", " 42"});
  EXPECT_EQ(d.reasoning, "hmm");
  EXPECT_EQ(d.content, "42");
  // No think block: all content, even with a '<' at the start.
  d = run_reasoning(ReasoningMode::Detect, {"<", "b>bold</b>"});
  EXPECT_EQ(d.reasoning, "");
  EXPECT_EQ(d.content, "<b>bold</b>");
  // Cut while still thinking: everything is reasoning.
  d = run_reasoning(ReasoningMode::StartsInside, {"still </thi"});
  EXPECT_EQ(d.reasoning, "still </thi");
  EXPECT_EQ(d.content, "");
  d = run_reasoning(ReasoningMode::None, {"<think>x</think>y"});
  EXPECT_EQ(d.content, "<think>x</think>y");
}

TEST(TextStream, NeverSplitsACharacterAndStopsOnText) {
  auto tok = byte_tokenizer();
  const std::string s = "é€ ok STOP tail";  // 2- and 3-byte characters
  TextStream ts(*tok, {"STOP"}, ReasoningMode::None);
  std::string out;
  for (unsigned char c : s) {
    TextDelta d = ts.push(c);
    // Every piece handed out is whole UTF-8.
    for (size_t i = 0; i < d.content.size();) {
      const unsigned char lead = static_cast<unsigned char>(d.content[i]);
      const size_t len = lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
      ASSERT_LE(i + len, d.content.size()) << "split character in piece '" << d.content << "'";
      i += len;
    }
    out += d.content;
    if (ts.stopped()) break;
  }
  out += ts.finish().content;
  EXPECT_TRUE(ts.stopped());
  EXPECT_EQ(out, "é€ ok ");
}

TEST(Responses, SseFramingAndChunkShapes) {
  const ResponseMeta chat{Endpoint::Chat, "chatcmpl-x", 123, "m"};
  EXPECT_EQ(sse_event(json{{"a", 1}}), "data: {\"a\":1}\n\n");
  EXPECT_STREQ(sse_done(), "data: [DONE]\n\n");
  // Invalid UTF-8 never throws: replaced.
  EXPECT_NO_THROW(sse_event(json{{"t", std::string("\xff")}}));

  auto role = stream_chunk(chat, {}, nullptr, nullptr, false, true);
  EXPECT_EQ(role["object"], "chat.completion.chunk");
  EXPECT_EQ(role["choices"][0]["delta"]["role"], "assistant");
  EXPECT_FALSE(role.contains("usage"));
  auto piece = stream_chunk(chat, {"hi", "why"}, nullptr, nullptr, true);
  EXPECT_EQ(piece["choices"][0]["delta"]["content"], "hi");
  EXPECT_EQ(piece["choices"][0]["delta"]["reasoning_content"], "why");
  EXPECT_TRUE(piece["choices"][0]["finish_reason"].is_null());
  EXPECT_TRUE(piece["usage"].is_null());  // include_usage: null until the last chunk
  auto last = stream_chunk(chat, {}, nullptr, "stop", true);
  EXPECT_EQ(last["choices"][0]["finish_reason"], "stop");
  EXPECT_TRUE(last["choices"][0]["delta"].empty());
  SequenceUsage u;
  u.prompt_tokens = 5;
  u.completion_tokens = 3;
  auto usage = usage_chunk(chat, u);
  EXPECT_TRUE(usage["choices"].empty());
  EXPECT_EQ(usage["usage"]["total_tokens"], 8);

  const ResponseMeta cmpl{Endpoint::Completion, "cmpl-x", 123, "m"};
  auto full = full_response(cmpl, {"text", ""}, nullptr, "length", u);
  EXPECT_EQ(full["object"], "text_completion");
  EXPECT_EQ(full["choices"][0]["text"], "text");
  EXPECT_EQ(full["usage"]["prompt_tokens"], 5);
  auto fullchat = full_response(chat, {"answer", "thought"}, nullptr, "stop", u);
  EXPECT_EQ(fullchat["choices"][0]["message"]["content"], "answer");
  EXPECT_EQ(fullchat["choices"][0]["message"]["reasoning_content"], "thought");
}

TEST(Responses, LogprobsInBothFormats) {
  auto tok = byte_tokenizer();
  GeneratedToken g;
  g.id = 'a';
  g.logprob = -0.5f;
  g.top = {{'a', -0.5f}, {'b', -1.5f}};
  LogprobsBuilder chat(Endpoint::Chat, *tok);
  chat.add(g, 0);
  auto c = chat.take();
  ASSERT_EQ(c["content"].size(), 1u);
  EXPECT_EQ(c["content"][0]["token"], "a");
  EXPECT_FLOAT_EQ(c["content"][0]["logprob"].get<float>(), -0.5f);
  EXPECT_EQ(c["content"][0]["bytes"], json::array({97}));
  EXPECT_EQ(c["content"][0]["top_logprobs"][1]["token"], "b");
  EXPECT_TRUE(chat.take()["content"].empty());  // take() empties it

  LogprobsBuilder cmpl(Endpoint::Completion, *tok);
  cmpl.add(g, 0);
  g.id = 'b';
  cmpl.add(g, 1);
  auto l = cmpl.take();
  EXPECT_EQ(l["tokens"], json::array({"a", "b"}));
  EXPECT_EQ(l["text_offset"], json::array({0, 1}));
  EXPECT_FLOAT_EQ(l["top_logprobs"][0]["b"].get<float>(), -1.5f);
}
