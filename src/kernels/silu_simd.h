// SwiGLU's elementwise step g = silu(g) · u, written once for any vector width V
// (vec_avx2.h, vec_avx512.h: Vec, kWidth, set1, load, store, load_tail, store_tail, add,
// sub, mul, div, fmadd, fnmadd, min, max, round, scale2 (p·2^n for integral n, p·2^n
// normal), blend_lt (a < b ? x : y)).
// The experts' hidden layer is slots × moe_intermediate_size values per layer (4096 ×
// 1408 in a 512-token prefill), too many for one libm exp call each: a 256-bit prefill
// spent 5.6 % of its samples in expf and the scalar loop (perf, V2-Lite Q4_K_M).
// Included by each ISA's ffn file inside an anonymous namespace (its own copy compiled
// with its flags); builtins only, as attention_simd.h.
#pragma once
#include <cstdint>

namespace {

// e^x: x = n·ln2 + r with |r| <= ln2/2 (ln2 in two parts, so n·hi is exact), e^r by
// its Taylor series to r^7 (relative error < 2e-7 there), times 2^n; +inf above 88.7.
// Below -87 the result is 0 where it would be subnormal (2^n by exponent bits needs a
// normal result): silu only adds it to 1.
template <class V>
typename V::Vec exp_of(typename V::Vec x) {
  using Vec = typename V::Vec;
  const Vec hi = V::set1(88.7f), lo = V::set1(-87.f);
  const Vec xc = V::max(V::min(x, hi), V::set1(-88.7f));
  const Vec n = V::round(V::mul(xc, V::set1(1.44269504f)));
  Vec r = V::fnmadd(n, V::set1(0.693145752f), xc);
  r = V::fnmadd(n, V::set1(1.42860677e-6f), r);
  constexpr float kTaylor[] = {1.f / 720, 1.f / 120, 1.f / 24, 1.f / 6, 0.5f, 1.f, 1.f};
  Vec p = V::set1(1.f / 5040);
  for (float c : kTaylor) p = V::fmadd(p, r, V::set1(c));
  const Vec e = V::blend_lt(x, lo, V::set1(0.f), V::scale2(p, n));
  return V::blend_lt(hi, x, V::set1(__builtin_inff()), e);
}

// silu(x) = x / (1 + e^-x).
template <class V>
typename V::Vec silu_of(typename V::Vec x) {
  return V::div(x, V::add(V::set1(1.f), exp_of<V>(V::sub(V::set1(0.f), x))));
}

template <class V>
void silu_mul_of(float* g, const float* u, int64_t n) {
  int64_t j = 0;
  for (; j + V::kWidth <= n; j += V::kWidth) V::store(g + j, V::mul(silu_of<V>(V::load(g + j)), V::load(u + j)));
  if (j < n) V::store_tail(g + j, n - j, V::mul(silu_of<V>(V::load_tail(g + j, n - j)), V::load_tail(u + j, n - j)));
}

}  // namespace
