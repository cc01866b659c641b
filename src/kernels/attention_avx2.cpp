// MLA attention kernels, AVX2 + FMA (per-file ISA flags; only called after the
// dispatch point has checked the CPU): the absorbed one (attention_simd.h) and the
// standard one of the naive path (attention_dense_simd.h), sharing one vector type.
#include <immintrin.h>

#include "kernels/attention_dense_simd.h"
#include "kernels/attention_simd.h"
#include "kernels/vec_avx2.h"

namespace {

struct Avx2 : Avx2Lanes {
  static constexpr int64_t kMaxRows = 4;
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
                                      const float* k_rope, LatentAttentionState& s, const NextRun<float>& next) {
  accumulate_runs<Avx2>(q, j0, count, c_kv, k_rope, s, next);
}

void dense_attention_accumulate_avx2(const DenseQueries& q, const DenseKeys& k, DenseAttentionState& s, float* scratch) {
  dense_accumulate<Avx2>(q, k, s, scratch);
}

}  // namespace mlamoe::kernels
