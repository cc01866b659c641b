// The loop nest every ISA shares: rows × tokens tiles. Included by each kernel file
// into an anonymous namespace, so every ISA gets its own copy compiled with its flags
// (no inline function is shared across files compiled with different -m options).
//
// Kernel::dot<T>(w_row, nb, x[T], out[T]) computes one weight row against T tokens,
// decoding each weight block once for the T tokens. Around it, a chunk of rows small
// enough to stay in L1 is swept by every group of tokens, so for prefill each weight
// block comes from DRAM once per call and from L1 once per token group.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>

namespace {

constexpr size_t kRowChunkBytes = 16 * 1024;

template <class Kernel, int G>
inline void dispatch_tokens(int nt, const uint8_t* wr, int64_t nb, const uint8_t* const* xs, float* out) {
  if constexpr (G > 1) {
    if (nt < G) return dispatch_tokens<Kernel, G - 1>(nt, wr, nb, xs, out);
  }
  Kernel::template dot<G>(wr, nb, xs, out);
}

// G tokens per group: 4 fits AVX2's 16 registers, 8 uses AVX-512's 32.
template <class Kernel, int G = 4>
void tiled_matmul(const uint8_t* w, size_t w_stride, int64_t nrows, int64_t nb, const uint8_t* x,
                  size_t x_stride, int64_t ntok, float* y, size_t ldy) {
  const int64_t chunk = ntok == 1 ? nrows : std::max<int64_t>(1, static_cast<int64_t>(kRowChunkBytes / std::max<size_t>(w_stride, 1)));
  for (int64_t r0 = 0; r0 < nrows; r0 += chunk) {
    const int64_t r1 = std::min(nrows, r0 + chunk);
    for (int64_t t0 = 0; t0 < ntok; t0 += G) {
      const int nt = static_cast<int>(std::min<int64_t>(G, ntok - t0));
      const uint8_t* xs[G];
      for (int i = 0; i < nt; ++i) xs[i] = x + static_cast<size_t>(t0 + i) * x_stride;
      for (int64_t r = r0; r < r1; ++r) {
        const uint8_t* wr = w + static_cast<size_t>(r) * w_stride;
        float out[G];
        dispatch_tokens<Kernel, G>(nt, wr, nb, xs, out);
        for (int i = 0; i < nt; ++i) y[static_cast<size_t>(t0 + i) * ldy + static_cast<size_t>(r)] = out[i];
      }
    }
  }
}

}  // namespace
