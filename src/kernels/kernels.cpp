// Dispatch point of the kernel layer. (Placeholder scalar bodies until the SIMD files land.)
#include "kernels/kernels.h"

#include <omp.h>

#include <cstdlib>
#include <cstring>
#include <vector>

#include "common/error.h"
#include "format/quant.h"

namespace mlamoe::kernels {

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Avx512: return "avx512";
    case Isa::Avx2: return "avx2";
    default: return "scalar";
  }
}

bool cpu_supports(Isa isa) {
  __builtin_cpu_init();
  switch (isa) {
    case Isa::Avx512:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("fma");
    case Isa::Avx2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
    default: return true;
  }
}

bool parse_isa(const char* s, Isa* out) {
  for (Isa i : {Isa::Scalar, Isa::Avx2, Isa::Avx512})
    if (std::strcmp(s, isa_name(i)) == 0) { *out = i; return true; }
  return false;
}

static Isa detect() {
  if (const char* env = std::getenv("MLAMOE_ISA")) {
    Isa want;
    if (!parse_isa(env, &want)) fail("MLAMOE_ISA=", env, ": expected avx512, avx2 or scalar");
    if (!cpu_supports(want)) fail("MLAMOE_ISA=", env, ": this CPU does not support it");
    return want;
  }
  if (cpu_supports(Isa::Avx512)) return Isa::Avx512;
  if (cpu_supports(Isa::Avx2)) return Isa::Avx2;
  return Isa::Scalar;
}

static Isa g_isa = detect();
Isa active_isa() { return g_isa; }
void set_isa(Isa isa) {
  if (!cpu_supports(isa)) fail("ISA ", isa_name(isa), " is not supported by this CPU");
  g_isa = isa;
}

static int g_threads = 0;
void set_threads(int n) {
  g_threads = n > 0 ? n : omp_get_num_procs();
  omp_set_num_threads(g_threads);
}
int threads() { return g_threads > 0 ? g_threads : omp_get_max_threads(); }

void get_row(const WeightView& W, int64_t r, float* dst) { dequantize_row(W.type, W.row(r), dst, W.cols); }

void matmul_reference(const WeightView& W, const float* X, int64_t n, float* Y) {
  std::vector<float> w(W.cols);
  for (int64_t r = 0; r < W.rows; ++r) {
    dequantize_row(W.type, W.row(r), w.data(), W.cols);
    for (int64_t t = 0; t < n; ++t) {
      const float* x = X + t * W.cols;
      float acc = 0.f;
      for (int64_t c = 0; c < W.cols; ++c) acc += w[c] * x[c];
      Y[t * W.rows + r] = acc;
    }
  }
}

void matmul(const WeightView& W, const float* X, int64_t n, float* Y) {
#pragma omp parallel num_threads(threads()) if (W.rows * W.cols * n > 32768)
  {
    std::vector<float> w(W.cols);
#pragma omp for schedule(static)
    for (int64_t r = 0; r < W.rows; ++r) {
      dequantize_row(W.type, W.row(r), w.data(), W.cols);
      for (int64_t t = 0; t < n; ++t) {
        const float* x = X + t * W.cols;
        float acc = 0.f;
        for (int64_t c = 0; c < W.cols; ++c) acc += w[c] * x[c];
        Y[t * W.rows + r] = acc;
      }
    }
  }
}

}  // namespace mlamoe::kernels
