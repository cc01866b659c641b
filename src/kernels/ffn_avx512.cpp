// SwiGLU's elementwise step, g = silu(g) · u, on AVX-512: the experts' hidden layer is
// slots × moe_intermediate_size values per layer (4096 × 1408 in a 512-token prefill),
// too many for one libm exp call each.
#include <immintrin.h>

#include <cstdint>

namespace mlamoe::kernels {
namespace {

// e^x: x = n·ln2 + r with |r| ≤ ln2/2, e^r by its Taylor series to r^7 (relative
// error < 2e-7 there), times 2^n by scalef; +inf above 88.7, and x below -88.7 is taken
// as -88.7 (e^x < 4e-39: nothing for silu).
inline __m512 exp16(__m512 x) {
  const __mmask16 overflow = _mm512_cmp_ps_mask(x, _mm512_set1_ps(88.7f), _CMP_GT_OQ);
  x = _mm512_max_ps(_mm512_min_ps(x, _mm512_set1_ps(88.7f)), _mm512_set1_ps(-88.7f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145752f), x);  // ln2 in two parts: n·hi is exact
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.42860677e-6f), r);
  static constexpr float kTaylor[] = {1.f / 720, 1.f / 120, 1.f / 24, 1.f / 6, 0.5f, 1.f, 1.f};
  __m512 p = _mm512_set1_ps(1.f / 5040);
  for (float c : kTaylor) p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
  return _mm512_mask_blend_ps(overflow, _mm512_scalef_ps(p, n), _mm512_set1_ps(__builtin_inff()));
}

}  // namespace

void silu_mul_avx512(float* g, const float* u, int64_t n) {
  const auto silu16 = [](__m512 x) {
    return _mm512_div_ps(x, _mm512_add_ps(_mm512_set1_ps(1.f), exp16(_mm512_sub_ps(_mm512_setzero_ps(), x))));
  };
  for (int64_t j = 0; j < n; j += 16) {
    const __mmask16 m = n - j >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << (n - j)) - 1);
    const __m512 x = _mm512_maskz_loadu_ps(m, g + j);
    _mm512_mask_storeu_ps(g + j, m, _mm512_mul_ps(silu16(x), _mm512_maskz_loadu_ps(m, u + j)));
  }
}

}  // namespace mlamoe::kernels
