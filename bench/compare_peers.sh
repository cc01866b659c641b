#!/usr/bin/env bash
# Side-by-side: mlamoe, llama.cpp and ik_llama.cpp on the same GGUF, same threads, in
# one run, each under the shared measurement lock. Prints the raw results and one
# Markdown row per engine with pp and tg (median, min-max), the ratios to the best peer
# and tg as a share of the bandwidth roofline. This VM's bandwidth drifts 2-3x within a
# minute, so each engine is judged against bandwidth probed at its own time: mlamoe
# probes every 16 generated tokens (bench's tg_roofline_fraction), and each peer's run
# is bracketed by `mlamoe bench --membw` probes whose mean is its roofline.
#
#   LLAMA_BENCH=/tmp/llama.cpp/build/bin/llama-bench \
#   IK_BENCH=/tmp/ik_llama.cpp/build/bin/llama-bench \
#   bench/compare_peers.sh MODEL.gguf [THREADS] [PP] [TG] [REPS]
#
# Peers are optional (unset or missing: skipped). ik_llama.cpp runs with -rtr 1 (its
# run-time repacking, the counterpart of mlamoe's tiles).
set -euo pipefail
model=${1:?usage: compare_peers.sh MODEL.gguf [THREADS] [PP] [TG] [REPS]}
threads=${2:-2}
pp=${3:-512}
tg=${4:-128}
reps=${5:-3}
here=$(cd "$(dirname "$0")/.." && pwd)
mlamoe=${MLAMOE:-$here/build/mlamoe}
lock=${BENCH_LOCK:-/tmp/bench.lock}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "# $(date -u +%FT%TZ) model=$model threads=$threads pp=$pp tg=$tg reps=$reps load=$(cut -d' ' -f1-3 /proc/loadavg)"
flock "$lock" "$mlamoe" bench -m "$model" -t "$threads" -p "$pp" -n "$tg" -r "$reps" --json >"$out/mlamoe.txt"
cat "$out/mlamoe.txt"
membw() { flock "$lock" "$mlamoe" bench --membw --json -t "$threads" | tail -1 >>"$out/$1.membw"; }
if [[ -x "${LLAMA_BENCH:-}" ]]; then
  membw llama
  flock "$lock" "$LLAMA_BENCH" -m "$model" -t "$threads" -p "$pp" -n "$tg" -r "$reps" -o json >"$out/llama.json" 2>/dev/null
  membw llama
fi
if [[ -x "${IK_BENCH:-}" ]]; then
  membw ik
  flock "$lock" "$IK_BENCH" -m "$model" -t "$threads" -p "$pp" -n "$tg" -r "$reps" -rtr 1 -o json >"$out/ik.json" 2>/dev/null
  membw ik
fi
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"

/usr/bin/python3 - "$out" <<'EOF'
import json, os, statistics, sys
out = sys.argv[1]
me = json.loads(open(f"{out}/mlamoe.txt").read().strip().splitlines()[-1])
roof = me["roofline_tg"]
bpt = me["bytes_per_token"]
rows = {"mlamoe": (me["pp"], me["tg"])}
# tg as a fraction of the roofline at the time each engine ran (see the header).
share = {"mlamoe": (me.get("tg_roofline_fraction") or {}).get("median")}
bw_at = {"mlamoe": me["membw_gbps"]}

def peer(path):
    if not os.path.exists(path) or os.path.getsize(path) == 0:
        return None
    pp = tg = None
    for r in json.load(open(path)):
        s = r.get("samples_ts") or [r["avg_ts"]]
        st = {"median": statistics.median(s), "min": min(s), "max": max(s)}
        if r.get("n_prompt", 0) > 0 and r.get("n_gen", 0) == 0: pp = st
        if r.get("n_gen", 0) > 0 and r.get("n_prompt", 0) == 0: tg = st
    return pp, tg

for name, tag in (("llama.cpp", "llama"), ("ik_llama.cpp -rtr 1", "ik")):
    p = peer(f"{out}/{tag}.json")
    if not p: continue
    rows[name] = p
    probes = [json.loads(l)["membw_gbps"] for l in open(f"{out}/{tag}.membw")]
    bw_at[name] = statistics.mean(probes)
    if p[1]: share[name] = p[1]["median"] / (bw_at[name] * 1e9 / bpt)
best_pp = max((v[0]["median"] for k, v in rows.items() if k != "mlamoe" and v[0]), default=None)
best_tg = max((v[1]["median"] for k, v in rows.items() if k != "mlamoe" and v[1]), default=None)
print(f"membw {me['membw_gbps']:.2f} GB/s, {me['bytes_per_token']/1e9:.3f} GB/token -> roofline tg {roof:.2f} tok/s; "
      f"load {me.get('load_s', 0):.1f} s, peak RSS {me.get('peak_rss_bytes', 0)/1e9:.2f} GB")
print("| engine | pp (tok/s) | tg (tok/s) | tg % of roofline (bandwidth then) | pp / best peer | tg / best peer |")
print("|---|---|---|---|---|---|")
for k, (pp, tg) in rows.items():
    f = lambda s: f"{s['median']:.2f} ({s['min']:.2f}-{s['max']:.2f})" if s else "-"
    rp = f"{pp['median']/best_pp:.2f}x" if pp and best_pp else "-"
    rt = f"{tg['median']/best_tg:.2f}x" if tg and best_tg else "-"
    sh = f"{100*share[k]:.0f}% ({bw_at[k]:.1f} GB/s)" if share.get(k) else "-"
    print(f"| {k} | {f(pp)} | {f(tg)} | {sh} | {rp} | {rt} |")
EOF
