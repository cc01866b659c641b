// Software prefetch for the one-token (decode) tiled kernels of every SIMD ISA.
// Internal header; internal linkage, as the kernel files have different ISA flags.
#pragma once
#include <xmmintrin.h>

#include <cstddef>
#include <cstdint>

namespace mlamoe::kernels {
namespace {

// How far ahead decode prefetches: 2 KB (≈7 Q4_0 tile-blocks) into L1, and 8 KB into
// L2. A/B on the 27-layer Q4_0 file under AVX-512, tg128 medians: no prefetch 20.97 /
// 19.46 / 20.98, 2 KB 23.25 / 23.04 / 20.53 tok/s. The L1 prefetches alone keep only
// ~32 lines in flight per core, which caps a core near 17 GB/s at this VM's latency;
// when the host gives 50+ GB/s the far L2 prefetches let more misses queue:
// kernels_bench q4_0/avx512-tiled/n1/t2 weight GB/s, 8 alternating runs, median
// (min-max): 2 KB 44.7 (34.1-47.0), 2 KB + 8 KB 51.1 (34.8-54.9); at 40 GB/s they
// measured alike.
constexpr size_t kPrefetchBytes = 2048, kPrefetchFarBytes = 8192;
// On AMD Zen 4 the same prefetches cost decode a quarter of its speed (the cores' own
// stream prefetchers do better alone), so they are a run-time choice:
// kernels.h, decode_prefetch().
// The lines of one tile-block (`bytes` from tb) kPrefetchBytes ahead into L1 and
// kPrefetchFarBytes ahead into L2, if Prefetch.
template <bool Prefetch>
inline void prefetch_ahead(const uint8_t* tb, size_t bytes) {
  if constexpr (Prefetch)
    for (size_t o = 0; o < bytes; o += 64) {
      _mm_prefetch(reinterpret_cast<const char*>(tb + kPrefetchBytes + o), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(tb + kPrefetchFarBytes + o), _MM_HINT_T1);
    }
}

}  // namespace
}  // namespace mlamoe::kernels
