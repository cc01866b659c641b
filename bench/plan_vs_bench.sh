#!/usr/bin/env bash
# The planner's local truth: what `mlamoe plan --hw local` predicts for a model file
# against what `mlamoe bench` measures on the same file, threads and token counts.
#
#   flock /tmp/bench.lock bench/plan_vs_bench.sh MODEL.gguf [path/to/mlamoe]
#   env: P=512 (prompt tokens) N=128 (generated tokens) T=2 (threads) R=3 (bench repetitions)
#
# Both sides describe the same work: pp is one P-token prompt from an empty cache with
# logits for its last token (plan --batch 1 --ctx P:N, its prefill row); tg is N tokens
# generated one at a time from an empty cache, i.e. a mean context of about N/2 (plan
# --batch 1 --ctx 1:N, its decode row, whose mean context is 1 + N/2). The plan measures
# this machine when it runs (read bandwidth, the engine's matmul and attention kernels);
# nothing in it is fitted to the bench.
set -euo pipefail
model=${1:?usage: plan_vs_bench.sh MODEL.gguf [mlamoe binary]}
bin=${2:-$(command -v mlamoe || echo build/mlamoe)}
P=${P:-512} N=${N:-128} T=${T:-2} R=${R:-3}
[ -f "$model" ] || { echo "plan_vs_bench: no such model file: $model" >&2; exit 1; }
[ -x "$bin" ] || { echo "plan_vs_bench: no mlamoe binary at $bin (pass it as the second argument)" >&2; exit 1; }
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) cores); $(date -u +%FT%TZ)"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "+ $bin plan --model $model --hw local -t $T --batch 1 --ctx $P:$N --json" >&2
"$bin" plan --model "$model" --hw local -t "$T" --batch 1 --ctx "$P:$N" --json -v > "$tmp/plan_pp.json" 2> "$tmp/plan_pp.err"
echo "+ $bin plan --model $model --hw local -t $T --batch 1 --ctx 1:$N --json" >&2
"$bin" plan --model "$model" --hw local -t "$T" --batch 1 --ctx "1:$N" --json -v > "$tmp/plan_tg.json" 2> "$tmp/plan_tg.err"
echo "+ $bin bench -m $model -p $P -n $N -t $T -r $R --json" >&2
"$bin" bench -m "$model" -p "$P" -n "$N" -t "$T" -r "$R" --json > "$tmp/bench.out" 2> "$tmp/bench.err"
cat "$tmp/plan_pp.err" >&2
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

python3 - "$tmp" "$P" "$N" <<'EOF'
import json, sys
tmp, P, N = sys.argv[1], sys.argv[2], sys.argv[3]
pp_plan = json.load(open(f"{tmp}/plan_pp.json"))
tg_plan = json.load(open(f"{tmp}/plan_tg.json"))
bench = json.loads(open(f"{tmp}/bench.out").read().strip().splitlines()[-1])
rows = [(f"pp{P}", pp_plan["prefill_tokens_per_s"], bench["pp"], pp_plan["prefill"]),
        (f"tg{N}", tg_plan["decode_tokens_per_s"], bench["tg"], tg_plan["decode"])]
print(f"{'test':7} {'predicted':>10} {'measured':>10} {'(min-max)':>17} {'meas/pred':>9}  bound    "
      f"{'matmuls':>9} {'attention':>9} {'memory':>9}  (predicted ms per step)")
for name, pred, meas, ph in rows:
    m = meas["median"]
    print(f"{name:7} {pred:10.2f} {m:10.2f} {meas['min']:8.2f}-{meas['max']:<8.2f} {m / pred:9.3f}  {ph['bound']:8} "
          f"{ph['t_linear_s']*1e3:9.1f} {ph['t_attention_s']*1e3:9.1f} {ph['t_memory_s']*1e3:9.1f}")
# Where the residual sits: the measured step against the predicted one, and the decode
# prediction without any overlap of compute and memory (their sum instead of the max).
for name, pred, meas, ph, toks in [(rows[0][0], rows[0][1], rows[0][2], rows[0][3], int(P)),
                                   (rows[1][0], rows[1][1], rows[1][2], rows[1][3], 1)]:
    step_meas = toks / meas["median"]
    print(f"{name}: measured step {step_meas*1e3:.1f} ms, predicted {ph['t_step_s']*1e3:.1f} ms, "
          f"residual {(step_meas - ph['t_step_s'])*1e3:+.1f} ms ({(step_meas - ph['t_step_s'])/toks*1e3:+.2f} ms per token)")
k = tg_plan.get("local_kernels", {})
if k.get("decode_stream_gbps"):
    print(f"decode memory time at the one-token matmul's measured streaming rate {k['decode_stream_gbps']:.2f} GB/s "
          f"(read bandwidth {tg_plan['memory_bandwidth_gbps']:.2f} GB/s)")
print(f"bandwidth: plan measured {tg_plan['memory_bandwidth_gbps']:.2f} GB/s (pp run {pp_plan['memory_bandwidth_gbps']:.2f}), "
      f"bench --membw after its runs {bench['membw_gbps']:.2f} GB/s")
# This VM's read bandwidth moves by up to 2x within minutes (other tenants), so the plan's
# one probe and the bench's tg run may see different machines. The bench probes bandwidth
# during its tg repetitions (membw_gbps): the decode prediction with its memory time
# scaled to that bandwidth separates the planner's error from the machine's drift.
d = tg_plan["decode"]
scale = tg_plan["memory_bandwidth_gbps"] / bench["membw_gbps"]
step_at_bench_bw = max(d["t_compute_s"], d["t_memory_s"] * scale)
tg_at_bench_bw = 1 / step_at_bench_bw
print(f"tg{N} at the bandwidth the bench saw ({bench['membw_gbps']:.2f} GB/s, plan {tg_plan['memory_bandwidth_gbps']:.2f}): "
      f"predicted {tg_at_bench_bw:.2f} tok/s, measured {bench['tg']['median']:.2f}, "
      f"meas/pred {bench['tg']['median'] / tg_at_bench_bw:.3f}")
print(f"bytes per decoded token: plan {tg_plan['decode']['weight_bytes'] / 1e6:.2f} MB of weights "
      f"(+ {tg_plan['decode']['kv_bytes'] / 1e6:.2f} MB KV), engine {bench['bytes_per_token'] / 1e6:.2f} MB")
for t, pts in k.get("matmul_gmacs_by_tokens", {}).items():
    print(f"matmul {t:5} GMAC/s by tokens per matrix: " + ", ".join(f"{n}: {g:.1f}" for n, g in
                                                                  sorted(pts.items(), key=lambda x: int(x[0]))))
if k:
    print(f"attention (absorbed MLA) GFLOP/s: {k['attention_gflops_one_thread']:.1f} on one thread, "
          f"{k['attention_gflops_all_threads']:.1f} on {k['threads']}; fp32 FMA peak {k['fp32_fma_gflops']:.1f}")
print(f"bench: isa {bench['isa']}, threads {bench['threads']}, roofline tg {bench['roofline_tg']:.2f} tok/s")
EOF
