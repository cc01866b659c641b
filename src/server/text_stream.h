// Turns generated tokens into the text a response carries, piece by piece:
//  - bytes of an incomplete UTF-8 character wait for the rest (StreamDecoder);
//  - text that may be the start of a stop sequence waits until it is known not to be,
//    and a completed stop sequence ends the output (it is not part of it);
//  - R1-style reasoning, <think>...</think>, is split from the answer, as DeepSeek's
//    API returns it (`reasoning_content` beside `content`).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace mlamoe::server {

struct TextDelta {
  std::string content, reasoning;
  bool empty() const { return content.empty() && reasoning.empty(); }
  void append(const TextDelta& d) {
    content += d.content;
    reasoning += d.reasoning;
  }
};

enum class ReasoningMode {
  None,          // everything is content
  Detect,        // an output that begins with <think> is reasoning up to </think>
  StartsInside,  // the prompt opened <think> (R1's generation prompt)
};

// Splits text into reasoning and answer (pure text in, text out: testable alone).
class ReasoningSplitter {
 public:
  explicit ReasoningSplitter(ReasoningMode mode);
  TextDelta push(const std::string& text);
  TextDelta flush();

 private:
  enum class State { Detect, Thinking, AnswerStart, Answer };
  State state_;
  std::string held_;  // text that may be (the start of) a tag, or leading whitespace
};

// Holds back text that may begin a stop sequence; reports when one completes.
class StopMatcher {
 public:
  explicit StopMatcher(std::vector<std::string> stops) : stops_(std::move(stops)) {}
  std::string push(const std::string& text);  // the text now known to be output
  std::string flush();
  bool stopped() const { return stopped_; }

 private:
  std::vector<std::string> stops_;
  std::string held_;
  bool stopped_ = false;
};

class TextStream {
 public:
  TextStream(const Tokenizer& tok, std::vector<std::string> stop, ReasoningMode mode)
      : decoder_(tok), stop_(std::move(stop)), reasoning_(mode) {}
  TextDelta push(int32_t token);
  TextDelta finish();  // at the end of generation: whatever was held back
  bool stopped() const { return stop_.stopped(); }

 private:
  StreamDecoder decoder_;
  StopMatcher stop_;
  ReasoningSplitter reasoning_;
};

}  // namespace mlamoe::server
