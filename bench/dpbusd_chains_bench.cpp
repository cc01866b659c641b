// How many independent vpdpbusd chains one core needs to issue at its peak rate: the
// measurement behind the prefill kernels' register blocks (src/kernels/tiled_avx512.cpp,
// Block32Tiles::kGroupTiles). Each chain adds 16 rows × 4 bytes into its own accumulator,
// the 4 activation bytes broadcast from memory inside the instruction (on Zen 5 a
// separate vpbroadcastd measured the same); a core with dpbusd latency L and throughput
// P per cycle needs L·P chains.
//
//   build/bench/dpbusd_chains_bench
//
// Reports G dpbusd/s and GMAC/s (64 multiply-adds each) per chain count, one thread.
#include <benchmark/benchmark.h>
#include <immintrin.h>

#include <cstdint>

namespace {

alignas(64) int8_t g_activations[4096];
using AliasedInt32 = int32_t __attribute__((may_alias));

// Sixteen named accumulators, of which the first N are used, each updated by an asm
// statement that ties it to its register: from the intrinsic GCC 12 at -O3 copied every
// accumulator to another register once per round (5.3-5.9 G dpbusd/s at any chain count,
// against 8.2 in this form).
#define MLAMOE_FOR_16(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13) X(14) X(15)

template <int N>
__attribute__((target("avx512f,avx512bw,avx512vnni"))) void chains(benchmark::State& state) {
  if (!__builtin_cpu_supports("avx512vnni")) {
    state.SkipWithError("no AVX-512 VNNI on this CPU");
    return;
  }
#define MLAMOE_DECLARE(i) __m512i a##i = _mm512_set1_epi32(i);
  MLAMOE_FOR_16(MLAMOE_DECLARE)
  __m512i w = _mm512_set1_epi32(0x01020304);
  const int8_t* x = g_activations;
  constexpr int kRounds = 1024;
  for (auto _ : state) {
    for (int r = 0; r < kRounds; ++r) {
      asm("" : "+v"(w), "+r"(x));  // neither hoisted nor folded
#define MLAMOE_STEP(i)                                  \
  if constexpr (i < N)                                  \
    asm("vpdpbusd %2%{1to16%}, %1, %0" : "+v"(a##i) : "v"(w), "m"(*reinterpret_cast<const AliasedInt32*>(x + 4 * i)));
      MLAMOE_FOR_16(MLAMOE_STEP)
    }
  }
  __m512i sum = _mm512_setzero_si512();
#define MLAMOE_SUM(i) sum = _mm512_add_epi32(sum, a##i);
  MLAMOE_FOR_16(MLAMOE_SUM)
  benchmark::DoNotOptimize(sum);
  const double ops = static_cast<double>(state.iterations()) * kRounds * N;
  state.counters["G_dpbusd_per_s"] = benchmark::Counter(ops / 1e9, benchmark::Counter::kIsRate);
  state.counters["GMACps"] = benchmark::Counter(ops * 64 / 1e9, benchmark::Counter::kIsRate);
}

BENCHMARK(chains<4>)->Name("dpbusd/chains4");
BENCHMARK(chains<6>)->Name("dpbusd/chains6");
BENCHMARK(chains<8>)->Name("dpbusd/chains8");
BENCHMARK(chains<10>)->Name("dpbusd/chains10");
BENCHMARK(chains<12>)->Name("dpbusd/chains12");
BENCHMARK(chains<16>)->Name("dpbusd/chains16");

}  // namespace

BENCHMARK_MAIN();
