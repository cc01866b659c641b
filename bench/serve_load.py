#!/usr/bin/env python3
"""Load generator for `mlamoe serve` (standard library only).

  serve_load.py targets (URL | --launch "mlamoe serve ... --port 0") [--repeat 5] [--json FILE]
      the two throughput targets of issue 5, each with median and spread:
        decode:  single-stream decode tok/s, and the aggregate decode tok/s of N
                 concurrent streams counted only while all N decode (prompt time and
                 the ramp-up/ramp-down steps excluded);
        ttft:    time to first token of a P-token prompt when idle, and of a distinct
                 P-token prompt sent while B other streams decode.
  serve_load.py throughput URL [--streams 8] [--tokens 48] [--repeat 3]   decode part only
  serve_load.py ttft URL [--prompt 256] [--background 7] [--repeat 5]      TTFT part only
  serve_load.py load URL --pid PID [--requests 200] [--clients 16]
      robustness: well-formed, malformed and abandoned requests mixed; every
      well-formed one must complete, the server must survive and return to idle.

Streams use /v1/completions with token-id prompts, ignore_eos (fixed lengths) and
logprobs (one SSE chunk per token, so token times are exact whatever the text). Every
prompt is distinct (random ids from its own seed), and each measured request reports
`cached_tokens`: a prefix reused from the KV cache would make a TTFT meaningless, so
the script fails if any measured prompt was served from the cache.
"""
import argparse
import http.client
import itertools
import json
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse


def conn(url, timeout=900):
    u = urllib.parse.urlparse(url)
    return http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)


def model_id(url):
    c = conn(url)
    c.request("GET", "/v1/models")
    return json.loads(c.getresponse().read())["data"][0]["id"]


class Stream:
    """One streamed completion: send time, token arrival times, usage, finished."""

    def __init__(self):
        self.t0 = None
        self.times = []
        self.usage = None
        self.finished = False
        self.first = threading.Event()  # set at the first token
        self.stop = threading.Event()   # set by another thread: hang up
        self.error = None


def stream_completion(url, model, prompt, max_tokens, abandon_after=None, st=None):
    """Streams one completion into `st` (a Stream); returns it. Hangs up after
    `abandon_after` tokens or when st.stop is set (checked at every token)."""
    st = st or Stream()
    c = conn(url)
    body = json.dumps({"model": model, "prompt": prompt, "max_tokens": max_tokens, "stream": True,
                       "stream_options": {"include_usage": True},
                       "ignore_eos": True, "temperature": 0, "logprobs": 0})
    st.t0 = time.perf_counter()
    c.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
    r = c.getresponse()
    if r.status != 200:
        raise RuntimeError(f"status {r.status}: {r.read()[:200]!r}")
    while True:
        line = r.readline()
        if not line:
            break
        line = line.strip()
        if not line.startswith(b"data: "):
            continue
        payload = line[6:]
        if payload == b"[DONE]":
            st.finished = True
            break
        ev = json.loads(payload)
        if ev.get("usage"):
            st.usage = ev["usage"]
        if "error" in ev:
            st.error = ev["error"]
        ch = ev["choices"][0] if ev.get("choices") else None
        if ch and ch.get("logprobs") and ch["logprobs"]["tokens"]:
            st.times.extend([time.perf_counter()] * len(ch["logprobs"]["tokens"]))
            st.first.set()
            if (abandon_after and len(st.times) >= abandon_after) or st.stop.is_set():
                c.sock.close()  # the client goes away mid-stream
                return st
    c.close()
    return st


_prompt_counter = itertools.count()  # next() is atomic: prompts are made on many threads


def prompt_tokens(n, seed):
    """n token ids (valid in any vocabulary here). The first two come from a counter, so
    no two prompts of one run share more than their first token."""
    rnd = random.Random(seed)
    c = next(_prompt_counter)
    head = [32 + c // 95 % 95, 32 + c % 95]
    return (head + [rnd.randrange(32, 127) for _ in range(n)])[:n]


MAX_CACHED = 1  # a coincidental first token; anything more would be prefix reuse


def uncached(st, what):
    cached = (st.usage or {}).get("prompt_tokens_details", {}).get("cached_tokens", 0)
    if cached > MAX_CACHED:
        raise RuntimeError(f"{what}: {cached} prompt tokens came from the KV prefix cache; the measurement needs distinct prompts")


def single_decode_rate(st):
    """Decode tokens/s of one stream: the tokens after its first, over their span."""
    return (len(st.times) - 1) / (st.times[-1] - st.times[0])


def steady_decode_rate(streams):
    """Aggregate decode tokens/s while every stream decodes: from the step that gave the
    last stream its first token to the step that ended the first stream to finish.
    Returns (tokens/s, tokens counted, seconds)."""
    start = max(s.times[0] for s in streams)
    end = min(s.times[-1] for s in streams)
    if end <= start:
        raise RuntimeError("the streams never decoded together (raise --tokens)")
    n = sum(1 for s in streams for t in s.times if start < t <= end)
    return n / (end - start), n, end - start


def run_parallel(fn, n):
    out = [None] * n
    errors = []

    def work(i):
        try:
            out[i] = fn(i)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)
    th = [threading.Thread(target=work, args=(i,)) for i in range(n)]
    for t in th:
        t.start()
    for t in th:
        t.join()
    if errors:
        raise errors[0]
    return out


def summary(xs, fmt="{:.3f}"):
    f = lambda v: fmt.format(v)  # noqa: E731
    return f"median {f(statistics.median(xs))}  min {f(min(xs))}  max {f(max(xs))}  (n={len(xs)})"


def stats_of(xs):
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "n": len(xs), "values": xs}


def server_counters(url):
    """Step counters of /metrics (to report the batch each step really ran)."""
    c = conn(url)
    c.request("GET", "/metrics")
    out = {}
    for line in c.getresponse().read().decode().splitlines():
        m = re.match(r"^(mlamoe_[a-z_]+) ([0-9.eE+-]+)$", line)
        if m:
            out[m.group(1)] = float(m.group(2))
    return out


def wait_idle(url, timeout=120):
    t_end = time.time() + timeout
    while time.time() < t_end:
        if server_counters(url).get("mlamoe_active_sequences", 0) == 0:
            return
        time.sleep(0.05)
    raise RuntimeError("the server did not return to 0 active sequences")


def measure_decode(a, model, seed_base):
    """single[], multi[], details[] over a.repeat repetitions."""
    single, multi, details = [], [], []
    for rep in range(a.repeat):
        seed = seed_base + 1000 * rep
        st = stream_completion(a.url, model, prompt_tokens(a.decode_prompt, seed), a.tokens)
        uncached(st, "single stream")
        single.append(single_decode_rate(st))
        wait_idle(a.url)
        before = server_counters(a.url)
        res = run_parallel(lambda i: stream_completion(a.url, model, prompt_tokens(a.decode_prompt, seed + 1 + i), a.tokens),
                           a.streams)
        after = server_counters(a.url)
        for s in res:
            uncached(s, "parallel stream")
        rate, n, secs = steady_decode_rate(res)
        multi.append(rate)
        steps = after["mlamoe_steps_total"] - before["mlamoe_steps_total"]
        gen = after["mlamoe_generated_tokens_total"] - before["mlamoe_generated_tokens_total"]
        busy = after["mlamoe_busy_seconds_total"] - before["mlamoe_busy_seconds_total"]
        details.append({"steady_tokens": n, "steady_seconds": secs, "steps": steps, "decode_tokens_per_step": gen / steps,
                        "busy_seconds_per_step": busy / steps})
        print(f"rep {rep}: 1 stream {single[-1]:.2f} tok/s, {a.streams} streams {multi[-1]:.2f} tok/s "
              f"({multi[-1] / single[-1]:.2f}x; {n} tokens in {secs:.2f} s of steady decode; "
              f"{steps:.0f} steps, {gen / steps:.2f} decode tokens and {busy / steps * 1000:.0f} ms per step)", flush=True)
        wait_idle(a.url)
    return single, multi, details


def measure_ttft(a, model, seed_base):
    """idle[], loaded[], stall[] over a.repeat repetitions. stall: the longest gap
    between two tokens of a background stream around the new prompt's prefill."""
    idle, loaded, stall = [], [], []
    for rep in range(a.repeat):
        seed = seed_base + 1000 * rep
        st = stream_completion(a.url, model, prompt_tokens(a.prompt, seed), 1)
        uncached(st, "idle TTFT prompt")
        idle.append(st.times[0] - st.t0)
        wait_idle(a.url)
        # Background streams that outlast the measurement; hung up afterwards.
        bgs = [Stream() for _ in range(a.background)]
        def background(i):
            try:
                stream_completion(a.url, model, prompt_tokens(16, seed + 1 + i), a.bg_tokens, st=bgs[i])
            except Exception as e:  # noqa: BLE001 - reported by the measuring thread
                bgs[i].error = repr(e)
                bgs[i].first.set()
        th = [threading.Thread(target=background, args=(i,)) for i in range(a.background)]
        for t in th:
            t.start()
        for b in bgs:
            if not b.first.wait(600) or b.error:
                raise RuntimeError(f"a background stream never started: {b.error}")
        # Every background stream decodes now; let a few steps pass, then arrive at a
        # random moment within a step (as a real request would).
        n0 = min(len(b.times) for b in bgs)
        while min(len(b.times) for b in bgs) < n0 + 2:
            time.sleep(0.005)
        step = (bgs[0].times[-1] - bgs[0].times[-2]) if len(bgs[0].times) >= 2 else 0
        time.sleep(random.Random(seed).uniform(0, step))
        st = stream_completion(a.url, model, prompt_tokens(a.prompt, seed + 500), 1)
        uncached(st, "loaded TTFT prompt")
        loaded.append(st.times[0] - st.t0)
        t_first = st.times[0]
        # Let the background streams take one more token each, then hang up.
        counts = [len(b.times) for b in bgs]
        t_wait = time.perf_counter() + 600
        while any(len(b.times) <= c for b, c in zip(bgs, counts)) and time.perf_counter() < t_wait:
            time.sleep(0.005)
        for b in bgs:
            b.stop.set()
        gaps = []
        for b in bgs:
            gaps += [y - x for x, y in zip(b.times, b.times[1:]) if y >= st.t0 and x <= t_first + 1e-3]
        stall.append(max(gaps) if gaps else float("nan"))
        for t in th:
            t.join()
        if any(b.error for b in bgs):
            raise RuntimeError(f"a background stream failed: {[b.error for b in bgs if b.error][0]}")
        wait_idle(a.url)
        print(f"rep {rep}: TTFT idle {idle[-1]:.3f} s, with {a.background} streams {loaded[-1]:.3f} s "
              f"({loaded[-1] / idle[-1]:.2f}x); background streams' longest token gap {stall[-1]:.3f} s", flush=True)
    return idle, loaded, stall


def cmd_throughput(a):
    model = model_id(a.url)
    single, multi, _ = measure_decode(a, model, 10_000)
    print(f"1 stream decode tok/s:             {summary(single)}")
    print(f"{a.streams} streams aggregate decode tok/s: {summary(multi)}")
    print(f"ratio (same repetition):           {summary([m / s for m, s in zip(multi, single)])}")


def cmd_ttft(a):
    model = model_id(a.url)
    idle, loaded, stall = measure_ttft(a, model, 20_000)
    print(f"TTFT idle s:    {summary(idle)}")
    print(f"TTFT loaded s:  {summary(loaded)}")
    print(f"ratio:          {summary([l / i for l, i in zip(loaded, idle)])}")
    print(f"background longest token gap s: {summary(stall)}")


def launch(cmd):
    """Starts `mlamoe serve ... --port 0`; returns (process, url) once it listens."""
    proc = subprocess.Popen(cmd, shell=True, stderr=subprocess.PIPE, text=True, start_new_session=True)
    for line in proc.stderr:
        sys.stderr.write(line)
        m = re.search(r"listening on (http://[0-9.]+:[0-9]+)", line)
        if m:
            threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()  # keep draining
            return proc, m.group(1)
    raise RuntimeError(f"the server exited with {proc.wait()} before listening")


def cmd_targets(a):
    proc = None
    if a.launch:
        proc, a.url = launch(a.launch)
    elif not a.url:
        raise SystemExit("targets: give URL or --launch")
    try:
        model = model_id(a.url)
        # Warm-up: the first requests fault the weights in and grow every scratch buffer.
        for i in range(a.warmup):
            run_parallel(lambda j: stream_completion(a.url, model, prompt_tokens(a.prompt if j == 0 else 16, 90_000 + 100 * i + j), 4),
                         a.streams)
        wait_idle(a.url)
        single, multi, details = measure_decode(a, model, 10_000) if not a.skip_decode else ([], [], [])
        idle, loaded, stall = measure_ttft(a, model, 20_000) if not a.skip_ttft else ([], [], [])
    finally:
        if proc:
            os.killpg(proc.pid, signal.SIGTERM)  # the server (and the shell that started it)
            proc.wait(60)
    ratios = [m / s for m, s in zip(multi, single)]
    tt = [l / i for l, i in zip(loaded, idle)]
    print()
    if single:
        print(f"1 stream decode tok/s:              {summary(single)}")
        print(f"{a.streams} streams aggregate decode tok/s:  {summary(multi)}")
        print(f"aggregate / single (per repetition): {summary(ratios, '{:.2f}')}   target >= 3")
    if not idle:
        return 0
    print(f"TTFT of a {a.prompt}-token prompt, idle s:           {summary(idle)}")
    print(f"TTFT of a {a.prompt}-token prompt, {a.background} streams decoding s: {summary(loaded)}")
    print(f"loaded / idle (per repetition):       {summary(tt, '{:.2f}')}   target <= 2")
    print(f"background streams' longest token gap during that prefill s: {summary(stall)}")
    if a.json:
        with open(a.json, "w") as f:
            decode = {"single_decode_tps": stats_of(single), "parallel_decode_tps": stats_of(multi), "decode_ratio": stats_of(ratios),
                      "decode_details": details} if single else {}
            json.dump({"command": " ".join(sys.argv), "launch": a.launch, **decode, "ttft_idle_s": stats_of(idle), "ttft_loaded_s": stats_of(loaded), "ttft_ratio": stats_of(tt),
                       "background_stall_s": stats_of(stall)}, f, indent=1)
    return 0


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def metric(url, name):
    c = conn(url)
    c.request("GET", "/metrics")
    for line in c.getresponse().read().decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


MALFORMED = [
    b"{not json", b"", b"[]", b'{"model": 5}', b'{"prompt": "x"}',
    b'{"model": "M", "prompt": "x", "max_tokens": "many"}', b'{"model": "M", "prompt": "x", "n": 3}',
    b'{"model": "M", "prompt": "x", "bogus": true}', b'{"model": "other", "prompt": "x"}',
    b'{"model": "M", "prompt": "x", "temperature": -4}', "{\"model\": \"M\", \"prompt\": \"\xff\"}".encode("latin-1"),
]


def cmd_load(a):
    model = model_id(a.url)
    # Warm up, then take the idle level.
    stream_completion(a.url, model, prompt_tokens(32, 0), 8)
    idle_rss = rss_kb(a.pid)
    rnd = random.Random(7)
    plan = []
    for i in range(a.requests):
        r = rnd.random()
        plan.append("malformed" if r < 0.15 else "abandon" if r < 0.35 else "whole" if r < 0.55 else "stream")
    results = {"ok": 0, "bad": [], "malformed_ok": 0, "abandoned": 0}
    lock = threading.Lock()
    next_i = [0]

    def client(_):
        while True:
            with lock:
                if next_i[0] >= len(plan):
                    return
                i = next_i[0]
                next_i[0] += 1
            kind = plan[i]
            try:
                if kind == "malformed":
                    c = conn(a.url)
                    body = MALFORMED[i % len(MALFORMED)].replace(b'"M"', json.dumps(model).encode())
                    c.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
                    resp = c.getresponse()
                    err = json.loads(resp.read())
                    good = resp.status in (400, 404) and set(err["error"]) >= {"message", "type", "param", "code"}
                    with lock:
                        results["malformed_ok" if good else "bad"] += 1 if good else [f"{i}: malformed got {resp.status}"]
                elif kind == "abandon":
                    stream_completion(a.url, model, prompt_tokens(rnd.randrange(4, 64), i), 200, abandon_after=3)
                    with lock:
                        results["abandoned"] += 1
                elif kind == "stream":
                    n = 8 + i % 24
                    st = stream_completion(a.url, model, prompt_tokens(4 + i % 60, i), n)
                    times, finished = st.times, st.finished
                    with lock:
                        if finished and len(times) == n:
                            results["ok"] += 1
                        else:
                            results["bad"].append(f"{i}: stream got {len(times)}/{n} tokens, done={finished}")
                else:
                    c = conn(a.url)
                    n = 8 + i % 24
                    c.request("POST", "/v1/completions", json.dumps({"model": model, "prompt": prompt_tokens(4 + i % 60, i),
                              "max_tokens": n, "ignore_eos": True}), {"Content-Type": "application/json"})
                    resp = c.getresponse()
                    out = json.loads(resp.read())
                    with lock:
                        if resp.status == 200 and out["usage"]["completion_tokens"] == n:
                            results["ok"] += 1
                        else:
                            results["bad"].append(f"{i}: whole got {resp.status} {str(out)[:120]}")
            except Exception as e:  # noqa: BLE001 - any failure of a well-formed request counts
                with lock:
                    results["bad"].append(f"{i}: {kind}: {e!r}")

    t0 = time.perf_counter()
    run_parallel(client, a.clients)
    elapsed = time.perf_counter() - t0
    for _ in range(100):  # abandoned sequences end at the next step
        if metric(a.url, "mlamoe_active_sequences") == 0:
            break
        time.sleep(0.05)
    well_formed = sum(1 for k in plan if k in ("stream", "whole"))
    after_rss = rss_kb(a.pid)
    print(f"{a.requests} requests from {a.clients} clients in {elapsed:.1f} s: {results['ok']}/{well_formed} well-formed completed, "
          f"{results['malformed_ok']}/{plan.count('malformed')} malformed answered 4xx, {results['abandoned']} abandoned")
    print(f"active sequences after: {metric(a.url, 'mlamoe_active_sequences'):.0f}, KV bytes: {metric(a.url, 'mlamoe_kv_cache_bytes'):.0f}, "
          f"cancelled: {metric(a.url, 'mlamoe_sequences_cancelled_total'):.0f}")
    print(f"RSS idle {idle_rss / 1024:.1f} MiB -> after {after_rss / 1024:.1f} MiB")
    for b in results["bad"][:20]:
        print("  BAD", b)
    # Sequences hold nothing any more; KV kept for prefix reuse stays within its bound.
    ok = (results["ok"] == well_formed and not results["bad"] and metric(a.url, "mlamoe_kv_cache_reserved_tokens") == 0
          and metric(a.url, "mlamoe_active_sequences") == 0 and metric(a.url, "mlamoe_kv_cache_bytes") <= a.kv_bytes_max)
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


def add_decode_args(p):
    p.add_argument("--streams", type=int, default=8, help="concurrent streams (the server's --parallel)")
    p.add_argument("--tokens", type=int, default=48, help="tokens per decode stream")
    p.add_argument("--decode-prompt", type=int, default=16, help="prompt tokens of a decode stream")


def add_ttft_args(p):
    p.add_argument("--prompt", type=int, default=256, help="prompt tokens of the TTFT request")
    p.add_argument("--background", type=int, default=7, help="streams decoding while the loaded TTFT is taken")
    p.add_argument("--bg-tokens", type=int, default=1024, help="max_tokens of a background stream (they are hung up after)")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("targets")
    g.add_argument("url", nargs="?")
    g.add_argument("--launch", help="shell command starting `mlamoe serve ... --port 0` (stopped with SIGTERM at the end)")
    g.add_argument("--repeat", type=int, default=5)
    g.add_argument("--warmup", type=int, default=1, help="rounds of warm-up requests before measuring")
    g.add_argument("--json", help="also write the figures here")
    g.add_argument("--skip-decode", action="store_true", help="only the TTFT target")
    g.add_argument("--skip-ttft", action="store_true", help="only the decode target")
    add_decode_args(g)
    add_ttft_args(g)
    t = sub.add_parser("throughput")
    t.add_argument("url")
    t.add_argument("--repeat", type=int, default=3)
    add_decode_args(t)
    f = sub.add_parser("ttft")
    f.add_argument("url")
    f.add_argument("--repeat", type=int, default=5)
    add_ttft_args(f)
    l = sub.add_parser("load")
    l.add_argument("url")
    l.add_argument("--pid", type=int, required=True)
    l.add_argument("--requests", type=int, default=200)
    l.add_argument("--clients", type=int, default=16)
    l.add_argument("--kv-bytes-max", type=float, default=0,
                   help="KV bytes the server may keep afterwards (its --kv-prefix-cache; 0 with --kv-prefix-cache 0)")
    a = p.parse_args()
    return {"targets": cmd_targets, "throughput": cmd_throughput, "ttft": cmd_ttft, "load": cmd_load}[a.cmd](a) or 0


if __name__ == "__main__":
    sys.exit(main())
