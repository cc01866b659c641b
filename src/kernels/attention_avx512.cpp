// Absorbed MLA attention, AVX-512 (per-file ISA flags; only called after the dispatch
// point has checked the CPU): twice the AVX2 path's width. The kernel is attention_simd.h.
#include <immintrin.h>

#include "kernels/attention_simd.h"

namespace {

struct Avx512 {
  using Vec = __m512;
  static constexpr int64_t kMaxRows = 8;
  static constexpr int64_t kWidth = 16;
  static Vec zero() { return _mm512_setzero_ps(); }
  static Vec load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, Vec v) { _mm512_storeu_ps(p, v); }
  static Vec set1(float x) { return _mm512_set1_ps(x); }
  static Vec mul(Vec a, Vec b) { return _mm512_mul_ps(a, b); }
  static Vec fmadd(Vec a, Vec b, Vec c) { return _mm512_fmadd_ps(a, b, c); }
  static float hsum(Vec v) { return _mm512_reduce_add_ps(v); }
};

}  // namespace

namespace mlamoe::kernels {

void latent_attention_accumulate_avx512(const LatentQueries& q, int64_t j0, int64_t count, const float* c_kv,
                                        const float* k_rope, LatentAttentionState& s) {
  accumulate_runs<Avx512>(q, j0, count, c_kv, k_rope, s);
}

}  // namespace mlamoe::kernels
