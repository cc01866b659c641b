// Software prefetch for the latent-attention sweeps (attention_simd.h, the bf16 kernel).
// The keys stream past in runs of a block (32 keys of a paged cache), each run in its
// own pages, so the hardware's stream prefetch retrains at every run and, with ~330 ns
// to DRAM, a core waiting on its loads runs the kernels a quarter slower than from L3.
// The first row group of each tile therefore prefetches the keys ~32 KB ahead of the
// ones it scores, past the run's end into the next run (NextRun), into L2 (prefetcht2):
// keys from DRAM, bf16 61–63 → 68–70 GMAC/s, fp32 30–34 → 33–38 (attention_bench, one
// thread); a V2-Lite decode at 4,096 keys, bf16 cache: 18.6–20.7 → 15.8–16.3 ms of
// attention a token. Two to sixteen keys ahead into L1 left the DRAM rate where it was.
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
  // Keys j and j + 1, counted from the run's first key (≥ count: in the next run): their
  // rotary rows prefetched whole, and their latent rows (null past what the sweep reads)
  // for the score loop to prefetch a line a step, as it reads the keys it scores.
  void start_pair(int64_t j, const T* (&c_rows)[2]) const {
    for (int i = 0; i < 2; ++i) {
      c_rows[i] = row(c_, next_.c_kv, d_c_, j + i);
      if (const T* r = row(r_, next_.k_rope, d_r_, j + i))
        for (int64_t b = 0; b < d_r_ * static_cast<int64_t>(sizeof(T)); b += 64) prefetch(reinterpret_cast<const char*>(r) + b);
    }
  }
  static void prefetch(const void* p) { __builtin_prefetch(p, 0, 1); }  // prefetcht2: into L2

 private:
  const T* row(const T* in_run, const T* in_next, int64_t width, int64_t j) const {
    if (j < count_) return in_run + j * width;
    j -= count_;
    return j < next_.count ? in_next + j * width : nullptr;
  }

  const T* c_;
  const T* r_;
  int64_t count_;
  mlamoe::kernels::NextRun<T> next_;
  int64_t d_c_, d_r_;
};

}  // namespace
