// Builds GGUF files byte by byte for tests and fuzz seeds: straight from the format
// description (little-endian; header, key/values, tensor infos, aligned data), without
// the project's writer, so the reader is checked against the format and not against
// itself. Nothing is validated: hostile files are the point.
#pragma once
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <string_view>
#include <vector>

#include "format/gguf.h"

namespace mlamoe::test {

struct GgufBytes {
  std::vector<uint8_t> bytes;

  void raw(const void* p, size_t n) {
    const auto* b = static_cast<const uint8_t*>(p);
    bytes.insert(bytes.end(), b, b + n);
  }
  void u8(uint8_t v) { raw(&v, 1); }
  void u16(uint16_t v) { raw(&v, 2); }
  void u32(uint32_t v) { raw(&v, 4); }
  void u64(uint64_t v) { raw(&v, 8); }
  void f32(float v) { raw(&v, 4); }
  void str(std::string_view s) {
    u64(s.size());
    raw(s.data(), s.size());
  }

  void header(uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
    u32(GgufFile::kMagic);
    u32(version);
    u64(n_tensors);
    u64(n_kv);
  }
  // Integer-like scalars: the low sizeof(type) bytes of v.
  void kv_scalar(std::string_view key, GgufType type, uint64_t v) {
    str(key);
    u32(static_cast<uint32_t>(type));
    static constexpr size_t kSize[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    raw(&v, kSize[static_cast<uint32_t>(type)]);
  }
  void kv_f32(std::string_view key, float v) {
    str(key);
    u32(static_cast<uint32_t>(GgufType::FLOAT32));
    f32(v);
  }
  void kv_f64(std::string_view key, double v) {
    str(key);
    u32(static_cast<uint32_t>(GgufType::FLOAT64));
    raw(&v, 8);
  }
  void kv_string(std::string_view key, std::string_view v) {
    str(key);
    u32(static_cast<uint32_t>(GgufType::STRING));
    str(v);
  }
  // Key, ARRAY, element type and count; the caller appends the elements.
  void kv_array_header(std::string_view key, GgufType elem, uint64_t n) {
    str(key);
    u32(static_cast<uint32_t>(GgufType::ARRAY));
    u32(static_cast<uint32_t>(elem));
    u64(n);
  }
  void kv_string_array(std::string_view key, std::initializer_list<std::string_view> items) {
    kv_array_header(key, GgufType::STRING, items.size());
    for (auto s : items) str(s);
  }
  void tensor_info(std::string_view name, const std::vector<uint64_t>& ne, uint32_t type, uint64_t offset) {
    str(name);
    u32(static_cast<uint32_t>(ne.size()));
    for (uint64_t d : ne) u64(d);
    u32(type);
    u64(offset);
  }
  void pad_to(size_t alignment) {
    while (bytes.size() % alignment) bytes.push_back(0);
  }
};

}  // namespace mlamoe::test
