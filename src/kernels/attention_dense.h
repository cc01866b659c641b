// Standard (decompressed) MLA attention, the naive path of DeepSeek-V2 §2.1: per head,
//   score_ij = scale · (q_nope_i · k_nope_j + q_rope_i · k_rope_j)
//   out_i    = Σ_j softmax_j(score_i) · v_j
// with k_nope = W_UK c_kv and v = W_UV c_kv already decompressed by the caller, and
// k_rope shared by every head. Per (query, key) this is d_nope + d_rope + d_v MACs
// (128 + 64 + 128 for V2-Lite) against the absorbed kernel's 2·d_c + d_rope (1088),
// which pays for the decompression once a prefill has enough queries per key.
// Keys are folded into an online-softmax state in tiles, so they can be decompressed
// and fed in chunks of bounded size. The vector paths put query rows in the vector
// lanes: a tile's scores, its running max and its exponentials are then whole vectors.
#pragma once
#include <cstdint>
#include <vector>

namespace mlamoe::kernels {

// Query rows of one head: row i is [q_nope | q_rope] at q + i·q_stride.
struct DenseQueries {
  const float* q = nullptr;
  const int64_t* last_pos = nullptr;  // per row: the last key position it may see (causal)
  int64_t rows = 0, q_stride = 0;
  int64_t d_nope = 0, d_rope = 0, d_v = 0;
  float scale = 1.f;
};

// Keys at positions [pos0, pos0 + count) of the same head: row j of each at base + j·stride.
struct DenseKeys {
  const float* k_nope = nullptr;
  const float* k_rope = nullptr;
  const float* v = nullptr;
  int64_t k_stride = 0, r_stride = 0, v_stride = 0;
  int64_t pos0 = 0, count = 0;
};

// Per row: running max m of score·log2(e), running sum l of 2^(score·log2(e) - m),
// unnormalised output o = Σ 2^(…) v (rows × d_v).
struct DenseAttentionState {
  std::vector<float> m, l, o;
  void reset(int64_t rows, int64_t d_v);
};

// Folds the keys into `s` (dispatches on active_isa()). Key chunks must come in
// position order; a row that sees none of them is left as it was.
void dense_attention_accumulate(const DenseQueries& q, const DenseKeys& k, DenseAttentionState& s);
void dense_attention_accumulate_reference(const DenseQueries& q, const DenseKeys& k, DenseAttentionState& s);

// out row i (at out + i·out_stride) = o_i / l_i; zeros for a row that saw no key.
void dense_attention_finish(const DenseAttentionState& s, int64_t d_v, float* out, int64_t out_stride);

}  // namespace mlamoe::kernels
