#!/usr/bin/env bash
# Issue 5's serving targets on one model, as recorded in BENCHMARKS.md ("Serving"):
# a fresh `mlamoe serve` per prefill-chunk size, bench/serve_load.py targets against it,
# the bandwidth bound from the file's tensor table, logs and JSON in OUT_DIR.
#
#   bench/serve_targets.sh MLAMOE_BINARY MODEL.gguf [OUT_DIR] [CHUNK...]
#   env: THREADS (2), PARALLEL (8), REPEAT (5), CTX (4096), LOCK (/tmp/bench.lock; empty: none),
#        SERVE_ARGS (more flags for mlamoe serve, e.g. --vocab VOCAB.gguf for a gen-random file)
#
# The first chunk size runs both targets; further ones only the TTFT part (the decode
# steps do not depend on the chunk size), to show what the chunk trades: the new
# prompt's TTFT against how long running streams wait for their next token.
set -euo pipefail
bin=$(realpath "$1")
model=$2
out=${3:-/tmp/serve-targets}
shift $(($# < 3 ? $# : 3))
chunks=("${@:-256}")
threads=${THREADS:-2} parallel=${PARALLEL:-8} repeat=${REPEAT:-5} ctx=${CTX:-4096}
lock=${LOCK-/tmp/bench.lock}
here=$(dirname "$(realpath "$0")")
mkdir -p "$out"

python3 "$here/moe_step_bytes.py" "$model" --batch 1 "$parallel" | tee "$out/step_bytes.txt"
{ date -u; uptime; git -C "$here" log --oneline -1; } | tee "$out/when.txt"

run() {  # under the lock if there is one
  if [ -n "$lock" ]; then flock "$lock" "$@"; else "$@"; fi
}
first=1
for b in "${chunks[@]}"; do
  serve="exec $bin serve -m $model --port 0 -t $threads -c $ctx --parallel $parallel -b $b --quiet ${SERVE_ARGS:-}"
  if [ $first = 1 ]; then
    run python3 "$here/serve_load.py" targets --launch "$serve" --repeat "$repeat" --streams "$parallel" \
      --background $((parallel - 1)) --json "$out/targets-b$b.json" 2>&1 | tee "$out/targets-b$b.log"
    first=0
  else
    run python3 "$here/serve_load.py" targets --launch "$serve" --repeat "$repeat" --streams "$parallel" \
      --background $((parallel - 1)) --skip-decode --json "$out/targets-b$b.json" 2>&1 | tee "$out/targets-b$b.log"
  fi
done
