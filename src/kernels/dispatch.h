// Internal pieces of the dispatch point shared by matmul and the fused FFN helpers.
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels/act_quant.h"
#include "kernels/kernel_table.h"
#include "kernels/kernels.h"

namespace mlamoe::kernels {

const KernelTable& kernel_table(Isa isa);
// The activation format the active ISA's kernel for `t` reads (F32 for types that
// fall back to the reference dequantizer).
ActFormat kernel_activation_format(const WeightView& W);
// Rows [r0, r1) of W (for a tiled W, r0 a multiple of 16) against n activation rows already in that format;
// Y[t * ldy + r]. Runs on the calling thread.
void matmul_rows(const WeightView& W, int64_t r0, int64_t r1, const uint8_t* xq, size_t x_stride, int64_t n,
                 float* Y, size_t ldy);
// The calling thread's grow-only activation buffer (64-byte aligned, as the next).
uint8_t* activation_scratch(size_t bytes);
// The calling thread's grow-only buffer for a tile's unpacked weights (the 256-bit
// kernels' UnpacksOnce prefill; a separate buffer, as the activations are in use then).
uint8_t* unpacked_tile_scratch(size_t bytes);
// Threads worth using for W against n tokens (1 inside a parallel region).
int work_threads(const WeightView& W, int64_t n);

}  // namespace mlamoe::kernels
