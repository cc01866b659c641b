// Quantization: throughput of the reference quantizers per type, and their error on
// real-shaped random weights (relative RMSE vs float32, reported as a counter).
//   build-*/bench/convert_bench   (or --benchmark_filter=q4_K)
// Shapes: one routed expert's up projection of DeepSeek-V2-Lite (2048 -> 1408) and of
// DeepSeek-V3 (7168 -> 2048), rows drawn ~N(0, 1/fan_in) as gen-random draws them.
#include <benchmark/benchmark.h>

#include <cmath>
#include <vector>

#include "convert/gen_random.h"
#include "format/ggml_types.h"
#include "format/quant.h"

namespace {

using namespace mlamoe;

void BM_Quantize(benchmark::State& state, GgmlType type, int64_t fan_in, int64_t rows) {
  std::vector<float> x(static_cast<size_t>(fan_in * rows)), y(x.size());
  for (int64_t r = 0; r < rows; ++r)
    random_normal_row(1, 0, static_cast<uint64_t>(r), 1.0f / std::sqrt(float(fan_in)), x.data() + r * fan_in, fan_in);
  const size_t rb = row_bytes(type, fan_in);
  std::vector<uint8_t> q(rb * static_cast<size_t>(rows));
  for (auto _ : state) {
    for (int64_t r = 0; r < rows; ++r) quantize_row(type, x.data() + r * fan_in, q.data() + r * rb, fan_in);
    benchmark::DoNotOptimize(q.data());
  }
  for (int64_t r = 0; r < rows; ++r) dequantize_row(type, q.data() + r * rb, y.data() + r * fan_in, fan_in);
  double err = 0, ref = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    err += (double(x[i]) - y[i]) * (double(x[i]) - y[i]);
    ref += double(x[i]) * x[i];
  }
  state.counters["rel_rmse"] = std::sqrt(err / ref);
  state.counters["bits_per_weight"] = 8.0 * double(rb) / double(fan_in);
  state.SetItemsProcessed(state.iterations() * fan_in * rows);
  state.SetBytesProcessed(state.iterations() * fan_in * rows * 4);
}

void register_all() {
  const GgmlType types[] = {GgmlType::F16, GgmlType::BF16, GgmlType::Q8_0, GgmlType::Q6_K,
                            GgmlType::Q5_K, GgmlType::Q4_K, GgmlType::Q4_0};
  struct Shape {
    const char* name;
    int64_t fan_in, rows;
  } shapes[] = {{"v2lite_expert_up", 2048, 1408 / 8}, {"v3_expert_up", 7168, 2048 / 16}};  // a slice of rows
  for (auto& s : shapes)
    for (GgmlType t : types)
      benchmark::RegisterBenchmark((std::string("quantize/") + std::string(type_name(t)) + "/" + s.name).c_str(),
                                   [=](benchmark::State& st) { BM_Quantize(st, t, s.fan_in, s.rows); })
          ->Unit(benchmark::kMillisecond);
}

}  // namespace

int main(int argc, char** argv) {
  register_all();
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
