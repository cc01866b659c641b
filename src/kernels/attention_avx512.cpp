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
};

}  // namespace

namespace mlamoe::kernels {

void latent_attention_accumulate_avx512(const LatentQueries& q, int64_t j0, int64_t count, const float* c_kv,
                                        const float* k_rope, LatentAttentionState& s, const NextRun<float>& next) {
  accumulate_runs<Avx512>(q, j0, count, c_kv, k_rope, s, next);
}

void dense_attention_accumulate_avx512(const DenseQueries& q, const DenseKeys& k, DenseAttentionState& s,
                                       float* scratch) {
  dense_accumulate<Avx512>(q, k, s, scratch);
}

}  // namespace mlamoe::kernels
