// Dispatch point of the kernel layer: picks the ISA's kernel table, quantizes the
// activations once per call, and splits weight rows across the threads.
#include "kernels/kernels.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "common/error.h"
#include "format/quant.h"
#include "kernels/act_quant.h"
#include "kernels/dispatch.h"
#include "kernels/phase_profile.h"
#include "kernels/tiled.h"
#include "kernels/work_queue.h"

namespace mlamoe::kernels {

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Avx512: return "avx512";
    case Isa::AvxVnni: return "avxvnni";
    case Isa::Avx2: return "avx2";
    default: return "scalar";
  }
}

const char* isa_family_name(Isa isa) { return isa_name(isa == Isa::AvxVnni ? Isa::Avx2 : isa); }

bool cpu_supports(Isa isa) {
  __builtin_cpu_init();
  switch (isa) {
    case Isa::Avx512:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
             __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx2") &&
             __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
    case Isa::AvxVnni: return cpu_supports(Isa::Avx2) && __builtin_cpu_supports("avxvnni");
    case Isa::Avx2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
    default: return true;
  }
}

bool parse_isa(const char* s, Isa* out) {
  for (Isa i : kAllIsas)
    if (std::strcmp(s, isa_name(i)) == 0) { *out = i; return true; }
  return false;
}

static Isa detect() {
  if (const char* env = std::getenv("MLAMOE_ISA")) {
    Isa want;
    if (!parse_isa(env, &want)) fail("MLAMOE_ISA=", env, ": expected avx512, avxvnni, avx2 or scalar");
    if (!cpu_supports(want)) fail("MLAMOE_ISA=", env, ": this CPU does not support it");
    return want;
  }
  for (Isa i : {Isa::Avx512, Isa::AvxVnni, Isa::Avx2})
    if (cpu_supports(i)) return i;
  return Isa::Scalar;
}

// The environment is read on first use, inside a command's error handling, so a bad
// MLAMOE_ISA or MLAMOE_PREFETCH is a one-line error rather than an abort before main.
static bool read_prefetch_env(bool* forced) {
  const char* env = std::getenv("MLAMOE_PREFETCH");
  *forced = env != nullptr;
  if (!env) return true;
  if (std::strcmp(env, "0") && std::strcmp(env, "1")) fail("MLAMOE_PREFETCH=", env, ": expected 0 or 1");
  return env[0] == '1';
}
struct Settings {
  Isa isa = detect();
  bool prefetch_forced = false;
  bool prefetch = read_prefetch_env(&prefetch_forced);
};
static Settings& settings() {
  static Settings s;
  return s;
}
Isa active_isa() { return settings().isa; }
void set_isa(Isa isa) {
  if (!cpu_supports(isa)) fail("ISA ", isa_name(isa), " is not supported by this CPU");
  settings().isa = isa;
}

bool decode_prefetch() { return settings().prefetch && settings().isa != Isa::Scalar; }
bool decode_prefetch_forced() { return settings().prefetch_forced; }
void set_decode_prefetch(bool on) { settings().prefetch = on; }

static TiledFn tiled_kernel(Isa isa, GgmlType t, bool prefetch) {
  switch (isa) {
    case Isa::Avx512: return avx512_tiled_kernel(t, prefetch);
    case Isa::AvxVnni: return avxvnni_tiled_kernel(t, prefetch);
    case Isa::Avx2: return avx2_tiled_kernel(t, prefetch);
    default: return nullptr;
  }
}
TiledFn active_tiled_kernel(GgmlType t) { return tiled_kernel(settings().isa, t, settings().prefetch); }
bool has_tiled_kernel(Isa isa, GgmlType t) { return tiled_kernel(isa, t, false) != nullptr; }

TiledTransposedFn active_tiled_transposed_kernel(GgmlType t) {
  switch (settings().isa) {
    case Isa::Avx512: return avx512_tiled_transposed_kernel(t);
    case Isa::AvxVnni:  // float FMA: VNNI brings nothing
    case Isa::Avx2: return avx2_tiled_transposed_kernel(t);
    default: return nullptr;
  }
}

// The weight bytes a product over rows [r0, r1) of W reads (a column slice, such as a
// shared expert's part of the shared down matrix, reads only its columns of each row).
static uint64_t bytes_read(const WeightView& W, int64_t r0, int64_t r1) {
  if (W.layout == Layout::Tiles16)
    return static_cast<uint64_t>((r1 - r0 + kTileRows - 1) / kTileRows) * static_cast<uint64_t>(W.cols / tile_block_cols(W.type)) *
           tile_block_bytes(W.type);
  return static_cast<uint64_t>(r1 - r0) * row_bytes(W.type, W.cols);
}

PrefetchChoice tune_decode_prefetch(const WeightView* const* views, size_t count) {
  // Tiled matrices up to ~384 MB: over 10× any last-level cache here, ~10 ms a pass.
  std::vector<const WeightView*> timed;
  size_t bytes = 0;
  int64_t cols = 0, rows = 0;
  for (size_t i = 0; i < count && bytes < (size_t{384} << 20); ++i) {
    const WeightView& W = *views[i];
    if (W.layout != Layout::Tiles16) continue;
    timed.push_back(&W);
    bytes += bytes_read(W, 0, W.rows);
    cols = std::max(cols, W.cols);
    rows = std::max(rows, W.rows);
  }
  if (bytes < (size_t{64} << 20)) return {false, settings().prefetch};  // a small model: nothing to learn from
  std::vector<float> x(static_cast<size_t>(cols)), y(static_cast<size_t>(rows));
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(static_cast<int>(i * 7919 % 255) - 127) / 127.f;
  return tune_decode_prefetch([&] {
    for (const WeightView* W : timed) matmul(*W, x.data(), 1, y.data());
    return static_cast<uint64_t>(bytes);
  });
}

PrefetchChoice tune_decode_prefetch(const std::function<uint64_t()>& pass) {
  Settings& set = settings();
  PrefetchChoice choice;
  choice.on = set.prefetch;
  if (set.prefetch_forced || set.isa == Isa::Scalar) return choice;  // only the tiled kernels prefetch
  auto timed_pass = [&] {
    const auto t0 = std::chrono::steady_clock::now();
    const uint64_t bytes = pass();
    return static_cast<double>(bytes) / std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / 1e9;
  };
  timed_pass();  // warm-up: threads, activations scratch
  // Alternating, so a drift of the host's bandwidth hits both alike.
  std::vector<double> rate[2];
  for (int r = 0; r < 8; ++r) {
    const bool on = (r % 2 == 0) == (r / 2 % 2 == 0);  // on off off on on off off on
    set.prefetch = on;
    rate[on].push_back(timed_pass());
  }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
  };
  choice.tuned = true;
  choice.gbps_on = median(rate[1]);
  choice.gbps_off = median(rate[0]);
  choice.on = choice.gbps_on >= choice.gbps_off;
  set.prefetch = choice.on;
  return choice;
}

static int g_threads = 0;
void set_threads(int n) {
  g_threads = n > 0 ? n : omp_get_num_procs();
  omp_set_num_threads(g_threads);
}
int threads() { return g_threads > 0 ? g_threads : omp_get_max_threads(); }

const KernelTable& kernel_table(Isa isa) {
  switch (isa) {
    case Isa::Avx512: return avx512_kernels();
    case Isa::AvxVnni:  // the file's rows take the AVX2 kernels: tiles are the default layout
    case Isa::Avx2: return avx2_kernels();
    default: return scalar_kernels();
  }
}

void get_row(const WeightView& W, int64_t r, float* dst) {
  if (W.layout == Layout::Tiles16) dequantize_tiled_row(W, r, dst);
  else dequantize_row(W.type, W.row(r), dst, W.cols);
}

void matmul_reference(const WeightView& W, const float* X, int64_t n, float* Y) {
  std::vector<float> w(W.cols);
  for (int64_t r = 0; r < W.rows; ++r) {
    get_row(W, r, w.data());
    for (int64_t t = 0; t < n; ++t) {
      const float* x = X + t * W.cols;
      float acc = 0.f;
      for (int64_t c = 0; c < W.cols; ++c) acc += w[c] * x[c];
      Y[t * W.rows + r] = acc;
    }
  }
}

// Per calling thread, grow-only: after the first calls of a shape nothing is allocated.
static thread_local std::vector<uint8_t> tl_activations, tl_unpacked_tile;
static thread_local std::vector<float> tl_row;

// 64-byte aligned: kernels store whole vectors into these buffers.
static uint8_t* grown(std::vector<uint8_t>& v, size_t bytes) {
  if (v.size() < bytes + 63) v.resize(bytes + 63);
  const uintptr_t at = reinterpret_cast<uintptr_t>(v.data());
  return v.data() + ((64 - at % 64) % 64);
}
uint8_t* activation_scratch(size_t bytes) { return grown(tl_activations, bytes); }
uint8_t* unpacked_tile_scratch(size_t bytes) { return grown(tl_unpacked_tile, bytes); }

static void check_view(const WeightView& W) {
  const TypeTraits* tt = type_traits(W.type);
  if (!tt || !tt->supported) fail("matmul: weight type ", static_cast<uint32_t>(W.type), " is not supported");
  if (W.cols % tt->block_size) fail("matmul: ", tt->name, " row of ", W.cols, " values is not a multiple of ", tt->block_size);
}

int work_threads(const WeightView& W, int64_t n) {
  // Below ~128 KB of weight traffic (a few microseconds for one core: MLA's per-head
  // W_UK/W_UV) a fork/join costs about what it saves; inside a caller's parallel region
  // we are one of its threads already.
  if (omp_in_parallel()) return 1;
  const double work = static_cast<double>(W.rows) * static_cast<double>(W.row_stride) * static_cast<double>(n);
  return work < 131072.0 ? 1 : std::max(1, std::min<int>(threads(), static_cast<int>(W.rows)));
}

void matmul_rows(const WeightView& W, int64_t r0, int64_t r1, const uint8_t* xq, size_t x_stride, int64_t n, float* Y,
                 size_t ldy) {
  if (r1 <= r0) return;
  if (phase_profiling()) count_weight_bytes(bytes_read(W, r0, r1));
  if (W.layout == Layout::Tiles16) {
    if (r0 % kTileRows) fail("matmul: tiled rows must start at a multiple of ", kTileRows);
    if (TiledFn fn = active_tiled_kernel(W.type)) {
      const int64_t first = r0 / kTileRows, n_tiles = (r1 - r0 + kTileRows - 1) / kTileRows;
      fn(W.data + static_cast<size_t>(first) * W.tile_stride, W.tile_stride, n_tiles, W.cols / tile_block_cols(W.type), r1 - r0, xq, x_stride, n,
         Y + r0, ldy);
      return;
    }
  }
  const MatFn fn = W.layout == Layout::Rows ? kernel_table(active_isa()).get(W.type) : nullptr;
  if (fn) {
    const int64_t bs = type_traits(W.type)->block_size;
    fn(W.row(r0), W.row_stride, r1 - r0, W.cols / bs, xq, x_stride, n, Y + r0, ldy);
    return;
  }
  // Types without a fused kernel (Q4_1, Q5_0 ...) and tiled weights under another ISA:
  // one row at a time through the reference dequantizer; activations are float here.
  if (tl_row.size() < static_cast<size_t>(W.cols)) tl_row.resize(static_cast<size_t>(W.cols));
  for (int64_t r = r0; r < r1; ++r) {
    get_row(W, r, tl_row.data());
    for (int64_t t = 0; t < n; ++t) {
      const float* x = reinterpret_cast<const float*>(xq + static_cast<size_t>(t) * x_stride);
      float acc = 0.f;
      for (int64_t c = 0; c < W.cols; ++c) acc += tl_row[static_cast<size_t>(c)] * x[c];
      Y[static_cast<size_t>(t) * ldy + static_cast<size_t>(r)] = acc;
    }
  }
}

ActFormat kernel_activation_format(const WeightView& W) {
  if (W.layout == Layout::Tiles16) {
    if (!active_tiled_kernel(W.type)) return ActFormat::F32;
    switch (W.type) {
      case GgmlType::Q6_K: return ActFormat::Q8S16;
      case GgmlType::Q4_K:
      case GgmlType::Q5_K: return ActFormat::Q8K32;
      default: return ActFormat::Q8;
    }
  }
  return kernel_table(active_isa()).get(W.type) ? activation_format(W.type) : ActFormat::F32;
}

// The products' rows in 16-row units (a tile each when tiled), 256 rows per run: the
// size of a MoE work item (ffn.cpp), one call's tiles within L2.
constexpr int64_t kUnitsPerRun = 16;

void widen_row(GgmlType t, const void* src, float* dst, int64_t n) {
  const KernelTable& k = kernel_table(active_isa());
  const auto* bytes = static_cast<const uint8_t*>(src);
  switch (t) {
    case GgmlType::F16: return k.widen_f16(bytes, dst, n);
    case GgmlType::BF16: return k.widen_bf16(bytes, dst, n);
    default: return dequantize_row(t, src, dst, n);
  }
}

void matmul(const WeightView& W, const float* X, int64_t n, float* Y) {
  const Product p{&W, Y};
  matmul_same_input(&p, 1, X, n);
}

// Several matrices on one input: the input is quantized once, and every thread takes
// its share of each matrix in the same parallel region (one fork/join, no barrier
// between the matrices).
void matmul_same_input(const Product* products, int count, const float* X, int64_t n) {
  if (n <= 0 || count <= 0) return;
  const WeightView& W0 = *products[0].W;
  for (int i = 0; i < count; ++i) {
    const WeightView& W = *products[i].W;
    check_view(W);
    if (W.cols != W0.cols || kernel_activation_format(W) != kernel_activation_format(W0)) {
      for (int j = 0; j < count; ++j) matmul(*products[j].W, X, n, products[j].Y);  // mixed inputs: one at a time
      return;
    }
  }
  const ActFormat f = kernel_activation_format(W0);
  const size_t x_stride = activation_row_bytes(f, W0.cols);
  const uint8_t* xq = reinterpret_cast<const uint8_t*>(X);
  uint8_t* buf = f == ActFormat::F32 ? nullptr : activation_scratch(x_stride * static_cast<size_t>(n));
  if (buf) xq = buf;
  WeightView all = W0;  // threads for the work of all of them together
  all.rows = 0;
  for (int i = 0; i < count; ++i) {
    all.rows += products[i].W->rows;
    all.row_stride = std::max(all.row_stride, products[i].W->row_stride);
  }
  const int nt = work_threads(all, n);
  auto rows = [&](int p, int64_t r0, int64_t r1) {
    const WeightView& W = *products[p].W;
    matmul_rows(W, r0, r1, xq, x_stride, n, products[p].Y, static_cast<size_t>(W.rows));
  };
  if (nt == 1) {
    PhaseTimer phase(Phase::Projections);  // no barrier: we may be one thread of a caller's team
    for (int64_t t = 0; buf && t < n; ++t) quantize_activation_row(f, X + t * W0.cols, buf + static_cast<size_t>(t) * x_stride, W0.cols);
    for (int p = 0; p < count; ++p) rows(p, 0, products[p].W->rows);
    return;
  }
  auto rows_of = [&](int p) { return products[p].W->rows; };
  SplitQueue queue(units_of_parts(count, kTileRows, rows_of), nt, kUnitsPerRun);
#pragma omp parallel num_threads(nt)
  {
    PhaseTimer phase(Phase::Projections);
    if (buf) {
#pragma omp for schedule(static)
      for (int64_t t = 0; t < n; ++t) quantize_activation_row(f, X + t * W0.cols, buf + static_cast<size_t>(t) * x_stride, W0.cols);
    }
    for (int64_t u0, u1; queue.next(omp_get_thread_num(), u0, u1);) for_each_part_rows(count, kTileRows, rows_of, u0, u1, rows);
    phase.end_of_region();
  }
}

}  // namespace mlamoe::kernels
