// 64-bit FNV-1a: the checksum of session files and the fingerprint of model files in
// tile caches. Not cryptographic; it catches torn writes and stale files, not attacks.
#pragma once
#include <cstddef>
#include <cstdint>

namespace mlamoe {

struct Fnv1a {
  uint64_t h = 0xcbf29ce484222325ull;
  void add(const void* data, size_t n) {
    const auto* p = static_cast<const uint8_t*>(data);
    for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ull;
  }
  template <typename T>
  void add_value(const T& v) {
    add(&v, sizeof v);
  }
};

}  // namespace mlamoe
