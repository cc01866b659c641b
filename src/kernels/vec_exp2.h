// 2^x over a vector for the attention kernels' softmax, written once for any vector
// width V (zero, set1, sub, max, fmadd, round, scale2, blend_lt). Included inside the
// anonymous namespace of each ISA's file through attention_simd.h and
// attention_dense_simd.h, so each ISA gets its own copy compiled with its flags.
#pragma once

namespace {

constexpr float kLog2e = 1.44269504088896341f;

// 2^x lanewise for x <= 0: x = n + f with n = round(x), |f| <= 1/2, and 2^f = e^(f ln 2)
// by its Taylor series to degree 6 (relative error < 2e-7 there). Below 2^-125 the
// result is 0, which also maps masked (-inf) scores to 0.
template <class V>
typename V::Vec exp2_of(typename V::Vec x) {
  const typename V::Vec lo = V::set1(-125.f);
  const typename V::Vec xc = V::max(x, lo);
  const typename V::Vec n = V::round(xc);
  const typename V::Vec f = V::sub(xc, n);
  // ln2^k / k!, k = 6 … 1
  typename V::Vec p = V::set1(1.5403530393381606e-4f);
  p = V::fmadd(p, f, V::set1(1.3333558146428443e-3f));
  p = V::fmadd(p, f, V::set1(9.6181291076284772e-3f));
  p = V::fmadd(p, f, V::set1(5.5504108664821580e-2f));
  p = V::fmadd(p, f, V::set1(2.4022650695910071e-1f));
  p = V::fmadd(p, f, V::set1(6.9314718055994531e-1f));
  p = V::fmadd(p, f, V::set1(1.f));
  return V::blend_lt(x, lo, V::zero(), V::scale2(p, n));
}

}  // namespace
