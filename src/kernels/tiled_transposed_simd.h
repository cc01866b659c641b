// What the transposed kernels share: how far ahead they prefetch (both widths), and the
// column fields of a Tiles16 vector (the float kernel of tiled_transposed_avx2.cpp). A
// vector holds rows in its dword lanes and 4 consecutive columns in each dword's bytes;
// the fields take column i out as floats, one row per lane. For the fields, the
// including file defines, for its vector types, before including this header:
//   VI srli32(VI v, int n)      each dword shifted right by n (n a constant)
//   VI mask32(VI v, int bits)   each dword's low `bits` bits
//   VF fmadd(VF a, VF b, VF c)  a · b + c
//   VF to_float(VI v)           dwords to floats
// Internal header.
#pragma once
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

namespace mlamoe::kernels {
namespace {

// Each tile is its own stream, and a head's tiles are read side by side (8 streams of
// 5-9 KB for W_UK), too short for the cores' prefetchers to learn them: each visit
// fetches the same span about 1 KB further on in its tile, and a call starts by
// fetching that first KB of every tile. kernels_bench absorb/*/16x27x4, µs per head
// streamed (2 runs): none q4_0 4.40-4.45, q8_0 4.04-4.45, q6_K 6.61-6.78; then,
// with the start of every tile: 2 visits ahead (Q4_0 576 B, Q8_0 1088 B, Q6_K 384 B)
// 2.17-2.26, 2.04-2.08, 3.23-3.29; 4 visits (1152 B, 2176 B, 768 B) 2.17-2.22,
// 2.91-3.06, 2.80-2.93 (AVX-512). So ~1 KB: whole blocks for Q4_0/Q8_0, 4 sub-blocks
// for Q6_K. The AVX-512 int8 kernel, with half the arithmetic, keeps only each tile's
// start: prefetching 4 sub-blocks ahead slowed its Q6_K heads in decode (absorb 0.96-1.03
// ms a token against 0.85-0.89 with none).
constexpr size_t kAheadBytes = 1024;
constexpr size_t kQ6KAheadSubBlocks = 4;
inline void prefetch_lines(const uint8_t* p, size_t bytes) {
  for (size_t o = 0; o < bytes; o += 64) _mm_prefetch(reinterpret_cast<const char*>(p + o), _MM_HINT_T0);
}

// Byte I of each lane's dword, shifted right by Low more bits and masked to Bits bits.
template <int I, int Low, int Bits, class VI>
inline VI field(VI v) {
  constexpr int shift = 8 * I + Low;
  const VI s = shift ? srli32(v, shift) : v;
  if constexpr (shift + Bits >= 32) return s;
  else return mask32(s, Bits);
}

// acc[4g + i] += coef · (byte i of v[g], as a Bits-bit field Low bits up), g < Groups.
template <int Low, int Bits, int Groups, class VI, class VF>
inline void accumulate_fields(const VI* v, VF coef, VF* acc) {
  for (int g = 0; g < Groups; ++g) {
    acc[4 * g + 0] = fmadd(to_float(field<0, Low, Bits>(v[g])), coef, acc[4 * g + 0]);
    acc[4 * g + 1] = fmadd(to_float(field<1, Low, Bits>(v[g])), coef, acc[4 * g + 1]);
    acc[4 * g + 2] = fmadd(to_float(field<2, Low, Bits>(v[g])), coef, acc[4 * g + 2]);
    acc[4 * g + 3] = fmadd(to_float(field<3, Low, Bits>(v[g])), coef, acc[4 * g + 3]);
  }
}

}  // namespace
}  // namespace mlamoe::kernels
