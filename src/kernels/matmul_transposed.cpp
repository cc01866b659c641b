#include <vector>

#include "format/quant.h"
#include "kernels/kernels.h"

namespace mlamoe::kernels {

// Accumulates scaled rows: each weight row is dequantized once and added to every
// token's output. Used only on small MLA up-projections, so one thread suffices.
void matmul_transposed(const WeightView& W, const float* X, int64_t n, float* Y) {
  std::vector<float> w(static_cast<size_t>(W.cols));
  for (int64_t i = 0; i < n * W.cols; ++i) Y[i] = 0.f;
  for (int64_t r = 0; r < W.rows; ++r) {
    dequantize_row(W.type, W.row(r), w.data(), W.cols);
    for (int64_t t = 0; t < n; ++t) {
      const float x = X[t * W.rows + r];
      float* y = Y + t * W.cols;
      for (int64_t c = 0; c < W.cols; ++c) y[c] += x * w[c];
    }
  }
}

}  // namespace mlamoe::kernels
