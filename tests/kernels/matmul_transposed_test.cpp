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

// matmul_column_scaled: W holds integer blocks of unit scale, the true scales run along
// the columns (one per group of 32 rows, or 16 as Q6_K's transpose has them). Checked
// against the definition in double on every ISA, in the file layout and tiled, with
// the bound that quantizing the scaled activations to int8 allows (half a step of each
// 32-value block's largest value).
TEST(MatmulColumnScaled, MatchesDefinitionOnEveryIsaAndLayout) {
  using kernels::Isa;
  const Isa saved = kernels::active_isa();
  const int64_t rows = 96, cols = 64;
  std::mt19937 rng(11);
  std::normal_distribution<float> nd;
  std::uniform_int_distribution<int> nib(0, 15), i8(-127, 127);
  struct Case {
    GgmlType type;
    int64_t group;
  };
  for (const Case& cs : {Case{GgmlType::Q4_0, 32}, Case{GgmlType::Q8_0, 32}, Case{GgmlType::Q8_0, 16}}) {
    const GgmlType type = cs.type;
    const int64_t group = cs.group;
    std::vector<float> scale(static_cast<size_t>(rows / group * cols));
    for (auto& s : scale) s = std::ldexp(std::fabs(nd(rng)) + 0.1f, static_cast<int>(rng() % 7) - 3);
    const size_t row_bytes = mlamoe::row_bytes(type, cols);
    std::vector<uint8_t> data(row_bytes * rows);
    const uint16_t one = fp32_to_fp16(1.0f);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t b = 0; b < cols / 32; ++b) {
        uint8_t* blk = data.data() + r * row_bytes + b * (type == GgmlType::Q4_0 ? sizeof(BlockQ4_0) : sizeof(BlockQ8_0));
        std::memcpy(blk, &one, 2);
        if (type == GgmlType::Q4_0)
          for (int i = 0; i < 16; ++i) blk[2 + i] = static_cast<uint8_t>(nib(rng) | nib(rng) << 4);
        else
          for (int i = 0; i < 32; ++i) blk[2 + i] = static_cast<uint8_t>(static_cast<int8_t>(i8(rng)));
      }
    const kernels::WeightView rows_view{type, data.data(), rows, cols, row_bytes};
    std::vector<float> deq(static_cast<size_t>(rows * cols));
    for (int64_t r = 0; r < rows; ++r) dequantize_row(type, rows_view.row(r), deq.data() + r * cols, cols);
    for (Isa isa : {Isa::Scalar, Isa::Avx2, Isa::Avx512}) {
      if (!kernels::cpu_supports(isa)) continue;
      kernels::set_isa(isa);
      std::vector<kernels::WeightView> views{rows_view};
      std::vector<uint8_t> tiles;
      if (size_t n = kernels::tiled_bytes(rows_view)) {
        tiles.resize(n + 64);
        uint8_t* aligned = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(tiles.data()) + 63) & ~uintptr_t{63});
        views.push_back(kernels::tile_weights(rows_view, aligned));
      }
      for (const kernels::WeightView& W : views)
        for (int64_t n : {1, 5, 12}) {
          std::vector<float> X(static_cast<size_t>(n * cols)), Y(static_cast<size_t>(n * rows), 123.f);
          for (auto& v : X) v = nd(rng);
          kernels::matmul_column_scaled(W, scale.data(), group, X.data(), n, Y.data());
          for (int64_t t = 0; t < n; ++t)
            for (int64_t r = 0; r < rows; ++r) {
              const float* s = scale.data() + r / group * cols;
              double want = 0, bound = 0;
              for (int64_t b = 0; b < cols; b += 32) {
                double amax = 0;
                for (int64_t c = b; c < b + 32; ++c) amax = std::fmax(amax, std::fabs(double(X[t * cols + c]) * s[c]));
                for (int64_t c = b; c < b + 32; ++c) {
                  const double w = deq[r * cols + c], xs = double(X[t * cols + c]) * s[c];
                  want += w * xs;
                  bound += std::fabs(w) * (amax / 254.0 * 1.01 + 1e-6 * std::fabs(xs));
                }
              }
              ASSERT_NEAR(Y[t * rows + r], want, bound + 1e-5)
                  << type_name(type) << " group " << group << " " << kernels::isa_name(isa)
                  << (W.layout == kernels::Layout::Tiles16 ? " tiled" : " rows") << " n " << n << " t " << t << " r " << r;
            }
        }
    }
  }
  kernels::set_isa(saved);
}

// The column-scaled transpose holds exactly W's values: scale · integer = W[n][j]
// (Q6_K: its 6-bit integers in Q8_0 blocks, one scale per sub-block of 16).
TEST(MatmulColumnScaled, TransposeKeepsEveryValueExactly) {
  const int64_t rows = 64;
  std::mt19937 rng(12);
  std::normal_distribution<float> nd;
  for (GgmlType type : {GgmlType::Q4_0, GgmlType::Q8_0, GgmlType::Q6_K}) {
    const int64_t cols = type == GgmlType::Q6_K ? 512 : 96, group = kernels::column_scale_group(type);
    ASSERT_EQ(group, type == GgmlType::Q6_K ? 16 : 32);
    std::vector<float> wf(static_cast<size_t>(rows * cols));
    for (auto& v : wf) v = nd(rng) * std::ldexp(1.0f, static_cast<int>(rng() % 9) - 4);
    const size_t rb = mlamoe::row_bytes(type, cols);
    std::vector<uint8_t> data(rb * rows);
    for (int64_t r = 0; r < rows; ++r) quantize_row(type, wf.data() + r * cols, data.data() + r * rb, cols);
    const kernels::WeightView W{type, data.data(), rows, cols, rb};
    ASSERT_GT(kernels::column_scaled_transpose_bytes(W), 0u);
    std::vector<uint8_t> t(kernels::column_scaled_transpose_bytes(W));
    std::vector<float> scale(static_cast<size_t>(cols / group * rows));
    const kernels::WeightView T = kernels::transpose_column_scaled(W, t.data(), scale.data());
    ASSERT_EQ(T.rows, cols);
    ASSERT_EQ(T.cols, rows);
    ASSERT_EQ(T.type, type == GgmlType::Q6_K ? GgmlType::Q8_0 : type);
    std::vector<float> w_row(static_cast<size_t>(cols)), t_row(static_cast<size_t>(rows));
    for (int64_t j = 0; j < cols; ++j) {
      kernels::get_row(T, j, t_row.data());
      for (int64_t n = 0; n < rows; ++n) {
        kernels::get_row(W, n, w_row.data());
        ASSERT_EQ(scale[j / group * rows + n] * t_row[n], w_row[j]) << type_name(type) << " j " << j << " n " << n;
      }
    }
  }
  const kernels::WeightView f32{GgmlType::F32, nullptr, 64, 64, 256};
  EXPECT_EQ(kernels::column_scaled_transpose_bytes(f32), 0u);
  const kernels::WeightView q4k{GgmlType::Q4_K, nullptr, 64, 256, mlamoe::row_bytes(GgmlType::Q4_K, 256)};
  EXPECT_EQ(kernels::column_scaled_transpose_bytes(q4k), 0u);  // mins: not a scale times an integer
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
    if (type != GgmlType::F32) EXPECT_THROW(kernels::column_slice(W, 16, 32), Error);
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
  for (Isa isa : {Isa::Scalar, Isa::Avx2, Isa::Avx512}) {
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
