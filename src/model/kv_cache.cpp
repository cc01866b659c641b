#include "model/kv_cache.h"

#include <algorithm>

#include "common/error.h"
#include "format/quant.h"
#include "kernels/kernels.h"

namespace mlamoe {

void KvCache::decode_run(const Run& r, float* c_kv, float* k_rope) const {
  const size_t c_row = row_bytes(r.c_kv_type, kv_lora_rank_), r_row = row_bytes(r.k_rope_type, rope_dim_);
  const auto* c = static_cast<const uint8_t*>(r.c_kv_raw);
  const auto* k = static_cast<const uint8_t*>(r.k_rope_raw);
  for (int64_t j = 0; j < r.count; ++j) {
    kernels::widen_row(r.c_kv_type, c + j * c_row, c_kv + j * kv_lora_rank_, kv_lora_rank_);
    kernels::widen_row(r.k_rope_type, k + j * r_row, k_rope + j * rope_dim_, rope_dim_);
  }
}

ContiguousKvCache::ContiguousKvCache(int64_t n_layers, int64_t kv_lora_rank, int64_t rope_dim, int64_t max_ctx)
    : KvCache(n_layers, kv_lora_rank, rope_dim), max_ctx_(max_ctx) {}

ContiguousKvCache::Seq& ContiguousKvCache::get(int32_t seq) {
  for (auto& [id, s] : seqs_)
    if (id == seq) return s;
  seqs_.emplace_back(seq, Seq{});
  Seq& s = seqs_.back().second;
  s.c_kv.resize(static_cast<size_t>(n_layers_));
  s.k_rope.resize(static_cast<size_t>(n_layers_));
  return s;
}

const ContiguousKvCache::Seq* ContiguousKvCache::find(int32_t seq) const {
  for (auto& [id, s] : seqs_)
    if (id == seq) return &s;
  return nullptr;
}

int64_t ContiguousKvCache::length(int32_t seq) const {
  const Seq* s = find(seq);
  return s ? s->length : 0;
}

void ContiguousKvCache::reserve(int32_t seq, int64_t new_length) {
  if (new_length > max_ctx_) fail("sequence of ", new_length, " tokens exceeds the context size ", max_ctx_);
  Seq& s = get(seq);
  for (int64_t l = 0; l < n_layers_; ++l) {
    auto& c = s.c_kv[static_cast<size_t>(l)];
    auto& r = s.k_rope[static_cast<size_t>(l)];
    if (static_cast<int64_t>(c.size()) < new_length * kv_lora_rank_) {
      // Grow geometrically so token-by-token decode does not reallocate every step.
      int64_t cap = std::min<int64_t>(max_ctx_, std::max<int64_t>(new_length, 2 * static_cast<int64_t>(c.size() / kv_lora_rank_)));
      c.reserve(static_cast<size_t>(cap * kv_lora_rank_));
      r.reserve(static_cast<size_t>(cap * rope_dim_));
      c.resize(static_cast<size_t>(new_length * kv_lora_rank_));
      r.resize(static_cast<size_t>(new_length * rope_dim_));
    }
  }
}

void ContiguousKvCache::store(int32_t seq, int64_t layer, int64_t pos, const float* c_kv, const float* k_rope) {
  Seq& s = get(seq);
  auto& c = s.c_kv[static_cast<size_t>(layer)];
  auto& r = s.k_rope[static_cast<size_t>(layer)];
  if ((pos + 1) * kv_lora_rank_ > static_cast<int64_t>(c.size())) fail("KV cache: position ", pos, " not reserved");
  std::copy(c_kv, c_kv + kv_lora_rank_, c.begin() + pos * kv_lora_rank_);
  std::copy(k_rope, k_rope + rope_dim_, r.begin() + pos * rope_dim_);
}

void ContiguousKvCache::set_length(int32_t seq, int64_t length) { get(seq).length = length; }

void ContiguousKvCache::clear(int32_t seq) {
  seqs_.erase(std::remove_if(seqs_.begin(), seqs_.end(), [&](auto& p) { return p.first == seq; }), seqs_.end());
}

void ContiguousKvCache::truncate(int32_t seq, int64_t length) {
  Seq& s = get(seq);
  s.length = std::min(s.length, length);
}

uint64_t ContiguousKvCache::bytes_used() const {
  uint64_t n = 0;
  for (auto& [id, s] : seqs_) n += static_cast<uint64_t>(s.length) * n_layers_ * (kv_lora_rank_ + rope_dim_) * sizeof(float);
  return n;
}

KvCache::Run ContiguousKvCache::run_at(int32_t seq, int64_t layer, int64_t pos, int64_t end) const {
  const Seq* s = find(seq);
  if (!s) fail("KV cache: unknown sequence ", seq);
  const auto& c = s->c_kv[static_cast<size_t>(layer)];
  const auto& r = s->k_rope[static_cast<size_t>(layer)];
  return Run{end - pos, c.data() + pos * kv_lora_rank_, r.data() + pos * rope_dim_};
}

}  // namespace mlamoe
