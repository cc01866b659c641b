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
  static float hsum(Vec v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
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
