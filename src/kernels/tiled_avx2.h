// Pieces of the Tiles16 layout (tiled.h) that more than one AVX2 kernel file unpacks.
// Internal header for the 256-bit kernel files (*_avx2.cpp, *_avxvnni.cpp). Internal
// linkage: those files have different ISA flags, so they must not share inline copies.
#pragma once
#include <immintrin.h>

#include <cstdint>

#include "kernels/tiled.h"

namespace mlamoe::kernels {
namespace {

// Half of a tile vector's 64 bytes: 8 rows × 4 columns.
constexpr int kHalfRows = 8;

inline __m256i load256(const uint8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }

// A mask of the first n lanes (n clamped to 0..8), for maskload/maskstore.
inline __m256i first_lanes(int64_t n) {
  const int k = static_cast<int>(n < 0 ? 0 : n > kHalfRows ? kHalfRows : n);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(k), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// The fp16 scales of half h of a tile-block (or of a tile-block's part at `p`) as floats.
inline __m256 half_scales(const uint8_t* p, int h) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 2 * kHalfRows * h)));
}

// 8 unsigned or signed bytes (one per row of a half, e.g. its sc_j) as int32 lanes.
inline __m256i u8_lanes(const uint8_t* p) { return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))); }
inline __m256i s8_lanes(const uint8_t* p) { return _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))); }

// A Q4_K/Q5_K tile-block's scales unpacked (tiled.h) into `scales` (kQ4KScalesBytes).
inline void unpack_k_quant_scales(const uint8_t* tb, uint8_t* scales) {
  const uint8_t* packed = tb + kQ4KTileScales;
  // 4 bits from `nibbles`, the 2 at bits 4-5 of `top_bits` above them.
  const auto quarter = [](__m256i nibbles, __m256i top_bits) {
    return _mm256_or_si256(_mm256_and_si256(nibbles, _mm256_set1_epi8(0x0F)), _mm256_and_si256(top_bits, _mm256_set1_epi8(0x30)));
  };
  const auto store = [](uint8_t* p, __m256i v) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), v); };
  for (int k = 0; k < 64; k += 32) {
    const __m256i p0 = load256(packed + k), p1 = load256(packed + 64 + k), top = load256(packed + 128 + k);
    store(scales + k, quarter(p0, _mm256_slli_epi16(top, 4)));
    store(scales + 64 + k, quarter(_mm256_srli_epi16(p0, 4), _mm256_slli_epi16(top, 2)));
    store(scales + 128 + k, quarter(p1, top));
    store(scales + 192 + k, quarter(_mm256_srli_epi16(p1, 4), _mm256_srli_epi16(top, 2)));
  }
}

// m_2p, m_2p+1 of half `half`'s rows as int16 pairs, from unpack_k_quant_scales' bytes,
// to meet the activations' pair of sub-block sums in one vpmaddwd / vpdpwssd.
inline __m256i min_pairs(const uint8_t* scales, int half, int p) {
  return _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(scales + kQ4KScalesMin + 32 * p + 16 * half)));
}

// A K-quant super-block's end for one token: acc + d·dx·total − dmin·dx·mins, with d and
// dmin the half's half_scales of the tile's two fp16 scale rows.
inline __m256 k_quant_finish(__m256 d, __m256 dmin, float dx, __m256i total, __m256i mins, __m256 acc) {
  const __m256 vdx = _mm256_set1_ps(dx);
  acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(total), _mm256_mul_ps(d, vdx), acc);
  return _mm256_fnmadd_ps(_mm256_cvtepi32_ps(mins), _mm256_mul_ps(dmin, vdx), acc);
}

// Q6_K's q_3 from half of a sub-block's groups A, B, C: bits 6-7 of each byte of a, b, c
// to bits 0-1, 2-3, 4-5 (16-bit shifts: what crosses from the neighbouring byte is
// masked away).
inline __m256i q6_k_top_fields(__m256i a, __m256i b, __m256i c) {
  const __m256i low = _mm256_and_si256(_mm256_srli_epi16(a, 6), _mm256_set1_epi8(0x03));
  const __m256i mid = _mm256_and_si256(_mm256_srli_epi16(b, 4), _mm256_set1_epi8(0x0C));
  const __m256i high = _mm256_and_si256(_mm256_srli_epi16(c, 2), _mm256_set1_epi8(0x30));
  return _mm256_or_si256(_mm256_or_si256(low, mid), high);
}

// Q5_K's fifth bits of group g, half `half` of sub-block j (tiled.h: bit g of each byte
// of the sub-block's plane) as 16 in each byte whose bit is set, 0 elsewhere. g must be a
// constant (unrolled loops): a variable 16-bit shift count costs a register move.
inline __m256i fifth_bits(const uint8_t* tb, int j, int g, int half) {
  const __m256i plane = load256(tb + q5_k_plane_at(j) + 32 * half);
  // Bit g to bit 4; what a 16-bit shift brings over from the neighbouring byte is masked.
  const __m256i at4 = g < 4 ? _mm256_slli_epi16(plane, 4 - g) : _mm256_srli_epi16(plane, g - 4);
  return _mm256_and_si256(at4, _mm256_set1_epi8(16));
}

}  // namespace
}  // namespace mlamoe::kernels
