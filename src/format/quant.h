// Reference (scalar, exact) conversions between float32 and every weight type.
// These are the slow paths the fast kernels in src/kernels are tested against, and
// what quantize/convert/gen-random use to write blocks. Quantizers follow the
// reference GGUF algorithms so Q8_0/Q4_0 blocks are bit-identical to llama.cpp's.
#pragma once
#include <cstdint>

#include "format/ggml_types.h"

namespace mlamoe {

float fp16_to_fp32(uint16_t h);
uint16_t fp32_to_fp16(float f);   // round to nearest even, like F16C
float bf16_to_fp32(uint16_t h);
uint16_t fp32_to_bf16(float f);   // round to nearest even; NaN stays NaN
float fp8_e4m3_to_fp32(uint8_t v);

// dst[0..n) = the n values stored in src; n a multiple of the type's block size.
void dequantize_row(GgmlType type, const void* src, float* dst, int64_t n);
// dst = n values of src encoded as `type` (row_bytes(type, n) bytes).
void quantize_row(GgmlType type, const float* src, void* dst, int64_t n);

// The 256 unsigned 6-bit values q (0..63, weight = d · scales[e/16] · (q − 32)) of a
// Q6_K block, element e at q[e]: the one reader of the file's ql/qh bit layout.
void unpack_q6_k(const BlockQ6_K& b, uint8_t q[QK_K]);

}  // namespace mlamoe
