// MLA attention kernels, AVX-512 (per-file ISA flags; only called after the dispatch
// point has checked the CPU): twice the AVX2 path's width. The kernels are
// attention_simd.h (absorbed) and attention_dense_simd.h (naive path).
#include <immintrin.h>

#include "kernels/attention_dense_simd.h"
#include "kernels/attention_simd.h"
#include "kernels/vec_avx512.h"

namespace {

struct Avx512 : Avx512Lanes {
  static constexpr int64_t kMaxRows = 8;
  static void keep(Vec& v) { __asm__("" : "+v"(v)); }
  // Lane t = the sum of a[t]'s lanes (t < 16), added in the same order for every t:
  // pairs within 128-bit lanes, then the four lanes.
  static Vec lane_sums(const Vec* a) {
    Vec t[8], u[4], v[2];
    for (int i = 0; i < 8; ++i) t[i] = add(_mm512_unpacklo_ps(a[2 * i], a[2 * i + 1]), _mm512_unpackhi_ps(a[2 * i], a[2 * i + 1]));
    for (int i = 0; i < 4; ++i) u[i] = add(_mm512_shuffle_ps(t[2 * i], t[2 * i + 1], 0x44), _mm512_shuffle_ps(t[2 * i], t[2 * i + 1], 0xEE));
    for (int i = 0; i < 2; ++i)
      v[i] = add(_mm512_shuffle_f32x4(u[2 * i], u[2 * i + 1], 0x88), _mm512_shuffle_f32x4(u[2 * i], u[2 * i + 1], 0xDD));
    return add(_mm512_shuffle_f32x4(v[0], v[1], 0x88), _mm512_shuffle_f32x4(v[0], v[1], 0xDD));
  }
};

}  // namespace

namespace mlamoe::kernels {

void latent_attention_accumulate_avx512(const LatentQueries& q, int64_t j0, int64_t count, const float* c_kv,
                                        const float* k_rope, LatentAttentionState& s) {
  accumulate_runs<Avx512>(q, j0, count, c_kv, k_rope, s);
}

void dense_attention_accumulate_avx512(const DenseQueries& q, const DenseKeys& k, DenseAttentionState& s,
                                       float* scratch) {
  dense_accumulate<Avx512>(q, k, s, scratch);
}

}  // namespace mlamoe::kernels
