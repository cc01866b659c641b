// Standard MLA attention kernels (the naive path): the scalar reference and every
// vector path the CPU has against softmax attention computed in double, over odd
// widths (every vector tail), row counts that leave a partial lane group, strided
// rows, causal edges inside and at the borders of key tiles, and keys fed in chunks.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "kernels/attention_dense.h"
#include "kernels/kernels.h"

using namespace mlamoe::kernels;

namespace {

struct Shape {
  int64_t rows, d_nope, d_rope, d_v, n;
  bool causal;
};

struct Problem {
  Shape sh;
  int64_t q_stride, k_stride, r_stride, v_stride;
  std::vector<float> q, k_nope, k_rope, v;
  std::vector<int64_t> last_pos;
  float scale;
  Problem(const Shape& s, uint32_t seed) : sh(s) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> nd;
    // Rows wider than their data, as in the model (heads side by side).
    q_stride = s.d_nope + s.d_rope + 3;
    k_stride = s.d_nope + 5;
    r_stride = s.d_rope + 1;
    v_stride = s.d_v + 2;
    auto fill = [&](std::vector<float>& x, int64_t count) {
      x.resize(static_cast<size_t>(count));
      for (auto& e : x) e = nd(rng);
    };
    fill(q, s.rows * q_stride);
    fill(k_nope, s.n * k_stride);
    fill(k_rope, s.n * r_stride);
    fill(v, s.n * v_stride);
    // Sharp enough that the running max moves, not so sharp that one key takes all.
    scale = 3.f / std::sqrt(static_cast<float>(s.d_nope + s.d_rope));
    last_pos.resize(static_cast<size_t>(s.rows));
    for (int64_t i = 0; i < s.rows; ++i) {
      // Causal: a prefill's diagonal (row i sees keys up to n - rows + i), with some
      // rows moved to tile edges and the first key.
      int64_t lp = s.causal ? s.n - s.rows + i : s.n - 1;
      if (s.causal && i % 5 == 1) lp = std::min<int64_t>(s.n - 1, 31);
      if (s.causal && i % 7 == 2) lp = 0;
      last_pos[static_cast<size_t>(i)] = std::max<int64_t>(lp, 0);
    }
  }
  DenseQueries queries() const {
    DenseQueries d;
    d.q = q.data();
    d.last_pos = last_pos.data();
    d.rows = sh.rows;
    d.q_stride = q_stride;
    d.d_nope = sh.d_nope;
    d.d_rope = sh.d_rope;
    d.d_v = sh.d_v;
    d.scale = scale;
    return d;
  }
  // Keys fed in chunks of `chunk` positions through the dispatching entry point
  // (`fast`) or the reference.
  std::vector<float> run(int64_t chunk, bool fast) const {
    DenseAttentionState s;
    s.reset(sh.rows, sh.d_v);
    for (int64_t j0 = 0; j0 < sh.n; j0 += chunk) {
      DenseKeys k;
      k.k_nope = k_nope.data() + j0 * k_stride;
      k.k_rope = k_rope.data() + j0 * r_stride;
      k.v = v.data() + j0 * v_stride;
      k.k_stride = k_stride;
      k.r_stride = r_stride;
      k.v_stride = v_stride;
      k.pos0 = j0;
      k.count = std::min(chunk, sh.n - j0);
      if (fast) dense_attention_accumulate(queries(), k, s);
      else dense_attention_accumulate_reference(queries(), k, s);
    }
    std::vector<float> out(static_cast<size_t>(sh.rows * (sh.d_v + 1)), -7.f);
    dense_attention_finish(s, sh.d_v, out.data(), sh.d_v + 1);
    return out;
  }
  std::vector<double> exact() const {
    std::vector<double> out(static_cast<size_t>(sh.rows * (sh.d_v + 1)), -7.0);
    for (int64_t i = 0; i < sh.rows; ++i) {
      const int64_t m = last_pos[static_cast<size_t>(i)] + 1;
      std::vector<double> p(static_cast<size_t>(m));
      double mx = -1e300, sum = 0;
      for (int64_t j = 0; j < m; ++j) {
        double d = 0;
        for (int64_t c = 0; c < sh.d_nope; ++c) d += double(q[i * q_stride + c]) * k_nope[j * k_stride + c];
        for (int64_t c = 0; c < sh.d_rope; ++c) d += double(q[i * q_stride + sh.d_nope + c]) * k_rope[j * r_stride + c];
        p[static_cast<size_t>(j)] = scale * d;
        mx = std::max(mx, p[static_cast<size_t>(j)]);
      }
      for (auto& x : p) sum += x = std::exp(x - mx);
      for (int64_t c = 0; c < sh.d_v; ++c) {
        double o = 0;
        for (int64_t j = 0; j < m; ++j) o += p[static_cast<size_t>(j)] / sum * v[j * v_stride + c];
        out[i * (sh.d_v + 1) + c] = o;
      }
    }
    return out;
  }
};

double max_abs_diff(const std::vector<float>& a, const std::vector<double>& b) {
  double w = 0;
  for (size_t i = 0; i < a.size(); ++i) w = std::max(w, std::fabs(a[i] - b[i]));
  return w;
}

// V2-Lite (128 + 64, v 128), the fixtures' widths (16 + 8, v 16), odd widths that hit
// every tail (not multiples of 8 or 16), rows that leave partial lane groups, one key,
// no rotary part, more keys than one tile.
const Shape kShapes[] = {{64, 128, 64, 128, 200, true},  {37, 128, 64, 128, 37, true}, {4, 16, 8, 16, 48, true},
                         {3, 13, 5, 7, 70, false},       {17, 9, 3, 11, 33, true},     {1, 8, 8, 8, 1, false},
                         {5, 16, 0, 12, 40, true},       {33, 20, 4, 19, 129, true},   {16, 1, 1, 1, 64, true}};

std::string name(const Shape& s) {
  return std::to_string(s.rows) + "x(" + std::to_string(s.d_nope) + "+" + std::to_string(s.d_rope) + ") v" +
         std::to_string(s.d_v) + " n" + std::to_string(s.n);
}

}  // namespace

TEST(DenseAttention, ReferenceMatchesSoftmaxInDouble) {
  for (const Shape& sh : kShapes) {
    Problem p(sh, 21);
    EXPECT_LT(max_abs_diff(p.run(sh.n, false), p.exact()), 2e-5) << name(sh);
    EXPECT_LT(max_abs_diff(p.run(7, false), p.exact()), 2e-5) << name(sh) << " in chunks of 7";
  }
}

TEST(DenseAttention, EveryIsaMatchesTheReference) {
  const mlamoe::kernels::Isa saved = active_isa();
  for (Isa isa : kAllIsas) {
    if (!cpu_supports(isa)) continue;
    set_isa(isa);
    for (const Shape& sh : kShapes) {
      Problem p(sh, 22);
      const auto exact = p.exact();
      const double ref = max_abs_diff(p.run(sh.n, false), exact);
      // Whole, and in chunks that cut key tiles (1, 5, 31, 33) or match them (32).
      for (int64_t chunk : {sh.n, int64_t{1}, int64_t{5}, int64_t{31}, int64_t{32}, int64_t{33}}) {
        const double fast = max_abs_diff(p.run(chunk, true), exact);
        EXPECT_LT(fast, 2e-5) << isa_name(isa) << " " << name(sh) << " chunks of " << chunk;
        EXPECT_LT(fast, 4 * ref + 2e-6) << isa_name(isa) << " " << name(sh) << ": no worse than the reference's own rounding";
      }
    }
  }
  set_isa(saved);
}

TEST(DenseAttention, RowThatSeesNoKeyGivesZerosAndKeepsItsState) {
  const mlamoe::kernels::Isa saved = active_isa();
  for (Isa isa : kAllIsas) {
    if (!cpu_supports(isa)) continue;
    set_isa(isa);
    Problem p({19, 16, 8, 16, 10, false}, 23);
    DenseAttentionState s;
    s.reset(19, 16);
    DenseKeys k;
    k.k_nope = p.k_nope.data();
    k.k_rope = p.k_rope.data();
    k.v = p.v.data();
    k.k_stride = p.k_stride;
    k.r_stride = p.r_stride;
    k.v_stride = p.v_stride;
    k.pos0 = 100;  // later than every row's last position
    k.count = 10;
    dense_attention_accumulate(p.queries(), k, s);
    for (float m : s.m) EXPECT_EQ(m, -INFINITY) << isa_name(isa);
    std::vector<float> out(19 * 16, 1.f);
    dense_attention_finish(s, 16, out.data(), 16);
    for (float x : out) EXPECT_EQ(x, 0.f) << isa_name(isa);
  }
  set_isa(saved);
}
