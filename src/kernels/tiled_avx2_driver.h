// The loop over tiles and tokens shared by the 256-bit tiled kernels (tiled_avx2.cpp,
// tiled_avxvnni.cpp). A kernel K supplies its activation type, kBlockBytes, kTokens (the
// tokens sharing each unpacked weight vector in prefill), and either
//   block<NT>(tile block, half, block index, activations, acc[NT]): the dot products of
//     half a tile-block (8 rows) with NT tokens, added into acc[t]; or, with kBothHalves,
//   both_halves<NT>(tile block, block index, activations, acc[2][NT]): both halves.
// A K-quant kernel (kPackedScales) takes the block's unpacked scales (tiled.h) after the
// tile block in either, and block also the unpacked weights (UnpacksOnce) or null.
// Internal header for 256-bit kernel files only. Everything here has internal linkage:
// the files are compiled with different ISA flags, so no inline function may be shared
// between them (the linker would keep one copy for both).
#pragma once
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "kernels/act_quant.h"
#include "kernels/dispatch.h"
#include "kernels/tile_prefetch.h"
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

// Q6_K's half tile-block (tiled.h), shared by the 256-bit kernels: per activation block
// i, sub-blocks 2i and 2i + 1 each unpack to q_0..q_3 (8 rows × 4 columns, q in 0..63),
// and Dot::sub_block turns them and a token's 16 activations into each row's int32
// sc_j · Σ (q − 32)·x; the two sub-blocks share the activation block's dx.
template <class Dot>
struct Q6KTilesOf {
  using Act = ActQ8;  // read as ActQ8S16 (the same bytes with the sum split)
  static constexpr size_t kBlockBytes = kQ6KTileBytes;
  static constexpr bool kBothHalves = false;
  static constexpr int kTokens = 4;
  template <int NT>
  static void block(const uint8_t* tb, int half, int64_t b, const ActQ8* const* xs, __m256* acc) {
    const __m256i low6 = _mm256_set1_epi8(0x3F);
    const __m256 d = half_scales(tb, half);
    for (int i = 0; i < 8; ++i) {  // activation block 8b + i: sub-blocks 2i, 2i + 1
      __m256i sum[NT];
      for (int t = 0; t < NT; ++t) sum[t] = _mm256_setzero_si256();
      for (int p = 0; p < 2; ++p) {
        const int j = 2 * i + p;
        const uint8_t* sub = tb + kQ6KTileQuants + kQ6KTileSub * static_cast<size_t>(j) + 32 * half;
        const __m256i ga = load256(sub), gb = load256(sub + 64), gc = load256(sub + 128);
        const __m256i w[4] = {_mm256_and_si256(ga, low6), _mm256_and_si256(gb, low6), _mm256_and_si256(gc, low6),
                              q6_k_top_fields(ga, gb, gc)};
        const __m256i sc = Dot::scales(tb + kQ6KTileSc + kTileRows * j + kHalfRows * half);
        for (int t = 0; t < NT; ++t) {
          const ActQ8S16& x = *reinterpret_cast<const ActQ8S16*>(&xs[t][8 * b + i]);
          sum[t] = _mm256_add_epi32(sum[t], Dot::sub_block(w, x.qs + 16 * p, x.sums[p], sc));
        }
      }
      for (int t = 0; t < NT; ++t)
        acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum[t]), _mm256_mul_ps(d, _mm256_set1_ps(xs[t][8 * b + i].d)), acc[t]);
    }
  }
};

// Kernels whose prefill unpacks each tile once into a buffer (unpack_half: one half
// tile-block into kUnpackedHalfBytes) and takes the weights from there (block's
// `unpacked`), instead of unpacking them again for every few tokens.
template <class K>
concept UnpacksOnce = requires { requires K::kUnpackOnce; };

// Kernels whose tile-blocks carry packed Q4_K/Q5_K scales: unpacked once per block for
// one token, once per tile (for all token groups) in prefill.
template <class K>
concept UnpacksScales = requires { requires K::kPackedScales; };

// Bytes of one half tile-block unpacked by an UnpacksOnce kernel, else 0.
template <class K>
constexpr size_t unpacked_half_bytes() {
  if constexpr (UnpacksOnce<K>) return K::kUnpackedHalfBytes;
  else return 0;
}

// Stores the first n (≤ 8) lanes of v.
inline void store_rows(float* y, __m256 v, int64_t n) {
  if (n >= kHalfRows) return _mm256_storeu_ps(y, v);
  if (n > 0) _mm256_maskstore_ps(y, first_lanes(n), v);
}

// Halves h0 .. h0 + H − 1 of one tile against NT tokens; `valid` rows of the tile are kept.
// A kernel with kBothHalves takes a tile-block's two halves in one call (both_halves), so
// each activation broadcast feeds two instructions; otherwise one half at a time (block).
// Prefetch: the weights ahead in software (decode, tile_prefetch.h). `unpacked`: the
// tile's weights unpacked (UnpacksOnce kernels, prefill), or null. `scales`: the tile's
// unpacked scales (UnpacksScales kernels, prefill), or null: then each block's here.
template <class K, int H, int NT, bool Prefetch = false>
void tile_dot(const uint8_t* tile, int h0, int64_t nb, const typename K::Act* const* xs, float* const* ys, int64_t valid,
              const uint8_t* unpacked = nullptr, const uint8_t* scales = nullptr) {
  __m256 acc[H][NT];
  for (int h = 0; h < H; ++h)
    for (int t = 0; t < NT; ++t) acc[h][t] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* tb = tile + static_cast<size_t>(b) * K::kBlockBytes;
    prefetch_ahead<Prefetch>(tb, K::kBlockBytes);
    if constexpr (UnpacksScales<K>) {
      alignas(32) uint8_t own[kQ4KScalesBytes];
      const uint8_t* sc = scales ? scales + static_cast<size_t>(b) * kQ4KScalesBytes : own;
      if (!scales) unpack_k_quant_scales(tb, own);
      if constexpr (K::kBothHalves) K::template both_halves<NT>(tb, sc, b, xs, acc);
      else
        for (int h = 0; h < H; ++h)
          K::template block<NT>(tb, sc, unpacked ? unpacked + (2 * b + h0 + h) * unpacked_half_bytes<K>() : nullptr, h0 + h, b, xs, acc[h]);
    } else if constexpr (K::kBothHalves) {
      K::template both_halves<NT>(tb, b, xs, acc);
    } else {
      for (int h = 0; h < H; ++h) K::template block<NT>(tb, h0 + h, b, xs, acc[h]);
    }
  }
  for (int h = 0; h < H; ++h)
    for (int t = 0; t < NT; ++t) store_rows(ys[t] + kHalfRows * (h0 + h), acc[h][t], valid - kHalfRows * (h0 + h));
}

// tile_dot for nt ≤ NT tokens.
template <class K, int H, int NT>
void tile_dot_n(int nt, const uint8_t* tile, int h0, int64_t nb, const typename K::Act* const* xs, float* const* ys, int64_t valid,
                const uint8_t* unpacked, const uint8_t* scales) {
  if constexpr (NT > 1) {
    if (nt < NT) return tile_dot_n<K, H, NT - 1>(nt, tile, h0, nb, xs, ys, valid, unpacked, scales);
  }
  tile_dot<K, H, NT>(tile, h0, nb, xs, ys, valid, unpacked, scales);
}

constexpr int64_t kTokenChunk = 64;  // as tiled_avx512.cpp: the activations stay in L2

template <class K, bool Prefetch>
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
        tile_dot<K, 2, 1, Prefetch>(tile, 0, nb, xs, ys, valid);
        continue;
      }
      // Weights unpacked once only when a pass of K::kTokens will not take the whole
      // chunk: otherwise every unpacked byte would be read back just once. Scales are
      // read by every pass and both halves.
      const bool weights = UnpacksOnce<K> && c1 - c0 > K::kTokens;
      const size_t weight_bytes = weights ? static_cast<size_t>(nb) * 2 * unpacked_half_bytes<K>() : 0;
      const size_t scale_bytes = UnpacksScales<K> ? static_cast<size_t>(nb) * kQ4KScalesBytes : 0;
      const uint8_t *unpacked = nullptr, *scales = nullptr;
      if (weight_bytes + scale_bytes > 0) {
        uint8_t* buffer = unpacked_tile_scratch(weight_bytes + scale_bytes);
        for (int64_t b = 0; b < nb; ++b) {
          const uint8_t* tb = tile + static_cast<size_t>(b) * K::kBlockBytes;
          if constexpr (UnpacksScales<K>) unpack_k_quant_scales(tb, buffer + weight_bytes + static_cast<size_t>(b) * kQ4KScalesBytes);
          if constexpr (UnpacksOnce<K>)
            for (int h = 0; h < 2 && weights; ++h) K::unpack_half(tb, h, buffer + (2 * b + h) * K::kUnpackedHalfBytes);
        }
        if (weights) unpacked = buffer;
        if (scale_bytes) scales = buffer + weight_bytes;
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
          tile_dot_n<K, H, K::kTokens>(nt, tile, h, nb, xs, ys, valid, unpacked, scales);
        }
    }
  }
}

// A 256-bit file's kernel for `t` among its five, or nullptr.
template <class Q4_0K, class Q8_0K, class Q4KK, class Q5KK, class Q6KK, bool Prefetch>
TiledFn tiled_kernel_of(GgmlType t) {
  switch (t) {
    case GgmlType::Q4_0: return tiled_matmul<Q4_0K, Prefetch>;
    case GgmlType::Q8_0: return tiled_matmul<Q8_0K, Prefetch>;
    case GgmlType::Q4_K: return tiled_matmul<Q4KK, Prefetch>;
    case GgmlType::Q5_K: return tiled_matmul<Q5KK, Prefetch>;
    case GgmlType::Q6_K: return tiled_matmul<Q6KK, Prefetch>;
    default: return nullptr;
  }
}
template <class... Kernels>
TiledFn tiled_kernel_of(GgmlType t, bool decode_prefetch) {
  return decode_prefetch ? tiled_kernel_of<Kernels..., true>(t) : tiled_kernel_of<Kernels..., false>(t);
}

}  // namespace
}  // namespace mlamoe::kernels
