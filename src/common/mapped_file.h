// A read-only memory map of a whole file. Model weights are used in place (zero copy):
// the kernels stream them straight from the page cache.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace mlamoe {

class MappedFile {
 public:
  MappedFile() = default;
  explicit MappedFile(const std::string& path);  // throws Error naming the path
  ~MappedFile();
  MappedFile(MappedFile&& o) noexcept;
  MappedFile& operator=(MappedFile&& o) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }
  // Drops the whole pages inside [p, p+n) from this process's resident set (they stay
  // in the page cache and fault back in if touched): used once a tensor has been
  // re-laid out into its own memory, so the file's copy does not count twice.
  void release(const uint8_t* p, size_t n) const;

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// Anonymous memory for data mlamoe builds at load (re-laid-out weights): page aligned,
// transparent huge pages requested, since the kernels stream it like the file.
class AnonymousMemory {
 public:
  AnonymousMemory() = default;
  explicit AnonymousMemory(size_t bytes);  // throws Error
  ~AnonymousMemory();
  AnonymousMemory(AnonymousMemory&& o) noexcept;
  AnonymousMemory& operator=(AnonymousMemory&& o) noexcept;
  AnonymousMemory(const AnonymousMemory&) = delete;
  AnonymousMemory& operator=(const AnonymousMemory&) = delete;

  uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace mlamoe
