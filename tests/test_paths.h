// Where tests find the repo, the shared/ folder and the built binary.
#pragma once
#include <string>
#include <vector>

namespace mlamoe::test {
std::string source_dir();
std::string shared_dir();  // ../shared beside the project root (MLAMOE_SHARED overrides)
std::string binary();      // the built mlamoe
std::string temp_dir();    // a fresh directory for this test process
struct RunResult {
  int exit_code;
  std::string out, err;
};
// Runs the mlamoe binary with args (no shell), capturing stdout and stderr.
RunResult run_mlamoe(const std::vector<std::string>& args, const std::string& stdin_data = "");
std::vector<float> read_f32(const std::string& path);
}  // namespace mlamoe::test
