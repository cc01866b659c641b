// One exception type for everything that comes from outside (files, flags, requests).
// Its message is a single line that names the file, tensor or field at fault; the CLI
// prints it after "error: " and exits non-zero.
#pragma once
#include <stdexcept>
#include <string>
#include <utility>

namespace mlamoe {

struct Error : std::runtime_error {
  explicit Error(const std::string& msg) : std::runtime_error(msg) {}
};

// fail("tensor ", name, ": expected ", n, " bytes") — concatenates with operator<<.
template <typename... Args>
[[noreturn]] void fail(Args&&... args);

}  // namespace mlamoe

#include <sstream>
namespace mlamoe {
template <typename... Args>
[[noreturn]] void fail(Args&&... args) {
  std::ostringstream os;
  (os << ... << std::forward<Args>(args));
  throw Error(os.str());
}
}  // namespace mlamoe
