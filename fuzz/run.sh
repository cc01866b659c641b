#!/usr/bin/env bash
# Replays the committed corpus of every fuzz target, then fuzzes each for SECONDS
# (default 60; 0 = replay only). Exits non-zero on any crash, sanitizer report, timeout
# (> 1 s on one input) or allocation above the limit. See docs/reliability.md.
#
#   fuzz/run.sh [SECONDS]
#   MLAMOE_FUZZ_BUILD=build-fuzz   build directory (configured with clang if missing)
#   MLAMOE_FUZZ_TARGETS="gguf ..."  only these targets
set -euo pipefail

seconds=${1:-60}
root=$(cd "$(dirname "$0")/.." && pwd)
build=${MLAMOE_FUZZ_BUILD:-$root/build-fuzz}
case $build in /*) ;; *) build=$root/$build ;; esac

if [[ ! -f $build/CMakeCache.txt ]]; then
  CC=clang CXX=clang++ cmake -S "$root" -B "$build" -DMLAMOE_FUZZ=ON -DMLAMOE_TRAIN=OFF -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
if ! out=$(cmake --build "$build" --target fuzz_all -j"$(nproc)" 2>&1); then
  echo "$out" >&2
  exit 1
fi

targets=${MLAMOE_FUZZ_TARGETS:-$(cd "$root/fuzz" && ls ./*_fuzz.cpp | sed 's|^\./||; s|_fuzz\.cpp$||')}
# Inputs that once crashed a target are replayed with its corpus.
regressions() { [[ -d $root/tests/format/regressions/$1 ]] && echo "$root/tests/format/regressions/$1"; true; }

# A hostile input may cost at most 1 s and 256 MiB in one allocation, 2 GiB in all.
limits=(-timeout=1 -malloc_limit_mb=256 -rss_limit_mb=2048)
total_runs=0
status=0
for t in $targets; do
  bin=$build/fuzz/${t}_fuzz
  seeds=$root/fuzz/corpus/$t
  work=$build/fuzz-work/$t            # what the fuzzer learns stays out of the repo
  artifacts=$build/fuzz-artifacts/$t/
  mkdir -p "$work" "$artifacts"
  log=$build/fuzz-work/$t.log
  echo "== $t: replaying $(ls "$seeds" $(regressions "$t") | wc -l) corpus files"
  if ! "$bin" "${limits[@]}" -runs=0 "$seeds" $(regressions "$t") >"$log" 2>&1; then
    echo "FAIL $t: corpus replay (see $log)"; status=1; continue
  fi
  [[ $seconds == 0 ]] && continue
  if ! "$bin" "${limits[@]}" -max_total_time="$seconds" -print_final_stats=1 \
       -artifact_prefix="$artifacts" "$work" "$seeds" >"$log" 2>&1; then
    echo "FAIL $t: see $log and $artifacts"; status=1
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | awk '{s+=$1} END {print s+0}')
  total_runs=$((total_runs + runs))
  echo "   $t: $runs executions in ${seconds}s, $(ls "$work" | wc -l) inputs in its working corpus"
done
[[ $seconds != 0 ]] && echo "total: $total_runs executions"
exit $status
