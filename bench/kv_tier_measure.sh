#!/bin/sh
# The issue-6 measurements for BENCHMARKS.md "Tiered KV memory", in one process (one
# model load) under the shared measurement lock:
#   - decode at a CTX-token context, all in RAM vs --kv-ram-budget BUDGET + disk tier
#     (bit-for-bit logits at every step, seconds per step);
#   - time to first token of a PREFIX-token prompt another request already computed
#     (radix-tree reuse) vs recomputing it.
# Usage: bench/kv_tier_measure.sh BUILD_DIR LOG [MODEL] [CTX] [PREFIX] [STEPS] [FILTER]
# Defaults: the 27-layer V2-Lite-shaped q4_0 model, 65536, 4096, 5 timed steps, and the
# benchmarks 'decode_at_context/.*_f32|prefix' (add _f16 ones for the f16 cache).
set -eu
build=${1:?build dir}
log=${2:?log file}
model=${3:-/tmp/v2lite-q4_0.gguf}
ctx=${4:-65536}
prefix=${5:-4096}
steps=${6:-5}
filter=${7:-decode_at_context/.*_f32|prefix}
spill=/tmp/mlamoe-kv-bench
mkdir -p "$spill"
{
  echo "# $(date -u +%FT%TZ) model=$model ctx=$ctx prefix=$prefix steps=$steps filter=$filter budget=256MiB spill=$spill"
  uptime
  flock /tmp/bench.lock env MLAMOE_KV_BENCH_MODEL="$model" MLAMOE_KV_BENCH_CTX="$ctx" MLAMOE_KV_BENCH_DECODE="$steps" \
    MLAMOE_KV_BENCH_PREFIX="$prefix" MLAMOE_KV_BENCH_BUDGET=256MiB MLAMOE_KV_BENCH_DISK="$spill" \
    "$build/bench/kv_tier_bench" --benchmark_filter="$filter"
  uptime
} > "$log" 2>&1
grep -E 'decode at|prefill|first token|manual_time' "$log"
