#!/usr/bin/env python3
"""Load generator for `mlamoe serve` (standard library only).

  serve_load.py throughput URL [--streams 8] [--tokens 64] [--repeat 3]
      aggregate decode tokens/s of N concurrent streams vs one stream alone.
  serve_load.py ttft URL [--prompt 256] [--background 7] [--repeat 5]
      time to first token of a new prompt, idle and while other streams decode.
  serve_load.py load URL --pid PID [--requests 200] [--clients 16]
      robustness: well-formed, malformed and abandoned requests mixed; every
      well-formed one must complete, the server must survive and return to idle.

Streams use /v1/completions with token-id prompts, ignore_eos (fixed lengths) and
logprobs (one SSE chunk per token, so token times are exact whatever the text).
"""
import argparse
import http.client
import json
import random
import statistics
import sys
import threading
import time
import urllib.parse


def conn(url):
    u = urllib.parse.urlparse(url)
    return http.client.HTTPConnection(u.hostname, u.port, timeout=600)


def model_id(url):
    c = conn(url)
    c.request("GET", "/v1/models")
    return json.loads(c.getresponse().read())["data"][0]["id"]


def stream_completion(url, model, prompt, max_tokens, abandon_after=None):
    """Streams one completion; returns (send time, [token arrival times], finished)."""
    c = conn(url)
    body = json.dumps({"model": model, "prompt": prompt, "max_tokens": max_tokens, "stream": True,
                       "ignore_eos": True, "temperature": 0, "logprobs": 0})
    t0 = time.perf_counter()
    c.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
    r = c.getresponse()
    if r.status != 200:
        raise RuntimeError(f"status {r.status}: {r.read()[:200]!r}")
    times, finished = [], False
    while True:
        line = r.readline()
        if not line:
            break
        line = line.strip()
        if not line.startswith(b"data: "):
            continue
        payload = line[6:]
        if payload == b"[DONE]":
            finished = True
            break
        ev = json.loads(payload)
        ch = ev["choices"][0] if ev.get("choices") else None
        if ch and ch.get("logprobs") and ch["logprobs"]["tokens"]:
            times.extend([time.perf_counter()] * len(ch["logprobs"]["tokens"]))
            if abandon_after and len(times) >= abandon_after:
                c.sock.close()  # the client goes away mid-stream
                return t0, times, False
    c.close()
    return t0, times, finished


def prompt_tokens(n, seed):
    rnd = random.Random(seed)
    return [rnd.randrange(32, 127) for _ in range(n)]  # valid ids in any vocabulary here


def decode_rate(results):
    """Aggregate decode tokens/s: tokens after each stream's first, over the span in
    which they were produced."""
    first = min(t[1][0] for t in results)
    last = max(t[1][-1] for t in results)
    tokens = sum(len(t[1]) - 1 for t in results)
    return tokens / (last - first)


def run_parallel(fn, n):
    out = [None] * n
    def work(i):
        out[i] = fn(i)
    th = [threading.Thread(target=work, args=(i,)) for i in range(n)]
    for t in th:
        t.start()
    for t in th:
        t.join()
    return out


def summary(xs):
    return f"median {statistics.median(xs):.3f}  min {min(xs):.3f}  max {max(xs):.3f}  (n={len(xs)})"


def cmd_throughput(a):
    model = model_id(a.url)
    single, multi = [], []
    for rep in range(a.repeat):
        single.append(decode_rate([stream_completion(a.url, model, prompt_tokens(16, rep), a.tokens)]))
        res = run_parallel(lambda i: stream_completion(a.url, model, prompt_tokens(16, 100 * rep + i), a.tokens), a.streams)
        multi.append(decode_rate(res))
        print(f"rep {rep}: 1 stream {single[-1]:.2f} tok/s, {a.streams} streams {multi[-1]:.2f} tok/s "
              f"({multi[-1] / single[-1]:.2f}x)", flush=True)
    ratios = [m / s for m, s in zip(multi, single)]
    print(f"1 stream tok/s:          {summary(single)}")
    print(f"{a.streams} streams aggregate tok/s: {summary(multi)}")
    print(f"ratio:                   {summary(ratios)}")


def cmd_ttft(a):
    model = model_id(a.url)
    idle, loaded = [], []
    for rep in range(a.repeat):
        t0, times, _ = stream_completion(a.url, model, prompt_tokens(a.prompt, 1000 + rep), 1)
        idle.append(times[0] - t0)
        # Background streams long enough to outlast the measurement.
        bg = [threading.Thread(target=stream_completion, args=(a.url, model, prompt_tokens(16, 2000 + i), a.bg_tokens))
              for i in range(a.background)]
        for t in bg:
            t.start()
        time.sleep(a.settle)  # let them reach decode
        t0, times, _ = stream_completion(a.url, model, prompt_tokens(a.prompt, 3000 + rep), 1)
        loaded.append(times[0] - t0)
        for t in bg:
            t.join()
        print(f"rep {rep}: idle {idle[-1]:.3f} s, with {a.background} streams {loaded[-1]:.3f} s "
              f"({loaded[-1] / idle[-1]:.2f}x)", flush=True)
    print(f"TTFT idle s:    {summary(idle)}")
    print(f"TTFT loaded s:  {summary(loaded)}")
    print(f"ratio:          {summary([l / i for l, i in zip(loaded, idle)])}")


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
                    _, times, finished = stream_completion(a.url, model, prompt_tokens(4 + i % 60, i), n)
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


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("throughput")
    t.add_argument("url")
    t.add_argument("--streams", type=int, default=8)
    t.add_argument("--tokens", type=int, default=64)
    t.add_argument("--repeat", type=int, default=3)
    f = sub.add_parser("ttft")
    f.add_argument("url")
    f.add_argument("--prompt", type=int, default=256)
    f.add_argument("--background", type=int, default=7)
    f.add_argument("--bg-tokens", type=int, default=96)
    f.add_argument("--settle", type=float, default=3.0)
    f.add_argument("--repeat", type=int, default=5)
    l = sub.add_parser("load")
    l.add_argument("url")
    l.add_argument("--pid", type=int, required=True)
    l.add_argument("--requests", type=int, default=200)
    l.add_argument("--clients", type=int, default=16)
    l.add_argument("--kv-bytes-max", type=float, default=0,
                   help="KV bytes the server may keep afterwards (its --kv-prefix-cache; 0 with --kv-prefix-cache 0)")
    a = p.parse_args()
    return {"throughput": cmd_throughput, "ttft": cmd_ttft, "load": cmd_load}[a.cmd](a) or 0


if __name__ == "__main__":
    sys.exit(main())
