// Tokenizer throughput on ~1 MB of mixed Chinese/English text (the target is
// >= 5 MB/s on one core). Needs ../shared/tokenizer/ggml-vocab-deepseek-llm.gguf
// (MLAMOE_SHARED overrides the shared folder).
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "tokenizer/sample_text.h"
#include "tokenizer/tokenizer.h"

namespace {

std::string vocab_path() {
  // shared/ sits beside the project root: <root>/bench/this_file -> <root>/../shared
  const char* env = std::getenv("MLAMOE_SHARED");
  const auto shared = env ? std::filesystem::path(env)
                          : std::filesystem::path(__FILE__).parent_path().parent_path().parent_path() / "shared";
  return (shared / "tokenizer" / "ggml-vocab-deepseek-llm.gguf").string();
}

const mlamoe::Tokenizer& tokenizer() {
  static auto tok = mlamoe::Tokenizer::from_file(vocab_path());
  return *tok;
}

const std::string& text_1mb() {
  static const std::string t = mlamoe::mixed_language_sample(1 << 20, 1);
  return t;
}

void BM_Encode1MB(benchmark::State& state) {
  const auto& tok = tokenizer();
  const auto& text = text_1mb();
  size_t n = 0;
  for (auto _ : state) {
    auto ids = tok.encode(text, {.add_special = false});
    n = ids.size();
    benchmark::DoNotOptimize(ids.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
  state.counters["tokens"] = static_cast<double>(n);
}
BENCHMARK(BM_Encode1MB)->Unit(benchmark::kMillisecond);

// Without the per-call pre-token cache: every pre-token goes through BPE.
void BM_Encode1MBDistinctPieces(benchmark::State& state) {
  const auto& tok = tokenizer();
  mlamoe::PreTokenizer pre(tok.pre_tokenizer_name());
  const auto& text = text_1mb();
  std::vector<mlamoe::TextSpan> pieces;
  pre.split(text, pieces);
  std::vector<int32_t> out;
  for (auto _ : state) {
    out.clear();
    for (const auto& p : pieces) tok.bpe(std::string_view(text).substr(p.offset, p.length), out);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
}
BENCHMARK(BM_Encode1MBDistinctPieces)->Unit(benchmark::kMillisecond);

void BM_PreTokenize1MB(benchmark::State& state) {
  mlamoe::PreTokenizer pre(tokenizer().pre_tokenizer_name());
  const auto& text = text_1mb();
  std::vector<mlamoe::TextSpan> pieces;
  for (auto _ : state) {
    pieces.clear();
    pre.split(text, pieces);
    benchmark::DoNotOptimize(pieces.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
}
BENCHMARK(BM_PreTokenize1MB)->Unit(benchmark::kMillisecond);

void BM_Decode1MB(benchmark::State& state) {
  const auto& tok = tokenizer();
  const auto ids = tok.encode(text_1mb(), {.add_special = false});
  for (auto _ : state) {
    auto s = tok.decode(ids);
    benchmark::DoNotOptimize(s.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text_1mb().size()));
}
BENCHMARK(BM_Decode1MB)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
