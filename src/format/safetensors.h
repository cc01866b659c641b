// Hugging Face safetensors checkpoints: one file or shards listed in
// model.safetensors.index.json. Files are memory-mapped; the JSON header is parsed
// with every dtype, shape and offset checked against the bytes actually present, so a
// truncated or hostile file gives one error line naming the file and tensor.
// Values are read as float32 rows; FP8 (e4m3) weights are multiplied by their
// `<name>_scale_inv` block scales (one float32 per 128×128 block, DeepSeek-V3 style).
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/mapped_file.h"

namespace mlamoe {

enum class StDtype { F32, F16, BF16, F8_E4M3, Other };

struct StTensor {
  std::string name;
  std::string dtype_name;       // as written ("BF16", "I64" ...)
  StDtype dtype = StDtype::Other;
  std::vector<int64_t> shape;   // PyTorch order: shape[0] is the outermost (rows)
  const uint8_t* data = nullptr;
  size_t nbytes = 0;
  const std::string* file = nullptr;  // the shard it lives in
  int64_t n_elements() const;
  int64_t rows() const;  // the product of all but the last dimension (1 for a scalar)
  int64_t cols() const { return shape.empty() ? 1 : shape.back(); }
  std::string shape_string() const;  // "[128, 64]"
};

class SafetensorsFile {
 public:
  static constexpr uint64_t kMaxHeader = 100u << 20;
  static std::unique_ptr<SafetensorsFile> open(const std::string& path);
  const std::string& path() const { return path_; }
  const std::map<std::string, StTensor, std::less<>>& tensors() const { return tensors_; }
  const StTensor* find(std::string_view name) const;

 private:
  std::string path_;
  MappedFile map_;
  std::map<std::string, StTensor, std::less<>> tensors_;
};

// A checkpoint directory: model.safetensors.index.json (every shard it names must
// exist and hold the tensors it is said to hold), else every *.safetensors file.
class SafetensorsModel {
 public:
  static std::unique_ptr<SafetensorsModel> open(const std::string& dir);
  const std::string& dir() const { return dir_; }
  const StTensor* find(std::string_view name) const;
  // Error "<file>: missing tensor <name>" (the index file or the directory).
  const StTensor& require(std::string_view name) const;
  std::vector<std::string> names() const;

  // rows [first, first + n) of t viewed as a matrix (rows() × cols()), as float32,
  // FP8 block scales applied. Thread-safe.
  void read_rows(const StTensor& t, int64_t first, int64_t n, float* out) const;
  // Checks dtype (F32/F16/BF16, or F8_E4M3 with a scale tensor of the right shape)
  // and that the shape is `shape`; Error naming file and tensor otherwise.
  void check(const StTensor& t, const std::vector<int64_t>& shape) const;
  // FP8 block size (quantization_config.weight_block_size; 128×128 unless set).
  void set_block_size(int64_t rows, int64_t cols);

 private:
  const StTensor* scale_of(const StTensor& t) const;
  int64_t block_rows_ = 128, block_cols_ = 128;
  std::string dir_, listing_;  // listing_: the index file, or the directory
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, const StTensor*, std::less<>> index_;
};

// Writing (test checkpoints, exports): tensors in the given order, header padded
// to 8 bytes, written atomically. `bytes` must hold shape's elements of `dtype`.
struct StTensorData {
  std::string name;
  std::string dtype;  // "F32", "BF16", "F8_E4M3" ...
  std::vector<int64_t> shape;
  std::string bytes;
};
void write_safetensors(const std::string& path, const std::vector<StTensorData>& tensors);

}  // namespace mlamoe
