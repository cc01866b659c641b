// SwiGLU's elementwise step on AVX-512 (silu_simd.h over vec_avx512.h's lanes).
#include "kernels/vec_avx512.h"
#include "kernels/silu_simd.h"

namespace mlamoe::kernels {

void silu_mul_avx512(float* g, const float* u, int64_t n) { silu_mul_of<Avx512Lanes>(g, u, n); }

}  // namespace mlamoe::kernels
