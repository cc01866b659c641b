// SwiGLU's elementwise step on AVX2/FMA (silu_simd.h over vec_avx2.h's lanes).
#include "kernels/vec_avx2.h"
#include "kernels/silu_simd.h"

namespace mlamoe::kernels {

void silu_mul_avx2(float* g, const float* u, int64_t n) { silu_mul_of<Avx2Lanes>(g, u, n); }

}  // namespace mlamoe::kernels
