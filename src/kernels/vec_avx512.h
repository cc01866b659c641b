// Sixteen float lanes for the kernels written once for any vector width (attention_simd.h,
// attention_dense_simd.h, silu_simd.h): the ops they share. Included inside each AVX-512
// file's own anonymous namespace, so every copy is compiled with that file's flags.
// min, max, roundscale and scalef in their zero-masked forms: GCC 12 warns of the plain
// ones' undefined pass-through once inlined into a loop.
#pragma once
#include <immintrin.h>

#include <cstdint>

namespace {

struct Avx512Lanes {
  using Vec = __m512;
  static constexpr int64_t kWidth = 16;
  static Vec zero() { return _mm512_setzero_ps(); }
  static Vec set1(float x) { return _mm512_set1_ps(x); }
  static Vec load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, Vec v) { _mm512_storeu_ps(p, v); }
  static __mmask16 first(int64_t n) { return static_cast<__mmask16>((1u << n) - 1); }
  static Vec load_tail(const float* p, int64_t n) { return _mm512_maskz_loadu_ps(first(n), p); }
  static void store_tail(float* p, int64_t n, Vec v) { _mm512_mask_storeu_ps(p, first(n), v); }
  static Vec add(Vec a, Vec b) { return _mm512_add_ps(a, b); }
  static Vec sub(Vec a, Vec b) { return _mm512_sub_ps(a, b); }
  static Vec mul(Vec a, Vec b) { return _mm512_mul_ps(a, b); }
  static Vec div(Vec a, Vec b) { return _mm512_div_ps(a, b); }
  static Vec fmadd(Vec a, Vec b, Vec c) { return _mm512_fmadd_ps(a, b, c); }
  static Vec fnmadd(Vec a, Vec b, Vec c) { return _mm512_fnmadd_ps(a, b, c); }
  static Vec min(Vec a, Vec b) { return _mm512_maskz_min_ps(0xFFFF, a, b); }
  static Vec max(Vec a, Vec b) { return _mm512_maskz_max_ps(0xFFFF, a, b); }
  static Vec round(Vec a) { return _mm512_maskz_roundscale_ps(0xFFFF, a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static Vec scale2(Vec p, Vec n) { return _mm512_maskz_scalef_ps(0xFFFF, p, n); }
  static Vec blend_lt(Vec a, Vec b, Vec x, Vec y) { return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, b, _CMP_LT_OQ), y, x); }
  // Lane t = the sum of a[t]'s lanes (t < 16), added in the same order for every t:
  // pairs within 128-bit lanes, then the four lanes.
  static Vec lane_sums(const Vec* a) {
    Vec t[8], u[4], v[2];
    for (int i = 0; i < 8; ++i) t[i] = _mm512_add_ps(_mm512_unpacklo_ps(a[2 * i], a[2 * i + 1]), _mm512_unpackhi_ps(a[2 * i], a[2 * i + 1]));
    for (int i = 0; i < 4; ++i) u[i] = _mm512_add_ps(_mm512_shuffle_ps(t[2 * i], t[2 * i + 1], 0x44), _mm512_shuffle_ps(t[2 * i], t[2 * i + 1], 0xEE));
    for (int i = 0; i < 2; ++i)
      v[i] = _mm512_add_ps(_mm512_shuffle_f32x4(u[2 * i], u[2 * i + 1], 0x88), _mm512_shuffle_f32x4(u[2 * i], u[2 * i + 1], 0xDD));
    return _mm512_add_ps(_mm512_shuffle_f32x4(v[0], v[1], 0x88), _mm512_shuffle_f32x4(v[0], v[1], 0xDD));
  }
};

}  // namespace
