// ActQ8 and ActQ8K32 quantization of activation rows with AVX2: the same arithmetic as
// the scalar quantize_block (amax, 127/amax in float, round to nearest even), so every
// ISA gets bit-identical quants. Blocks the scalar code treats specially (all zero,
// inf/nan, amax below 1e-30) are left to it.
#include <immintrin.h>

#include <cstdint>

#include "kernels/act_quant.h"

namespace mlamoe::kernels {
namespace {

// max |x| over n values (a multiple of 8), or a value the caller rejects (NaN lanes are
// looked for separately: max_ps drops them).
bool finite_amax(const float* x, int n, float* amax) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  __m256 m = _mm256_setzero_ps();
  int unordered = 0;
  for (int k = 0; k < n; k += 8) {
    const __m256 v = _mm256_loadu_ps(x + k);
    m = _mm256_max_ps(m, _mm256_andnot_ps(sign, v));
    unordered |= _mm256_movemask_ps(_mm256_cmp_ps(v, v, _CMP_UNORD_Q));
  }
  __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
  h = _mm_max_ps(h, _mm_movehl_ps(h, h));
  h = _mm_max_ss(h, _mm_movehdup_ps(h));
  *amax = _mm_cvtss_f32(h);
  // inf fails the upper bound; zero and tiny blocks go to the scalar path too.
  return !unordered && *amax >= 1e-30f && *amax <= 3.4028234e38f;
}

// q = round(x · id) for 32 values; returns Σ q.
int32_t quantize32(const float* x, __m256 id, int8_t* q) {
  __m256i v[4];
  for (int k = 0; k < 4; ++k)
    v[k] = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + 8 * k), id), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  const __m256i s = _mm256_add_epi32(_mm256_add_epi32(v[0], v[1]), _mm256_add_epi32(v[2], v[3]));
  __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
  s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4E));
  s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xB1));
  // packs work within 128-bit lanes: [q0 lo, q1 lo, q0 hi, q1 hi] -> fix with a permute
  const __m256i p8 = _mm256_packs_epi16(_mm256_packs_epi32(v[0], v[1]), _mm256_packs_epi32(v[2], v[3]));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(q), _mm256_permutevar8x32_epi32(p8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
  return _mm_cvtsi128_si32(s4);
}

}  // namespace

// Quantizes blocks [0, n) of x into b; returns the index of the first block it left
// to the scalar code, or n.
int64_t quantize_q8_blocks_avx2(const float* x, ActQ8* b, int64_t n) {
  for (int64_t i = 0; i < n; ++i, x += 32) {
    float amax;
    if (!finite_amax(x, 32, &amax)) return i;
    b[i].minus_8_sum = -8 * quantize32(x, _mm256_set1_ps(127.f / amax), b[i].qs);
    b[i].d = static_cast<float>(static_cast<double>(amax) / 127.0);
  }
  return n;
}

// The same for 256-value blocks with one scale and a sum per 32.
int64_t quantize_q8k32_blocks_avx2(const float* x, ActQ8K32* b, int64_t n) {
  for (int64_t i = 0; i < n; ++i, x += 256) {
    float amax;
    if (!finite_amax(x, 256, &amax)) return i;
    const __m256 id = _mm256_set1_ps(127.f / amax);
    for (int j = 0; j < 8; ++j) b[i].sums[j] = static_cast<int16_t>(quantize32(x + 32 * j, id, b[i].qs + 32 * j));
    b[i].d = static_cast<float>(static_cast<double>(amax) / 127.0);
  }
  return n;
}

}  // namespace mlamoe::kernels
