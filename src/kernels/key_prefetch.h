// Software prefetch for the latent-attention sweeps (attention_simd.h, the bf16 kernel).
// The keys stream past in runs of a block (32 keys of a paged cache), each run in its
// own pages, so the hardware's stream prefetch retrains at every run and, with ~330 ns
// to DRAM, a core waiting on its loads runs the kernels a quarter slower than from L3.
// The first row group of each tile therefore prefetches the keys ~32 KB ahead of the
// ones it scores, past the run's end into the next run (NextRun), into L2 (prefetcht2):
// bf16 keys from DRAM 61 → 75 GMAC/s, fp32 30 → 36–38 (attention_bench, one thread).
// Two keys ahead into L1, as before, left the DRAM rate where it was.
#pragma once
#include <cstdint>

#include "kernels/attention.h"

namespace {

template <class T>
class KeyLookahead {
 public:
  // The run a call was given (count keys) and where the sweep goes on after it.
  KeyLookahead(const T* c_kv, const T* k_rope, int64_t count, const mlamoe::kernels::NextRun<T>& next, int64_t d_c,
               int64_t d_r)
      : c_(c_kv), r_(k_rope), count_(count), next_(next), d_c_(d_c), d_r_(d_r) {}

  // How many keys ahead of the one being scored to prefetch.
  int64_t distance() const {
    constexpr int64_t kAheadBytes = 32 << 10;
    const int64_t key_bytes = (d_c_ + d_r_) * static_cast<int64_t>(sizeof(T));
    const int64_t keys = kAheadBytes / (key_bytes > 0 ? key_bytes : 1);
    return keys < 2 ? 2 : keys;
  }
  // Key j's rows, counted from the run's first key (j ≥ count: in the next run), or null
  // past what the sweep will read.
  const T* c_row(int64_t j) const {
    if (j < count_) return c_ + j * d_c_;
    j -= count_;
    return j < next_.count ? next_.c_kv + j * d_c_ : nullptr;
  }
  const T* r_row(int64_t j) const {
    if (j < count_) return r_ + j * d_r_;
    j -= count_;
    return j < next_.count ? next_.k_rope + j * d_r_ : nullptr;
  }
  // The whole of key j's rotary row (its latent row is prefetched a line per step of
  // the score loop, as that loop reads the key being scored).
  void prefetch_rope(int64_t j) const {
    if (const T* r = r_row(j))
      for (int64_t b = 0; b < d_r_ * static_cast<int64_t>(sizeof(T)); b += 64) prefetch(reinterpret_cast<const char*>(r) + b);
  }
  static void prefetch(const void* p) { __builtin_prefetch(p, 0, 1); }  // prefetcht2: into L2

 private:
  const T* c_;
  const T* r_;
  int64_t count_;
  mlamoe::kernels::NextRun<T> next_;
  int64_t d_c_, d_r_;
};

}  // namespace
