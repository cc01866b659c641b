// The loop over tiles and tokens shared by the 256-bit tiled kernels (tiled_avx2.cpp,
// tiled_avxvnni.cpp). A kernel K supplies its activation type, kBlockBytes, kTokens (the
// tokens sharing each unpacked weight vector in prefill), and either
//   block<NT>(tile block, half, block index, activations, acc[NT]): the dot products of
//     half a tile-block (8 rows) with NT tokens, added into acc[t]; or, with kBothHalves,
//   both_halves<NT>(tile block, block index, activations, acc[2][NT]): both halves.
// Internal header for 256-bit kernel files only. Everything here has internal linkage:
// the files are compiled with different ISA flags, so no inline function may be shared
// between them (the linker would keep one copy for both).
#pragma once
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "kernels/tiled.h"
#include "kernels/tiled_avx2.h"

namespace mlamoe::kernels {
namespace {

// 4 activation bytes in every 32-bit lane: the 4 columns each row's bytes hold.
inline __m256i broadcast4(const void* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}

// Stores the first n (≤ 8) lanes of v.
inline void store_rows(float* y, __m256 v, int64_t n) {
  if (n >= kHalfRows) return _mm256_storeu_ps(y, v);
  if (n > 0) _mm256_maskstore_ps(y, first_lanes(n), v);
}

// Halves h0 .. h0 + H − 1 of one tile against NT tokens; `valid` rows of the tile are kept.
// A kernel with kBothHalves takes a tile-block's two halves in one call (both_halves), so
// each activation broadcast feeds two instructions; otherwise one half at a time (block).
template <class K, int H, int NT>
void tile_dot(const uint8_t* tile, int h0, int64_t nb, const typename K::Act* const* xs, float* const* ys, int64_t valid) {
  __m256 acc[H][NT];
  for (int h = 0; h < H; ++h)
    for (int t = 0; t < NT; ++t) acc[h][t] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* tb = tile + static_cast<size_t>(b) * K::kBlockBytes;
    if constexpr (K::kBothHalves) K::template both_halves<NT>(tb, b, xs, acc);
    else
      for (int h = 0; h < H; ++h) K::template block<NT>(tb, h0 + h, b, xs, acc[h]);
  }
  for (int h = 0; h < H; ++h)
    for (int t = 0; t < NT; ++t) store_rows(ys[t] + kHalfRows * (h0 + h), acc[h][t], valid - kHalfRows * (h0 + h));
}

// tile_dot for nt ≤ NT tokens.
template <class K, int H, int NT>
void tile_dot_n(int nt, const uint8_t* tile, int h0, int64_t nb, const typename K::Act* const* xs, float* const* ys, int64_t valid) {
  if constexpr (NT > 1) {
    if (nt < NT) return tile_dot_n<K, H, NT - 1>(nt, tile, h0, nb, xs, ys, valid);
  }
  tile_dot<K, H, NT>(tile, h0, nb, xs, ys, valid);
}

constexpr int64_t kTokenChunk = 64;  // as tiled_avx512.cpp: the activations stay in L2

template <class K>
void tiled_matmul(const uint8_t* tiles, size_t tile_stride, int64_t n_tiles, int64_t nb, int64_t valid_rows,
                  const uint8_t* x, size_t x_stride, int64_t ntok, float* y, size_t ldy) {
  using Act = typename K::Act;
  constexpr int H = K::kBothHalves ? 2 : 1;  // halves per pass over a tile, several tokens
  for (int64_t c0 = 0; c0 < ntok; c0 += kTokenChunk) {
    const int64_t c1 = ntok - c0 < kTokenChunk ? ntok : c0 + kTokenChunk;
    for (int64_t i = 0; i < n_tiles; ++i) {
      const uint8_t* tile = tiles + static_cast<size_t>(i) * tile_stride;
      const int64_t valid = valid_rows - i * kTileRows;
      float* y_tile = y + static_cast<size_t>(i * kTileRows);
      if (c1 - c0 == 1) {  // one token: both halves in one pass over the tile
        const Act* xs[1] = {reinterpret_cast<const Act*>(x + static_cast<size_t>(c0) * x_stride)};
        float* ys[1] = {y_tile + static_cast<size_t>(c0) * ldy};
        tile_dot<K, 2, 1>(tile, 0, nb, xs, ys, valid);
        continue;
      }
      for (int h = 0; h < 2 && valid > kHalfRows * h; h += H)
        for (int64_t t0 = c0; t0 < c1; t0 += K::kTokens) {
          const int nt = static_cast<int>(c1 - t0 < K::kTokens ? c1 - t0 : K::kTokens);
          const Act* xs[K::kTokens] = {};
          float* ys[K::kTokens] = {};
          for (int t = 0; t < nt; ++t) {
            xs[t] = reinterpret_cast<const Act*>(x + static_cast<size_t>(t0 + t) * x_stride);
            ys[t] = y_tile + static_cast<size_t>(t0 + t) * ldy;
          }
          tile_dot_n<K, H, K::kTokens>(nt, tile, h, nb, xs, ys, valid);
        }
    }
  }
}

}  // namespace
}  // namespace mlamoe::kernels
