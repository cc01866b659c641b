// The Tiles16 weight layout (kernels.h: Layout::Tiles16). Internal header.
//
// A matrix of R rows becomes ceil(R/16) tiles of 16 rows (the last one padded with
// zero-scale rows). A tile is its rows' tile-blocks in column order: 32 columns for
// Q4_0 and Q8_0, one 256-column super-block for the K-quants (tile_block_cols). A Q4_0/Q8_0
// tile-block is
//   16 × fp16 scales (row 0..15), then the quants in groups of 64 bytes, where each
//   group holds 4 bytes of every row (row r at bytes 4r..4r+3).
// Q4_0: 4 groups; group g holds each row's original qs[4g..4g+3], whose low nibbles
//       are columns 4g..4g+3 and high nibbles columns 16+4g..16+4g+3 (values q in 0..15,
//       weight = d·(q − 8)).
// Q8_0: 8 groups; group s holds columns 4s..4s+3 as unsigned bytes q + 128.
// Q4_K (weight = d·sc_j·q − dmin·m_j in sub-block j of 32 columns, q in 0..15):
//   16 × fp16 d, 16 × fp16 dmin (64 bytes), then the 6-bit sc_j and m_j of the 16 rows
//   packed into 192 bytes (q4_k_pack_scales below: 12 bytes a row, as in the file), then
//   4 chunks of 512 bytes: chunk c is 8 groups, group g holding each row's original
//   qs[32c+4g..32c+4g+3], whose low nibbles are columns 4g..4g+3 of sub-block 2c and
//   high nibbles the same columns of sub-block 2c+1. 2304 bytes for 4096 weights: the
//   file's 4.5 bits each, so decode streams no byte the file does not hold.
// Q5_K (as Q4_K with q in 0..31): Q4_K's tile-block for the low 4 bits, each chunk
//   preceded by the fifth bits of its two sub-blocks: one 64-byte plane per sub-block
//   j (q5_k_plane_at), bit g of byte 4r + i set when column 4g + i of row r has q ≥ 16.
//   So byte k of the plane holds the fifth bits of byte k of the sub-block's 8 group
//   vectors, and group g's are one shift and one mask away (16 or 0 in every byte), or
//   one vptestmb (AVX-512). 2816 bytes for 4096 weights (5.5 bits, as in the file).
//   The planes come before their chunk's quants, so a tile-block is read front
//   to back: after the whole block, or after each chunk, the cores' own prefetchers
//   lost the stream (AVX-512 Q5_K_M decode without software prefetch: 47 % of the
//   roofline with the planes at the end, 83 % before each chunk).
// Q6_K (weight = d·sc_j·(q − 32) in sub-block j of 16 columns, q in 0..63, sc_j int8):
//   16 × fp16 d, then sc_j of the 16 rows for j = 0..15 (256 bytes), then 16 sub-blocks
//   of 192 bytes. Sub-block j's columns 16j + 4g + i (g, i < 4) of row r are q_g, the
//   byte 4r + i of three groups A, B, C: A = q_0 | (q_3 & 3) << 6, B = q_1 | (q_3 >> 2
//   & 3) << 6, C = q_2 | (q_3 >> 4) << 6. So q_0..q_2 are one mask each and q_3 the three
//   top fields gathered (3 shifts, 2 bit-selects, 1 mask): 9 operations per 64 weights
//   where the file's nibble/2-bit split takes ~18. 3360 bytes for 4096 weights, as in
//   the file (6.5625 bits each).
// So after unpacking, every 64-byte vector is "16 rows × 4 consecutive columns" of
// unsigned bytes: exactly one vpdpbusd operand against 4 activation bytes broadcast.
#pragma once
#include <cstddef>
#include <cstdint>

#include "format/ggml_types.h"

namespace mlamoe::kernels {

constexpr int kTileRows = 16;

// 4 activation bytes read as one int32, for the asm broadcasts of the kernel files (a type
// only, so safe to share between files of different ISA flags).
using AliasedInt32 = int32_t __attribute__((may_alias));
constexpr size_t kTileScaleBytes = 2 * kTileRows;

// Columns of one tile-block: 32, or 256 for Q4_K, Q5_K and Q6_K; 0 if `t` has no tiled form.
int64_t tile_block_cols(GgmlType t);
// Bytes of one tile-block (16 rows × tile_block_cols), 0 if `t` has no tiled form.
size_t tile_block_bytes(GgmlType t);

// The parts of a Q4_K tile-block.
constexpr size_t kQ4KTileScales = 4 * kTileRows;               // the packed sc_j, m_j
constexpr size_t kQ4KTileQuants = kQ4KTileScales + 3 * 64;
constexpr size_t kQ4KTileBytes = kQ4KTileQuants + 4 * 8 * 64;

// A Q4_K tile-block's scales unpacked, as the kernels read them: 256 bytes, sc_j of row
// r at 16 j + r, then m_j in pairs: 32 bytes per pair p, m_2p and m_2p+1 of row r at 2r
// and 2r + 1, so widened to int16 each row's pair is one dword against the activations'
// pair of sums.
constexpr size_t kQ4KScalesMin = 8 * kTileRows;
constexpr size_t kQ4KScalesBytes = 16 * kTileRows;
constexpr size_t q4_k_min_at(int j, int r) { return kQ4KScalesMin + 32 * static_cast<size_t>(j / 2) + 2 * static_cast<size_t>(r) + static_cast<size_t>(j % 2); }
// Packed, the 256 bytes u are three 64-byte vectors: for k < 64, p0[k] holds the low 4
// bits of u[k] and u[64 + k] (low, high nibble), p1[k] those of u[128 + k] and
// u[192 + k], and p2[k] the top 2 bits of all four, u[64 q + k]'s at bits 2q, 2q + 1.
// Each quarter u[64 q ..] comes back in 2-4 vector operations (q4_k_unpack_scales in
// the kernel files), and the tile-block is as long as the file's 16 super-blocks.
void q4_k_pack_scales(const uint8_t* unpacked, uint8_t* packed);
void q4_k_unpack_scales(const uint8_t* packed, uint8_t* unpacked);  // the scalar reference

// Where chunk c's quants sit in a Q4_K (Q5_K: high) tile-block, and sub-block j's
// fifth-bit plane in a Q5_K one: just before its chunk's quants.
constexpr size_t q5_k_plane_at(int j) { return kQ4KTileQuants + (2 * 64 + 512) * static_cast<size_t>(j / 2) + 64 * static_cast<size_t>(j % 2); }
constexpr size_t k_quant_chunk_at(bool high, int c) { return high ? q5_k_plane_at(2 * c) + 2 * 64 : kQ4KTileQuants + 512 * static_cast<size_t>(c); }
constexpr size_t kQ5KTileBytes = q5_k_plane_at(8);

// The parts of a Q6_K tile-block.
constexpr size_t kQ6KTileSc = 2 * kTileRows;                   // sc_j of row r at kQ6KTileSc + 16 j + r
constexpr size_t kQ6KTileQuants = kQ6KTileSc + 16 * kTileRows;  // sub-block j at + kQ6KTileSub j
constexpr size_t kQ6KTileSub = 3 * 64;                          // groups A, B, C
constexpr size_t kQ6KTileBytes = kQ6KTileQuants + 16 * kQ6KTileSub;

// y[t * ldy + 16 i + r] for tiles i < n_tiles of nb tile-blocks each, rows r < 16 (rows
// beyond `valid_rows` in the range are not written), tokens t < ntok with activation
// rows (kernel_activation_format: ActQ8, ActQ8S16 for Q6_K, ActQ8K32 for Q4_K) x_stride
// apart.
using TiledFn = void (*)(const uint8_t* tiles, size_t tile_stride, int64_t n_tiles, int64_t nb, int64_t valid_rows,
                         const uint8_t* x, size_t x_stride, int64_t ntok, float* y, size_t ldy);

// The AVX-512 VNNI, AVX-VNNI and AVX2 kernels for `t`, or nullptr; the one-token case
// prefetches the weights ahead in software if `decode_prefetch` (kernels.h).
TiledFn avx512_tiled_kernel(GgmlType t, bool decode_prefetch);
TiledFn avxvnni_tiled_kernel(GgmlType t, bool decode_prefetch);
TiledFn avx2_tiled_kernel(GgmlType t, bool decode_prefetch);
// The active ISA's kernel for `t` (with the decode prefetch setting), or nullptr: then
// `t` stays in the file's rows.
TiledFn active_tiled_kernel(GgmlType t);

// y[c] = Σ_{r < rows} x[r] · W[r][c] for every column c of a tiled matrix (n_tiles tiles
// of nb tile-blocks, tile_stride bytes apart): the transposed product, one token. AVX2
// sums in float32; AVX-512 rounds x · scale to int8 per 16 columns (the bound is in
// tiled_transposed_avx512.cpp).
using TiledTransposedFn = void (*)(const uint8_t* tiles, size_t tile_stride, int64_t n_tiles, int64_t nb, int64_t rows,
                                   const float* x, float* y);
// The AVX-512 and AVX2 kernels for `t` (Q4_0, Q8_0, Q6_K), or nullptr.
TiledTransposedFn avx512_tiled_transposed_kernel(GgmlType t);
TiledTransposedFn avx2_tiled_transposed_kernel(GgmlType t);
// The active ISA's, or nullptr.
TiledTransposedFn active_tiled_transposed_kernel(GgmlType t);

// Row r of a tiled view as float32 (the scalar reference path).
void dequantize_tiled_row(const struct WeightView& W, int64_t r, float* dst);

}  // namespace mlamoe::kernels
