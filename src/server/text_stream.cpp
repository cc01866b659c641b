#include "server/text_stream.h"

#include <algorithm>

namespace mlamoe::server {

namespace {

const std::string kOpen = "<think>", kClose = "</think>";

// Length of the longest suffix of `s` that is a proper prefix of `tag`.
size_t partial_suffix(const std::string& s, const std::string& tag) {
  for (size_t n = std::min(s.size(), tag.size() - 1); n > 0; --n)
    if (s.compare(s.size() - n, n, tag, 0, n) == 0) return n;
  return 0;
}

bool is_space(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

}  // namespace

ReasoningSplitter::ReasoningSplitter(ReasoningMode mode)
    : state_(mode == ReasoningMode::None ? State::Answer : mode == ReasoningMode::Detect ? State::Detect : State::Thinking) {}

TextDelta ReasoningSplitter::push(const std::string& text) {
  TextDelta out;
  held_ += text;
  for (;;) {
    switch (state_) {
      case State::Answer:
        out.content += held_;
        held_.clear();
        return out;
      case State::AnswerStart: {
        // The answer after </think> starts at its first visible character.
        size_t i = 0;
        while (i < held_.size() && is_space(held_[i])) ++i;
        if (i == held_.size()) {
          held_.clear();
          return out;
        }
        held_.erase(0, i);
        state_ = State::Answer;
        break;
      }
      case State::Detect: {
        size_t i = 0;
        while (i < held_.size() && is_space(held_[i])) ++i;
        const std::string rest = held_.substr(i);
        if (rest.size() >= kOpen.size() && rest.compare(0, kOpen.size(), kOpen) == 0) {
          held_ = rest.substr(kOpen.size());
          state_ = State::Thinking;
        } else if (kOpen.compare(0, rest.size(), rest) == 0) {
          return out;  // still could be "<think>"
        } else {
          state_ = State::Answer;
        }
        break;
      }
      case State::Thinking: {
        const size_t close = held_.find(kClose);
        if (close != std::string::npos) {
          out.reasoning += held_.substr(0, close);
          held_.erase(0, close + kClose.size());
          state_ = State::AnswerStart;
          break;
        }
        const size_t keep = partial_suffix(held_, kClose);
        out.reasoning += held_.substr(0, held_.size() - keep);
        held_.erase(0, held_.size() - keep);
        return out;
      }
    }
  }
}

TextDelta ReasoningSplitter::flush() {
  TextDelta out;
  if (state_ == State::Thinking) out.reasoning = held_;
  else if (state_ != State::AnswerStart) out.content = held_;
  held_.clear();
  return out;
}

std::string StopMatcher::push(const std::string& text) {
  if (stopped_) return {};
  held_ += text;
  // The earliest completed stop sequence ends the output.
  size_t cut = std::string::npos;
  for (const auto& s : stops_) cut = std::min(cut, held_.find(s));
  if (cut != std::string::npos) {
    stopped_ = true;
    std::string out = held_.substr(0, cut);
    held_.clear();
    return out;
  }
  size_t keep = 0;
  for (const auto& s : stops_) keep = std::max(keep, partial_suffix(held_, s));
  std::string out = held_.substr(0, held_.size() - keep);
  held_.erase(0, held_.size() - keep);
  return out;
}

std::string StopMatcher::flush() {
  std::string out = stopped_ ? std::string() : held_;
  held_.clear();
  return out;
}

TextDelta TextStream::push(int32_t token) {
  if (stop_.stopped()) return {};
  return reasoning_.push(stop_.push(decoder_.push(token)));
}

TextDelta TextStream::finish() {
  TextDelta out;
  if (!stop_.stopped()) out.append(reasoning_.push(stop_.push(decoder_.flush())));
  if (!stop_.stopped()) out.append(reasoning_.push(stop_.flush()));
  out.append(reasoning_.flush());
  return out;
}

}  // namespace mlamoe::server
