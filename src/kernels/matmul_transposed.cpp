#include <algorithm>
#include <vector>

#include "format/quant.h"
#include "kernels/kernels.h"

namespace mlamoe::kernels {

// Y[t] = Σ_r X[t][r] · W[r]: the weight (a small MLA up-projection, e.g. W_UK of one
// head, 128 × 512) is dequantized once, then tokens are shared out to the threads;
// each output row is a sum of scaled weight rows, contiguous and vectorizable. One
// token (decode) stays on the calling thread: the whole product is ~64K MACs.
void matmul_transposed(const WeightView& W, const float* X, int64_t n, float* Y) {
  thread_local std::vector<float> w;
  w.resize(static_cast<size_t>(W.rows * W.cols));
  for (int64_t r = 0; r < W.rows; ++r) dequantize_row(W.type, W.row(r), w.data() + r * W.cols, W.cols);
  const float* wd = w.data();
  const int64_t rows = W.rows, cols = W.cols;
  auto token = [&](int64_t t) {
    float* y = Y + t * cols;
    std::fill(y, y + cols, 0.f);
    for (int64_t r = 0; r < rows; ++r) {
      const float x = X[t * rows + r];
      const float* wr = wd + r * cols;
      for (int64_t c = 0; c < cols; ++c) y[c] += x * wr[c];
    }
  };
  if (n < 8) {
    for (int64_t t = 0; t < n; ++t) token(t);
    return;
  }
#pragma omp parallel for schedule(static) num_threads(threads())
  for (int64_t t = 0; t < n; ++t) token(t);
}

}  // namespace mlamoe::kernels
