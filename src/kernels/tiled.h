// The Tiles16 weight layout (kernels.h: Layout::Tiles16). Internal header.
//
// A matrix of R rows becomes ceil(R/16) tiles of 16 rows (the last one padded with
// zero-scale rows). A tile is its rows' 32-column blocks in column order; one
// tile-block is
//   16 × fp16 scales (row 0..15), then the quants in groups of 64 bytes, where each
//   group holds 4 bytes of every row (row r at bytes 4r..4r+3).
// Q4_0: 4 groups; group g holds each row's original qs[4g..4g+3], whose low nibbles
//       are columns 4g..4g+3 and high nibbles columns 16+4g..16+4g+3 (values q in 0..15,
//       weight = d·(q − 8)).
// Q8_0: 8 groups; group s holds columns 4s..4s+3 as unsigned bytes q + 128.
// So after unpacking, every 64-byte vector is "16 rows × 4 consecutive columns" of
// unsigned bytes: exactly one vpdpbusd operand against 4 activation bytes broadcast.
#pragma once
#include <cstddef>
#include <cstdint>

#include "format/ggml_types.h"

namespace mlamoe::kernels {

constexpr int kTileRows = 16;
constexpr size_t kTileScaleBytes = 2 * kTileRows;

// Bytes of one tile-block (16 rows × 32 columns), 0 if `t` has no tiled form.
size_t tile_block_bytes(GgmlType t);
// The unsigned offset folded into the stored quants: 8 for Q4_0, 128 for Q8_0.
int tile_quant_offset(GgmlType t);

// y[t * ldy + 16 i + r] for tiles i < n_tiles, rows r < 16 (rows beyond `valid_rows` in
// the range are not written), tokens t < ntok with ActQ8 activation rows x_stride apart.
using TiledFn = void (*)(const uint8_t* tiles, size_t tile_stride, int64_t n_tiles, int64_t nb, int64_t valid_rows,
                         const uint8_t* x, size_t x_stride, int64_t ntok, float* y, size_t ldy);

// The AVX-512 VNNI kernel for `t`, or nullptr.
TiledFn avx512_tiled_kernel(GgmlType t);

// Row r of a tiled view as float32 (the scalar reference path).
void dequantize_tiled_row(const struct WeightView& W, int64_t r, float* dst);

}  // namespace mlamoe::kernels
