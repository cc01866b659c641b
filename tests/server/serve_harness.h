// Drives a real `mlamoe serve` process for end-to-end tests (tests/cli/serve*_test.cpp):
// start it on a fixture model and a free port, talk to it with curl, stop it with a
// signal and read its log.
#pragma once
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "test_paths.h"

namespace mlamoe::test::serve {

using json = nlohmann::json;


inline std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// Runs a shell command; returns its exit status and stdout.
inline std::pair<int, std::string> sh(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return {-1, ""};
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  const int st = pclose(p);
  return {WIFEXITED(st) ? WEXITSTATUS(st) : 128, out};
}

class Server {
 public:
  explicit Server(std::vector<std::string> extra) {
    static int counter = 0;
    log_ = temp_dir() + "/serve" + std::to_string(counter++) + ".log";
    std::vector<std::string> args = {mlamoe::test::binary(), "serve", "-m", shared_dir() + "/fixtures/v3/model.gguf", "--port", "0", "-t", "1"};
    args.insert(args.end(), extra.begin(), extra.end());
    pid_ = fork();
    if (pid_ == 0) {
      FILE* f = std::fopen(log_.c_str(), "w");
      dup2(fileno(f), 2);
      dup2(fileno(f), 1);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    const std::regex listening(R"(listening on http://127\.0\.0\.1:(\d+))");
    for (int i = 0; i < 600 && port_ == 0; ++i) {
      std::smatch m;
      const std::string log = slurp(log_);
      if (std::regex_search(log, m, listening)) port_ = std::stoi(m[1]);
      else std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (port_ == 0) ADD_FAILURE() << "server did not start: " << slurp(log_);
  }
  ~Server() {
    if (pid_ > 0 && !exited_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  std::string url(const std::string& path = "") const { return "http://127.0.0.1:" + std::to_string(port_) + path; }
  // Sends `sig` and waits (up to `seconds`) for the exit code; -1 if it did not exit.
  int stop(int sig, int seconds = 20) {
    kill(pid_, sig);
    for (int i = 0; i < seconds * 20; ++i) {
      int st = 0;
      if (waitpid(pid_, &st, WNOHANG) == pid_) {
        exited_ = true;
        return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return -1;
  }
  std::string log() const { return slurp(log_); }
  bool alive() const { return !exited_ && kill(pid_, 0) == 0 && waitpid(pid_, nullptr, WNOHANG) == 0; }

 private:
  pid_t pid_ = -1;
  int port_ = 0;
  bool exited_ = false;
  std::string log_;
};

struct Reply {
  int status = 0;
  std::string body;
  json as_json() const { return json::parse(body, nullptr, false); }
};

// curl with a body from a file (any bytes), returning status and body.
inline Reply curl(const Server& s, const std::string& method, const std::string& path, const std::string& body = "",
           const std::vector<std::string>& headers = {"Content-Type: application/json"}, const std::string& extra = "") {
  static std::atomic<int> counter{0};
  const std::string base = temp_dir() + "/curl" + std::to_string(counter++);
  std::string cmd = "curl -s -N --max-time 60 -o " + base + ".out -w '%{http_code}' -X " + method;
  for (const auto& h : headers) cmd += " -H " + shell_quote(h);
  if (!body.empty() || method == "POST") {
    std::ofstream(base + ".in", std::ios::binary) << body;
    cmd += " --data-binary @" + base + ".in";
  }
  cmd += " " + extra + " " + shell_quote(s.url(path));
  auto [rc, code] = sh(cmd);
  return {std::atoi(code.c_str()), slurp(base + ".out")};
}

inline Reply post(const Server& s, const std::string& path, const json& body, const std::vector<std::string>& headers = {}) {
  std::vector<std::string> h = {"Content-Type: application/json"};
  h.insert(h.end(), headers.begin(), headers.end());
  return curl(s, "POST", path, body.dump(), h);
}

// The data: payloads of an SSE body (without the final [DONE]); `done` says it was there.
inline std::vector<json> sse_events(const std::string& body, bool* done) {
  std::vector<json> events;
  *done = false;
  std::istringstream in(body);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    EXPECT_EQ(line.rfind("data: ", 0), 0u) << "not an SSE data line: " << line;
    const std::string payload = line.substr(6);
    if (payload == "[DONE]") {
      *done = true;
      continue;
    }
    EXPECT_FALSE(*done) << "data after [DONE]";
    events.push_back(json::parse(payload));
  }
  return events;
}

inline void expect_error(const Reply& r, int status, const std::string& code = "") {
  EXPECT_EQ(r.status, status) << r.body;
  const json j = r.as_json();
  ASSERT_TRUE(j.is_object() && j.contains("error")) << r.body;
  for (const char* k : {"message", "type", "param", "code"}) EXPECT_TRUE(j["error"].contains(k)) << k << " in " << r.body;
  EXPECT_TRUE(j["error"]["message"].is_string());
  if (!code.empty()) {
    EXPECT_EQ(j["error"]["code"], code) << r.body;
  }
}

inline int64_t metric(const Server& s, const std::string& name) {
  const std::string text = curl(s, "GET", "/metrics").body;
  std::smatch m;
  if (std::regex_search(text, m, std::regex("\n" + name + " ([0-9.e+-]+)"))) return static_cast<int64_t>(std::stod(m[1]));
  ADD_FAILURE() << "no metric " << name;
  return -1;
}

inline json chat_body(const std::string& user, int max_tokens, bool stream = false) {
  return {{"model", "model.gguf"}, {"messages", {{{"role", "user"}, {"content", user}}}}, {"max_tokens", max_tokens},
          {"temperature", 0}, {"stream", stream}};
}


}  // namespace mlamoe::test::serve
