// The fused MoE/SwiGLU helpers against the same computation spelled out token by
// token with kernels::matmul (must agree to float rounding: the grouping, gathering
// and scatter are pure data movement) and with matmul_reference (float activations;
// agrees within the activation quantization error of two projections).
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "common/error.h"
#include "format/quant.h"
#include "kernels/kernels.h"

using namespace mlamoe;
using namespace mlamoe::kernels;

namespace {

struct Expert {
  std::vector<uint8_t> g, u, dn;
  FfnWeights w;
};

std::vector<uint8_t> random_matrix(GgmlType type, int64_t rows, int64_t cols, std::mt19937& rng, WeightView* view) {
  std::normal_distribution<float> normal(0.f, 0.1f);
  std::vector<float> f(static_cast<size_t>(rows * cols));
  for (auto& v : f) v = normal(rng);
  const size_t rb = row_bytes(type, cols);
  std::vector<uint8_t> bytes(rb * static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) quantize_row(type, f.data() + r * cols, bytes.data() + rb * static_cast<size_t>(r), cols);
  *view = WeightView{type, bytes.data(), rows, cols, rb};
  return bytes;
}

std::vector<Expert> make_experts(int n, GgmlType gu, GgmlType down, int64_t d, int64_t ff, std::mt19937& rng) {
  std::vector<Expert> ex(static_cast<size_t>(n));
  for (auto& e : ex) {
    e.g = random_matrix(gu, ff, d, rng, &e.w.gate);
    e.u = random_matrix(gu, ff, d, rng, &e.w.up);
    e.dn = random_matrix(down, d, ff, rng, &e.w.down);
  }
  return ex;
}

using MatmulFn = void (*)(const WeightView&, const float*, int64_t, float*);
std::vector<float> ffn_one_token(const FfnWeights& w, const float* x, MatmulFn mm) {
  const int64_t ff = w.gate.rows, d = w.down.rows;
  std::vector<float> g(static_cast<size_t>(ff)), u(g.size()), y(static_cast<size_t>(d));
  mm(w.gate, x, 1, g.data());
  mm(w.up, x, 1, u.data());
  for (size_t j = 0; j < g.size(); ++j) g[j] = g[j] / (1.f + std::exp(-g[j])) * u[j];
  mm(w.down, g.data(), 1, y.data());
  return y;
}

void check_moe(GgmlType gu, GgmlType down, int64_t n, int k, int threads, int64_t ff = 512) {
  const int64_t d = 256;
  const int n_exp = 8;
  std::mt19937 rng(static_cast<unsigned>(n * 31 + k));
  auto ex = make_experts(n_exp, gu, down, d, ff, rng);
  std::vector<FfnWeights> views;
  for (auto& e : ex) views.push_back(e.w);
  std::normal_distribution<float> normal(0.f, 1.f);
  std::vector<float> x(static_cast<size_t>(n * d));
  for (auto& v : x) v = normal(rng);
  std::vector<int32_t> ids(static_cast<size_t>(n * k));
  std::vector<float> wts(ids.size());
  for (int64_t t = 0; t < n; ++t)
    for (int i = 0; i < k; ++i) {  // distinct experts per token, some experts unused
      ids[static_cast<size_t>(t * k + i)] = static_cast<int32_t>((t * 3 + i * 2) % (n_exp - 1));
      wts[static_cast<size_t>(t * k + i)] = 0.25f + 0.1f * static_cast<float>(i);
    }
  std::vector<float> y(x.size(), 0.5f), want(x.size(), 0.5f), loose(x.size(), 0.5f);
  set_threads(threads);
  moe_ffn(views.data(), n_exp, x.data(), n, ids.data(), wts.data(), k, y.data());
  for (int64_t t = 0; t < n; ++t)
    for (int i = 0; i < k; ++i) {
      const auto& w = views[static_cast<size_t>(ids[static_cast<size_t>(t * k + i)])];
      const float wt = wts[static_cast<size_t>(t * k + i)];
      auto a = ffn_one_token(w, x.data() + t * d, matmul);
      auto b = ffn_one_token(w, x.data() + t * d, matmul_reference);
      for (int64_t j = 0; j < d; ++j) {
        want[static_cast<size_t>(t * d + j)] += wt * a[static_cast<size_t>(j)];
        loose[static_cast<size_t>(t * d + j)] += wt * b[static_cast<size_t>(j)];
      }
    }
  double scale = 0;
  for (float v : loose) scale = std::max(scale, static_cast<double>(std::fabs(v)));
  for (size_t i = 0; i < y.size(); ++i) {
    ASSERT_NEAR(y[i], want[i], 1e-5 * scale) << "slot-grouped vs per token, i=" << i;
    ASSERT_NEAR(y[i], loose[i], 2e-2 * scale) << "vs float reference, i=" << i;
  }
}

TEST(MoeFfn, MatchesPerTokenExpertsQ4_0) {
  for (int64_t n : {1, 3, 9})
    for (int th : {1, 2}) check_moe(GgmlType::Q4_0, GgmlType::Q8_0, n, 3, th);
}

// An FFN width that is not a multiple of the 256-row work items: the last item of each
// expert is short, and it still finishes (silu, quantize) its own blocks of h.
TEST(MoeFfn, MatchesPerTokenExpertsWithAShortLastItem) {
  for (int th : {1, 2}) {
    check_moe(GgmlType::Q4_0, GgmlType::Q8_0, 7, 2, th, 352);
    check_moe(GgmlType::F16, GgmlType::F32, 3, 2, th, 352);
  }
}

// One token (every selected expert has one token: the threads split the experts' rows
// as contiguous runs, SplitQueue) and a batch where each expert has two.
TEST(MoeFfn, MatchesPerTokenExpertsWhenEveryExpertHasAsManyTokens) {
  for (int th : {1, 2, 3}) {
    check_moe(GgmlType::Q4_0, GgmlType::Q8_0, 1, 6, th);
    check_moe(GgmlType::Q4_0, GgmlType::Q8_0, 7, 2, th, 352);  // ids cover each of 7 experts twice
  }
}

TEST(MoeFfn, MatchesPerTokenExpertsKQuantsAndFloat) {
  check_moe(GgmlType::Q4_K, GgmlType::Q6_K, 5, 2, 2);
  check_moe(GgmlType::F16, GgmlType::F32, 4, 2, 2);
}

TEST(MoeFfn, RejectsBadExpertIds) {
  std::mt19937 rng(1);
  auto ex = make_experts(2, GgmlType::Q8_0, GgmlType::Q8_0, 64, 64, rng);
  FfnWeights v[2] = {ex[0].w, ex[1].w};
  std::vector<float> x(64), y(64);
  int32_t ids[1] = {2};
  float w[1] = {1.f};
  EXPECT_THROW(moe_ffn(v, 2, x.data(), 1, ids, w, 1, y.data()), Error);
}

// An expert whose matrices differ from expert 0's is an error when a token selects it
// (the kernel checks the experts it reads, not all of them).
TEST(MoeFfn, RejectsASelectedExpertOfAnotherShape) {
  std::mt19937 rng(2);
  auto ex = make_experts(2, GgmlType::Q8_0, GgmlType::Q8_0, 64, 64, rng);
  auto odd = make_experts(1, GgmlType::Q8_0, GgmlType::Q8_0, 64, 32, rng);  // ff 32, not 64
  FfnWeights v[3] = {ex[0].w, ex[1].w, odd[0].w};
  std::vector<float> x(64, 0.5f), y(64);
  float w[1] = {1.f};
  int32_t fine[1] = {1}, bad[1] = {2};
  EXPECT_NO_THROW(moe_ffn(v, 3, x.data(), 1, fine, w, 1, y.data()));
  EXPECT_THROW(moe_ffn(v, 3, x.data(), 1, bad, w, 1, y.data()), Error);
}

TEST(SwigluFfn, EqualsOneExpertWithWeightOne) {
  std::mt19937 rng(3);
  auto ex = make_experts(1, GgmlType::Q5_K, GgmlType::Q4_K, 256, 256, rng);
  std::normal_distribution<float> normal(0.f, 1.f);
  const int64_t n = 6;
  std::vector<float> x(static_cast<size_t>(n * 256)), y(x.size(), 7.f);
  for (auto& v : x) v = normal(rng);
  swiglu_ffn(ex[0].w, x.data(), n, y.data());
  for (int64_t t = 0; t < n; ++t) {
    auto a = ffn_one_token(ex[0].w, x.data() + t * 256, matmul);
    for (int64_t j = 0; j < 256; ++j) ASSERT_NEAR(y[static_cast<size_t>(t * 256 + j)], a[static_cast<size_t>(j)], 1e-5 * (1 + std::fabs(a[static_cast<size_t>(j)])));
  }
}

}  // namespace

// The vector silu·up agrees with the scalar definition (libm exp) to a few float ulps
// over the whole range a hidden unit takes, tails and saturation included (below 1e-30
// in magnitude, float exp overflow gives 0 where double does not: irrelevant).
TEST(SiluMul, EveryIsaMatchesTheScalarDefinition) {
  const Isa saved = active_isa();
  std::vector<float> g0;
  for (float x = -120.f; x <= 120.f; x += 0.0137f) g0.push_back(x);
  for (float x : {0.f, -0.f, 1e-30f, -1e-30f, 88.f, -88.f, 89.f, -89.f, 1e30f, -1e30f}) g0.push_back(x);
  std::mt19937 rng(2);
  std::normal_distribution<float> nd(0.f, 3.f);
  for (int i = 0; i < 1001; ++i) g0.push_back(nd(rng));  // odd count: a masked tail
  std::vector<float> u(g0.size());
  for (auto& v : u) v = nd(rng);
  for (Isa isa : {Isa::Avx2, Isa::AvxVnni, Isa::Avx512}) {
    if (!cpu_supports(isa)) continue;
    set_isa(isa);
    std::vector<float> g = g0;
    silu_mul(g.data(), u.data(), static_cast<int64_t>(g.size()));
    for (size_t j = 0; j < g.size(); ++j) {
      const double x = g0[j], want = x / (1.0 + std::exp(-x)) * u[j];
      ASSERT_NEAR(g[j], want, 1e-6 * std::fabs(want) + 1e-30) << isa_name(isa) << " x " << x;
    }
  }
  set_isa(saved);
}
