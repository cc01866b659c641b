// A progress line on stderr for long work (load, conversion, training): percent,
// rate and ETA, redrawn at most a few times a second and only when stderr is a TTY
// (otherwise one line at the start and one at the end, so logs stay readable).
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

namespace mlamoe {

class Progress {
 public:
  Progress(std::string label, uint64_t total, std::string unit = "B");
  ~Progress();
  void add(uint64_t n) { update(done_ + n); }
  void update(uint64_t done, const std::string& extra = "");
  void finish(const std::string& extra = "");
  static void set_quiet(bool q);  // --quiet / tests

 private:
  void draw(bool final, const std::string& extra);
  std::string label_, unit_;
  uint64_t total_, done_ = 0;
  std::chrono::steady_clock::time_point start_, last_draw_;
  bool finished_ = false, tty_ = false;
};

std::string human_bytes(double bytes);  // "1.44 GB"
std::string human_count(double n);      // "671.03B", "2.40M", "370.3K"

}  // namespace mlamoe
