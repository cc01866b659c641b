// GGUF v2/v3 reader. The file is memory-mapped; metadata is parsed once with every
// length and count checked against the bytes that remain (a hostile file cannot make
// us allocate what it merely claims), and tensor data is handed out as pointers into
// the map (zero copy).
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/mapped_file.h"
#include "format/ggml_types.h"

namespace mlamoe {

enum class GgufType : uint32_t {
  UINT8 = 0, INT8 = 1, UINT16 = 2, INT16 = 3, UINT32 = 4, INT32 = 5, FLOAT32 = 6,
  BOOL = 7, STRING = 8, ARRAY = 9, UINT64 = 10, INT64 = 11, FLOAT64 = 12,
};
std::string_view gguf_type_name(GgufType t);
// Bytes of one scalar value of type t (0 for STRING and ARRAY).
size_t gguf_scalar_size(GgufType t);

// One metadata value. Scalars are held decoded; arrays keep a pointer to their
// elements inside the map (strings are indexed once, as string_views into the map).
class GgufValue {
 public:
  GgufType type = GgufType::UINT8;
  GgufType elem_type = GgufType::UINT8;  // for arrays

  bool is_array() const { return type == GgufType::ARRAY; }
  bool is_integer() const;
  bool is_float() const { return type == GgufType::FLOAT32 || type == GgufType::FLOAT64; }

  // Scalar accessors; they throw Error if the value is not convertible.
  int64_t as_int() const;
  uint64_t as_uint() const;
  double as_float() const;
  bool as_bool() const;
  std::string_view as_string() const;

  size_t array_size() const { return count_; }
  std::vector<int64_t> as_int_array() const;
  std::vector<float> as_float_array() const;
  const std::vector<std::string_view>& as_string_array() const;

  // Printable summary for `mlamoe info` ("[102400 strings]", "yarn", "4.0").
  std::string to_string(size_t max_items = 4) const;

 private:
  friend class GgufFile;
  friend class GgufParser;
  uint64_t u_ = 0;
  int64_t i_ = 0;
  double f_ = 0;
  std::string_view s_;
  const uint8_t* array_data_ = nullptr;
  size_t count_ = 0;
  std::vector<std::string_view> strings_;
};

struct GgufTensor {
  std::string name;
  std::vector<int64_t> ne;  // ggml order: ne[0] is the contiguous (row) dimension
  GgmlType type = GgmlType::F32;
  uint64_t offset = 0;      // relative to the data section
  const uint8_t* data = nullptr;
  size_t nbytes = 0;
  int64_t n_elements() const;
  int64_t rows() const { return ne.empty() ? 0 : n_elements() / ne[0]; }
  std::string shape_string() const;  // "[64, 256]"
};

class GgufFile {
 public:
  static constexpr uint32_t kMagic = 0x46554747;  // "GGUF" little-endian
  static constexpr uint64_t kMaxTensors = 1u << 20;
  static constexpr uint64_t kMaxMetadata = 1u << 20;

  // Opens and validates a file; throws Error naming the path and what is wrong.
  static std::unique_ptr<GgufFile> open(const std::string& path);
  // Parses a buffer that outlives the object (tests, fuzzing). `name` is used in errors.
  static std::unique_ptr<GgufFile> from_memory(const uint8_t* data, size_t size, std::string name = "<memory>");

  const std::string& path() const { return path_; }
  uint32_t version() const { return version_; }
  size_t file_size() const { return size_; }
  const uint8_t* bytes() const { return base_; }  // the whole file, size file_size()
  uint64_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }

  const std::vector<std::pair<std::string, GgufValue>>& metadata() const { return kv_; }
  const GgufValue* find(std::string_view key) const;
  bool has(std::string_view key) const { return find(key) != nullptr; }
  // Typed getters: the default if missing, Error naming the key if of the wrong type.
  std::string get_string(std::string_view key, std::string_view def = "") const;
  int64_t get_int(std::string_view key, int64_t def) const;
  double get_float(std::string_view key, double def) const;
  bool get_bool(std::string_view key, bool def) const;
  // Required variants: Error "<file>: missing metadata key <key>".
  int64_t require_int(std::string_view key) const;

  const std::vector<GgufTensor>& tensors() const { return tensors_; }
  const GgufTensor* tensor(std::string_view name) const;
  // Drops the file's pages inside [p, p+n) from the resident set (see MappedFile).
  void release(const uint8_t* p, size_t n) const;

 private:
  GgufFile() = default;
  void parse();
  friend class GgufParser;
  std::string path_;
  std::unique_ptr<MappedFile> map_;
  const uint8_t* base_ = nullptr;
  size_t size_ = 0;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  std::vector<std::pair<std::string, GgufValue>> kv_;
  std::map<std::string, size_t, std::less<>> kv_index_;
  std::vector<GgufTensor> tensors_;
  std::map<std::string, size_t, std::less<>> tensor_index_;
};

}  // namespace mlamoe
