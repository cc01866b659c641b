// Writes of user state (sessions, KV files, converted models, checkpoints) are atomic:
// the data goes to "<path>.tmp.<pid>", is fsync'ed, then renamed over <path>, so a
// crash at any moment leaves either the old file or the new one, never a torn one.
#pragma once
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

namespace mlamoe {

class AtomicFile {
 public:
  explicit AtomicFile(std::string path);  // opens the temp file; throws Error
  ~AtomicFile();                          // not committed -> temp file removed
  void write(const void* data, size_t n);
  void write(std::string_view s) { write(s.data(), s.size()); }
  uint64_t written() const { return written_; }
  void commit();  // flush, fsync, rename, fsync the directory
  FILE* handle() { return f_; }

 private:
  std::string path_, tmp_;
  FILE* f_ = nullptr;
  uint64_t written_ = 0;
  bool committed_ = false;
};

void write_file_atomic(const std::string& path, std::string_view contents);
std::string read_file(const std::string& path);  // throws Error naming the path

}  // namespace mlamoe
