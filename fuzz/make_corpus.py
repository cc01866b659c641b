#!/usr/bin/env python3
"""Writes the seed corpora under fuzz/corpus/ from the shared fixtures.

Run from anywhere: python3 fuzz/make_corpus.py [SHARED_DIR]  (default: ../shared beside
the project). Seeds stay small (a few KB) so the fuzzers stay fast:
  gguf/         each fixture's header cut after its metadata (tensor count set to 0, so it
                parses), the same header with its tensor infos (data cut off), a 4 KiB
                prefix of the shared vocabulary, and tiny valid files with one tensor of
                every type mlamoe computes with;
  config_gguf/  the metadata-only fixture headers (valid deepseek2 configs);
  config_json/  the fixtures' and the real models' HF config.json files.
"""
import os
import struct
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(ROOT), "shared")
CORPUS = os.path.join(ROOT, "fuzz", "corpus")

SCALAR = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}


def skip_value(d, p, t):
    """Offset just past a metadata value of type t starting at p."""
    if t == 8:
        (n,) = struct.unpack_from("<Q", d, p)
        return p + 8 + n
    if t == 9:
        et, n = struct.unpack_from("<IQ", d, p)
        p += 12
        if et == 8:
            for _ in range(n):
                p = skip_value(d, p, 8)
            return p
        return p + n * SCALAR[et]
    return p + SCALAR[t]


def split_gguf(d):
    """(n_tensors, end of metadata, end of tensor infos) of a GGUF v3 file."""
    n_tensors, n_kv = struct.unpack_from("<QQ", d, 8)
    p = 24
    for _ in range(n_kv):
        (n,) = struct.unpack_from("<Q", d, p)
        p += 8 + n
        (t,) = struct.unpack_from("<I", d, p)
        p = skip_value(d, p + 4, t)
    meta_end = p
    for _ in range(n_tensors):
        (n,) = struct.unpack_from("<Q", d, p)
        p += 8 + n
        (nd,) = struct.unpack_from("<I", d, p)
        p += 4 + 8 * nd + 4 + 8
    return n_tensors, meta_end, p


def tiny_file(type_id, ne0, row_bytes, fill):
    """A valid GGUF with one tensor 't' of shape [ne0, 2] and alignment 32."""
    out = bytearray(struct.pack("<IIQQ", 0x46554747, 3, 1, 1))
    key = b"general.architecture"
    out += struct.pack("<Q", len(key)) + key + struct.pack("<IQ", 8, 9) + b"deepseek2"
    out += struct.pack("<Q", 1) + b"t" + struct.pack("<IQQIQ", 2, ne0, 2, type_id, 0)
    out += b"\0" * (-len(out) % 32)
    out += bytes((fill + i * 37) % 256 for i in range(2 * row_bytes))
    return bytes(out)


def write(sub, name, data):
    os.makedirs(os.path.join(CORPUS, sub), exist_ok=True)
    with open(os.path.join(CORPUS, sub, name), "wb") as f:
        f.write(data)


def main():
    fixtures = sorted(os.listdir(os.path.join(SHARED, "fixtures")))
    for fx in fixtures:
        d = open(os.path.join(SHARED, "fixtures", fx, "model.gguf"), "rb").read()
        _, meta_end, infos_end = split_gguf(d)
        metadata_only = d[:8] + struct.pack("<Q", 0) + d[16:meta_end]
        write("gguf", fx + "-metadata.gguf", metadata_only)
        write("gguf", fx + "-tensor-infos.gguf", d[:infos_end])
        write("config_gguf", fx + "-metadata.gguf", metadata_only)
        write("config_json", fx + "-config.json", open(os.path.join(SHARED, "fixtures", fx, "config.json"), "rb").read())
    for cfg in sorted(os.listdir(os.path.join(SHARED, "configs"))):
        write("config_json", cfg, open(os.path.join(SHARED, "configs", cfg), "rb").read())
    vocab = open(os.path.join(SHARED, "tokenizer", "ggml-vocab-deepseek-llm.gguf"), "rb").read(4096)
    write("gguf", "vocab-prefix.gguf", vocab)
    # (type id, row length, bytes per row): f32, f16, bf16, q4_0, q8_0, q4_K, q5_K, q6_K
    for name, type_id, ne0, row in [("f32", 0, 8, 32), ("f16", 1, 8, 16), ("bf16", 30, 8, 16), ("q4_0", 2, 32, 18),
                                    ("q8_0", 8, 32, 34), ("q4_K", 12, 256, 144), ("q5_K", 13, 256, 176),
                                    ("q6_K", 14, 256, 210)]:
        write("gguf", "tiny-" + name + ".gguf", tiny_file(type_id, ne0, row, type_id))

    tile_cache_seeds()


def tile_cache_seeds():
    # Flag byte (tests/model/tile_cache_exercise.h: bit 0 repairs the head's fields, bit 1
    # its checksum, bit 2 the tiles' length), then the 136-byte head, then the tiles
    # (1664 bytes for the fixed layout).
    head, tiles = bytes(136), bytes((i * 37 + 11) % 256 for i in range(1664))
    write("tile_cache", "valid-repaired.raw", bytes([7]) + head + tiles)
    write("tile_cache", "valid-exact-tiles.raw", bytes([3]) + head + tiles)
    write("tile_cache", "short-tiles.raw", bytes([3]) + head + tiles[:1000])
    write("tile_cache", "long-tiles.raw", bytes([3]) + head + tiles + tiles[:336])
    write("tile_cache", "bad-checksum.raw", bytes([5]) + head)
    write("tile_cache", "fields-only.raw", bytes([1]))
    write("tile_cache", "garbage.raw", bytes([0]) + bytes((i * 73 + 5) % 256 for i in range(200)))


if __name__ == "__main__":
    main()
