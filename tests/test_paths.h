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
std::string read_text(const std::string& path);  // the whole file ("" if unreadable)
// How far logits a are from b: max |a − b| / max |b|, and RMS(a − b) / RMS(b); both
// huge if the sizes differ or b is empty.
struct LogitDiff {
  double max_rel = 1e9, rms_rel = 1e9;
};
LogitDiff logit_diff(const std::vector<float>& a, const std::vector<float>& b);
}  // namespace mlamoe::test
