// Pieces of the Tiles16 layout (tiled.h) that more than one AVX-512 kernel file unpacks.
// Internal header: include only from *_avx512.cpp files (compiled with AVX-512 flags).
#pragma once
#include <immintrin.h>

#include <cstdint>

#include "kernels/tiled.h"

namespace mlamoe::kernels {

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

}  // namespace mlamoe::kernels
