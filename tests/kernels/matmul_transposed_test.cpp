// matmul_transposed (MLA up-projections stored the other way round) against the plain
// definition Y[t][c] = Σ_r W[r][c] X[t][r] on dequantized weights, for the weight types
// the converter writes and token counts on both sides of the threading threshold.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "format/quant.h"
#include "kernels/kernels.h"

using namespace mlamoe;

TEST(MatmulTransposed, MatchesDefinitionOnDequantizedWeights) {
  const int64_t rows = 64, cols = 96;
  std::mt19937 rng(3);
  std::normal_distribution<float> nd;
  std::vector<float> wf(static_cast<size_t>(rows * cols));
  for (auto& v : wf) v = nd(rng);
  for (GgmlType type : {GgmlType::F32, GgmlType::F16, GgmlType::Q8_0, GgmlType::Q4_0}) {
    const size_t bytes_per_row = mlamoe::row_bytes(type, cols);
    std::vector<uint8_t> data(bytes_per_row * rows);
    for (int64_t r = 0; r < rows; ++r) quantize_row(type, wf.data() + r * cols, data.data() + r * bytes_per_row, cols);
    kernels::WeightView W{type, data.data(), rows, cols, bytes_per_row};
    std::vector<float> deq(static_cast<size_t>(rows * cols));
    for (int64_t r = 0; r < rows; ++r) dequantize_row(type, W.row(r), deq.data() + r * cols, cols);
    for (int64_t n : {1, 3, 8, 37}) {
      std::vector<float> X(static_cast<size_t>(n * rows)), Y(static_cast<size_t>(n * cols), 123.f);
      for (auto& v : X) v = nd(rng);
      kernels::matmul_transposed(W, X.data(), n, Y.data());
      for (int64_t t = 0; t < n; ++t)
        for (int64_t c = 0; c < cols; ++c) {
          double want = 0, mag = 0;
          for (int64_t r = 0; r < rows; ++r) {
            want += double(deq[r * cols + c]) * X[t * rows + r];
            mag += std::fabs(double(deq[r * cols + c]) * X[t * rows + r]);
          }
          ASSERT_NEAR(Y[t * cols + c], want, 1e-6 * mag + 1e-6) << type_name(type) << " n " << n << " t " << t << " c " << c;
        }
    }
  }
}
