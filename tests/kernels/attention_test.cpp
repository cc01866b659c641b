// Absorbed MLA attention kernels: the AVX2 path against the scalar reference and both
// against softmax attention computed in double; the result must not depend on how the
// keys are cut into runs (a paged cache and a contiguous one must give the same bits);
// split-K merging equals one sweep.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/attention.h"
#include "kernels/kernels.h"

using namespace mlamoe::kernels;

namespace {

struct Problem {
  int64_t rows, d_c, d_r, n;
  std::vector<float> q_lat, q_rope, c_kv, k_rope;
  std::vector<int64_t> last_pos;
  float scale;
  Problem(int64_t rows_, int64_t d_c_, int64_t d_r_, int64_t n_, bool causal, uint32_t seed)
      : rows(rows_), d_c(d_c_), d_r(d_r_), n(n_) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> nd;
    auto fill = [&](std::vector<float>& v, int64_t count, float sd) {
      v.resize(static_cast<size_t>(count));
      for (auto& x : v) x = sd * nd(rng);
    };
    fill(q_lat, rows * d_c, 1.f);
    fill(q_rope, rows * d_r, 1.f);
    fill(c_kv, n * d_c, 1.f);
    fill(k_rope, n * d_r, 1.f);
    // Sharp enough that the running max moves, not so sharp that one key takes all.
    scale = 3.f / std::sqrt(static_cast<float>(d_c + d_r));
    last_pos.resize(static_cast<size_t>(rows));
    for (int64_t i = 0; i < rows; ++i) last_pos[static_cast<size_t>(i)] = causal ? static_cast<int64_t>(rng() % n) : n - 1;
  }
  LatentQueries queries() const {
    LatentQueries q;
    q.q_lat = q_lat.data();
    q.q_rope = q_rope.data();
    q.last_pos = last_pos.data();
    q.rows = rows;
    q.d_c = d_c;
    q.d_r = d_r;
    q.scale = scale;
    return q;
  }
  // Keys cut into runs of `run` positions; `fast` picks the dispatching entry point,
  // told where the sweep goes next as a paged cache tells it.
  std::vector<float> run(int64_t run_len, bool fast) const {
    LatentAttentionState s;
    s.reset(rows, d_c);
    for (int64_t j0 = 0; j0 < n; j0 += run_len) {
      const int64_t cnt = std::min(run_len, n - j0), after = j0 + cnt;
      const NextRun<float> next{c_kv.data() + after * d_c, k_rope.data() + after * d_r, std::min(run_len, n - after)};
      if (fast) latent_attention_accumulate(queries(), j0, cnt, c_kv.data() + j0 * d_c, k_rope.data() + j0 * d_r, s, next);
      else latent_attention_accumulate_reference(queries(), j0, cnt, c_kv.data() + j0 * d_c, k_rope.data() + j0 * d_r, s);
    }
    std::vector<float> out(static_cast<size_t>(rows * d_c));
    latent_attention_finish(s, d_c, out.data());
    return out;
  }
  // Plain softmax attention in double.
  std::vector<double> exact() const {
    std::vector<double> out(static_cast<size_t>(rows * d_c), 0.0);
    for (int64_t i = 0; i < rows; ++i) {
      const int64_t m = last_pos[static_cast<size_t>(i)] + 1;
      std::vector<double> p(static_cast<size_t>(m));
      double mx = -1e300, sum = 0;
      for (int64_t j = 0; j < m; ++j) {
        double d = 0;
        for (int64_t k = 0; k < d_c; ++k) d += double(q_lat[i * d_c + k]) * c_kv[j * d_c + k];
        for (int64_t k = 0; k < d_r; ++k) d += double(q_rope[i * d_r + k]) * k_rope[j * d_r + k];
        p[static_cast<size_t>(j)] = scale * d;
        mx = std::max(mx, p[static_cast<size_t>(j)]);
      }
      for (auto& x : p) sum += x = std::exp(x - mx);
      for (int64_t j = 0; j < m; ++j)
        for (int64_t k = 0; k < d_c; ++k) out[i * d_c + k] += p[static_cast<size_t>(j)] / sum * c_kv[j * d_c + k];
    }
    return out;
  }
};

double max_abs_diff(const std::vector<float>& a, const std::vector<double>& b) {
  double w = 0;
  for (size_t i = 0; i < a.size(); ++i) w = std::max(w, std::fabs(a[i] - b[i]));
  return w;
}

struct Shape {
  int64_t rows, d_c, d_r, n;
  bool causal;
};
// V2-Lite (16 heads, 512 + 64), the fixtures' widths (32 + 8), odd widths that hit every
// tail (d not a multiple of 8 or 16), several tokens per call (prefill), one key.
const Shape kShapes[] = {{16, 512, 64, 300, false}, {64, 512, 64, 97, true}, {4, 32, 8, 48, true},
                         {3, 36, 12, 70, false},    {7, 45, 5, 33, true},    {1, 8, 8, 1, false},
                         {5, 16, 0, 40, true},      {17, 520, 64, 129, true}};

}  // namespace

TEST(LatentAttention, ReferenceMatchesSoftmaxInDouble) {
  for (const Shape& sh : kShapes) {
    Problem p(sh.rows, sh.d_c, sh.d_r, sh.n, sh.causal, 11);
    EXPECT_LT(max_abs_diff(p.run(sh.n, false), p.exact()), 2e-5) << sh.rows << "x" << sh.d_c << "+" << sh.d_r << " n " << sh.n;
  }
}

TEST(LatentAttention, FastPathMatchesReferenceOnEveryIsa) {
  const Isa saved = active_isa();
  for (Isa isa : {Isa::Avx2, Isa::AvxVnni, Isa::Avx512}) {
    if (!cpu_supports(isa)) continue;
    set_isa(isa);
    for (const Shape& sh : kShapes) {
      Problem p(sh.rows, sh.d_c, sh.d_r, sh.n, sh.causal, 12);
      const auto exact = p.exact();
      const double ref = max_abs_diff(p.run(sh.n, false), exact), fast = max_abs_diff(p.run(sh.n, true), exact);
      EXPECT_LT(fast, 2e-5) << isa_name(isa) << " " << sh.rows << "x" << sh.d_c << "+" << sh.d_r << " n " << sh.n;
      EXPECT_LT(fast, 4 * ref + 1e-6) << "no worse than the reference's own float rounding";
    }
  }
  set_isa(saved);
}

// A paged cache hands the kernel one run per block (32, or 4/5/7 in tests), a
// contiguous cache one run: the bits must be the same.
TEST(LatentAttention, ResultDoesNotDependOnHowKeysAreCutIntoRuns) {
  const Isa saved = active_isa();
  for (Isa isa : kAllIsas) {
    if (!cpu_supports(isa)) continue;
    set_isa(isa);
    for (const Shape& sh : kShapes) {
      Problem p(sh.rows, sh.d_c, sh.d_r, sh.n, sh.causal, 13);
      const auto whole = p.run(sh.n, true);
      for (int64_t run : {1, 4, 5, 7, 32, 33}) {
        const auto cut = p.run(run, true);
        ASSERT_EQ(0, std::memcmp(whole.data(), cut.data(), whole.size() * sizeof(float)))
            << isa_name(isa) << " runs of " << run << ", shape " << sh.rows << "x" << sh.d_c << " n " << sh.n;
      }
    }
  }
  set_isa(saved);
}

TEST(LatentAttention, SplitKeyRangesMergeToTheWholeSweep) {
  for (const Shape& sh : kShapes) {
    if (sh.n < 3) continue;
    Problem p(sh.rows, sh.d_c, sh.d_r, sh.n, sh.causal, 14);
    const auto exact = p.exact();
    const LatentQueries q = p.queries();
    // Three ranges, merged in order; the middle one may be empty for some causal rows.
    const int64_t cut1 = sh.n / 3, cut2 = 2 * sh.n / 3;
    LatentAttentionState a, b, c;
    for (auto* s : {&a, &b, &c}) s->reset(sh.rows, sh.d_c);
    latent_attention_accumulate(q, 0, cut1, p.c_kv.data(), p.k_rope.data(), a);
    latent_attention_accumulate(q, cut1, cut2 - cut1, p.c_kv.data() + cut1 * sh.d_c, p.k_rope.data() + cut1 * sh.d_r, b);
    latent_attention_accumulate(q, cut2, sh.n - cut2, p.c_kv.data() + cut2 * sh.d_c, p.k_rope.data() + cut2 * sh.d_r, c);
    latent_attention_merge(a, b, sh.d_c);
    latent_attention_merge(a, c, sh.d_c);
    std::vector<float> out(static_cast<size_t>(sh.rows * sh.d_c));
    latent_attention_finish(a, sh.d_c, out.data());
    EXPECT_LT(max_abs_diff(out, exact), 2e-5) << sh.rows << "x" << sh.d_c << " n " << sh.n;
  }
}

TEST(LatentAttention, RowThatSeesNoKeyGivesZeros) {
  Problem p(4, 32, 8, 10, false, 15);
  LatentQueries q = p.queries();
  LatentAttentionState s;
  s.reset(4, 32);
  // Keys at positions 100.. are all later than every row's last position.
  latent_attention_accumulate(q, 100, 10, p.c_kv.data(), p.k_rope.data(), s);
  std::vector<float> out(4 * 32, 1.f);
  latent_attention_finish(s, 32, out.data());
  for (float v : out) EXPECT_EQ(v, 0.f);
}

// The bf16 kernel takes d_c in multiples of 32 and any rotary width; the others fall
// back to fp32. Row groups of 8 and their tails, tiles and pairs cut short.
const Shape kBf16Shapes[] = {{16, 512, 64, 300, false}, {64, 512, 64, 97, true}, {17, 512, 64, 129, true},
                             {4, 32, 8, 48, true},       {9, 64, 40, 71, true},   {3, 96, 0, 33, false},
                             {1, 32, 8, 1, false},       {3, 36, 12, 70, false}};

// Keys cached in bf16 (--kv-type bf16). The reference is softmax in double over the
// same rounded keys, so what is measured is the kernel's own rounding: on AVX-512 BF16
// the query and the softmax weights are rounded to bf16 (8 significant bits), elsewhere
// the keys are widened and the fp32 kernel runs. Runs of every length, tiles and pairs
// cut at odd places, causal rows that see no key of a run.
// v rounded to bf16 (to nearest even, as the cache stores it) in place; the bit patterns.
std::vector<uint16_t> round_in_place_to_bf16(std::vector<float>& v) {
  std::vector<uint16_t> b(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    uint32_t u;
    std::memcpy(&u, &v[i], 4);
    b[i] = static_cast<uint16_t>((u + 0x7FFF + ((u >> 16) & 1)) >> 16);
    u = static_cast<uint32_t>(b[i]) << 16;
    std::memcpy(&v[i], &u, 4);
  }
  return b;
}

// The next run is only prefetched, never read into the result: told nothing, or told
// of keys full of NaN, the kernels give the bits they give when told the truth.
TEST(LatentAttention, NextRunIsOnlyPrefetched) {
  const Isa saved = active_isa();
  for (Isa isa : kAllIsas) {
    if (!cpu_supports(isa)) continue;
    set_isa(isa);
    Problem p(16, 512, 64, 96, true, 18);
    std::vector<float> c_nan(p.c_kv.size(), std::nanf("")), r_nan(p.k_rope.size(), std::nanf(""));
    std::vector<float> rounded_c = p.c_kv, rounded_r = p.k_rope;
    const std::vector<uint16_t> c16 = round_in_place_to_bf16(rounded_c), r16 = round_in_place_to_bf16(rounded_r);
    const std::vector<uint16_t> c16_nan(c16.size(), 0x7FC0), r16_nan(r16.size(), 0x7FC0);
    enum class Told { Truth, Nothing, Nan };
    const auto sweep = [&](bool bf16, Told told) {
      LatentAttentionState s;
      s.reset(p.rows, p.d_c);
      for (int64_t j0 = 0; j0 < p.n; j0 += 32) {
        const int64_t after = j0 + 32, next_count = std::min<int64_t>(32, p.n - after);
        if (bf16) {
          const uint16_t* c = told == Told::Nan ? c16_nan.data() : c16.data();
          const uint16_t* r = told == Told::Nan ? r16_nan.data() : r16.data();
          const NextRun<uint16_t> next{c + after * p.d_c, r + after * p.d_r, told == Told::Nothing ? 0 : next_count};
          latent_attention_accumulate_bf16(p.queries(), j0, 32, c16.data() + j0 * p.d_c, r16.data() + j0 * p.d_r, s, next);
        } else {
          const float* c = told == Told::Nan ? c_nan.data() : p.c_kv.data();
          const float* r = told == Told::Nan ? r_nan.data() : p.k_rope.data();
          const NextRun<float> next{c + after * p.d_c, r + after * p.d_r, told == Told::Nothing ? 0 : next_count};
          latent_attention_accumulate(p.queries(), j0, 32, p.c_kv.data() + j0 * p.d_c, p.k_rope.data() + j0 * p.d_r, s,
                                      next);
        }
      }
      std::vector<float> out(static_cast<size_t>(p.rows * p.d_c));
      latent_attention_finish(s, p.d_c, out.data());
      return out;
    };
    for (bool bf16 : {false, true}) {
      const auto truth = sweep(bf16, Told::Truth);
      for (Told told : {Told::Nothing, Told::Nan}) {
        const auto other = sweep(bf16, told);
        ASSERT_EQ(0, std::memcmp(truth.data(), other.data(), truth.size() * sizeof(float)))
            << isa_name(isa) << (bf16 ? " bf16" : " fp32") << (told == Told::Nan ? ", told of NaN keys" : ", told nothing");
      }
    }
  }
  set_isa(saved);
}

TEST(LatentAttention, Bf16KeysMatchSoftmaxInDouble) {
  const Isa saved = active_isa();
  for (Isa isa : kAllIsas) {
    if (!cpu_supports(isa)) continue;
    set_isa(isa);
    for (const Shape& sh : kBf16Shapes) {
      Problem p(sh.rows, sh.d_c, sh.d_r, sh.n, sh.causal, 16);
      const std::vector<uint16_t> c = round_in_place_to_bf16(p.c_kv), r = round_in_place_to_bf16(p.k_rope);
      const auto exact = p.exact();
      std::vector<uint16_t> rounded(static_cast<size_t>(sh.rows * kLatentQueryBf16Stride));
      const bool in_bf16 = round_latent_queries_bf16(p.queries(), rounded.data());
      const auto sweep = [&](int64_t run, const uint16_t* q_bf16) {
        LatentQueries q = p.queries();
        q.q_bf16 = q_bf16;
        LatentAttentionState s;
        s.reset(sh.rows, sh.d_c);
        for (int64_t j0 = 0; j0 < sh.n; j0 += run) {
          const int64_t cnt = std::min(run, sh.n - j0);
          latent_attention_accumulate_bf16(q, j0, cnt, c.data() + j0 * sh.d_c, r.data() + j0 * sh.d_r, s);
        }
        std::vector<float> out(static_cast<size_t>(sh.rows * sh.d_c));
        latent_attention_finish(s, sh.d_c, out.data());
        return out;
      };
      if (in_bf16) {  // queries rounded once by the caller (as the engine does) or per call: the same bits
        const auto once = sweep(7, rounded.data()), per_call = sweep(7, nullptr);
        EXPECT_EQ(0, std::memcmp(once.data(), per_call.data(), once.size() * sizeof(float))) << sh.rows << "x" << sh.d_c;
      }
      for (int64_t run : {sh.n, int64_t{1}, int64_t{7}, int64_t{32}, int64_t{33}}) {
        const auto out = sweep(run, nullptr);
        // Measured: ≤ 0.013 in bf16 (scores of spread ~3: a 2^-9 rounding of the query
        // moves a weight by ~1 %), ~1e-6 widened.
        const double bound = in_bf16 ? 3e-2 : 2e-5;
        EXPECT_LT(max_abs_diff(out, exact), bound) << isa_name(isa) << (in_bf16 ? " bf16 " : " fp32 ") << sh.rows << "x"
                                                   << sh.d_c << "+" << sh.d_r << " n " << sh.n << " runs of " << run;
      }
    }
  }
  set_isa(saved);
}

// A key range that starts past some rows' last position (a later range of a split
// decode over several tokens): those rows see nothing yet and must stay empty (zeros,
// no NaN from a max that is still −inf) while the others attend as the reference does.
TEST(LatentAttention, Bf16RangeSomeRowsCannotSeeYet) {
  const Isa saved = active_isa();
  for (Isa isa : kAllIsas) {
    if (!cpu_supports(isa)) continue;
    set_isa(isa);
    Problem p(16, 512, 64, 96, false, 17);
    for (int64_t i = 0; i < 16; ++i) p.last_pos[static_cast<size_t>(i)] = i % 2 ? 95 : 20;
    const std::vector<uint16_t> c = round_in_place_to_bf16(p.c_kv), r = round_in_place_to_bf16(p.k_rope);
    const int64_t j0 = 32, cnt = 64;
    LatentAttentionState got, want;
    got.reset(16, 512);
    want.reset(16, 512);
    latent_attention_accumulate_bf16(p.queries(), j0, cnt, c.data() + j0 * 512, r.data() + j0 * 64, got);
    latent_attention_accumulate_reference(p.queries(), j0, cnt, p.c_kv.data() + j0 * 512, p.k_rope.data() + j0 * 64, want);
    std::vector<float> out(16 * 512), ref(16 * 512);
    latent_attention_finish(got, 512, out.data());
    latent_attention_finish(want, 512, ref.data());
    for (size_t i = 0; i < out.size(); ++i) {
      const size_t row = i / 512;
      if (row % 2 == 0) ASSERT_EQ(out[i], 0.f) << isa_name(isa) << " row " << row;
      else ASSERT_LT(std::fabs(out[i] - ref[i]), 3e-2) << isa_name(isa) << " row " << row;
    }
  }
  set_isa(saved);
}
