// Every fused kernel × every ISA this CPU has, against the reference (dequantize the
// row with format/quant, dot in double). Two checks per output:
//  * exact arithmetic: against Σ w_c · x̂_c with x̂ the quantized activations the kernel
//    actually multiplies — only float32 rounding may differ, relative to the size of
//    what is summed (for Q4_K/Q5_K the scale part d·sc·q and the min part dmin·m of a
//    weight, which kernels sum apart: a weight of 0 can be two large equal parts);
//  * end to end: against matmul_reference on the float activations, within the error
//    budget the activation format allows, Σ |w_c| · d_block(c) / 2.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "common/error.h"
#include "format/quant.h"
#include "kernels/act_quant.h"
#include "kernels/dispatch.h"
#include "kernels/kernels.h"
#include "kernels/tiled.h"

using namespace mlamoe;
using namespace mlamoe::kernels;

namespace {

const GgmlType kTypes[] = {GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4_K, GgmlType::Q5_K,
                           GgmlType::Q6_K, GgmlType::F16,  GgmlType::BF16, GgmlType::F32};
// Every tile width of both ISAs (4 and 8 tokens), and 75: past the tiled kernel's
// 64-token chunk, with a short last group.
const int64_t kTokens[] = {1, 2, 3, 5, 6, 7, 16, 33, 75};
// The tiled kernels' token groups are 8 wide against one tile, 5 (Q4_0/Q8_0) or 4 (Q4_K)
// against two, and their chunks 64 tokens: every remainder and both edges.
const int64_t kTiledTokens[] = {1, 2, 3, 5, 6, 7, 8, 9, 16, 33, 64, 75};

std::vector<Isa> available_isas() {
  std::vector<Isa> v;
  for (Isa i : kAllIsas)
    if (cpu_supports(i)) v.push_back(i);
  return v;
}

// The ISAs with int8 kernels over Tiles16 for `type` on this CPU (the layout is the same
// for all; an ISA without a kernel for a type reads its tiles through the reference).
std::vector<Isa> tiled_isas(GgmlType type = GgmlType::Q4_0) {
  std::vector<Isa> v;
  for (Isa i : kAllIsas)
    if (cpu_supports(i) && has_tiled_kernel(i, type)) v.push_back(i);
  return v;
}
Isa tiling_isa(GgmlType type = GgmlType::Q4_0) { return tiled_isas(type).empty() ? Isa::Scalar : tiled_isas(type).back(); }

enum class Data { Random, Adversarial };

struct Weights {
  std::vector<uint8_t> bytes;
  WeightView view;
};

// Adversarial weights: raw random bits in the quant fields (every nibble / 6-bit code,
// -128 in Q8_0, negative Q6_K scales) with block scales that are zero, denormal, huge or
// ordinary fp16, Q4_K/Q5_K blocks whose 6-bit scales and mins are all 63 or all 0,
// Q6_K blocks whose scales are all -128 or all 127, and blocks whose every quant is the
// largest (Q8_0: ±) — against make_activations' constant stretches they give every
// product its largest value, where a kernel's int16 sums would overflow first;
// floats with denormals, zeros and wide exponents.
Weights make_weights(GgmlType type, int64_t rows, int64_t cols, Data data, std::mt19937& rng, size_t pad = 0) {
  Weights w;
  const size_t rb = row_bytes(type, cols), stride = rb + pad;
  w.bytes.assign(stride * static_cast<size_t>(rows), 0xAB);
  std::normal_distribution<float> normal(0.f, 1.f);
  std::uniform_int_distribution<int> byte(0, 255);
  const uint16_t fp16_scales[] = {0x0001, 0x03FF, 0x3C00, 0x2E66, 0x7BFF, 0x1400, 0x8400, 0x0000};
  for (int64_t r = 0; r < rows; ++r) {
    uint8_t* row = w.bytes.data() + stride * static_cast<size_t>(r);
    if (data == Data::Random || type == GgmlType::F32 || type == GgmlType::F16 || type == GgmlType::BF16) {
      std::vector<float> f(static_cast<size_t>(cols));
      for (int64_t c = 0; c < cols; ++c) {
        float v = normal(rng) * (data == Data::Random ? 0.05f : 1.f);
        if (data == Data::Adversarial) {
          switch (byte(rng) % 8) {
            case 0: v = 0.f; break;
            case 1: v *= 1e-41f; break;                        // float32 denormal
            case 2: v *= type == GgmlType::F16 ? 6e-6f : 1e-6f; break;  // fp16 subnormal range
            case 3: v *= type == GgmlType::F16 ? 6e3f : 1e12f; break;  // |v| < 65504 for f16
            default: break;
          }
        }
        f[static_cast<size_t>(c)] = v;
      }
      quantize_row(type, f.data(), row, cols);
      continue;
    }
    for (size_t i = 0; i < rb; ++i) row[i] = static_cast<uint8_t>(byte(rng));
    auto scale = [&] { return fp16_scales[byte(rng) % 8]; };
    const size_t bs = type_traits(type)->type_size;
    for (size_t b = 0; b < rb / bs; ++b) {
      uint8_t* blk = row + b * bs;
      uint16_t s0 = scale(), s1 = scale();
      if (byte(rng) % 4 == 0) {  // every quant at its largest
        switch (type) {
          case GgmlType::Q4_0: std::memset(blk + 2, 0xFF, 16); break;
          case GgmlType::Q8_0: std::memset(blk + 2, byte(rng) % 2 ? 0x7F : 0x80, 32); break;
          case GgmlType::Q4_K: std::memset(blk + 4 + K_SCALE_SIZE, 0xFF, QK_K / 2); break;
          case GgmlType::Q5_K: std::memset(blk + 4 + K_SCALE_SIZE, 0xFF, QK_K / 8 + QK_K / 2); break;
          case GgmlType::Q6_K: std::memset(blk, 0xFF, QK_K / 2 + QK_K / 4); break;
          default: break;
        }
      }
      switch (type) {
        case GgmlType::Q8_0:
        case GgmlType::Q4_0: std::memcpy(blk, &s0, 2); break;
        case GgmlType::Q4_K:
        case GgmlType::Q5_K: {
          std::memcpy(blk, &s0, 2);
          std::memcpy(blk + 2, &s1, 2);
          const int extreme = byte(rng) % 4;  // the 12 bytes of scales and mins: all 63, all 0
          if (extreme < 2) std::memset(blk + 4, extreme ? 0xFF : 0x00, K_SCALE_SIZE);
          break;
        }
        case GgmlType::Q6_K: {
          std::memcpy(blk + offsetof(BlockQ6_K, d), &s0, 2);
          const int extreme = byte(rng) % 4;  // the 16 int8 scales: all -128, all 127
          if (extreme < 2) std::memset(blk + offsetof(BlockQ6_K, scales), extreme ? 0x7F : 0x80, QK_K / 16);
          break;
        }
        default: break;
      }
    }
  }
  w.view = WeightView{type, w.bytes.data(), rows, cols, stride};
  return w;
}

// |dmin · m| of column k's sub-block in a Q4_K/Q5_K row (both start d, dmin, scales),
// else 0: with it |d·sc·q| + |dmin·m| ≤ |w| + 2 |dmin·m|.
double min_part(GgmlType type, const uint8_t* row, int64_t k) {
  if (type != GgmlType::Q4_K && type != GgmlType::Q5_K) return 0;
  const size_t bs = type_traits(type)->type_size;
  const uint8_t* blk = row + bs * static_cast<size_t>(k / QK_K);
  uint16_t dmin;
  std::memcpy(&dmin, blk + 2, 2);
  uint8_t sc[8], m[8];
  unpack_k_scales(blk + 4, sc, m);
  return std::fabs(static_cast<double>(fp16_to_fp32(dmin)) * m[k % QK_K / 32]);
}

std::vector<float> make_activations(int64_t n, int64_t cols, Data data, std::mt19937& rng) {
  std::vector<float> x(static_cast<size_t>(n * cols));
  std::normal_distribution<float> normal(0.f, 1.f);
  std::uniform_int_distribution<int> pick(0, 9);
  for (size_t i = 0; i < x.size(); ++i) x[i] = normal(rng);
  if (data == Data::Adversarial) {
    // per 32-value stretch: zeros, one huge outlier, denormals, tiny or huge scales, or
    // one value throughout (every quantized activation 127)
    for (size_t b = 0; b < x.size(); b += 32) {
      const size_t e = std::min(x.size(), b + 32);
      switch (pick(rng)) {
        case 0: for (size_t i = b; i < e; ++i) x[i] = 0.f; break;
        case 1: x[b + (e - b) / 2] = 1e4f; break;
        case 2: for (size_t i = b; i < e; ++i) x[i] *= 1e-40f; break;
        case 3: for (size_t i = b; i < e; ++i) x[i] *= 1e-20f; break;
        case 4: for (size_t i = b; i < e; ++i) x[i] *= 1e8f; break;
        case 5: for (size_t i = b; i < e; ++i) x[i] = 0.5f; break;
        default: break;
      }
    }
  }
  return x;
}

struct Case {
  GgmlType type;
  int64_t rows, cols;
  Data data;
  size_t pad = 0;
  bool tiled = false;  // re-laid out as Tiles16, then run under `isa`
  int64_t slice_c0 = 0, slice_cols = 0;  // if slice_cols: columns [c0, c0 + cols) of both layouts
  bool slice_then_tile = false;           // the file's rows sliced, then tiled on their own
};

void check(const Case& c, Isa isa, int64_t n, std::mt19937& rng) {
  Weights w = make_weights(c.type, c.rows, c.cols, c.data, rng, c.pad);
  const int64_t cols = c.slice_cols ? c.slice_cols : c.cols;
  if (c.slice_then_tile) w.view = column_slice(w.view, c.slice_c0, cols);
  WeightView view = w.view;
  std::vector<uint8_t> tiles;
  if (c.tiled) {
    set_isa(tiling_isa(c.type));
    tiles.assign(tiled_bytes(w.view), 0xCD);
    ASSERT_FALSE(tiles.empty()) << type_name(c.type) << " has no tiled form";
    view = tile_weights(w.view, tiles.data());
  }
  if (c.slice_cols && !c.slice_then_tile) {
    w.view = column_slice(w.view, c.slice_c0, cols);
    view = column_slice(view, c.slice_c0, cols);
  }
  if (c.tiled) {
    std::vector<float> a(static_cast<size_t>(cols)), b(a.size());
    for (int64_t r = 0; r < c.rows; ++r) {  // the re-layout loses nothing
      get_row(w.view, r, a.data());
      get_row(view, r, b.data());
      ASSERT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(float))) << "tiled row " << r;
    }
  }
  std::vector<float> x = make_activations(n, cols, c.data, rng);
  std::vector<float> y(static_cast<size_t>(n * c.rows), NAN), y_ref(y.size());
  set_isa(isa);
  matmul(view, x.data(), n, y.data());
  matmul_reference(w.view, x.data(), n, y_ref.data());

  const ActFormat f = kernel_activation_format(view);
  std::vector<uint8_t> xq(activation_row_bytes(f, cols));
  std::vector<float> xh(static_cast<size_t>(cols)), wr(static_cast<size_t>(cols));
  for (int64_t t = 0; t < n; ++t) {
    const float* xt = x.data() + t * cols;
    quantize_activation_row(f, xt, xq.data(), cols);
    dequantize_activation_row(f, xq.data(), xh.data(), cols);
    for (int64_t r = 0; r < c.rows; ++r) {
      dequantize_row(c.type, w.view.row(r), wr.data(), cols);
      double exact = 0, magnitude = 0, budget = 0, magnitude_x = 0;
      for (int64_t k = 0; k < cols; ++k) {
        const double wk = wr[static_cast<size_t>(k)], xk = xh[static_cast<size_t>(k)];
        exact += wk * xk;
        magnitude += (std::fabs(wk) + 2 * min_part(c.type, w.view.row(r), k)) * std::fabs(xk);
        magnitude_x += std::fabs(wk * xt[k]);
        budget += std::fabs(wk) * std::fabs(xt[k] - xk);  // what activation rounding may cost
      }
      const float got = y[static_cast<size_t>(t * c.rows + r)];
      // products of denormal block scales round to 2^-149 absolute steps; up to |Σq·q| ≈ 2^28 per block
      const double floor = 1e-36;
      ASSERT_NEAR(got, exact, 3e-5 * magnitude + floor)
          << type_name(c.type) << " " << isa_name(isa) << " n=" << n << " row " << r << " token " << t;
      ASSERT_NEAR(got, y_ref[static_cast<size_t>(t * c.rows + r)], 1.0001 * budget + 6e-5 * (magnitude + magnitude_x) + floor)
          << type_name(c.type) << " " << isa_name(isa) << " vs matmul_reference, n=" << n << " row " << r;
    }
  }
}

int64_t cols_for(GgmlType t, int64_t mult) {
  if (t == GgmlType::F32 || t == GgmlType::F16 || t == GgmlType::BF16) return 8 * mult + 5;  // SIMD tails
  return type_traits(t)->block_size * mult;
}

class MatmulTest : public ::testing::TestWithParam<GgmlType> {
 protected:
  void TearDown() override { set_isa(available_isas().back()); }
};

TEST_P(MatmulTest, RandomDataAllIsasAllBatchSizes) {
  std::mt19937 rng(1234 + static_cast<int>(GetParam()));
  for (Isa isa : available_isas())
    for (int64_t n : kTokens) check({GetParam(), 37, cols_for(GetParam(), 3), Data::Random}, isa, n, rng);
}

TEST_P(MatmulTest, AdversarialDataAllIsasAllBatchSizes) {
  std::mt19937 rng(99 + static_cast<int>(GetParam()));
  for (Isa isa : available_isas())
    for (int64_t n : kTokens) check({GetParam(), 19, cols_for(GetParam(), 2), Data::Adversarial}, isa, n, rng);
}

TEST_P(MatmulTest, PaddedRowsSingleBlockAndThreads) {
  std::mt19937 rng(7);
  set_threads(2);
  for (Isa isa : available_isas()) {
    check({GetParam(), 5, cols_for(GetParam(), 1), Data::Random, 24}, isa, 3, rng);    // row_stride > row bytes
    check({GetParam(), 301, cols_for(GetParam(), 8), Data::Random}, isa, 1, rng);      // split across threads
    check({GetParam(), 131, cols_for(GetParam(), 4), Data::Random}, isa, 33, rng);
  }
}

// Threads take runs of rows of all the products from a shared queue (which thread takes
// which run depends on timing), so every row must come out as one thread alone computes it: the
// same bits with 2 threads as with 1, in the file's rows and, where there are tiles, in
// tiles, including the ragged last tile of each product.
TEST_P(MatmulTest, SameInputProductsGiveTheBitsOfOneThread) {
  std::mt19937 rng(555 + static_cast<int>(GetParam()));
  const int64_t cols = cols_for(GetParam(), 8), row_counts[] = {1000, 37, 301};
  std::vector<Weights> w;
  for (int64_t rows : row_counts) w.push_back(make_weights(GetParam(), rows, cols, Data::Adversarial, rng));
  std::vector<std::vector<uint8_t>> tiles(w.size());
  for (bool tiled : {false, true}) {
    set_isa(tiling_isa(GetParam()));
    if (tiled && !tiled_bytes(w[0].view)) continue;
    std::vector<WeightView> views;
    for (size_t i = 0; i < w.size(); ++i) {
      if (tiled) {
        tiles[i].assign(tiled_bytes(w[i].view), 0xCD);
      }
      views.push_back(tiled ? tile_weights(w[i].view, tiles[i].data()) : w[i].view);
    }
    for (Isa isa : available_isas())
      for (int64_t n : {1, 9}) {
        set_isa(isa);
        const std::vector<float> x = make_activations(n, cols, Data::Random, rng);
        std::vector<std::vector<float>> one(views.size()), two(views.size());
        set_threads(1);
        for (size_t i = 0; i < views.size(); ++i) {
          one[i].assign(static_cast<size_t>(n * views[i].rows), NAN);
          matmul(views[i], x.data(), n, one[i].data());
        }
        set_threads(2);
        for (int repeat = 0; repeat < 4; ++repeat) {
          std::vector<Product> products;
          for (size_t i = 0; i < views.size(); ++i) {
            two[i].assign(one[i].size(), NAN);
            products.push_back({&views[i], two[i].data()});
          }
          matmul_same_input(products.data(), static_cast<int>(products.size()), x.data(), n);
          for (size_t i = 0; i < views.size(); ++i)
            ASSERT_EQ(0, std::memcmp(one[i].data(), two[i].data(), one[i].size() * sizeof(float)))
                << type_name(GetParam()) << (tiled ? " tiled " : " rows ") << isa_name(isa) << " n=" << n << " product " << i;
        }
      }
  }
}

// Float weights: a token's outputs are the same bits whatever batch it comes in, so a
// prompt's cached rows equal those of the same tokens inside a longer prompt (the
// prefix cache shares them). Rows long enough for every accumulator chain and a tail.
TEST(FloatMatmul, ATokenGetsTheSameBitsInAnyBatch) {
  const Isa saved = active_isa();
  set_threads(1);
  for (GgmlType type : {GgmlType::F32, GgmlType::F16, GgmlType::BF16}) {
    std::mt19937 rng(77 + static_cast<int>(type));
    const int64_t rows = 21, cols = cols_for(type, 13);  // 109 columns: 3 rounds of 4 chains, a step and a tail
    const Weights w = make_weights(type, rows, cols, Data::Random, rng);
    const std::vector<float> x = make_activations(11, cols, Data::Random, rng);
    for (Isa isa : available_isas()) {
      set_isa(isa);
      std::vector<float> all(static_cast<size_t>(11 * rows));
      matmul(w.view, x.data(), 11, all.data());
      for (int64_t n : {1, 2, 3, 5})
        for (int64_t t0 = 0; t0 + n <= 11; t0 += n) {
          std::vector<float> part(static_cast<size_t>(n * rows));
          matmul(w.view, x.data() + t0 * cols, n, part.data());
          ASSERT_EQ(0, std::memcmp(part.data(), all.data() + t0 * rows, part.size() * sizeof(float)))
              << type_name(type) << " " << isa_name(isa) << " tokens " << t0 << ".." << t0 + n - 1 << " of 11, in batches of " << n;
        }
    }
  }
  set_isa(saved);
}

// Tiles16 (Q4_0, Q8_0, Q4_K, Q5_K, Q6_K under every int8 ISA): ragged last tiles, every token-group
// width, thread splits on tile boundaries, and the same tiles read by the scalar fallback path.
class TiledMatmulTest : public MatmulTest {};

TEST_P(TiledMatmulTest, AgreesWithTheReferenceOnEveryIsa) {
  if (tiled_isas(GetParam()).empty()) GTEST_SKIP() << "no int8 tiled kernel for this type on this CPU";
  std::mt19937 rng(31 + static_cast<int>(GetParam()));
  set_threads(2);
  for (Isa isa : available_isas()) {
    for (int64_t n : kTiledTokens) {
      check({GetParam(), 37, cols_for(GetParam(), 3), Data::Random, 0, true}, isa, n, rng);
      check({GetParam(), 19, cols_for(GetParam(), 2), Data::Adversarial, 0, true}, isa, n, rng);
    }
    check({GetParam(), 16, cols_for(GetParam(), 1), Data::Random, 24, true}, isa, 9, rng);
    check({GetParam(), 301, cols_for(GetParam(), 8), Data::Random, 0, true}, isa, 1, rng);
    check({GetParam(), 131, cols_for(GetParam(), 4), Data::Adversarial, 0, true}, isa, 33, rng);
  }
}

// AVX-512's prefill sweeps tiles two at a time (Q4_0/Q8_0 against 5 tokens, Q4_K against
// 4); a matrix of one tile takes the one-tile kernel. AVX2 takes a tile's halves one at a
// time (both together for one token). All form the same integer sums and the same float
// steps per row and token, so a two-tile matrix's products equal those of its two tiles
// run one at a time, bit for bit (one thread: two would take a tile each).
TEST_P(TiledMatmulTest, TwoTileBlocksGiveTheOneTileProductsBitForBit) {
  if (tiled_isas(GetParam()).empty()) GTEST_SKIP() << "no int8 tiled kernel for this type on this CPU";
  std::mt19937 rng(91 + static_cast<int>(GetParam()));
  for (Isa isa : tiled_isas(GetParam())) {
    SCOPED_TRACE(isa_name(isa));
    set_isa(isa);
    const int threads_before = threads();
    set_threads(1);
    const int64_t cols = cols_for(GetParam(), 3);
    Weights w = make_weights(GetParam(), 2 * kTileRows, cols, Data::Adversarial, rng);
    std::vector<uint8_t> tiles(tiled_bytes(w.view));
    const WeightView both = tile_weights(w.view, tiles.data());
    for (int64_t n : {2, 4, 5, 9, 64, 75}) {
      const std::vector<float> x = make_activations(n, cols, Data::Random, rng);
      std::vector<float> y(static_cast<size_t>(n * both.rows), NAN), y_tile(static_cast<size_t>(n * kTileRows), NAN);
      matmul(both, x.data(), n, y.data());
      for (int64_t tile = 0; tile < 2; ++tile) {
        matmul(row_slice(both, tile * kTileRows, kTileRows), x.data(), n, y_tile.data());
        for (int64_t t = 0; t < n; ++t)
          EXPECT_EQ(0, std::memcmp(y.data() + t * both.rows + tile * kTileRows, y_tile.data() + t * kTileRows, kTileRows * sizeof(float)))
              << n << " tokens, token " << t << ", tile " << tile;
      }
    }
    set_threads(threads_before);
  }
}

// Every tiled kernel forms each row's block sums exactly in int32 and takes the same
// float steps with them (Q4_0, Q8_0: one multiply-add per 32 columns; Q4_K: two per
// super-block), so the ISAs give the same bits. Q6_K is scaled by sc_j in int32 by the
// 256-bit kernels (AVX2, AVX-VNNI) and in float by AVX-512: those two groups each agree
// bit for bit, and with each other within the reference's bounds (AgreesWithTheReferenceOnEveryIsa).
TEST_P(TiledMatmulTest, EveryIsaGivesTheSameBits) {
  const std::vector<Isa> isas = tiled_isas(GetParam());
  if (isas.size() < 2) GTEST_SKIP() << "one tiled ISA on this CPU";
  auto group = [&](Isa isa) { return GetParam() == GgmlType::Q6_K && isa == Isa::Avx512 ? 1 : 0; };
  std::mt19937 rng(13 + static_cast<int>(GetParam()));
  set_isa(isas.back());
  const int64_t cols = cols_for(GetParam(), 8);
  Weights w = make_weights(GetParam(), 45, cols, Data::Adversarial, rng);
  std::vector<uint8_t> tiles(tiled_bytes(w.view));
  const WeightView t = tile_weights(w.view, tiles.data());
  int compared = 0;
  for (int64_t n : {1, 2, 5, 9, 33, 75}) {
    const std::vector<float> x = make_activations(n, cols, Data::Adversarial, rng);
    std::vector<float> first[2];  // per group: the first ISA's output
    for (Isa isa : isas) {
      set_isa(isa);
      std::vector<float> out(static_cast<size_t>(n * t.rows), NAN);
      matmul(t, x.data(), n, out.data());
      std::vector<float>& ref = first[group(isa)];
      if (ref.empty()) {
        ref = out;
        continue;
      }
      ++compared;
      EXPECT_EQ(0, std::memcmp(ref.data(), out.data(), out.size() * sizeof(float))) << n << " tokens, " << isa_name(isa);
    }
  }
  if (compared == 0) GTEST_SKIP() << "no two ISAs of the same group on this CPU";
}

// The one-token kernels with and without software prefetch: the same products, bit for
// bit, and both within the reference's bounds (check()).
TEST_P(TiledMatmulTest, DecodeWithAndWithoutPrefetchAgree) {
  const std::vector<Isa> isas = tiled_isas(GetParam());
  if (isas.empty()) GTEST_SKIP() << "no int8 tiled kernel for this type on this CPU";
  std::mt19937 rng(71 + static_cast<int>(GetParam()));
  set_threads(2);
  const bool before = decode_prefetch();
  Weights w = make_weights(GetParam(), 301, cols_for(GetParam(), 8), Data::Adversarial, rng);
  std::vector<float> x = make_activations(1, w.view.cols, Data::Random, rng);
  for (Isa isa : isas) {
    SCOPED_TRACE(isa_name(isa));
    set_isa(isa);
    std::vector<uint8_t> tiles(tiled_bytes(w.view));
    const WeightView t = tile_weights(w.view, tiles.data());
    std::vector<float> y[2];
    for (bool on : {false, true}) {
      set_decode_prefetch(on);
      y[on].assign(static_cast<size_t>(t.rows), NAN);
      matmul(t, x.data(), 1, y[on].data());
      check({GetParam(), 37, cols_for(GetParam(), 3), Data::Random, 0, true}, isa, 1, rng);
    }
    EXPECT_EQ(0, std::memcmp(y[0].data(), y[1].data(), y[0].size() * sizeof(float)));
  }
  set_decode_prefetch(before);
}

// The load-time choice: nothing to learn from a small model; on 64 MB or more of tiles
// both settings are timed and the faster one is kept.
TEST(DecodePrefetch, TunedOnlyOnWeightsBeyondTheCaches) {
  const std::vector<Isa> isas = tiled_isas(GgmlType::Q8_0);
  if (isas.empty() || std::getenv("MLAMOE_PREFETCH")) GTEST_SKIP() << "no tiled kernel, or forced";
  std::mt19937 rng(5);
  set_isa(isas.front());  // the narrowest: the tuning is the same code under every ISA
  Weights small = make_weights(GgmlType::Q8_0, 64, 256, Data::Random, rng);
  std::vector<uint8_t> small_tiles(tiled_bytes(small.view));
  const WeightView s = tile_weights(small.view, small_tiles.data());
  const WeightView* one[] = {&s};
  EXPECT_FALSE(tune_decode_prefetch(one, 1).tuned);

  Weights big = make_weights(GgmlType::Q8_0, 4096, 4096, Data::Random, rng);  // 17.8 MB
  std::vector<uint8_t> big_tiles(tiled_bytes(big.view));
  const WeightView b = tile_weights(big.view, big_tiles.data());
  std::vector<std::vector<uint8_t>> copies(4, big_tiles);  // 5 distinct copies: 89 MB
  std::vector<WeightView> views(5, b);
  for (size_t i = 0; i < copies.size(); ++i) views[i + 1].data = copies[i].data();
  std::vector<const WeightView*> ptrs;
  for (const WeightView& v : views) ptrs.push_back(&v);
  const PrefetchChoice c = tune_decode_prefetch(ptrs.data(), ptrs.size());
  EXPECT_TRUE(c.tuned);
  EXPECT_GT(c.gbps_on, 0.0);
  EXPECT_GT(c.gbps_off, 0.0);
  EXPECT_EQ(c.on, c.gbps_on >= c.gbps_off);
  EXPECT_EQ(decode_prefetch(), c.on);
  set_decode_prefetch(true);
}

// The model's form: any decode-like pass (the model's is one token through the routed
// experts), timed once to warm up, then with and without prefetch in turns (ABBAABBA).
TEST(DecodePrefetch, TimesAPassWithAndWithoutInTurns) {
  const std::vector<Isa> isas = tiled_isas(GgmlType::Q8_0);
  if (isas.empty() || std::getenv("MLAMOE_PREFETCH")) GTEST_SKIP() << "no tiled kernel, or forced";
  set_isa(isas.front());
  std::vector<uint8_t> buffer(size_t{8} << 20, 1);
  std::vector<bool> seen;
  const PrefetchChoice c = tune_decode_prefetch([&] {
    seen.push_back(decode_prefetch());
    uint64_t sum = 0;
    for (size_t i = 0; i < buffer.size(); i += 64) sum += buffer[i];
    return sum * 64;  // the bytes touched
  });
  ASSERT_EQ(seen.size(), 9u);
  const std::vector<bool> turns(seen.begin() + 1, seen.end());
  EXPECT_EQ(turns, (std::vector<bool>{true, false, false, true, true, false, false, true}));
  EXPECT_TRUE(c.tuned);
  EXPECT_GT(c.gbps_on, 0.0);
  EXPECT_EQ(c.on, c.gbps_on >= c.gbps_off);
  EXPECT_EQ(decode_prefetch(), c.on);
  set_isa(Isa::Scalar);  // no tiled kernel prefetches: nothing timed
  seen.clear();
  EXPECT_FALSE(tune_decode_prefetch([&] { seen.push_back(true); return uint64_t{1}; }).tuned);
  EXPECT_TRUE(seen.empty());
  set_isa(isas.front());
  set_decode_prefetch(true);
}

// Column slices (a shared expert's part of the shared down matrix) fall on tile-blocks:
// 32 columns, or the K-quants' 256-column super-blocks; a cut inside one is refused. The
// model slices the file's rows first and tiles each slice on its own (one contiguous
// stream per expert): rows longer than the slice, read at the full matrix's stride.
TEST_P(TiledMatmulTest, ColumnSlicesOnTileBlockBoundaries) {
  if (tiled_isas(GetParam()).empty()) GTEST_SKIP() << "no int8 tiled kernel for this type on this CPU";
  const GgmlType type = GetParam();
  std::mt19937 rng(57 + static_cast<int>(type));
  const int64_t bc = tile_block_cols(type);
  ASSERT_GT(bc, 0);
  for (Isa isa : available_isas())  // those without a kernel for the type read its tiles through the reference
    for (int64_t n : {1, 9})
      for (auto [c0, len] : {std::pair<int64_t, int64_t>{0, bc}, {bc, 2 * bc}, {3 * bc, bc}}) {
        check({type, 21, 4 * bc, Data::Random, 8, true, c0, len}, isa, n, rng);
        check({type, 35, 4 * bc, Data::Adversarial, 0, true, c0, len}, isa, n, rng);
        check({type, 35, 4 * bc, Data::Adversarial, 0, true, c0, len, /*slice_then_tile=*/true}, isa, n, rng);
      }
  set_isa(tiling_isa(type));
  Weights w = make_weights(type, 16, 2 * bc, Data::Random, rng);
  std::vector<uint8_t> tiles(tiled_bytes(w.view));
  const WeightView t = tile_weights(w.view, tiles.data());
  EXPECT_THROW(column_slice(t, bc / 2, bc), Error);
  EXPECT_THROW(column_slice(t, 0, bc / 2), Error);
}

// A K-quant tile-block keeps its 16 rows' 6-bit sc_j and m_j in 192 bytes, as the file
// does (12 a row): every value 0..63 in every one of the 256 places comes back, and the
// tile-blocks are exactly as long as the file's 16 super-blocks.
TEST(TiledLayout, KQuantScalesPackIntoTheFileBytesAndComeBack) {
  EXPECT_EQ(tile_block_bytes(GgmlType::Q4_K), 16 * sizeof(BlockQ4_K));
  EXPECT_EQ(tile_block_bytes(GgmlType::Q5_K), 16 * sizeof(BlockQ5_K));
  for (int shift = 0; shift < 64; ++shift) {
    uint8_t unpacked[kQ4KScalesBytes], packed[kQ4KTileQuants - kQ4KTileScales], back[kQ4KScalesBytes];
    for (size_t k = 0; k < kQ4KScalesBytes; ++k) unpacked[k] = static_cast<uint8_t>((k * 7 + static_cast<size_t>(shift)) % 64);
    std::memset(back, 0xFF, sizeof back);
    q4_k_pack_scales(unpacked, packed);
    q4_k_unpack_scales(packed, back);
    ASSERT_EQ(0, std::memcmp(unpacked, back, sizeof back)) << "shift " << shift;
  }
}

INSTANTIATE_TEST_SUITE_P(TiledTypes, TiledMatmulTest,
                         ::testing::Values(GgmlType::Q4_0, GgmlType::Q8_0, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K),
                         [](const auto& info) { return std::string(type_name(info.param)); });

INSTANTIATE_TEST_SUITE_P(AllTypes, MatmulTest, ::testing::ValuesIn(kTypes),
                         [](const auto& info) { return std::string(type_name(info.param)); });

// The vector quantizer must give the scalar one's bytes exactly (every ISA then
// multiplies the same integers), including rows whose special blocks (zeros, inf, nan,
// denormal and huge values) hand the rest of the row back to the scalar loop.
TEST(ActivationQuant, EveryIsaGivesTheScalarBytes) {
  const Isa saved = active_isa();
  std::mt19937 rng(8);
  const int64_t cols = 2048;
  std::vector<std::vector<float>> rows;
  for (int r = 0; r < 6; ++r) rows.push_back(make_activations(1, cols, r % 2 ? Data::Adversarial : Data::Random, rng));
  rows[2][100] = INFINITY;
  rows[3][1500] = NAN;
  std::fill(rows[4].begin() + 64, rows[4].begin() + 96, 0.f);
  for (int64_t i = 1024; i < 1056; ++i) rows[5][static_cast<size_t>(i)] = 1e-38f * static_cast<float>(i - 1040);
  for (auto& v : rows[1]) v *= 1e37f;
  for (const auto& x : rows)
    for (ActFormat f : {ActFormat::Q8, ActFormat::Q8S16, ActFormat::Q8K32}) {
      std::vector<uint8_t> want(activation_row_bytes(f, cols)), got(want.size());
      set_isa(Isa::Scalar);
      quantize_activation_row(f, x.data(), want.data(), cols);
      for (Isa isa : available_isas()) {
        set_isa(isa);
        quantize_activation_row(f, x.data(), got.data(), cols);
        EXPECT_EQ(std::memcmp(want.data(), got.data(), want.size()), 0) << isa_name(isa);
      }
    }
  set_isa(saved);
}

TEST(ActivationQuant, RoundTripWithinHalfAStep) {
  std::mt19937 rng(5);
  for (ActFormat f : {ActFormat::Q8, ActFormat::Q8K, ActFormat::Q8K32}) {
    std::vector<float> x = make_activations(1, 1024, Data::Adversarial, rng), back(1024);
    std::vector<uint8_t> q(activation_row_bytes(f, 1024));
    quantize_activation_row(f, x.data(), q.data(), 1024);
    dequantize_activation_row(f, q.data(), back.data(), 1024);
    const int bs = f == ActFormat::Q8 ? 32 : 256;
    for (int b = 0; b < 1024; b += bs) {
      float amax = 0;
      for (int i = b; i < b + bs; ++i) amax = std::fmax(amax, std::fabs(x[static_cast<size_t>(i)]));
      const double step = static_cast<double>(amax) / 127.0;
      for (int i = b; i < b + bs; ++i)
        ASSERT_LE(std::fabs(static_cast<double>(x[static_cast<size_t>(i)]) - back[static_cast<size_t>(i)]), step * 0.5001 + 1e-45) << i;
    }
    if (f == ActFormat::Q8K) {  // bsums are the sums of the quants
      auto* blk = reinterpret_cast<const BlockQ8_K*>(q.data());
      for (int g = 0; g < 16; ++g) {
        int s = 0;
        for (int j = 0; j < 16; ++j) s += blk->qs[g * 16 + j];
        EXPECT_EQ(s, blk->bsums[g]);
      }
    }
    if (f == ActFormat::Q8K32)  // sums are the sums of the quants per 32
      for (int b = 0; b < 1024 / 256; ++b) {
        auto* blk = reinterpret_cast<const ActQ8K32*>(q.data()) + b;
        for (int j = 0; j < 8; ++j) {
          int s = 0;
          for (int i = 0; i < 32; ++i) s += blk->qs[32 * j + i];
          EXPECT_EQ(s, blk->sums[j]) << "block " << b << " sum " << j;
        }
      }
  }
}

// Q8S16 is Q8 (d and quants byte for byte, so Q8's round trip) with the sum split.
TEST(ActivationQuant, Q8S16IsQ8WithTheSumSplitInHalves) {
  std::mt19937 rng(6);
  std::vector<float> x = make_activations(1, 1024, Data::Adversarial, rng);
  std::vector<uint8_t> q(activation_row_bytes(ActFormat::Q8S16, 1024)), q8(activation_row_bytes(ActFormat::Q8, 1024));
  ASSERT_EQ(q.size(), q8.size());
  quantize_activation_row(ActFormat::Q8S16, x.data(), q.data(), 1024);
  quantize_activation_row(ActFormat::Q8, x.data(), q8.data(), 1024);
  for (int b = 0; b < 1024 / 32; ++b) {
    ActQ8S16 s16;
    ActQ8 a8;
    std::memcpy(&s16, q.data() + sizeof(ActQ8) * b, sizeof s16);
    std::memcpy(&a8, q8.data() + sizeof(ActQ8) * b, sizeof a8);
    EXPECT_EQ(std::memcmp(&s16.d, &a8.d, 4), 0);
    EXPECT_EQ(std::memcmp(s16.qs, a8.qs, 32), 0);
    EXPECT_EQ(-8 * (s16.sums[0] + s16.sums[1]), a8.minus_8_sum);
    int lo = 0;
    for (int j = 0; j < 16; ++j) lo += s16.qs[j];
    EXPECT_EQ(lo, s16.sums[0]);
  }
}

TEST(Dispatch, IsaNamesAndSupport) {
  Isa isa;
  EXPECT_TRUE(parse_isa("avx2", &isa));
  EXPECT_EQ(isa, Isa::Avx2);
  EXPECT_TRUE(parse_isa("avxvnni", &isa));
  EXPECT_EQ(isa, Isa::AvxVnni);
  EXPECT_STREQ(isa_family_name(Isa::AvxVnni), "avx2");
  EXPECT_FALSE(parse_isa("sse9", &isa));
  EXPECT_TRUE(cpu_supports(Isa::Scalar));
  EXPECT_TRUE(cpu_supports(active_isa()));
}

TEST(Dispatch, RejectsRowsNotAMultipleOfTheBlock) {
  std::vector<uint8_t> bytes(1024);
  WeightView w{GgmlType::Q4_K, bytes.data(), 1, 100, 1024};
  std::vector<float> x(100), y(1);
  EXPECT_THROW(matmul(w, x.data(), 1, y.data()), Error);
}

}  // namespace
