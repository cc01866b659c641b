// Products with matrices stored in the other orientation: MLA's up-projections where a
// file keeps W_UK as rows of the latent dimension.
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "common/error.h"
#include "format/quant.h"
#include "kernels/act_quant.h"
#include "kernels/dispatch.h"
#include "kernels/kernels.h"

namespace mlamoe::kernels {

// Y[t] = Σ_r X[t][r] · W[r]: the weight (a small MLA up-projection, e.g. W_UK of one
// head, 128 × 512) is dequantized once, then tokens are shared out to the threads;
// each output row is a sum of scaled weight rows, contiguous and vectorizable. One
// token (decode) stays on the calling thread: the whole product is ~64K MACs.
void matmul_transposed(const WeightView& W, const float* X, int64_t n, float* Y) {
  thread_local std::vector<float> w;
  w.resize(static_cast<size_t>(W.rows * W.cols));
  for (int64_t r = 0; r < W.rows; ++r) get_row(W, r, w.data() + r * W.cols);
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
  if (n < 8 || omp_in_parallel()) {
    for (int64_t t = 0; t < n; ++t) token(t);
    return;
  }
#pragma omp parallel for schedule(static) num_threads(threads())
  for (int64_t t = 0; t < n; ++t) token(t);
}

// The scale of W[r][c] is col_scale[(r / 32) · cols + c]: constant along a 32-row group,
// varying along the columns. Folding a group's scales into the activations turns it
// into an ordinary product with unit-scale blocks, so the int8 kernels run it as is.
void matmul_column_scaled(const WeightView& W, const float* col_scale, const float* X, int64_t n, float* Y) {
  constexpr int64_t kGroup = 32;
  if (n <= 0) return;
  if (W.rows % kGroup) fail("matmul_column_scaled: ", W.rows, " rows is not a multiple of ", kGroup);
  const int64_t cols = W.cols;
  const ActFormat f = kernel_activation_format(W);
  const size_t x_stride = activation_row_bytes(f, cols);
  thread_local std::vector<float> scaled;
  scaled.resize(static_cast<size_t>(n * cols));
  uint8_t* xq = f == ActFormat::F32 ? reinterpret_cast<uint8_t*>(scaled.data()) : activation_scratch(x_stride * static_cast<size_t>(n));
  for (int64_t g = 0; g < W.rows / kGroup; ++g) {
    const float* s = col_scale + g * cols;
    for (int64_t t = 0; t < n; ++t) {
      float* xs = scaled.data() + t * cols;
      const float* x = X + t * cols;
      for (int64_t c = 0; c < cols; ++c) xs[c] = x[c] * s[c];
      if (f != ActFormat::F32) quantize_activation_row(f, xs, xq + x_stride * static_cast<size_t>(t), cols);
    }
    matmul_rows(W, g * kGroup, (g + 1) * kGroup, xq, x_stride, n, Y, static_cast<size_t>(W.rows));
  }
}

size_t column_scaled_transpose_bytes(const WeightView& W) {
  if (W.layout != Layout::Rows || (W.type != GgmlType::Q4_0 && W.type != GgmlType::Q8_0) || W.rows % 32 || W.cols % 32) return 0;
  return static_cast<size_t>(W.cols) * row_bytes(W.type, W.rows);
}

// T[j][n] = d[n][j/32] · q[n][j], d[n][b] the scale of block b of W's row n: T keeps each
// q[n][j] in a block of unit scale and d goes to col_scale[(j/32) · rows + n].
WeightView transpose_column_scaled(const WeightView& W, uint8_t* dst, float* col_scale) {
  if (!column_scaled_transpose_bytes(W)) fail("transpose_column_scaled: needs a Q4_0 or Q8_0 matrix of 32-multiple sides");
  const bool q4 = W.type == GgmlType::Q4_0;
  const size_t block = q4 ? sizeof(BlockQ4_0) : sizeof(BlockQ8_0), out_row = row_bytes(W.type, W.rows);
  const uint16_t one = fp32_to_fp16(1.0f);
  std::memset(dst, 0, static_cast<size_t>(W.cols) * out_row);
  for (int64_t n = 0; n < W.rows; ++n) {
    const int64_t i = n % 32;  // n's place in its output block
    for (int64_t b = 0; b < W.cols / 32; ++b) {
      const uint8_t* src = W.row(n) + static_cast<size_t>(b) * block;
      uint16_t d;
      std::memcpy(&d, src, sizeof d);
      col_scale[b * W.rows + n] = fp16_to_fp32(d);
      for (int64_t k = 0; k < 32; ++k) {
        uint8_t* out = dst + static_cast<size_t>(32 * b + k) * out_row + static_cast<size_t>(n / 32) * block;
        std::memcpy(out, &one, sizeof one);
        if (q4) {  // element e of a Q4_0 block: low nibble of qs[e] (e < 16), high nibble of qs[e - 16]
          const uint8_t* qs = reinterpret_cast<const BlockQ4_0*>(src)->qs;
          const uint8_t q = k < 16 ? (qs[k] & 0xF) : (qs[k - 16] >> 4);
          reinterpret_cast<BlockQ4_0*>(out)->qs[i % 16] |= static_cast<uint8_t>(i < 16 ? q : q << 4);
        } else {
          reinterpret_cast<BlockQ8_0*>(out)->qs[i] = reinterpret_cast<const BlockQ8_0*>(src)->qs[k];
        }
      }
    }
  }
  return WeightView{W.type, dst, W.cols, W.rows, out_row};
}

}  // namespace mlamoe::kernels
