// Absorbed MLA attention over the cached latents (DeepSeek-V2 report, §2.1 and its
// appendix on absorbing W_UK): for query row i and cached position j
//   score_ij = scale · (q_lat_i · c_kv_j + q_rope_i · k_rope_j)
//   out_i    = Σ_j softmax_j(score_i) · c_kv_j      (still latent: W_UV comes after)
// The keys stream past in runs (one per block of a paged cache) and are folded into an
// online-softmax state, so a run is read once for every query row (all heads, several
// tokens) and no score vector of the whole context is ever stored. Splitting the keys
// into ranges and merging the states is how the sweep is shared among threads.
#pragma once
#include <cstdint>
#include <vector>

namespace mlamoe::kernels {

struct LatentQueries {
  const float* q_lat = nullptr;     // rows × d_c: W_UK^T q_nope per (token, head)
  const float* q_rope = nullptr;    // rows × d_r: the rotated rotary query part
  const int64_t* last_pos = nullptr;  // per row: the last key position it may see (causal)
  int64_t rows = 0, d_c = 0, d_r = 0;
  float scale = 1.f;
  // Optional, for latent_attention_accumulate_bf16: the same rows already rounded by
  // round_latent_queries_bf16 (row stride kLatentQueryBf16Stride), so a sweep of many
  // runs rounds them once; null: each call rounds them.
  const uint16_t* q_bf16 = nullptr;
};

// A bf16-rounded query row's stride (q_lat then q_rope), in values: d_c + d_r at most.
constexpr int64_t kLatentQueryBf16Stride = 1024;

// Per row: running max m of the scores seen, running sum l of exp(score - m), and the
// unnormalised output o = Σ exp(score - m) c_kv (rows × d_c).
struct LatentAttentionState {
  std::vector<float> m, l, o;
  void reset(int64_t rows, int64_t d_c);
};

// Where a sweep's keys continue after the run a call is given: the next run, often
// another block of a paged cache, where the hardware's stream prefetch cannot follow.
// The vector kernels prefetch that far ahead across the run's end; empty (count 0) when
// the run is the sweep's last or the cache cannot say without loading it.
template <class T>
struct NextRun {
  const T* c_kv = nullptr;
  const T* k_rope = nullptr;
  int64_t count = 0;
};

// Folds keys at positions [j0, j0 + count) (c_kv: count × d_c, k_rope: count × d_r)
// into `s`. The keys are taken one at a time in position order — the running max only
// moves forward, so the output is rescaled only when a row's max grows — which makes
// the result independent of how the keys are cut into calls: a paged cache (one call
// per block) and a contiguous one (one call) give the same bits.
void latent_attention_accumulate(const LatentQueries& q, int64_t j0, int64_t count, const float* c_kv,
                                 const float* k_rope, LatentAttentionState& s, const NextRun<float>& next = {});
// The same, in plain scalar C++: the reference the vectorized path is tested against.
void latent_attention_accumulate_reference(const LatentQueries& q, int64_t j0, int64_t count, const float* c_kv,
                                           const float* k_rope, LatentAttentionState& s);

// The same over keys cached in bf16 (c_kv: count × d_c, k_rope: count × d_r, as
// uint16 bit patterns). On AVX-512 BF16 CPUs the products are taken in bf16 (the
// query and the softmax weights rounded to it; attention_bf16_avx512.cpp), elsewhere
// the keys are widened to fp32 for latent_attention_accumulate. Unlike the fp32 path
// the bf16 kernel's bits depend on where the runs start.
void latent_attention_accumulate_bf16(const LatentQueries& q, int64_t j0, int64_t count, const uint16_t* c_kv,
                                      const uint16_t* k_rope, LatentAttentionState& s,
                                      const NextRun<uint16_t>& next = {});
// Fills `out` (q.rows × kLatentQueryBf16Stride values) for LatentQueries::q_bf16 and
// returns true when the active kernel for bf16 keys computes in bf16; false (out
// untouched) when it widens the keys to fp32 and takes the fp32 queries.
bool round_latent_queries_bf16(const LatentQueries& q, uint16_t* out);

// a ← a ⊕ b, where a and b saw disjoint key ranges (flash-decoding's split-K merge).
void latent_attention_merge(LatentAttentionState& a, const LatentAttentionState& b, int64_t d_c);
// out_i = o_i / l_i (rows × d_c); a row that saw no key gets zeros.
void latent_attention_finish(const LatentAttentionState& s, int64_t d_c, float* out);

}  // namespace mlamoe::kernels
