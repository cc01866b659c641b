// Float32 tensors by name in the safetensors layout (8-byte header length, JSON header,
// raw little-endian data). Trainer checkpoints are written this way with Hugging Face
// names, so a checkpoint directory (config.json + model.safetensors) is an HF checkpoint.
// Reading accepts F32 and BF16 (widened); anything else is an error naming the tensor.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace mlamoe::train {

struct NamedTensor {
  std::vector<int64_t> shape;  // row-major, outermost first (PyTorch order)
  std::vector<float> data;
  int64_t numel() const;
};
using TensorMap = std::map<std::string, NamedTensor>;

TensorMap read_safetensors(const std::string& path);                  // throws Error naming path/tensor
void write_safetensors_atomic(const std::string& path, const TensorMap& tensors);

}  // namespace mlamoe::train
