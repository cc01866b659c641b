// matmul_transposed (MLA up-projections stored the other way round) against the plain
// definition Y[t][c] = Σ_r W[r][c] X[t][r] on dequantized weights, for the weight types
// the converter writes and token counts on both sides of the threading threshold.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "common/error.h"
#include "format/quant.h"
#include "kernels/kernels.h"
#include "kernels/tiled.h"

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

// The transposed weight of row r, column c is S · (q − offset), with S the scale of its
// block (Q4_0, Q8_0) or d · sc of its sub-block (Q6_K), read here from the file's block.
static float run_scale(GgmlType type, const uint8_t* row, int64_t c) {
  if (type == GgmlType::Q6_K) {
    const auto* b = reinterpret_cast<const BlockQ6_K*>(row) + c / QK_K;
    return fp16_to_fp32(b->d) * static_cast<float>(b->scales[c % QK_K / 16]);
  }
  if (type == GgmlType::Q8_0) return fp16_to_fp32((reinterpret_cast<const BlockQ8_0*>(row) + c / QK8_0)->d);
  return fp16_to_fp32((reinterpret_cast<const BlockQ4_0*>(row) + c / QK4_0)->d);
}

// The AVX-512 and AVX2 transposed kernels on tiled Q4_0, Q8_0 and Q6_K weights against the
// reference path on the same matrix in the file layout (every weight dequantized, then
// summed in order). Rows: whole tiles, a ragged last tile (its padding must add
// nothing) and more than one group of tiles; columns: one and several tile-blocks. Rows
// span 2^-12..2^12 in scale, and a few are all zero.
// - AVX2 widens each weight to float: it sums in float32 in another order and takes the
//   unsigned offset (8, 128, 32) out as offset · Σ x·scale, so the bound is a few float32
//   ulps of Σ |x · scale| · (|q| + offset) per column.
// - AVX-512 rounds the coefficients a_r = x_r · S_r of each group of rows to int8 with
//   one scale (max |a| / 127) and sums in int32: each a_r is off by at most half that
//   scale, so a column is off by at most (max_r |a_r| / 254) · Σ_r |q_r − offset|, where
//   |q_r − offset| = |w_r| / S_r (the bound takes the max over all rows, which covers
//   any grouping), plus the float rounding above.
TEST(MatmulTransposed, TiledKernelAgreesWithTheReference) {
  using kernels::Isa;
  if (!kernels::cpu_supports(Isa::Avx2)) GTEST_SKIP() << "no AVX2 here: tiled weights need it";
  const Isa saved = kernels::active_isa();
  std::mt19937 rng(11);
  std::normal_distribution<float> nd;
  for (Isa isa : {Isa::Avx2, Isa::AvxVnni, Isa::Avx512}) {
    if (!kernels::cpu_supports(isa)) continue;
    kernels::set_isa(isa);
    for (GgmlType type : {GgmlType::Q4_0, GgmlType::Q8_0, GgmlType::Q6_K}) {
      const float offset = type == GgmlType::Q4_0 ? 8.f : type == GgmlType::Q8_0 ? 128.f : 32.f;
      for (int64_t rows : {int64_t{16}, int64_t{40}, int64_t{128}, int64_t{300}})
        for (int64_t cols : type == GgmlType::Q6_K ? std::vector<int64_t>{256, 512} : std::vector<int64_t>{32, 96, 512}) {
          std::vector<float> wf(static_cast<size_t>(rows * cols));
          for (int64_t r = 0; r < rows; ++r) {
            const float row_scale = r % 7 == 3 ? 0.f : std::ldexp(1.f, static_cast<int>(rng() % 25) - 12);
            for (int64_t c = 0; c < cols; ++c) wf[static_cast<size_t>(r * cols + c)] = row_scale * nd(rng);
          }
          const size_t rb = mlamoe::row_bytes(type, cols);
          std::vector<uint8_t> data(rb * rows);
          for (int64_t r = 0; r < rows; ++r) quantize_row(type, wf.data() + r * cols, data.data() + r * rb, cols);
          const kernels::WeightView W{type, data.data(), rows, cols, rb};
          ASSERT_TRUE(kernels::has_tiled_transposed(W)) << type_name(type);
          std::vector<uint8_t> tiles(kernels::tiled_bytes(W), 0xCD);
          const kernels::WeightView T = kernels::tile_weights(W, tiles.data());
          std::vector<float> deq(static_cast<size_t>(rows * cols));
          for (int64_t r = 0; r < rows; ++r) dequantize_row(type, W.row(r), deq.data() + r * cols, cols);
          // |scale| of each weight's block, recovered as the block's largest |value| over
          // the largest |integer| it can have (an upper bound is all the tolerance needs).
          const float q_max = type == GgmlType::Q4_0 ? 7.f : type == GgmlType::Q8_0 ? 127.f : 31.f;
          for (int64_t n : {1, 3, 9}) {
            // NaN past the last token's rows: the last tile's padding must not read them.
            std::vector<float> X(static_cast<size_t>(n * rows + kernels::kTileRows), std::nanf("")),
                fast(static_cast<size_t>(n * cols), 123.f), slow(static_cast<size_t>(n * cols), -5.f);
            for (int64_t k = 0; k < n * rows; ++k) X[static_cast<size_t>(k)] = nd(rng);
            kernels::matmul_transposed(T, X.data(), n, fast.data());
            kernels::matmul_transposed(W, X.data(), n, slow.data());
            for (int64_t t = 0; t < n; ++t)
              for (int64_t c = 0; c < cols; ++c) {
                double want = 0, mag = 0, a_max = 0, q_sum = 0;
                for (int64_t r = 0; r < rows; ++r) {
                  const int64_t group = type == GgmlType::Q6_K ? 16 : 32, b0 = c / group * group;  // one scale
                  float amax = 0;
                  for (int64_t k = b0; k < b0 + group; ++k) amax = std::fmax(amax, std::fabs(deq[r * cols + k]));
                  const double w = deq[r * cols + c], x = X[t * rows + r], S = run_scale(type, W.row(r), c);
                  want += w * x;
                  mag += std::fabs(x) * (std::fabs(w) + 2.0 * offset * amax / q_max);
                  a_max = std::fmax(a_max, std::fabs(x * S));
                  if (S != 0) q_sum += std::fabs(w / S);
                }
                const double rounding = isa == Isa::Avx512 ? 1.01 * a_max / 254.0 * q_sum : 0.0;
                const float tol = static_cast<float>(1e-6 * mag + rounding) + 1e-30f;
                ASSERT_NEAR(fast[t * cols + c], want, tol)
                    << kernels::isa_name(isa) << " " << type_name(type) << " " << rows << "x" << cols << " n " << n << " t " << t << " c " << c;
                ASSERT_NEAR(slow[t * cols + c], want, static_cast<float>(1e-6 * mag) + 1e-30f) << "reference " << type_name(type);
              }
          }
        }
    }
  }
  kernels::set_isa(saved);
}

// Row and column slices read exactly the values of that part of the matrix, in the
// file layout and tiled (how the shared MLP is split into its experts).
TEST(WeightSlices, ReadThePartOfTheMatrix) {
  const int64_t rows = 64, cols = 128;
  std::mt19937 rng(13);
  std::normal_distribution<float> nd;
  std::vector<float> wf(static_cast<size_t>(rows * cols));
  for (auto& v : wf) v = nd(rng);
  for (GgmlType type : {GgmlType::F32, GgmlType::Q8_0, GgmlType::Q4_0}) {
    const size_t rb = mlamoe::row_bytes(type, cols);
    std::vector<uint8_t> data(rb * rows);
    for (int64_t r = 0; r < rows; ++r) quantize_row(type, wf.data() + r * cols, data.data() + r * rb, cols);
    const kernels::WeightView W{type, data.data(), rows, cols, rb};
    std::vector<kernels::WeightView> views{W};
    std::vector<uint8_t> tiles;
    if (size_t n = kernels::tiled_bytes(W)) {
      tiles.resize(n);
      views.push_back(kernels::tile_weights(W, tiles.data()));
    }
    std::vector<float> full(static_cast<size_t>(cols)), part(static_cast<size_t>(cols));
    for (const auto& V : views) {
      const kernels::WeightView rs = kernels::row_slice(V, 32, 16), cs = kernels::column_slice(V, 64, 32);
      for (int64_t r = 0; r < 16; ++r) {
        kernels::get_row(rs, r, part.data());
        kernels::get_row(V, 32 + r, full.data());
        for (int64_t c = 0; c < cols; ++c) ASSERT_EQ(part[c], full[c]) << type_name(type);
      }
      for (int64_t r = 0; r < rows; ++r) {
        kernels::get_row(cs, r, part.data());
        kernels::get_row(V, r, full.data());
        for (int64_t c = 0; c < 32; ++c) ASSERT_EQ(part[c], full[64 + c]) << type_name(type);
      }
    }
    if (type != GgmlType::F32) {
      EXPECT_THROW(kernels::column_slice(W, 16, 32), Error);
    }
  }
}

// Several matrices on one input give each matrix's own product, bit for bit, on every
// ISA and thread count, tiled or not, and with mixed weight types (run one at a time).
TEST(MatmulSameInput, EqualsOneProductPerMatrix) {
  using kernels::Isa;
  const Isa saved = kernels::active_isa();
  const int64_t cols = 256;
  std::mt19937 rng(14);
  std::normal_distribution<float> nd;
  struct M {
    std::vector<uint8_t> bytes, tiles;
    kernels::WeightView view;
  };
  auto make = [&](GgmlType type, int64_t rows) {
    M m;
    std::vector<float> wf(static_cast<size_t>(rows * cols));
    for (auto& v : wf) v = nd(rng);
    const size_t rb = mlamoe::row_bytes(type, cols);
    m.bytes.resize(rb * rows);
    for (int64_t r = 0; r < rows; ++r) quantize_row(type, wf.data() + r * cols, m.bytes.data() + r * rb, cols);
    m.view = {type, m.bytes.data(), rows, cols, rb};
    if (size_t n = kernels::tiled_bytes(m.view)) {
      m.tiles.resize(n);
      m.view = kernels::tile_weights(m.view, m.tiles.data());
    }
    return m;
  };
  for (Isa isa : kernels::kAllIsas) {
    if (!kernels::cpu_supports(isa)) continue;
    kernels::set_isa(isa);
    for (GgmlType second : {GgmlType::Q4_0, GgmlType::F32}) {
      M a = make(GgmlType::Q4_0, 400), b = make(second, 72);
      for (int threads : {1, 2})
        for (int64_t n : {1, 9}) {
          kernels::set_threads(threads);
          std::vector<float> X(static_cast<size_t>(n * cols));
          for (auto& v : X) v = nd(rng);
          std::vector<float> ya(static_cast<size_t>(n * 400)), yb(static_cast<size_t>(n * 72)), wa(ya.size()), wb(yb.size());
          kernels::matmul(a.view, X.data(), n, wa.data());
          kernels::matmul(b.view, X.data(), n, wb.data());
          const kernels::Product p[] = {{&a.view, ya.data()}, {&b.view, yb.data()}};
          kernels::matmul_same_input(p, 2, X.data(), n);
          EXPECT_EQ(ya, wa) << kernels::isa_name(isa) << " threads " << threads << " n " << n;
          EXPECT_EQ(yb, wb) << kernels::isa_name(isa) << " threads " << threads << " n " << n;
        }
    }
  }
  kernels::set_isa(saved);
}
