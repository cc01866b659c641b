// How many independent vpdpbusd chains one core needs to issue at its peak rate: the
// measurement behind the prefill kernels' register blocks (src/kernels/tiled_avx512.cpp,
// Block32Tiles::kGroupTiles). Each chain adds 16 rows × 4 bytes into its own accumulator,
// the 4 activation bytes broadcast from memory inside the instruction (on Zen 5 a
// separate vpbroadcastd measured the same); a core with dpbusd latency L and throughput
// P per cycle needs L·P chains.
//
//   build/bench/dpbusd_chains_bench
//
// Reports G dpbusd/s and GMAC/s (64 multiply-adds each) per chain count, one thread; the
// _with_F_fma runs add F float multiply-add chains to 12 dpbusd chains (if the two share
// pipes, dpbusd/s falls to 12/(12+F) of the peak).
#include <benchmark/benchmark.h>
#include <immintrin.h>

#include <cstdint>

namespace {

alignas(64) int8_t g_activations[4096];
using AliasedInt32 = int32_t __attribute__((may_alias));

// Instructions a second (`name`) and multiply-adds a second, for ops_per_iteration
// instructions of macs_per_op multiply-adds each.
void report_rate(benchmark::State& state, int ops_per_iteration, const char* name, int macs_per_op) {
  const double ops = static_cast<double>(state.iterations()) * ops_per_iteration;
  state.counters[name] = benchmark::Counter(ops / 1e9, benchmark::Counter::kIsRate);
  state.counters["GMACps"] = benchmark::Counter(ops * macs_per_op / 1e9, benchmark::Counter::kIsRate);
}

// Sixteen named accumulators, of which the first N are used, each updated by an asm
// statement that ties it to its register: from the intrinsic GCC 12 at -O3 copied every
// accumulator to another register once per round (5.3-5.9 G dpbusd/s at any chain count,
// against 8.2 in this form).
#define MLAMOE_FOR_6(X) X(0) X(1) X(2) X(3) X(4) X(5)
#define MLAMOE_FOR_16(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13) X(14) X(15)

// N dpbusd chains, and F (≤ 6) float multiply-add chains beside them: whether the two
// share pipes (the prefill kernels end every block's dpbusd chains in float work).
template <int N, int F = 0>
__attribute__((target("avx512f,avx512bw,avx512vnni"))) void chains(benchmark::State& state) {
  if (!__builtin_cpu_supports("avx512vnni")) {
    state.SkipWithError("no AVX-512 VNNI on this CPU");
    return;
  }
#define MLAMOE_DECLARE(i) __m512i a##i = _mm512_set1_epi32(i);
  MLAMOE_FOR_16(MLAMOE_DECLARE)
#define MLAMOE_DECLARE_FLOAT(i) __m512 f##i = _mm512_set1_ps(i);
  MLAMOE_FOR_6(MLAMOE_DECLARE_FLOAT)
  __m512 m = _mm512_set1_ps(1.0001f), c = _mm512_set1_ps(0.5f);
  __m512i w = _mm512_set1_epi32(0x01020304);
  const int8_t* x = g_activations;
  constexpr int kRounds = 1024;
  for (auto _ : state) {
    for (int r = 0; r < kRounds; ++r) {
      asm("" : "+v"(w), "+r"(x), "+v"(m), "+v"(c));  // neither hoisted nor folded
#define MLAMOE_STEP(i)                                  \
  if constexpr (i < N)                                  \
    asm("vpdpbusd %2%{1to16%}, %1, %0" : "+v"(a##i) : "v"(w), "m"(*reinterpret_cast<const AliasedInt32*>(x + 4 * i)));
      MLAMOE_FOR_16(MLAMOE_STEP)
#define MLAMOE_FLOAT_STEP(i) \
  if constexpr (i < F) asm("vfmadd231ps %2, %1, %0" : "+v"(f##i) : "v"(m), "v"(c));
      MLAMOE_FOR_6(MLAMOE_FLOAT_STEP)
    }
  }
  __m512i sum = _mm512_setzero_si512();
#define MLAMOE_SUM(i) sum = _mm512_add_epi32(sum, a##i);
  MLAMOE_FOR_16(MLAMOE_SUM)
  benchmark::DoNotOptimize(sum);
  __m512 float_sum = _mm512_setzero_ps();  // (one value kept: DoNotOptimize on each would keep them in memory)
#define MLAMOE_SUM_FLOAT(i) float_sum = _mm512_add_ps(float_sum, f##i);
  MLAMOE_FOR_6(MLAMOE_SUM_FLOAT)
  benchmark::DoNotOptimize(float_sum);
  report_rate(state, kRounds * N, "G_dpbusd_per_s", 64);
}

BENCHMARK(chains<4>)->Name("dpbusd/chains4");
BENCHMARK(chains<6>)->Name("dpbusd/chains6");
BENCHMARK(chains<8>)->Name("dpbusd/chains8");
BENCHMARK(chains<10>)->Name("dpbusd/chains10");
BENCHMARK(chains<12>)->Name("dpbusd/chains12");
BENCHMARK(chains<16>)->Name("dpbusd/chains16");
BENCHMARK(chains<12, 3>)->Name("dpbusd/chains12_with_3_fma");
BENCHMARK(chains<12, 6>)->Name("dpbusd/chains12_with_6_fma");

// The 256-bit form without VNNI (AVX2 prefill, src/kernels/tiled_avx2.cpp): each step
// broadcasts 4 activation bytes, multiplies 8 rows × 4 bytes by them in vpmaddubsw and
// adds the int16 pair sums into its chain with vpaddw, the three instructions the AVX2
// kernels spend on 32 multiply-adds. W weight vectors share each broadcast (W = 2: both
// halves of a tile-block). This is the ceiling of those kernels' inner loops, before any
// unpacking, widening or scaling.
template <int N, int W>
__attribute__((target("avx2"))) void maddubs_chains(benchmark::State& state) {
  static_assert(N % W == 0 && N <= 16);
#define MLAMOE_DECLARE_256(i) __m256i s##i = _mm256_set1_epi16(i);
  MLAMOE_FOR_16(MLAMOE_DECLARE_256)
  __m256i w0 = _mm256_set1_epi32(0x01020304), w1 = _mm256_set1_epi32(0x05060708), x;
  const int8_t* a = g_activations;
  constexpr int kRounds = 1024;
  for (auto _ : state) {
    for (int r = 0; r < kRounds; ++r) {
      asm("" : "+x"(w0), "+x"(w1), "+r"(a));
#define MLAMOE_MADDUBS_STEP(i)                                                                                        \
  if constexpr (i < N) {                                                                                              \
    if constexpr (i % W == 0) asm("vpbroadcastd %1, %0" : "=x"(x) : "m"(*reinterpret_cast<const AliasedInt32*>(a + 4 * i))); \
    asm("vpmaddubsw %2, %1, %%ymm15\n\tvpaddw %%ymm15, %0, %0" : "+x"(s##i) : "x"(i % 2 ? w1 : w0), "x"(x) : "xmm15");      \
  }
      MLAMOE_FOR_16(MLAMOE_MADDUBS_STEP)
    }
  }
  __m256i sum = _mm256_setzero_si256();
#define MLAMOE_SUM_256(i) sum = _mm256_add_epi16(sum, s##i);
  MLAMOE_FOR_16(MLAMOE_SUM_256)
  benchmark::DoNotOptimize(sum);
  report_rate(state, kRounds * N, "G_maddubs_per_s", 32);
}

BENCHMARK(maddubs_chains<6, 1>)->Name("maddubs/chains6");
BENCHMARK(maddubs_chains<8, 1>)->Name("maddubs/chains8");
BENCHMARK(maddubs_chains<10, 1>)->Name("maddubs/chains10");
BENCHMARK(maddubs_chains<8, 2>)->Name("maddubs/chains8_2_per_broadcast");
BENCHMARK(maddubs_chains<10, 2>)->Name("maddubs/chains10_2_per_broadcast");

}  // namespace

BENCHMARK_MAIN();
