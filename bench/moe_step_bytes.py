#!/usr/bin/env python3
"""Weight bytes one batched decode step must stream, from a GGUF file's tensor table.

  moe_step_bytes.py MODEL.gguf [--batch 1 8] [--bandwidth GB/s]

A step of B decode tokens (one per sequence) reads every attention, router, shared-
expert, dense-FFN and output-head weight once, one embedding row per token, and each
routed expert that at least one of the B tokens chose, once (the kernels group tokens
by expert). With k of E experts per token chosen independently and uniformly, the
expected number of distinct experts a layer touches is E·(1 − (1 − k/E)^B). When the
step is bound by memory bandwidth, B streams together decode at most
B · bytes(1) / bytes(B) times faster than one stream: that ratio is printed.
(Random weights route close to uniformly; a trained router concentrates on fewer
experts per batch, which raises the bound.)
"""
import argparse
import re
import struct
import sys

# ggml type id -> (elements per block, bytes per block)
TYPES = {0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34), 9: (32, 36),
         10: (256, 84), 11: (256, 110), 12: (256, 144), 13: (256, 176), 14: (256, 210), 15: (256, 292), 30: (1, 2)}
TYPE_NAMES = {0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 6: "Q5_0", 7: "Q5_1", 8: "Q8_0", 9: "Q8_1", 10: "Q2_K",
              11: "Q3_K", 12: "Q4_K", 13: "Q5_K", 14: "Q6_K", 15: "Q8_K", 30: "BF16"}


class Reader:
    def __init__(self, f):
        self.f = f

    def u32(self):
        return struct.unpack("<I", self.f.read(4))[0]

    def u64(self):
        return struct.unpack("<Q", self.f.read(8))[0]

    def string(self):
        return self.f.read(self.u64()).decode("utf-8", "replace")

    def value(self, t):
        scalar = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
        if t in scalar:
            fmt = scalar[t]
            return struct.unpack(fmt, self.f.read(struct.calcsize(fmt)))[0]
        if t == 8:
            return self.string()
        if t == 9:
            et, n = self.u32(), self.u64()
            if et in scalar:  # skip numeric arrays in one read
                self.f.seek(n * struct.calcsize(scalar[et]), 1)
                return None
            return [self.value(et) for _ in range(n)]
        raise ValueError(f"unknown GGUF value type {t}")


def read_gguf(path):
    with open(path, "rb") as f:
        r = Reader(f)
        if f.read(4) != b"GGUF":
            raise SystemExit(f"{path}: not a GGUF file")
        r.u32()
        n_tensors, n_kv = r.u64(), r.u64()
        meta = {}
        for _ in range(n_kv):
            key = r.string()
            v = r.value(r.u32())
            if not isinstance(v, list):
                meta[key] = v
        tensors = []
        for _ in range(n_tensors):
            name = r.string()
            dims = [r.u64() for _ in range(r.u32())]
            t = r.u32()
            r.u64()
            n = 1
            for d in dims:
                n *= d
            per, size = TYPES[t]
            tensors.append((name, dims, t, n // per * size))
    return meta, tensors


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model")
    p.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    p.add_argument("--bandwidth", type=float, default=0, help="GB/s: also print the bandwidth-bound tokens/s")
    a = p.parse_args()
    meta, tensors = read_gguf(a.model)
    arch = meta.get("general.architecture", "deepseek2")
    E = meta.get(f"{arch}.expert_count")
    k = meta.get(f"{arch}.expert_used_count")
    fixed = embd_row = experts_per_layer_bytes = 0
    moe_layers = set()
    types = {}
    for name, dims, t, nbytes in tensors:
        types.setdefault(TYPE_NAMES.get(t, t), 0)
        types[TYPE_NAMES.get(t, t)] += nbytes
        m = re.match(r"blk\.(\d+)\.ffn_(gate|up|down)_exps\.weight", name)
        if m:
            moe_layers.add(int(m.group(1)))
            experts_per_layer_bytes += nbytes  # all layers summed; divided below
        elif name == "token_embd.weight":
            embd_row = nbytes // dims[1]
        else:
            fixed += nbytes
    L = len(moe_layers)
    per_expert = experts_per_layer_bytes / (L * E)  # one expert's gate+up+down in one layer
    print(f"{a.model}: {len(tensors)} tensors, {L} MoE layers of {E} routed experts (top-{k}), "
          f"one expert {per_expert / 1e6:.2f} MB, weights by type: " +
          ", ".join(f"{n} {b / 1e9:.2f} GB" for n, b in sorted(types.items(), key=lambda x: -x[1])))
    print(f"always read per step: {fixed / 1e6:.0f} MB (attention, routers, shared experts, dense FFN, norms, head)")
    base = None
    for B in a.batch:
        distinct = E * (1 - (1 - k / E) ** B)
        step = fixed + B * embd_row + L * distinct * per_expert
        if base is None:
            base = step
        line = (f"batch {B:3d}: {distinct:5.1f} distinct experts per layer (of {min(E, B * k)} chosen), "
                f"{step / 1e9:.3f} GB per step, {step / B / 1e6:.0f} MB per token; bandwidth-bound speed-up "
                f"over one stream {B * base / step:.2f}x")
        if a.bandwidth:
            line += f"; at {a.bandwidth:g} GB/s: {B * a.bandwidth * 1e9 / step:.1f} tok/s"
        print(line)


if __name__ == "__main__":
    sys.exit(main())
