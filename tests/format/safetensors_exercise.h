// What a safetensors fuzz input goes through, shared by fuzz/safetensors_fuzz.cpp and
// the ctest replay (tests/format/fuzz_replay_safetensors_test.cpp). Bit 0 of the first
// byte picks what the rest is: 0, a whole .safetensors file (the JSON header and the
// bytes it describes); 1, a model.safetensors.index.json beside two fixed valid shards.
// The checkpoint is opened, every tensor checked against its own shape and its first
// rows read as float32. Error is the only acceptable failure.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "common/error.h"
#include "format/safetensors.h"

namespace mlamoe::test {

inline void check_safetensors(bool ok) {
  if (!ok) __builtin_trap();
}

// The shards an index input may name (written once per directory).
inline void write_fixed_shards(const std::string& dir) {
  auto bytes = [](size_t n, uint8_t fill) { return std::string(n, static_cast<char>(fill)); };
  write_safetensors(dir + "/model-00001-of-00002.safetensors",
                    {{"a.weight", "F32", {2, 3}, bytes(24, 0x3f)}, {"b.weight", "BF16", {4}, bytes(8, 0x40)}});
  write_safetensors(dir + "/model-00002-of-00002.safetensors",
                    {{"c.weight", "F8_E4M3", {128, 64}, bytes(128 * 64, 0x38)},
                     {"c.weight_scale_inv", "F32", {1, 1}, bytes(4, 0x3f)},
                     {"d.bias", "F16", {3}, bytes(6, 0x3c)}});
}

inline void exercise_safetensors(const uint8_t* data, size_t size, const std::string& dir) {
  namespace fs = std::filesystem;
  if (size == 0) return;
  const bool index = data[0] & 1;
  static std::string prepared;
  if (prepared != dir) {
    fs::create_directories(dir);
    write_fixed_shards(dir);
    prepared = dir;
  }
  const std::string index_path = dir + "/model.safetensors.index.json";
  const std::string single_path = dir + "/single/model.safetensors";
  fs::remove(index_path);
  const std::string path = index ? index_path : single_path;
  fs::create_directories(fs::path(path).parent_path());
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data) + 1, static_cast<std::streamsize>(size - 1));
  }
  try {
    auto model = SafetensorsModel::open(index ? dir : dir + "/single");
    std::vector<float> rows;
    for (const std::string& name : model->names()) {
      const StTensor& t = model->require(name);
      check_safetensors(model->find(name) == &t);
      check_safetensors(t.data != nullptr || t.nbytes == 0);
      (void)t.shape_string();
      try {
        model->check(t, t.shape);
      } catch (const Error&) {
        continue;  // a dtype mlamoe does not compute with, or FP8 without its scales
      }
      const int64_t n = std::min<int64_t>(t.rows(), 2);
      if (t.cols() > (int64_t{1} << 20)) continue;
      rows.assign(static_cast<size_t>(n * t.cols()), 0.0f);
      model->read_rows(t, 0, n, rows.data());
    }
  } catch (const Error&) {
  }
}

}  // namespace mlamoe::test
