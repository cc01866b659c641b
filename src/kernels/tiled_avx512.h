// Pieces of the Tiles16 layout (tiled.h) that more than one AVX-512 kernel file unpacks.
// Internal header: include only from *_avx512.cpp files (compiled with AVX-512 flags).
#pragma once
#include <immintrin.h>

#include <cstdint>

#include "kernels/tiled.h"

namespace mlamoe::kernels {

// A 64-byte vector loaded into a register once. Without the empty asm GCC folds the load
// into every instruction that uses the vector (both nibble masks, a mask and a shift),
// and a Zen 4 core moves one 512-bit load per cycle: the Q4_K decode kernel's dot
// products alone on L1-resident tiles took 39 ns per tile-block with the load folded
// twice and 27 ns with one load.
inline __m512i load_once(const uint8_t* p) {
  __m512i v = _mm512_loadu_si512(p);
  asm("" : "+v"(v));
  return v;
}

// The valid rows of tile i (of a matrix with valid_rows rows) as a mask.
inline __mmask16 tile_rows(int64_t valid_rows, int64_t i) {
  const int64_t left = valid_rows - i * kTileRows;
  return left >= kTileRows ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << left) - 1);
}

// Q6_K's q_3 from a sub-block's groups A, B, C: bits 6-7 of each byte of a, b, c to bits
// 0-1, 2-3, 4-5 (16-bit shifts: what crosses from the next byte is selected away), each
// select (0xCA: mask ? second : third) one operation. Bits 6-7 of the result are left
// over: the caller masks them off.
inline __m512i q6_k_top_fields(__m512i a, __m512i b, __m512i c) {
  const __m512i ab = _mm512_ternarylogic_epi32(_mm512_set1_epi8(0x03), _mm512_srli_epi16(a, 6), _mm512_srli_epi16(b, 4), 0xCA);
  return _mm512_ternarylogic_epi32(_mm512_set1_epi8(0x0F), ab, _mm512_srli_epi16(c, 2), 0xCA);
}

// Sub-block j of a Q6_K tile-block as 4 vectors: w[g] = 16 rows × columns 16j + 4g ..
// 16j + 4g + 3 as bytes q (0..63).
inline void q6_k_sub_block(const uint8_t* tb, int j, __m512i* w) {
  const uint8_t* sub = tb + kQ6KTileQuants + kQ6KTileSub * static_cast<size_t>(j);
  const __m512i low6 = _mm512_set1_epi8(0x3F);
  const __m512i a = load_once(sub), b = load_once(sub + 64), c = load_once(sub + 128);
  w[0] = _mm512_and_si512(a, low6);
  w[1] = _mm512_and_si512(b, low6);
  w[2] = _mm512_and_si512(c, low6);
  w[3] = _mm512_and_si512(q6_k_top_fields(a, b, c), low6);
}

}  // namespace mlamoe::kernels
