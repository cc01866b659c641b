#!/usr/bin/env bash
# Load time with and without a tile cache, cold and warm, next to reading the files.
#   sudo bench/load_time.sh MODEL.gguf MODEL.tiles [ROUNDS]
# Cold = after `echo 3 > /proc/sys/vm/drop_caches` (needs root). MLAMOE=path/to/mlamoe.
# The tile cache is written first if it is missing. Prints one line per round.
set -euo pipefail
model=$1 tiles=$2 rounds=${3:-3}
mlamoe=${MLAMOE:-$(dirname "$0")/../build/mlamoe}
drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }
load() { "$mlamoe" bench -m "$model" -p 0 -n 1 -r 1 "$@" 2>/dev/null | sed -n 's/^load: \([0-9.]*\) s.*/\1/p'; }
read_s() { local t0; t0=$(date +%s.%N); cat "$@" > /dev/null; echo "$(date +%s.%N) - $t0" | bc; }
[[ -f $tiles ]] || "$mlamoe" bench -m "$model" -p 0 -n 1 -r 1 --tile-cache "$tiles" > /dev/null
for round in $(seq "$rounds"); do
  drop; gguf_cold=$(read_s "$model")
  drop; layout_cold=$(load); layout_warm=$(load)
  drop; cache_cold=$(load --tile-cache "$tiles"); cache_warm=$(load --tile-cache "$tiles")
  tiles_warm=$(read_s "$tiles")
  echo "round $round: cat gguf cold ${gguf_cold} s, cat tiles warm ${tiles_warm} s |" \
       "load laying out: cold ${layout_cold} s, warm ${layout_warm} s |" \
       "load from the tile cache: cold ${cache_cold} s, warm ${cache_warm} s"
done
