#!/bin/sh
# The issue-6 measurements for BENCHMARKS.md "Tiered KV memory", in one process (one
# model load) under the shared measurement lock:
#   - the disk's raw O_DIRECT read rate for the tier's request size (queue depth 1 and 4);
#   - decode at a CTX-token context, all in RAM vs --kv-ram-budget BUDGET + disk tier,
#     f32 and f16 caches (bit-for-bit logits at every step, seconds per step, where the
#     tier's step went, and its bound max(all-RAM step, bytes read ÷ disk rate));
#   - with FILTER 'prefix': time to first token of a PREFIX-token prompt another
#     request already computed (radix-tree reuse) vs recomputing it.
# Usage: bench/kv_tier_measure.sh BUILD_DIR LOG [MODEL] [CTX] [PREFIX] [STEPS] [FILTER]
# Defaults: the 27-layer V2-Lite-shaped q4_0 model, 65536, 4096, 5 timed steps, and the
# benchmarks 'disk|decode_at_context' (the disk probe, then f32 and f16 decode).
# The model file is read through once first so that decode steps do not fault routed
# experts' weights in from the same disk the tier reads (which made all-RAM steps vary
# 1-7 s on a machine whose page cache others had emptied).
set -eu
build=${1:?build dir}
log=${2:?log file}
model=${3:-/tmp/v2lite-q4_0.gguf}
ctx=${4:-65536}
prefix=${5:-4096}
steps=${6:-5}
filter=${7:-disk|decode_at_context}
spill=/tmp/mlamoe-kv-bench
mkdir -p "$spill"
{
  echo "# $(date -u +%FT%TZ) model=$model ctx=$ctx prefix=$prefix steps=$steps filter=$filter budget=256MiB spill=$spill"
  uptime
  flock /tmp/bench.lock sh -c '
    cat "$1" > /dev/null
    shift
    exec "$@"' sh "$model" env MLAMOE_KV_BENCH_MODEL="$model" MLAMOE_KV_BENCH_CTX="$ctx" MLAMOE_KV_BENCH_DECODE="$steps" \
    MLAMOE_KV_BENCH_PREFIX="$prefix" MLAMOE_KV_BENCH_BUDGET=256MiB MLAMOE_KV_BENCH_DISK="$spill" \
    "$build/bench/kv_tier_bench" --benchmark_filter="$filter"
  uptime
} > "$log" 2>&1
grep -E 'O_DIRECT|decode at|  read |tier:|prefill|first token|manual_time' "$log"
