// Reading the user's lines for `mlamoe chat`: with line editing and in-session history
// (libedit, BSD-licensed) when stdin is a terminal, plain lines otherwise (pipes, tests).
#pragma once
#include <optional>
#include <string>

namespace mlamoe {

class LineEditor {
 public:
  LineEditor();
  bool interactive() const { return interactive_; }
  // The next line without its newline; nullopt at end of input (Ctrl-D).
  std::optional<std::string> read_line(const std::string& prompt);

 private:
  bool interactive_;
};

}  // namespace mlamoe
