#include "common/progress.h"

#include <unistd.h>

#include <atomic>
#include <cstdio>

namespace mlamoe {

static std::atomic<bool> g_quiet{false};
void Progress::set_quiet(bool q) { g_quiet = q; }

std::string human_bytes(double b) {
  const char* units[] = {"B", "KB", "MB", "GB", "TB", "PB"};
  int u = 0;
  while (b >= 1000.0 && u < 5) {
    b /= 1000.0;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.2f %s", b, units[u]);
  return buf;
}

std::string human_count(double n) {
  const char* units[] = {"", "K", "M", "B", "T"};
  int u = 0;
  while (n >= 1000.0 && u < 4) {
    n /= 1000.0;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f%s" : "%.2f%s", n, units[u]);
  return buf;
}

Progress::Progress(std::string label, uint64_t total, std::string unit)
    : label_(std::move(label)), unit_(std::move(unit)), total_(total) {
  start_ = last_draw_ = std::chrono::steady_clock::now();
  tty_ = isatty(STDERR_FILENO);
  if (!g_quiet && !tty_) std::fprintf(stderr, "%s ...\n", label_.c_str());
}

Progress::~Progress() {
  if (!finished_) finish();
}

void Progress::update(uint64_t done, const std::string& extra) {
  done_ = done;
  auto now = std::chrono::steady_clock::now();
  if (tty_ && now - last_draw_ > std::chrono::milliseconds(200)) {
    last_draw_ = now;
    draw(false, extra);
  }
}

void Progress::finish(const std::string& extra) {
  if (finished_) return;
  finished_ = true;
  draw(true, extra);
}

void Progress::draw(bool final, const std::string& extra) {
  if (g_quiet) return;
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  double frac = total_ ? double(done_) / double(total_) : 1.0;
  double rate = secs > 0 ? double(done_) / secs : 0.0;
  std::string amount = unit_ == "B" ? human_bytes(double(done_)) + " / " + human_bytes(double(total_))
                                    : std::to_string(done_) + " / " + std::to_string(total_) + " " + unit_;
  std::string speed = unit_ == "B" ? human_bytes(rate) + "/s" : std::to_string(int64_t(rate)) + " " + unit_ + "/s";
  if (final) {
    std::fprintf(stderr, "%s%s: %s in %.2f s (%s)%s%s\n", tty_ ? "\r\033[K" : "", label_.c_str(),
                 amount.c_str(), secs, speed.c_str(), extra.empty() ? "" : " ", extra.c_str());
  } else {
    double eta = rate > 0 ? double(total_ - done_) / rate : 0.0;
    std::fprintf(stderr, "\r\033[K%s: %5.1f%% %s, %s, ETA %.0f s%s%s", label_.c_str(), 100.0 * frac,
                 amount.c_str(), speed.c_str(), eta, extra.empty() ? "" : " ", extra.c_str());
  }
  std::fflush(stderr);
}

}  // namespace mlamoe
