#include "test_paths.h"

#include "scratch_dir.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <cstring>

namespace mlamoe::test {

std::string source_dir() { return MLAMOE_SOURCE_DIR; }
std::string shared_dir() {
  if (const char* s = std::getenv("MLAMOE_SHARED")) return s;
  return std::filesystem::weakly_canonical(std::filesystem::path(MLAMOE_SOURCE_DIR) / ".." / "shared").string();
}
std::string binary() { return MLAMOE_BINARY; }

std::string temp_dir() {
  static const std::string dir = [] {
    const std::string made = process_scratch_dir("mlamoe-test");
    return made.empty() ? std::string("/tmp") : made;
  }();
  return dir;
}

static std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

RunResult run_mlamoe(const std::vector<std::string>& args, const std::string& stdin_data) {
  static int counter = 0;
  std::string base = temp_dir() + "/run" + std::to_string(counter++);
  std::string in_path = base + ".in", out_path = base + ".out", err_path = base + ".err";
  { std::ofstream(in_path, std::ios::binary) << stdin_data; }
  pid_t pid = fork();
  if (pid == 0) {
    int in = open(in_path.c_str(), O_RDONLY);
    int out = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int err = open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(in, 0);
    dup2(out, 1);
    dup2(err, 2);
    std::vector<char*> argv;
    std::string bin = binary();
    argv.push_back(bin.data());
    std::vector<std::string> copy = args;
    for (auto& a : copy) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(bin.c_str(), argv.data());
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  RunResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = slurp(out_path);
  r.err = slurp(err_path);
  return r;
}

std::string read_text(const std::string& path) { return slurp(path); }

LogitDiff logit_diff(const std::vector<float>& a, const std::vector<float>& b) {
  LogitDiff d;
  if (a.size() != b.size() || b.empty()) return d;
  double err = 0, scale = 0, sq = 0, ref_sq = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    const double e = double(a[i]) - b[i];
    err = std::max(err, std::fabs(e));
    scale = std::max(scale, double(std::fabs(b[i])));
    sq += e * e;
    ref_sq += double(b[i]) * b[i];
  }
  d.max_rel = err / scale;
  d.rms_rel = std::sqrt(sq / ref_sq);
  return d;
}

std::vector<float> read_f32(const std::string& path) {
  std::string s = slurp(path);
  std::vector<float> v(s.size() / 4);
  if (!v.empty()) std::memcpy(v.data(), s.data(), v.size() * 4);
  return v;
}

}  // namespace mlamoe::test
