// The kernel layer: the only place that does heavy arithmetic on weights.
// One dispatch point (kernels.cpp) picks AVX-512, AVX2 or scalar at run time;
// MLAMOE_ISA=avx512|avx2|scalar forces one. The model only sees these functions and
// typed weight views, so kernels can change without touching the model code.
#pragma once
#include <cstddef>
#include <cstdint>

#include "format/ggml_types.h"

namespace mlamoe::kernels {

enum class Isa { Scalar = 0, Avx2 = 1, Avx512 = 2 };
const char* isa_name(Isa isa);
bool cpu_supports(Isa isa);
Isa active_isa();
void set_isa(Isa isa);            // Error if the CPU lacks it
bool parse_isa(const char* s, Isa* out);

void set_threads(int n);          // -t N; <= 0 means all cores
int threads();

// A weight matrix as stored: `rows` rows of `cols` elements of `type`, each row
// `row_stride` bytes apart (ggml layout: ne[0] = cols is contiguous).
struct WeightView {
  GgmlType type = GgmlType::F32;
  const uint8_t* data = nullptr;
  int64_t rows = 0;
  int64_t cols = 0;
  size_t row_stride = 0;
  const uint8_t* row(int64_t r) const { return data + static_cast<size_t>(r) * row_stride; }
  bool empty() const { return data == nullptr; }
};

// Y[t][r] = sum_c W[r][c] * X[t][c] for t < n: X is n × cols, Y is n × rows, float32
// row-major. Weights are dequantized inside the dot product (never a float copy of W).
void matmul(const WeightView& W, const float* X, int64_t n, float* Y);

// Reference: dequantize each row, dot in double-free float32. Single-threaded, slow,
// the ground truth every fast path is tested against.
void matmul_reference(const WeightView& W, const float* X, int64_t n, float* Y);

// dst[0..cols) = row r of W as float32 (embedding lookup).
void get_row(const WeightView& W, int64_t r, float* dst);

}  // namespace mlamoe::kernels

namespace mlamoe::kernels {
// Y[t][c] = sum_r W[r][c] * X[t][r]: the transposed product (X is n × rows, Y is
// n × cols). MLA needs it where a file stores an up-projection in the other
// orientation (W_UK for the naive path, the legacy attn_kv_b for the absorbed one).
void matmul_transposed(const WeightView& W, const float* X, int64_t n, float* Y);
}  // namespace mlamoe::kernels
