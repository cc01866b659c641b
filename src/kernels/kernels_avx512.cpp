// AVX-512 kernels (Zen 4 / Ice Lake and later): VNNI's vpdpbusd does the u8·s8 dot of
// four bytes into int32 in one instruction. The 256-bit forms are used on purpose: Zen 4
// runs 512-bit integer ops as two 256-bit halves, so the wider registers only add
// shuffles to the unpacking while the dot products cost the same.
#include <immintrin.h>

#include "kernels/kernel_table.h"

namespace {

constexpr int kTokenGroup = 8;
inline __m256i dpbusd(__m256i acc, __m256i u, __m256i s) { return _mm256_dpbusd_epi32(acc, u, s); }
inline __m256i make_scale(int lo, int hi) { return _mm256_set_m128i(_mm_set1_epi32(hi), _mm_set1_epi32(lo)); }
inline __m256i dpbusd_scaled(__m256i acc, __m256i u, __m256i s, __m256i scale32) {
  return _mm256_add_epi32(acc, _mm256_mullo_epi32(_mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s), scale32));
}

}  // namespace

#include "kernels/simd_kernels.h"

namespace mlamoe::kernels {
const KernelTable& avx512_kernels() { return simd_table; }
}  // namespace mlamoe::kernels
