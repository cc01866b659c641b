// MLA attention kernels, AVX2 + FMA (per-file ISA flags; only called after the
// dispatch point has checked the CPU): the absorbed one (attention_simd.h) and the
// standard one of the naive path (attention_dense_simd.h), sharing one vector type.
#include <immintrin.h>

#include "kernels/attention_dense_simd.h"
#include "kernels/attention_simd.h"

namespace {

struct Avx2 {
  using Vec = __m256;
  static constexpr int64_t kMaxRows = 4;
  static constexpr int64_t kWidth = 8;
  static Vec zero() { return _mm256_setzero_ps(); }
  static Vec load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, Vec v) { _mm256_storeu_ps(p, v); }
  static Vec set1(float x) { return _mm256_set1_ps(x); }
  static Vec mul(Vec a, Vec b) { return _mm256_mul_ps(a, b); }
  static Vec fmadd(Vec a, Vec b, Vec c) { return _mm256_fmadd_ps(a, b, c); }
  static Vec add(Vec a, Vec b) { return _mm256_add_ps(a, b); }
  static Vec sub(Vec a, Vec b) { return _mm256_sub_ps(a, b); }
  static Vec max(Vec a, Vec b) { return _mm256_max_ps(a, b); }
  static Vec round(Vec a) { return _mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  // p · 2^n: n (integral, p · 2^n normal) added to the exponent bits.
  static Vec scale2(Vec p, Vec n) {
    return _mm256_castsi256_ps(_mm256_add_epi32(_mm256_castps_si256(p), _mm256_slli_epi32(_mm256_cvtps_epi32(n), 23)));
  }
  static Vec blend_lt(Vec a, Vec b, Vec x, Vec y) { return _mm256_blendv_ps(y, x, _mm256_cmp_ps(a, b, _CMP_LT_OQ)); }
  static void keep(Vec& v) { __asm__("" : "+v"(v)); }
  // Lane t = the sum of a[t]'s lanes (t < 8), added in the same order for every t:
  // pairs within 128-bit lanes, then the two lanes.
  static Vec lane_sums(const Vec* a) {
    Vec t[4], u[2];
    for (int i = 0; i < 4; ++i) t[i] = add(_mm256_unpacklo_ps(a[2 * i], a[2 * i + 1]), _mm256_unpackhi_ps(a[2 * i], a[2 * i + 1]));
    for (int i = 0; i < 2; ++i) u[i] = add(_mm256_shuffle_ps(t[2 * i], t[2 * i + 1], 0x44), _mm256_shuffle_ps(t[2 * i], t[2 * i + 1], 0xEE));
    return add(_mm256_permute2f128_ps(u[0], u[1], 0x20), _mm256_permute2f128_ps(u[0], u[1], 0x31));
  }
};

}  // namespace

namespace mlamoe::kernels {

void latent_attention_accumulate_avx2(const LatentQueries& q, int64_t j0, int64_t count, const float* c_kv,
                                      const float* k_rope, LatentAttentionState& s) {
  accumulate_runs<Avx2>(q, j0, count, c_kv, k_rope, s);
}

void dense_attention_accumulate_avx2(const DenseQueries& q, const DenseKeys& k, DenseAttentionState& s, float* scratch) {
  dense_accumulate<Avx2>(q, k, s, scratch);
}

}  // namespace mlamoe::kernels
