// What a GGUF fuzz input goes through: parse it, then read back everything the parser
// accepted the way the rest of mlamoe would (values, arrays, tensor bytes). Shared by
// fuzz/gguf_fuzz.cpp and the ctest replay of the corpus and crash regressions
// (tests/format/fuzz_replay_test.cpp). Error is the only acceptable failure; a broken
// invariant traps so that both libFuzzer and gtest report it.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "common/error.h"
#include "format/gguf.h"
#include "format/quant.h"

namespace mlamoe::test {

inline void check(bool ok) {
  if (!ok) __builtin_trap();
}

inline void exercise_gguf_value(const GgufFile& f, const std::string& key, const GgufValue& v) {
  check(f.find(key) == &v);
  (void)v.to_string(8);
  try {
    if (!v.is_array()) {
      if (v.type == GgufType::STRING) check(v.as_string().size() <= f.file_size());
      else (void)v.as_float();
      return;
    }
    if (v.elem_type == GgufType::STRING) {
      size_t total = 0;
      for (std::string_view s : v.as_string_array()) total += s.empty() ? 0 : static_cast<uint8_t>(s.back());
      (void)total;
    } else {
      check(v.as_float_array().size() == v.array_size());
      check(v.as_int_array().size() == v.array_size());  // throws for float arrays
    }
  } catch (const Error&) {
  }
}

inline void exercise_gguf(const uint8_t* data, size_t size) {
  std::unique_ptr<GgufFile> f;
  try {
    f = GgufFile::from_memory(data, size, "fuzz.gguf");
  } catch (const Error&) {
    return;
  }
  for (const auto& [key, value] : f->metadata()) exercise_gguf_value(*f, key, value);
  check(f->data_offset() % f->alignment() == 0);
  std::vector<float> row;
  for (const auto& t : f->tensors()) {
    check(f->tensor(t.name) == &t);
    check(t.data >= data && t.nbytes <= size && t.data + t.nbytes <= data + size);
    check(t.n_elements() > 0 && !t.shape_string().empty());
    const TypeTraits* tr = type_traits(t.type);
    check(tr != nullptr);
    check(t.nbytes == row_bytes(t.type, t.ne[0]) * static_cast<size_t>(t.rows()));
    // Dequantize the first and last rows: reads exactly the bytes the engine would.
    if (!tr->supported || t.ne[0] > 4096) continue;
    row.resize(static_cast<size_t>(t.ne[0]));
    const size_t rb = row_bytes(t.type, t.ne[0]);
    dequantize_row(t.type, t.data, row.data(), t.ne[0]);
    dequantize_row(t.type, t.data + t.nbytes - rb, row.data(), t.ne[0]);
  }
}

}  // namespace mlamoe::test
