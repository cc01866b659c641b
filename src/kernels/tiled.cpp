// Tiles16: the load-time re-layout (see tiled.h) and its scalar reference reader.
#include "kernels/tiled.h"

#include <omp.h>

#include <cstring>
#include <type_traits>

#include "common/error.h"
#include "format/quant.h"
#include "kernels/kernel_table.h"
#include "kernels/kernels.h"

namespace mlamoe::kernels {

int64_t tile_block_cols(GgmlType t) {
  switch (t) {
    case GgmlType::Q4_0:
    case GgmlType::Q8_0: return 32;
    case GgmlType::Q4_K:
    case GgmlType::Q5_K:
    case GgmlType::Q6_K: return QK_K;
    default: return 0;
  }
}

size_t tile_block_bytes(GgmlType t) {
  switch (t) {
    case GgmlType::Q4_0: return kTileScaleBytes + 4 * 64;
    case GgmlType::Q8_0: return kTileScaleBytes + 8 * 64;
    case GgmlType::Q4_K: return kQ4KTileBytes;
    case GgmlType::Q5_K: return kQ5KTileBytes;
    case GgmlType::Q6_K: return kQ6KTileBytes;
    default: return 0;
  }
}

size_t tiled_bytes(const WeightView& W) {
  if (W.layout != Layout::Rows || !active_tiled_kernel(W.type)) return 0;
  const int64_t n_tiles = (W.rows + kTileRows - 1) / kTileRows, nb = W.cols / tile_block_cols(W.type);
  return static_cast<size_t>(n_tiles) * static_cast<size_t>(nb) * tile_block_bytes(W.type);
}

void q4_k_pack_scales(const uint8_t* u, uint8_t* packed) {
  for (int k = 0; k < 64; ++k) {
    packed[k] = static_cast<uint8_t>((u[k] & 15) | (u[64 + k] & 15) << 4);
    packed[64 + k] = static_cast<uint8_t>((u[128 + k] & 15) | (u[192 + k] & 15) << 4);
    packed[128 + k] = static_cast<uint8_t>(u[k] >> 4 | (u[64 + k] >> 4) << 2 | (u[128 + k] >> 4) << 4 | (u[192 + k] >> 4) << 6);
  }
}

void q4_k_unpack_scales(const uint8_t* packed, uint8_t* u) {
  for (int q = 0; q < 4; ++q)
    for (int k = 0; k < 64; ++k)
      u[64 * q + k] = static_cast<uint8_t>((packed[64 * (q / 2) + k] >> 4 * (q % 2) & 15) | (packed[128 + k] >> 2 * q & 3) << 4);
}

namespace {

// Row r's part of a Q4_K tile-block from the file's super-block (Q5_K's low 4 bits),
// its scales into `scales` (the unpacked form, packed once all rows are in).
template <class Block>
void pack_q4_k_row(const Block& blk, int r, uint8_t* out, uint8_t* scales) {
  constexpr bool high = std::is_same_v<Block, BlockQ5_K>;
  std::memcpy(out + 2 * r, &blk.d, 2);
  std::memcpy(out + 2 * kTileRows + 2 * r, &blk.dmin, 2);
  uint8_t sc[8], m[8];
  unpack_k_scales(blk.scales, sc, m);
  for (int j = 0; j < 8; ++j) {
    scales[kTileRows * j + r] = sc[j];
    scales[q4_k_min_at(j, r)] = m[j];
  }
  for (int c = 0; c < 4; ++c)
    for (int g = 0; g < 8; ++g) std::memcpy(out + k_quant_chunk_at(high, c) + 64 * g + 4 * r, blk.qs + 32 * c + 4 * g, 4);
}

// Row r's part of a Q5_K tile-block: Q4_K's, then its fifth bits (the file's qh: bit j
// of qh[l] for value l = 4g + i of sub-block j) in the planes of tiled.h.
void pack_q5_k_row(const BlockQ5_K& blk, int r, uint8_t* out, uint8_t* scales) {
  pack_q4_k_row(blk, r, out, scales);
  for (int j = 0; j < 8; ++j)
    for (int l = 0; l < 32; ++l)
      if (blk.qh[l] >> j & 1) out[q5_k_plane_at(j) + 4 * r + l % 4] |= static_cast<uint8_t>(1u << (l / 4));
}

// Row r's part of a Q6_K tile-block: its 6-bit values (unpack_q6_k) in the A/B/C
// groups of tiled.h.
void pack_q6_k_row(const BlockQ6_K& blk, int r, uint8_t* out) {
  std::memcpy(out + 2 * r, &blk.d, 2);
  for (int j = 0; j < 16; ++j) out[kQ6KTileSc + kTileRows * j + r] = static_cast<uint8_t>(blk.scales[j]);
  uint8_t q[QK_K];
  unpack_q6_k(blk, q);
  for (int j = 0; j < 16; ++j) {
    uint8_t* sub = out + kQ6KTileQuants + kQ6KTileSub * j;
    for (int i = 0; i < 4; ++i) {
      const uint8_t* c = q + 16 * j + i;  // q_g = c[4g]
      sub[4 * r + i] = static_cast<uint8_t>(c[0] | (c[12] & 3) << 6);
      sub[64 + 4 * r + i] = static_cast<uint8_t>(c[4] | (c[12] >> 2 & 3) << 6);
      sub[128 + 4 * r + i] = static_cast<uint8_t>(c[8] | (c[12] >> 4) << 6);
    }
  }
}

// One tile-block from the 16 (or fewer) source rows' block b.
void pack_tile_block(const WeightView& W, int64_t row0, int64_t b, uint8_t* out) {
  std::memset(out, 0, tile_block_bytes(W.type));
  uint8_t* quants = out + kTileScaleBytes;
  uint8_t k_scales[kQ4KScalesBytes] = {};
  for (int r = 0; r < kTileRows && row0 + r < W.rows; ++r) {
    const uint8_t* src = W.row(row0 + r);
    if (W.type == GgmlType::Q4_K) {
      pack_q4_k_row(reinterpret_cast<const BlockQ4_K*>(src)[b], r, out, k_scales);
    } else if (W.type == GgmlType::Q5_K) {
      pack_q5_k_row(reinterpret_cast<const BlockQ5_K*>(src)[b], r, out, k_scales);
    } else if (W.type == GgmlType::Q6_K) {
      pack_q6_k_row(reinterpret_cast<const BlockQ6_K*>(src)[b], r, out);
    } else if (W.type == GgmlType::Q4_0) {
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
  if (W.type == GgmlType::Q4_K || W.type == GgmlType::Q5_K) q4_k_pack_scales(k_scales, out + kQ4KTileScales);
}

}  // namespace

WeightView tiled_view(const WeightView& W, const uint8_t* dst) {
  if (!tiled_bytes(W)) fail("tile_weights: no tiled kernel for this matrix");
  const int64_t nb = W.cols / tile_block_cols(W.type);
  WeightView t = W;
  t.layout = Layout::Tiles16;
  t.tile_stride = static_cast<size_t>(nb) * tile_block_bytes(W.type);
  t.data = dst;
  return t;
}

WeightView tile_weights(const WeightView& W, uint8_t* dst) {
  const WeightView t = tiled_view(W, dst);
  const int64_t n_tiles = (W.rows + kTileRows - 1) / kTileRows, nb = W.cols / tile_block_cols(W.type);
  const size_t bb = tile_block_bytes(W.type);
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
  const int64_t bs = W.layout == Layout::Tiles16 ? tile_block_cols(W.type) : tt ? tt->block_size : 1;
  if (c0 < 0 || n <= 0 || c0 + n > W.cols || c0 % bs || n % bs)
    fail("column_slice: columns [", c0, ", ", c0 + n, ") of ", W.cols, " do not fall on ", bs, "-value blocks");
  WeightView v = W;
  v.cols = n;
  v.data = W.data + (W.layout == Layout::Tiles16 ? static_cast<size_t>(c0 / bs) * tile_block_bytes(W.type) : row_bytes(W.type, c0));
  return v;
}

namespace {

// Row `lane` of a Q4_K (Q5_K with `high`) tile-block as the file's dequantizer computes
// it: the same float operations in the same order (d·sc and dmin·m rounded first), so
// the same bits.
void dequantize_q4_k_tile_row(const uint8_t* tb, int64_t lane, float* out, bool high = false) {
  uint16_t h[2];
  std::memcpy(&h[0], tb + 2 * lane, 2);
  std::memcpy(&h[1], tb + 2 * kTileRows + 2 * lane, 2);
  const float d = fp16_to_fp32(h[0]), dmin = fp16_to_fp32(h[1]);
  uint8_t scales[kQ4KScalesBytes];
  q4_k_unpack_scales(tb + kQ4KTileScales, scales);
  // The fifth bit of column 4g + i of sub-block 2c + half: 16 or 0.
  auto fifth = [&](int c, int g, int half, int i) {
    if (!high) return 0;
    return (tb[q5_k_plane_at(2 * c + half) + 4 * lane + i] >> g & 1) << 4;
  };
  const int r = static_cast<int>(lane);
  for (int c = 0; c < 4; ++c) {
    const float d1 = d * scales[kTileRows * (2 * c) + r], m1 = dmin * scales[q4_k_min_at(2 * c, r)];
    const float d2 = d * scales[kTileRows * (2 * c + 1) + r], m2 = dmin * scales[q4_k_min_at(2 * c + 1, r)];
    for (int g = 0; g < 8; ++g)
      for (int i = 0; i < 4; ++i) {
        const uint8_t q = tb[k_quant_chunk_at(high, c) + 64 * g + 4 * lane + i];
        out[64 * c + 4 * g + i] = d1 * ((q & 0xF) + fifth(c, g, 0, i)) - m1;
        out[64 * c + 32 + 4 * g + i] = d2 * ((q >> 4) + fifth(c, g, 1, i)) - m2;
      }
  }
}

// Row `lane` of a Q6_K tile-block as dequantize_q6_k computes it (d·sc first, then ·q).
void dequantize_q6_k_tile_row(const uint8_t* tb, int64_t lane, float* out) {
  uint16_t h;
  std::memcpy(&h, tb + 2 * lane, 2);
  const float d = fp16_to_fp32(h);
  for (int j = 0; j < 16; ++j) {
    const uint8_t* sub = tb + kQ6KTileQuants + kQ6KTileSub * j;
    const float ds = d * static_cast<int8_t>(tb[kQ6KTileSc + kTileRows * j + lane]);
    for (int i = 0; i < 4; ++i) {
      const uint8_t a = sub[4 * lane + i], b = sub[64 + 4 * lane + i], c = sub[128 + 4 * lane + i];
      const int q[4] = {a & 0x3F, b & 0x3F, c & 0x3F, a >> 6 | (b >> 6) << 2 | (c >> 6) << 4};
      for (int g = 0; g < 4; ++g) out[16 * j + 4 * g + i] = ds * (q[g] - 32);
    }
  }
}

}  // namespace

void dequantize_tiled_row(const WeightView& W, int64_t r, float* dst) {
  const int64_t bc = tile_block_cols(W.type), nb = W.cols / bc, lane = r % kTileRows;
  const size_t bb = tile_block_bytes(W.type);
  const uint8_t* tile = W.data + static_cast<size_t>(r / kTileRows) * W.tile_stride;
  if (W.type == GgmlType::Q4_K || W.type == GgmlType::Q5_K) {
    for (int64_t b = 0; b < nb; ++b)
      dequantize_q4_k_tile_row(tile + static_cast<size_t>(b) * bb, lane, dst + bc * b, W.type == GgmlType::Q5_K);
    return;
  }
  if (W.type == GgmlType::Q6_K) {
    for (int64_t b = 0; b < nb; ++b) dequantize_q6_k_tile_row(tile + static_cast<size_t>(b) * bb, lane, dst + bc * b);
    return;
  }
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
