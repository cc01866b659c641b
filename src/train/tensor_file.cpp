#include "train/tensor_file.h"

#include <cstring>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/files.h"

namespace mlamoe::train {

int64_t NamedTensor::numel() const {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  return n;
}

TensorMap read_safetensors(const std::string& path) {
  const std::string bytes = read_file(path);
  if (bytes.size() < 8) fail(path, ": too short for a safetensors file");
  uint64_t header_len = 0;
  std::memcpy(&header_len, bytes.data(), 8);
  if (header_len > bytes.size() - 8) fail(path, ": header length ", header_len, " exceeds the file");
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(bytes.substr(8, header_len));
  } catch (const std::exception& e) {
    fail(path, ": invalid safetensors header: ", e.what());
  }
  const size_t data_start = 8 + header_len, data_size = bytes.size() - data_start;
  TensorMap out;
  for (auto& [name, info] : header.items()) {
    if (name == "__metadata__") continue;
    NamedTensor t;
    std::string dtype = info.value("dtype", "");
    auto offsets = info.value("data_offsets", std::vector<uint64_t>{});
    t.shape = info.value("shape", std::vector<int64_t>{});
    if (offsets.size() != 2 || offsets[0] > offsets[1] || offsets[1] > data_size)
      fail(path, ": tensor ", name, ": bad data_offsets");
    const size_t elem = dtype == "F32" ? 4 : dtype == "BF16" ? 2 : 0;
    if (!elem) fail(path, ": tensor ", name, ": dtype ", dtype, " is not supported here (F32 or BF16)");
    for (int64_t s : t.shape)
      if (s < 0) fail(path, ": tensor ", name, ": negative dimension");
    if (static_cast<uint64_t>(t.numel()) * elem != offsets[1] - offsets[0])
      fail(path, ": tensor ", name, ": shape does not match its byte size");
    const char* src = bytes.data() + data_start + offsets[0];
    t.data.resize(t.numel());
    if (elem == 4) {
      std::memcpy(t.data.data(), src, t.data.size() * 4);
    } else {
      for (size_t i = 0; i < t.data.size(); ++i) {
        uint32_t bits = 0;
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        bits = static_cast<uint32_t>(h) << 16;
        std::memcpy(&t.data[i], &bits, 4);
      }
    }
    out.emplace(name, std::move(t));
  }
  return out;
}

void write_safetensors_atomic(const std::string& path, const TensorMap& tensors) {
  nlohmann::json header = nlohmann::json::object();
  uint64_t offset = 0;
  for (auto& [name, t] : tensors) {
    if (static_cast<size_t>(t.numel()) != t.data.size()) fail("tensor ", name, ": shape does not match its data");
    uint64_t n = t.data.size() * 4;
    header[name] = {{"dtype", "F32"}, {"shape", t.shape}, {"data_offsets", {offset, offset + n}}};
    offset += n;
  }
  header["__metadata__"] = {{"format", "pt"}};
  std::string h = header.dump();
  while ((8 + h.size()) % 8) h += ' ';  // keep tensor data 8-byte aligned
  uint64_t len = h.size();
  AtomicFile f(path);
  f.write(&len, 8);
  f.write(h);
  for (auto& [name, t] : tensors) f.write(t.data.data(), t.data.size() * 4);
  f.commit();
}

}  // namespace mlamoe::train
