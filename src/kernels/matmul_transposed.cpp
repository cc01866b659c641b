// Products with matrices stored in the other orientation: MLA's up-projections where a
// file keeps W_UK as rows of the latent dimension.
#include <omp.h>

#include <algorithm>
#include <cmath>
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

// The scale of W[r][c] is col_scale[(r / group) · cols + c]: constant along a group of
// rows, varying along the columns. Folding a group's scales into the activations turns
// it into an ordinary product with unit-scale blocks, so the int8 kernels run it as is.
void matmul_column_scaled(const WeightView& W, const float* col_scale, int64_t group, const float* X, int64_t n, float* Y) {
  if (n <= 0) return;
  if (group <= 0 || W.rows % group) fail("matmul_column_scaled: ", W.rows, " rows is not a multiple of the group ", group);
  const int64_t cols = W.cols;
  const ActFormat f = kernel_activation_format(W);
  const size_t x_stride = activation_row_bytes(f, cols);
  thread_local std::vector<float> scaled;
  scaled.resize(static_cast<size_t>(n * cols));
  uint8_t* xq = f == ActFormat::F32 ? reinterpret_cast<uint8_t*>(scaled.data()) : activation_scratch(x_stride * static_cast<size_t>(n));
  for (int64_t g = 0; g < W.rows / group; ++g) {
    const float* s = col_scale + g * cols;
    for (int64_t t = 0; t < n; ++t) {
      float* xs = scaled.data() + t * cols;
      const float* x = X + t * cols;
      for (int64_t c = 0; c < cols; ++c) xs[c] = x[c] * s[c];
      if (f != ActFormat::F32) quantize_activation_row(f, xs, xq + x_stride * static_cast<size_t>(t), cols);
    }
    matmul_rows(W, g * group, (g + 1) * group, xq, x_stride, n, Y, static_cast<size_t>(W.rows));
  }
}

int64_t column_scale_group(GgmlType type) {
  switch (type) {
    case GgmlType::Q4_0:
    case GgmlType::Q8_0: return 32;
    case GgmlType::Q6_K: return 16;  // one scale per sub-block of 16
    default: return 0;
  }
}

// Q4_0 and Q8_0 keep their type; Q6_K's integers (q − 32, 6 bits) go into Q8_0 blocks.
static GgmlType column_scaled_type(GgmlType type) { return type == GgmlType::Q6_K ? GgmlType::Q8_0 : type; }

size_t column_scaled_transpose_bytes(const WeightView& W) {
  const int64_t group = column_scale_group(W.type);
  if (W.layout != Layout::Rows || !group || W.rows % 32 || W.cols % type_traits(W.type)->block_size) return 0;
  return static_cast<size_t>(W.cols) * row_bytes(column_scaled_type(W.type), W.rows);
}

// W's row n as (scale of each group, integer of each element), value = scale · integer.
static void scaled_integers(const WeightView& W, int64_t n, float* value, float* scale, int8_t* q) {
  const int64_t group = column_scale_group(W.type);
  const uint8_t* row = W.row(n);
  for (int64_t g = 0; g < W.cols / group; ++g) {
    if (W.type == GgmlType::Q6_K) {
      const auto* b = reinterpret_cast<const BlockQ6_K*>(row) + g / 16;
      scale[g] = fp16_to_fp32(b->d) * b->scales[g % 16];
    } else {
      uint16_t d;
      std::memcpy(&d, row + static_cast<size_t>(g) * (W.type == GgmlType::Q4_0 ? sizeof(BlockQ4_0) : sizeof(BlockQ8_0)), sizeof d);
      scale[g] = fp16_to_fp32(d);
    }
  }
  dequantize_row(W.type, row, value, W.cols);
  // The dequantizers compute scale · integer exactly in float (≤ 24 significant bits),
  // so the division recovers the integer exactly. Q4_0 stores q + 8.
  for (int64_t j = 0; j < W.cols; ++j) {
    const float s = scale[j / group];
    q[j] = s == 0.f ? 0 : static_cast<int8_t>(std::lrint(value[j] / s));
  }
}

// T[j][n] = s[n][j/group] · q[n][j], s[n][g] the scale of group g of W's row n: T keeps
// each q[n][j] in a block of unit scale and s goes to col_scale[(j/group) · rows + n].
WeightView transpose_column_scaled(const WeightView& W, uint8_t* dst, float* col_scale) {
  if (!column_scaled_transpose_bytes(W))
    fail("transpose_column_scaled: needs a Q4_0, Q8_0 or Q6_K matrix of 32-multiple rows and whole blocks, not ", type_name(W.type));
  const GgmlType out_type = column_scaled_type(W.type);
  const bool q4 = out_type == GgmlType::Q4_0;
  const int64_t group = column_scale_group(W.type);
  const size_t block = q4 ? sizeof(BlockQ4_0) : sizeof(BlockQ8_0), out_row = row_bytes(out_type, W.rows);
  const uint16_t one = fp32_to_fp16(1.0f);
  std::memset(dst, 0, static_cast<size_t>(W.cols) * out_row);
  std::vector<float> value(static_cast<size_t>(W.cols)), scale(static_cast<size_t>(W.cols / group));
  std::vector<int8_t> q(static_cast<size_t>(W.cols));
  for (int64_t n = 0; n < W.rows; ++n) {
    scaled_integers(W, n, value.data(), scale.data(), q.data());
    for (int64_t g = 0; g < W.cols / group; ++g) col_scale[g * W.rows + n] = scale[static_cast<size_t>(g)];
    const int64_t i = n % 32;  // n's place in its output block
    for (int64_t j = 0; j < W.cols; ++j) {
      uint8_t* out = dst + static_cast<size_t>(j) * out_row + static_cast<size_t>(n / 32) * block;
      std::memcpy(out, &one, sizeof one);
      if (q4) {  // element i of a Q4_0 block: low nibble of qs[i] (i < 16), high nibble of qs[i - 16]
        const uint8_t nibble = static_cast<uint8_t>(q[static_cast<size_t>(j)] + 8);
        reinterpret_cast<BlockQ4_0*>(out)->qs[i % 16] |= static_cast<uint8_t>(i < 16 ? nibble : nibble << 4);
      } else {
        reinterpret_cast<BlockQ8_0*>(out)->qs[i] = q[static_cast<size_t>(j)];
      }
    }
  }
  return WeightView{out_type, dst, W.cols, W.rows, out_row};
}

}  // namespace mlamoe::kernels
