// AVX2 + FMA + F16C kernels. AVX2 has no int8 dot product: vpmaddubsw multiplies
// u8·s8 pairs into int16 (cannot saturate here: weights ≤ 128 after |·|, activations
// ≤ 127), vpmaddwd then widens pairs to int32 — applying the sub-block scale for free.
#include <immintrin.h>

#include "kernels/kernel_table.h"

namespace {

constexpr int kTokenGroup = 4;
inline __m256i dpbusd(__m256i acc, __m256i u, __m256i s) {
  return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)));
}
inline __m256i make_scale(int lo, int hi) {
  return _mm256_set_m128i(_mm_set1_epi16(static_cast<short>(hi)), _mm_set1_epi16(static_cast<short>(lo)));
}
inline __m256i dpbusd_scaled(__m256i acc, __m256i u, __m256i s, __m256i scale16) {
  return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), scale16));
}

}  // namespace

#include "kernels/simd_kernels.h"

namespace mlamoe::kernels {
const KernelTable& avx2_kernels() { return simd_table; }
}  // namespace mlamoe::kernels
