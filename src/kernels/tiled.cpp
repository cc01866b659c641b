// Tiles16: the load-time re-layout (see tiled.h) and its scalar reference reader.
#include "kernels/tiled.h"

#include <omp.h>

#include <cstring>

#include "common/error.h"
#include "format/quant.h"
#include "kernels/kernels.h"

namespace mlamoe::kernels {

size_t tile_block_bytes(GgmlType t) {
  switch (t) {
    case GgmlType::Q4_0: return kTileScaleBytes + 4 * 64;
    case GgmlType::Q8_0: return kTileScaleBytes + 8 * 64;
    default: return 0;
  }
}

int tile_quant_offset(GgmlType t) { return t == GgmlType::Q4_0 ? 8 : 128; }

size_t tiled_bytes(const WeightView& W) {
  if (W.layout != Layout::Rows || active_isa() != Isa::Avx512 || !avx512_tiled_kernel(W.type)) return 0;
  const int64_t n_tiles = (W.rows + kTileRows - 1) / kTileRows, nb = W.cols / 32;
  return static_cast<size_t>(n_tiles) * static_cast<size_t>(nb) * tile_block_bytes(W.type);
}

namespace {

// One tile-block from the 16 (or fewer) source rows' block b.
void pack_tile_block(const WeightView& W, int64_t row0, int64_t b, uint8_t* out) {
  std::memset(out, 0, tile_block_bytes(W.type));
  uint8_t* quants = out + kTileScaleBytes;
  for (int r = 0; r < kTileRows && row0 + r < W.rows; ++r) {
    const uint8_t* src = W.row(row0 + r);
    if (W.type == GgmlType::Q4_0) {
      const BlockQ4_0& blk = reinterpret_cast<const BlockQ4_0*>(src)[b];
      std::memcpy(out + 2 * r, &blk.d, 2);
      for (int g = 0; g < 4; ++g) std::memcpy(quants + 64 * g + 4 * r, blk.qs + 4 * g, 4);
    } else {
      const BlockQ8_0& blk = reinterpret_cast<const BlockQ8_0*>(src)[b];
      std::memcpy(out + 2 * r, &blk.d, 2);
      for (int s = 0; s < 8; ++s)
        for (int i = 0; i < 4; ++i) quants[64 * s + 4 * r + i] = static_cast<uint8_t>(blk.qs[4 * s + i]) ^ 0x80;
    }
  }
}

}  // namespace

WeightView tile_weights(const WeightView& W, uint8_t* dst) {
  if (!tiled_bytes(W)) fail("tile_weights: no tiled kernel for this matrix");
  const int64_t n_tiles = (W.rows + kTileRows - 1) / kTileRows, nb = W.cols / 32;
  const size_t bb = tile_block_bytes(W.type);
  WeightView t = W;
  t.layout = Layout::Tiles16;
  t.tile_stride = static_cast<size_t>(nb) * bb;
  t.data = dst;
#pragma omp parallel for schedule(static) if (n_tiles > 8 && !omp_in_parallel())
  for (int64_t i = 0; i < n_tiles; ++i)
    for (int64_t b = 0; b < nb; ++b) pack_tile_block(W, i * kTileRows, b, dst + static_cast<size_t>(i) * t.tile_stride + static_cast<size_t>(b) * bb);
  return t;
}

WeightView row_slice(const WeightView& W, int64_t r0, int64_t n) {
  if (r0 < 0 || n < 0 || r0 + n > W.rows) fail("row_slice: rows [", r0, ", ", r0 + n, ") of a ", W.rows, "-row matrix");
  WeightView v = W;
  v.rows = n;
  if (W.layout == Layout::Tiles16) {
    if (r0 % kTileRows) fail("row_slice: a tiled matrix is cut at multiples of ", kTileRows, " rows, not at ", r0);
    v.data = W.data + static_cast<size_t>(r0 / kTileRows) * W.tile_stride;
  } else {
    v.data = W.row(r0);
  }
  return v;
}

WeightView column_slice(const WeightView& W, int64_t c0, int64_t n) {
  const TypeTraits* tt = type_traits(W.type);
  const int64_t bs = tt ? tt->block_size : 1;
  if (c0 < 0 || n <= 0 || c0 + n > W.cols || c0 % bs || n % bs)
    fail("column_slice: columns [", c0, ", ", c0 + n, ") of ", W.cols, " do not fall on ", bs, "-value blocks");
  WeightView v = W;
  v.cols = n;
  v.data = W.data + (W.layout == Layout::Tiles16 ? static_cast<size_t>(c0 / 32) * tile_block_bytes(W.type) : row_bytes(W.type, c0));
  return v;
}

void dequantize_tiled_row(const WeightView& W, int64_t r, float* dst) {
  const int64_t nb = W.cols / 32, lane = r % kTileRows;
  const size_t bb = tile_block_bytes(W.type);
  const uint8_t* tile = W.data + static_cast<size_t>(r / kTileRows) * W.tile_stride;
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* tb = tile + static_cast<size_t>(b) * bb;
    uint16_t h;
    std::memcpy(&h, tb + 2 * lane, 2);
    const float d = fp16_to_fp32(h);
    const uint8_t* quants = tb + kTileScaleBytes;
    float* out = dst + 32 * b;
    if (W.type == GgmlType::Q4_0) {
      for (int g = 0; g < 4; ++g)
        for (int i = 0; i < 4; ++i) {
          const uint8_t q = quants[64 * g + 4 * lane + i];
          out[4 * g + i] = d * static_cast<float>((q & 0xF) - 8);
          out[16 + 4 * g + i] = d * static_cast<float>((q >> 4) - 8);
        }
    } else {
      for (int s = 0; s < 8; ++s)
        for (int i = 0; i < 4; ++i) out[4 * s + i] = d * static_cast<float>(static_cast<int>(quants[64 * s + 4 * lane + i]) - 128);
    }
  }
}

}  // namespace mlamoe::kernels
