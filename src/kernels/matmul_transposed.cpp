// Products with matrices stored in the other orientation: MLA's up-projections where a
// file keeps W_UK as rows of the latent dimension.
#include <omp.h>

#include <algorithm>
#include <vector>

#include "kernels/dispatch.h"
#include "kernels/kernels.h"
#include "kernels/phase_profile.h"
#include "kernels/tiled.h"

namespace mlamoe::kernels {

// Tokens t < n through token(t): on the calling thread for a few (decode, or inside a
// parallel region), shared out to the threads otherwise.
template <class Token>
static void for_each_token(int64_t n, const Token& token) {
  if (n < 8 || omp_in_parallel()) {
    for (int64_t t = 0; t < n; ++t) token(t);
    return;
  }
#pragma omp parallel for schedule(static) num_threads(threads())
  for (int64_t t = 0; t < n; ++t) token(t);
}

// Y[t] = Σ_r X[t][r] · W[r]. Tiled Q4_0/Q8_0/Q6_K weights (MLA's W_UK rows of a legacy
// attn_kv_b, tiled for the naive path) take the AVX-512 kernel (the coefficients
// x · scale rounded to int8) or the AVX2 one (each weight widened to float). Otherwise
// (the reference path) the weight, a small MLA up-projection (e.g. W_UK of one head,
// 128 × 512), is dequantized once and each output row is a sum of scaled weight rows,
// contiguous and vectorizable.
void matmul_transposed(const WeightView& W, const float* X, int64_t n, float* Y) {
  const TiledTransposedFn tiled = W.layout == Layout::Tiles16 ? active_tiled_transposed_kernel(W.type) : nullptr;
  const int64_t rows = W.rows, cols = W.cols;
  if (tiled) {
    const int64_t n_tiles = (rows + kTileRows - 1) / kTileRows, nb = cols / tile_block_cols(W.type);
    if (phase_profiling()) count_weight_bytes(static_cast<uint64_t>(n_tiles) * W.tile_stride);
    for_each_token(n, [&](int64_t t) { tiled(W.data, W.tile_stride, n_tiles, nb, rows, X + t * rows, Y + t * cols); });
    return;
  }
  thread_local std::vector<float> w;
  w.resize(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r) get_row(W, r, w.data() + r * cols);
  const float* wd = w.data();
  for_each_token(n, [&](int64_t t) {
    float* y = Y + t * cols;
    std::fill(y, y + cols, 0.f);
    for (int64_t r = 0; r < rows; ++r) {
      const float x = X[t * rows + r];
      const float* wr = wd + r * cols;
      for (int64_t c = 0; c < cols; ++c) y[c] += x * wr[c];
    }
  });
}

bool has_tiled_transposed(const WeightView& W) { return tiled_bytes(W) && active_tiled_transposed_kernel(W.type); }

}  // namespace mlamoe::kernels
