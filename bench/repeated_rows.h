// Test matrices for the kernel benchmarks: quantizing every row of a matrix larger than
// the last-level cache is slow, and 64 distinct rows repeated are as good for timing
// (the bytes still stream from DRAM).
#pragma once
#include <algorithm>
#include <cstdint>
#include <random>
#include <vector>

#include "format/quant.h"

namespace mlamoe::bench {

// rows × cols of `type` at data (rows × row_bytes(type, cols) bytes): 64 rows of
// N(0, 0.02) values quantized, then repeated.
inline void fill_repeated_rows(GgmlType type, uint8_t* data, int64_t rows, int64_t cols) {
  const size_t rb = row_bytes(type, cols);
  std::mt19937 rng(42);
  std::normal_distribution<float> normal(0.f, 0.02f);
  std::vector<float> row(static_cast<size_t>(cols));
  for (int64_t r = 0; r < std::min<int64_t>(rows, 64); ++r) {
    for (float& v : row) v = normal(rng);
    quantize_row(type, row.data(), data + rb * static_cast<size_t>(r), cols);
  }
#pragma omp parallel for schedule(static)
  for (int64_t r = 64; r < rows; ++r) std::copy_n(data + rb * static_cast<size_t>(r % 64), rb, data + rb * static_cast<size_t>(r));
}

}  // namespace mlamoe::bench
