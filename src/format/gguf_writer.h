// Streaming GGUF v3 writer. Metadata and tensor declarations are collected first;
// begin() writes the header, then tensor data is streamed in declaration order, a
// tensor (or a chunk of one) at a time, so memory stays bounded by the caller's
// largest chunk. The file goes through AtomicFile: until finish() succeeds only
// "<path>.tmp.<pid>" exists, and it is removed if the writer is destroyed early.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "format/ggml_types.h"
#include "format/gguf.h"

namespace mlamoe {

class AtomicFile;

class GgufWriter {
 public:
  static constexpr uint64_t kDefaultAlignment = 32;

  explicit GgufWriter(std::string path);
  ~GgufWriter();
  GgufWriter(const GgufWriter&) = delete;
  GgufWriter& operator=(const GgufWriter&) = delete;

  // ---- metadata (setting a key again replaces its value, keeping its position) ----
  void set_u8(std::string_view key, uint8_t v);
  void set_i8(std::string_view key, int8_t v);
  void set_u16(std::string_view key, uint16_t v);
  void set_i16(std::string_view key, int16_t v);
  void set_u32(std::string_view key, uint32_t v);
  void set_i32(std::string_view key, int32_t v);
  void set_u64(std::string_view key, uint64_t v);
  void set_i64(std::string_view key, int64_t v);
  void set_f32(std::string_view key, float v);
  void set_f64(std::string_view key, double v);
  void set_bool(std::string_view key, bool v);
  void set_string(std::string_view key, std::string_view v);
  // Numeric arrays: `data` holds n elements of `elem` (little-endian, packed).
  void set_array(std::string_view key, GgufType elem, const void* data, size_t n);
  void set_string_array(std::string_view key, const std::vector<std::string>& v);
  void set_string_array(std::string_view key, const std::vector<std::string_view>& v);
  // Copies a value read from another file (tokenizer.*, general.* ...), type preserved.
  void set_value(std::string_view key, const GgufValue& v);
  bool has(std::string_view key) const;
  void remove(std::string_view key);

  // ---- tensors ----
  // ne in ggml order (ne[0] = row length). Returns the tensor's byte size.
  size_t add_tensor(std::string name, std::vector<int64_t> ne, GgmlType type);
  size_t tensor_count() const { return tensors_.size(); }
  uint64_t total_tensor_bytes() const;

  // Writes header, metadata and tensor infos; honours a general.alignment set above.
  void begin();
  // Appends bytes of the current tensor (the next one not yet complete, in
  // declaration order); a call may not cross into the next tensor.
  void write_data(const void* data, size_t n);
  // Writes one whole tensor; `name` must be the next tensor due and n its full size.
  void write_tensor(std::string_view name, const void* data, size_t n);
  // Name of the tensor the next write_data() belongs to ("" when all are written).
  std::string_view next_tensor() const;
  // Checks that every tensor was written, then fsyncs and renames into place.
  void finish();

  const std::string& path() const { return path_; }
  uint64_t alignment() const { return alignment_; }

 private:
  struct Kv {
    std::string key;
    std::string payload;  // value type (u32) followed by the encoded value
  };
  struct TensorInfo {
    std::string name;
    std::vector<int64_t> ne;
    GgmlType type;
    size_t nbytes;
    uint64_t offset;
  };
  void set_raw(std::string_view key, std::string payload);
  void pad_to_alignment();

  std::string path_;
  std::vector<Kv> kv_;
  std::vector<TensorInfo> tensors_;
  std::unique_ptr<AtomicFile> out_;
  uint64_t alignment_ = kDefaultAlignment;
  size_t current_ = 0;          // tensor being written
  size_t current_written_ = 0;  // bytes of it written so far
  bool begun_ = false, finished_ = false;
};

}  // namespace mlamoe
