// The kernel layer: the only place that does heavy arithmetic on weights.
// One dispatch point (kernels.cpp) picks AVX-512, AVX-VNNI, AVX2 or scalar at run time;
// MLAMOE_ISA=avx512|avxvnni|avx2|scalar forces one. The model only sees these functions and
// typed weight views, so kernels can change without touching the model code.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>

#include "format/ggml_types.h"

namespace mlamoe::kernels {

// AvxVnni is AVX2 plus the 256-bit vpdpbusd (Intel client cores from Alder Lake on,
// which lack AVX-512): the AVX2 kernels, except that the int8 tiled ones use vpdpbusd.
enum class Isa { Scalar = 0, Avx2 = 1, AvxVnni = 2, Avx512 = 3 };
inline constexpr Isa kAllIsas[] = {Isa::Scalar, Isa::Avx2, Isa::AvxVnni, Isa::Avx512};
const char* isa_name(Isa isa);
// The vector width's family: "avx512", "avx2" (for AvxVnni too) or "scalar".
const char* isa_family_name(Isa isa);
bool cpu_supports(Isa isa);
// Whether `isa` has an int8 kernel over the tiled layout for weights of type t (then
// tile_weights re-lays such weights out while `isa` is active).
bool has_tiled_kernel(Isa isa, GgmlType t);
Isa active_isa();
void set_isa(Isa isa);            // Error if the CPU lacks it
bool parse_isa(const char* s, Isa* out);

void set_threads(int n);          // -t N; <= 0 means all cores
int threads();

// Whether the one-token (decode) tiled kernels prefetch the weights ahead in software
// (false under the scalar ISA, whatever the setting). It pays on some
// hosts and costs on others (an Intel Xeon: +11 % decode with it; an AMD Zen 4: up to
// −25 %), so it is measured: tune_decode_prefetch times both on the model's own
// weights. MLAMOE_PREFETCH=0|1 forces it (then tuning keeps it).
bool decode_prefetch();
bool decode_prefetch_forced();  // by MLAMOE_PREFETCH
void set_decode_prefetch(bool on);
struct WeightView;
struct PrefetchChoice {
  bool tuned = false;               // false: forced by MLAMOE_PREFETCH, or nothing to time
  bool on = true;
  double gbps_on = 0, gbps_off = 0;  // medians of the alternating timings
};
// Times one-token products over `views` (together far larger than the last-level
// cache), alternating with and without prefetch, and keeps the faster.
PrefetchChoice tune_decode_prefetch(const WeightView* const* views, size_t count);
// The same over `pass`, a decode-like workload returning the weight bytes it read (the
// model's: one token through the routed experts of every MoE layer).
PrefetchChoice tune_decode_prefetch(const std::function<uint64_t()>& pass);

// How a weight matrix's bytes are laid out.
//   Rows    — as in the file (ggml): row r at data + r * row_stride.
//   Tiles16 — re-laid out at load for the int8 kernels (kernels/tiled.h): 16 rows
//             interleaved per tile, tiles `tile_stride` bytes apart. Same type, same
//             bytes per weight, so decode streams exactly what the file holds.
enum class Layout { Rows, Tiles16 };

// A weight matrix: `rows` rows of `cols` elements of `type` (ne[0] = cols is the
// contiguous dimension in the file). `row_stride` is the bytes of one row as stored in
// the file, whatever the layout.
struct WeightView {
  GgmlType type = GgmlType::F32;
  const uint8_t* data = nullptr;
  int64_t rows = 0;
  int64_t cols = 0;
  size_t row_stride = 0;
  Layout layout = Layout::Rows;
  size_t tile_stride = 0;  // Tiles16 only
  // Row r's bytes (Rows layout only; tiled rows are read through get_row).
  const uint8_t* row(int64_t r) const { return data + static_cast<size_t>(r) * row_stride; }
  bool empty() const { return data == nullptr; }
};

// Y[t][r] = sum_c W[r][c] * X[t][c] for t < n: X is n × cols, Y is n × rows, float32
// row-major. Weights are dequantized inside the dot product (never a float copy of W).
void matmul(const WeightView& W, const float* X, int64_t n, float* Y);
// dst = the n values of a row of type t as float32 (F16 and BF16 with the active ISA's
// conversions, every other type through the format's dequantizer).
void widen_row(GgmlType t, const void* src, float* dst, int64_t n);

// Y_i = W_i X for several matrices with the same input (MLA's W_Q and W_DKV, both fed
// by the normed hidden state): one quantization of X, one parallel pass.
struct Product {
  const WeightView* W;
  float* Y;
};
void matmul_same_input(const Product* products, int count, const float* X, int64_t n);

// Reference: dequantize each row, dot in double-free float32. Single-threaded, slow,
// the ground truth every fast path is tested against.
void matmul_reference(const WeightView& W, const float* X, int64_t n, float* Y);

// dst[0..cols) = row r of W as float32 (embedding lookup), in either layout.
void get_row(const WeightView& W, int64_t r, float* dst);

// Load-time re-layout for the int8 kernels: Q4_0, Q8_0, Q4_K, Q5_K and Q6_K matrices get
// 16 rows interleaved per tile (tiled.h), so one 64-byte load
// feeds 16 rows × 4 columns into one vpdpbusd (two 8-row halves on 256-bit ISAs) and the
// unpacking is paid once per tile, not once per row. tiled_bytes is 0
// when the active ISA has no tiled kernel for W (then keep W as it is).
size_t tiled_bytes(const WeightView& W);
// Writes the tiled copy of W (a Rows view) into dst (tiled_bytes(W) bytes, 64-byte
// aligned) and returns a view of it.
WeightView tile_weights(const WeightView& W, uint8_t* dst);
// The view tile_weights returns, for tiles already at dst (a tile cache, model/tile_cache.h).
WeightView tiled_view(const WeightView& W, const uint8_t* dst);
// Bumped whenever the bytes tile_weights writes for the same input change, or which
// matrices a model tiles, so tile caches made by an older build are not used. 2: a
// legacy attn_kv_b's W_UK^T is no longer a column-scaled transpose. 3: Q5_K is tiled.
// 4: Q5_K's fifth bits are bit planes, before their chunk. 5: Q4_K/Q5_K scales stay 6-bit.
constexpr uint32_t kTileFormatVersion = 5;

// Views of part of a matrix in either layout, no copy: rows [r0, r0 + n) (r0 a multiple
// of 16 when tiled) and columns [c0, c0 + n) (c0 and n multiples of the block size).
WeightView row_slice(const WeightView& W, int64_t r0, int64_t n);
WeightView column_slice(const WeightView& W, int64_t c0, int64_t n);

// A SwiGLU feed-forward block: a DeepSeekMoE routed expert, the shared experts taken
// together, or a dense FFN. FFN(x) = W_down · (silu(W_gate · x) ⊙ (W_up · x)).
struct FfnWeights {
  WeightView gate, up, down;  // W1, W3, W2
};

// Y = FFN(X) for n tokens (X and Y: n × d). X is quantized once for gate and up, both
// run in one parallel pass, silu·up is fused into quantizing the down input.
void swiglu_ffn(const FfnWeights& w, const float* X, int64_t n, float* Y);

// g[j] = silu(g[j]) · u[j] for j < n: SwiGLU's elementwise step.
void silu_mul(float* g, const float* u, int64_t n);

// DeepSeekMoE routed experts over a batch, accumulating into Y (n × d):
//   Y[t] += Σ_{i<k} weights[t*k+i] · FFN_{ids[t*k+i]}(X[t]).
// Tokens are grouped by expert first, so each selected expert's weights stream from
// memory once per batch; the gate/up rows of all selected experts are shared out to
// the threads in one pass, then all down rows: 4 barriers per call, no allocation
// once the scratch has grown to the batch size.
void moe_ffn(const FfnWeights* experts, int64_t n_experts, const float* X, int64_t n, const int32_t* ids,
             const float* weights, int k, float* Y);

}  // namespace mlamoe::kernels

namespace mlamoe::kernels {
// Y[t][c] = sum_r W[r][c] * X[t][r]: the transposed product (X is n × rows, Y is
// n × cols). MLA needs it where a file stores an up-projection in the other
// orientation (W_UK for the naive path, the legacy attn_kv_b for the absorbed one).
void matmul_transposed(const WeightView& W, const float* X, int64_t n, float* Y);
// Whether W (file rows), once tiled, takes one of matmul_transposed's float kernels.
bool has_tiled_transposed(const WeightView& W);

}  // namespace mlamoe::kernels
