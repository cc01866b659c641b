// The latent KV cache as the forward pass sees it. MLA caches, per token and layer,
// only the compressed latent c_kv (kv_lora_rank values, already RMS-normed) and the
// shared rotary key k_rope (qk_rope_head_dim values, already rotated): nothing per
// head. Implementations: ContiguousKvCache here (one array per sequence and layer);
// the paged, prefix-sharing, RAM+SSD tiered cache lives in src/runtime.
#pragma once
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "format/ggml_types.h"

namespace mlamoe {

class KvCache {
 public:
  virtual ~KvCache() = default;
  int64_t kv_lora_rank() const { return kv_lora_rank_; }
  int64_t rope_dim() const { return rope_dim_; }
  int64_t n_layers() const { return n_layers_; }

  // Tokens cached for a sequence (positions 0..length-1 are present).
  virtual int64_t length(int32_t seq) const = 0;
  // Makes room for positions up to `new_length` of `seq`; Error if over capacity.
  virtual void reserve(int32_t seq, int64_t new_length) = 0;
  // Stores the entry of `seq` at `pos` for `layer`.
  virtual void store(int32_t seq, int64_t layer, int64_t pos, const float* c_kv, const float* k_rope) = 0;
  // Calls fn(first_pos, count, c_kv, k_rope) over runs of contiguous entries covering
  // positions [0, n) of `seq` in `layer`: c_kv is count × kv_lora_rank, k_rope is
  // count × rope_dim. A paged cache yields one run per block, without copying; a run
  // stored in a narrower type (f16/bf16/q8_0) is decoded into a per-thread float32
  // scratch first; a run of a tiered cache stays pinned in RAM during the callback.
  // Safe to call from several threads at once (the attention sweep does).
  template <typename Fn>
  void for_each_run(int32_t seq, int64_t layer, int64_t n, Fn&& fn) const {
    will_read(seq, layer, n);
    for_each_run_in(seq, layer, 0, n, fn);
  }
  // The same over positions [from, to) only, without the read-ahead hint: for threads
  // that share one sweep (the caller calls will_read once for the whole of it).
  template <typename Fn>
  void for_each_run_in(int32_t seq, int64_t layer, int64_t from, int64_t to, Fn&& fn) const {
    for_each_run_in(seq, layer, from, to, fn, nullptr);
  }
  // The same, except that a run stored in bf16 (c_kv and k_rope both) goes to
  // bf16_fn(first_pos, count, c_kv, k_rope) as its uint16 bit patterns, undecoded:
  // for kernels that compute in bf16. bf16_fn may be nullptr.
  // Either callback may take a fifth argument, the Run that follows in [from, to) when
  // it is in RAM and stored as the callback's run is, so the callback reads it the same
  // way (count 0 otherwise, and for decoded runs): where the sweep goes next, for
  // kernels that prefetch across the end of a run.
  template <typename Fn, typename Bf16Fn>
  void for_each_run_in(int32_t seq, int64_t layer, int64_t from, int64_t to, Fn&& fn, Bf16Fn&& bf16_fn) const {
    int64_t pos = from;
    while (pos < to) {
      const Run r = run_at(seq, layer, pos, to);
      struct Unpin {
        const KvCache& kv;
        const Run& r;
        ~Unpin() { kv.unpin(r); }
      } unpin_after{*this, r};
      const auto next = [&] { return resident_run_like(r, seq, layer, pos + r.count, to); };
      if (r.c_kv) {
        call_with_next(fn, pos, r.count, r.c_kv, r.k_rope, next());
      } else if constexpr (!std::is_same_v<std::decay_t<Bf16Fn>, std::nullptr_t>) {
        if (r.c_kv_type == GgmlType::BF16 && r.k_rope_type == GgmlType::BF16)
          call_with_next(bf16_fn, pos, r.count, static_cast<const uint16_t*>(r.c_kv_raw),
                         static_cast<const uint16_t*>(r.k_rope_raw), next());
        else
          decode_and_call(r, pos, fn);
      } else {
        decode_and_call(r, pos, fn);
      }
      pos += r.count;
    }
  }
  // Sets the length of `seq` after a forward pass wrote positions [0, length).
  virtual void set_length(int32_t seq, int64_t length) = 0;
  // Drops everything of `seq` (frees its memory).
  virtual void clear(int32_t seq) = 0;
  // Keeps only the first `length` positions of `seq`.
  virtual void truncate(int32_t seq, int64_t length) = 0;
  // Bytes used by cached entries (for metrics).
  virtual uint64_t bytes_used() const = 0;

  struct Run {
    int64_t count = 0;
    const float* c_kv = nullptr;    // float32 entries, or null when stored in another type:
    const float* k_rope = nullptr;  // then the rows are in c_kv_raw / k_rope_raw below
    const void* c_kv_raw = nullptr;
    const void* k_rope_raw = nullptr;
    GgmlType c_kv_type = GgmlType::F32, k_rope_type = GgmlType::F32;
    const void* pin = nullptr;  // what unpin() releases (tiered caches)
  };
  // The longest contiguous run starting at `pos` (at most up to `end`). A tiered cache
  // loads it into RAM if needed and keeps it there until unpin(run).
  virtual Run run_at(int32_t seq, int64_t layer, int64_t pos, int64_t end) const = 0;
  virtual void unpin(const Run&) const {}
  // run_at's run if it is in RAM and needs no pin (nothing to unpin), else count 0:
  // a look ahead that neither loads nor holds anything.
  virtual Run resident_run_at(int32_t, int64_t, int64_t, int64_t) const { return Run{}; }
  // Hint at the start of a sweep over positions [0, n) of `layer`: a tiered cache
  // starts reading cold blocks (of this layer and the next) ahead of the sweep.
  // single_pass: the sweep reads each position once (decode), so a tiered cache should
  // evict what it has read first; otherwise it may reread them.
  virtual void will_read(int32_t seq, int64_t layer, int64_t n, bool single_pass = false) const {}
  // Decodes a typed run's rows to float32: c_kv count × kv_lora_rank, k_rope count × rope_dim.
  void decode_run(const Run& r, float* c_kv, float* k_rope) const;

 protected:
  KvCache(int64_t n_layers, int64_t kv_lora_rank, int64_t rope_dim)
      : n_layers_(n_layers), kv_lora_rank_(kv_lora_rank), rope_dim_(rope_dim) {}
  int64_t n_layers_, kv_lora_rank_, rope_dim_;

 private:
  // fn over a typed run decoded into the calling thread's float32 scratch.
  template <typename Fn>
  void decode_and_call(const Run& r, int64_t pos, Fn& fn) const {
    thread_local std::vector<float> c_kv, k_rope;
    c_kv.resize(static_cast<size_t>(r.count * kv_lora_rank_));
    k_rope.resize(static_cast<size_t>(r.count * rope_dim_));
    decode_run(r, c_kv.data(), k_rope.data());
    call_with_next(fn, pos, r.count, static_cast<const float*>(c_kv.data()), static_cast<const float*>(k_rope.data()), Run{});
  }
  // resident_run_at(pos), if there is one before `to` stored as `like` is; else empty.
  Run resident_run_like(const Run& like, int32_t seq, int64_t layer, int64_t pos, int64_t to) const {
    if (pos >= to) return Run{};
    const Run n = resident_run_at(seq, layer, pos, to);
    const bool same = n.c_kv_type == like.c_kv_type && n.k_rope_type == like.k_rope_type && !n.c_kv == !like.c_kv;
    return same ? n : Run{};
  }
  template <typename Fn, typename T>
  static void call_with_next(Fn& fn, int64_t pos, int64_t count, const T* c_kv, const T* k_rope, const Run& next) {
    if constexpr (std::is_invocable_v<Fn&, int64_t, int64_t, const T*, const T*, const Run&>)
      fn(pos, count, c_kv, k_rope, next);
    else
      fn(pos, count, c_kv, k_rope);
  }
};

// One growable float32 array per (sequence, layer), c_kv and k_rope side by side
// in separate arrays so the attention sweep reads each contiguously.
class ContiguousKvCache final : public KvCache {
 public:
  ContiguousKvCache(int64_t n_layers, int64_t kv_lora_rank, int64_t rope_dim, int64_t max_ctx);
  int64_t length(int32_t seq) const override;
  void reserve(int32_t seq, int64_t new_length) override;
  void store(int32_t seq, int64_t layer, int64_t pos, const float* c_kv, const float* k_rope) override;
  void set_length(int32_t seq, int64_t length) override;
  void clear(int32_t seq) override;
  void truncate(int32_t seq, int64_t length) override;
  uint64_t bytes_used() const override;
  Run run_at(int32_t seq, int64_t layer, int64_t pos, int64_t end) const override;

 private:
  struct Seq {
    int64_t length = 0;
    std::vector<std::vector<float>> c_kv, k_rope;  // per layer
  };
  Seq& get(int32_t seq);
  const Seq* find(int32_t seq) const;
  int64_t max_ctx_;
  std::vector<std::pair<int32_t, Seq>> seqs_;
};

}  // namespace mlamoe
