// Absorbed MLA attention, AVX2 + FMA (per-file ISA flags; only called after the
// dispatch point has checked the CPU). The kernel itself is attention_simd.h.
#include <immintrin.h>

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

}  // namespace mlamoe::kernels
