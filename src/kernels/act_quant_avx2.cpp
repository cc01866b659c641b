// ActQ8 quantization of activation rows with AVX2: the same arithmetic as the scalar
// quantize_block (amax, 127/amax in float, round to nearest even), so every ISA gets
// bit-identical quants. Blocks the scalar code treats specially (all zero, inf/nan,
// amax below 1e-30) are left to it.
#include <immintrin.h>

#include <cstdint>

#include "kernels/act_quant.h"

namespace mlamoe::kernels {

// Quantizes blocks [0, n) of x into b; returns the index of the first block it left
// to the scalar code, or n.
int64_t quantize_q8_blocks_avx2(const float* x, ActQ8* b, int64_t n) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  for (int64_t i = 0; i < n; ++i, x += 32) {
    __m256 v[4];
    __m256 m = _mm256_setzero_ps();
    for (int k = 0; k < 4; ++k) {
      v[k] = _mm256_loadu_ps(x + 8 * k);
      m = _mm256_max_ps(m, _mm256_andnot_ps(sign, v[k]));
    }
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_movehdup_ps(h));
    const float amax = _mm_cvtss_f32(h);
    // NaN compares false, inf fails the upper bound: both go to the scalar path, as
    // do zero and tiny blocks. (max_ps drops NaN lanes, so look at the values too.)
    bool finite = amax >= 1e-30f && amax <= 3.4028234e38f;
    for (int k = 0; k < 4 && finite; ++k) finite = _mm256_movemask_ps(_mm256_cmp_ps(v[k], v[k], _CMP_UNORD_Q)) == 0;
    if (!finite) return i;
    const __m256 id = _mm256_set1_ps(127.f / amax);
    __m256i q[4];
    for (int k = 0; k < 4; ++k)
      q[k] = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v[k], id), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    const __m256i s = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
    __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4E));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xB1));
    // packs work within 128-bit lanes: [q0 lo, q1 lo, q0 hi, q1 hi] -> fix with a permute
    const __m256i p16a = _mm256_packs_epi32(q[0], q[1]), p16b = _mm256_packs_epi32(q[2], q[3]);
    const __m256i p8 = _mm256_packs_epi16(p16a, p16b);
    const __m256i ordered = _mm256_permutevar8x32_epi32(p8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(b[i].qs), ordered);
    b[i].sum = _mm_cvtsi128_si32(s4);
    b[i].d = static_cast<float>(static_cast<double>(amax) / 127.0);
  }
  return n;
}

}  // namespace mlamoe::kernels
