#include "tokenizer/line_editor.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>

#include <editline/readline.h>

namespace mlamoe {

LineEditor::LineEditor() : interactive_(isatty(STDIN_FILENO) && isatty(STDOUT_FILENO)) {
  if (interactive_) using_history();
}

std::optional<std::string> LineEditor::read_line(const std::string& prompt) {
  if (!interactive_) {
    std::string line;
    if (!std::getline(std::cin, line)) return std::nullopt;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    return line;
  }
  char* raw = readline(prompt.c_str());
  if (!raw) return std::nullopt;
  std::string line(raw);
  std::free(raw);
  if (!line.empty()) add_history(line.c_str());
  return line;
}

}  // namespace mlamoe
