#!/usr/bin/env python3
"""Goldens for loom's dequantization (lib/tensor/dequant.h), from the `gguf` package's reference
dequantizers (gguf.quants, numpy float32 arithmetic).

For each type, tests/reference/golden/quant/<type>.bin holds N raw blocks followed by the
float32 values gguf.quants.dequantize gives for them (little-endian float32 bytes, so the test
compares bits, not decimal text). The blocks are:
  - real: rows of real tensors of the default models (smollm2.gguf: Q4_1, Q8_0, F32;
    gemma3.gguf: Q4_K, Q6_K, Q5_0, Q8_0, F32), where the type occurs there;
  - quantized: gguf.quants.quantize of random floats, where the package can quantize the type
    (F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0);
  - random: random block bytes with finite f16 scales (all types; the only source for Q5_K,
    and for Q8_K, which gguf cannot dequantize: its reference is numpy's float32 d * q, ggml's
    formula).
manifest.json lists the files, their block counts and sources, and the sha256 of the float32
bytes of a few whole dequantized tensors of the default models (checked when the model is there).

  tests/reference/.venv/bin/python tests/reference/gen_quant_goldens.py
"""
import hashlib
import json
import os
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from gguf.quants import dequantize, quantize

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "golden", "quant")
MODELS = os.environ.get("LOOM_MODELS") or os.path.expanduser("~/.cache/loom/models")

# type: (blocks of real data at most, quantized blocks, random blocks)
PLAN = {
    "F32": (512, 0, 512),
    "F16": (0, 512, 512),
    "BF16": (0, 512, 512),
    "Q4_0": (0, 48, 48),
    "Q4_1": (64, 16, 16),
    "Q5_0": (64, 16, 16),
    "Q5_1": (0, 48, 48),
    "Q8_0": (64, 16, 16),
    "Q4_K": (24, 0, 8),
    "Q5_K": (0, 0, 24),
    "Q6_K": (24, 0, 8),
    "Q8_K": (0, 0, 16),
}

# whole tensors whose dequantized float32 bytes are hashed
WHOLE = [
    ("smollm2", "blk.0.ffn_down.weight"),    # Q4_1
    ("smollm2", "blk.0.attn_norm.weight"),   # F32
    ("gemma3", "blk.0.attn_output.weight"),  # Q4_K
    ("gemma3", "blk.0.ffn_down.weight"),     # Q6_K
    ("gemma3", "blk.0.ffn_gate.weight"),     # Q5_0
    ("gemma3", "blk.0.attn_v.weight"),       # Q8_0
]

rng = np.random.default_rng(20240611)


def sizes(name):
    return gguf.GGML_QUANT_SIZES[T[name]]


def reference(name, raw):
    """float32 values of the blocks in raw (uint8 array of shape (n, block_bytes))."""
    if name == "Q8_K":  # no gguf dequantizer: ggml's d * q in numpy float32
        d = raw[:, :4].copy().view(np.float32)
        q = raw[:, 4:260].copy().view(np.int8).astype(np.float32)
        return (d * q).reshape(-1)
    with np.errstate(over="ignore", invalid="ignore"):
        return np.asarray(dequantize(raw.reshape(-1), T[name]), dtype=np.float32).reshape(-1)


def finite_f16(n, lo=-14, hi=2):
    """n random finite f16 scales: mostly small magnitudes as models have, some tiny/subnormal."""
    exps = rng.integers(lo, hi, size=n).astype(np.float32)
    v = (rng.uniform(1.0, 2.0, size=n) * np.power(2.0, exps)).astype(np.float32)
    v *= np.where(rng.random(n) < 0.5, -1, 1).astype(np.float32)
    h = v.astype(np.float16)
    h[: max(1, n // 16)] = np.float16(6e-6)  # a subnormal scale
    return h.view(np.uint8).reshape(n, 2)


def random_blocks(name, n):
    block_elems, block_bytes = sizes(name)
    if name == "F32":
        v = rng.standard_normal(n).astype(np.float32)
        special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, -1e-45, 1.17549435e-38, 3.4028235e38],
                           dtype=np.float32)
        v[: len(special)] = special
        return v.view(np.uint8).reshape(n, 4)
    if name in ("F16", "BF16"):  # any bit pattern, NaNs with payloads included
        return rng.integers(0, 65536, size=n, dtype=np.uint32).astype(np.uint16).view(np.uint8).reshape(n, 2)
    raw = rng.integers(0, 256, size=(n, block_bytes), dtype=np.uint32).astype(np.uint8)
    if name in ("Q4_0", "Q5_0", "Q8_0"):
        raw[:, 0:2] = finite_f16(n)
    elif name in ("Q4_1", "Q5_1"):
        raw[:, 0:2] = finite_f16(n)
        raw[:, 2:4] = finite_f16(n)
    elif name in ("Q4_K", "Q5_K"):
        raw[:, 0:2] = finite_f16(n)
        raw[:, 2:4] = finite_f16(n)
    elif name == "Q6_K":
        raw[:, 208:210] = finite_f16(n)
    elif name == "Q8_K":
        d = (rng.standard_normal(n) * 0.01).astype(np.float32)
        raw[:, 0:4] = d.view(np.uint8).reshape(n, 4)
    return raw


def quantized_blocks(name, n):
    block_elems, _ = sizes(name)
    x = (rng.standard_normal((n, block_elems)) * rng.uniform(0.01, 2.0, size=(n, 1))).astype(np.float32)
    if name == "F16":
        return x.reshape(-1).astype(np.float16).view(np.uint8).reshape(-1, 2)
    q = quantize(x.reshape(1, -1), T[name])
    return np.asarray(q, dtype=np.uint8).reshape(-1, sizes(name)[1])


def real_blocks(readers, name, limit):
    """Up to `limit` blocks of real rows of tensors of this type: from each of up to 4 tensors
    per model, blocks of its first row and of a random row."""
    block_elems, block_bytes = sizes(name)
    picked = []
    for model, r in readers.items():
        tensors = [t for t in r.tensors if t.tensor_type == T[name]]
        rng.shuffle(tensors)
        picked += [(model, t) for t in tensors[:4]]
    out, sources = [], []
    per = -(-limit // max(1, len(picked)))
    for model, t in picked:
        data = np.asarray(t.data)
        rows = data.reshape(-1, data.shape[-1]) if data.ndim > 1 else data.reshape(1, -1)
        raw = rows.view(np.uint8).reshape(rows.shape[0], -1)
        pick = sorted({0, int(rng.integers(0, raw.shape[0]))})
        take = []
        for i in pick:  # blocks spread over the row
            row = raw[i].reshape(-1, block_bytes)
            idx = np.unique(np.linspace(0, len(row) - 1, num=min(len(row), -(-per // len(pick)))).astype(int))
            take.append(row[idx])
        take = np.concatenate(take)[:per]
        out.append(take)
        sources.append({"model": model, "tensor": t.name, "rows": pick, "blocks": int(len(take))})
    if not out:
        return np.zeros((0, block_bytes), np.uint8), sources
    return np.concatenate(out)[:limit], sources


def main():
    os.makedirs(OUT, exist_ok=True)
    readers = {}
    for m in ("smollm2", "gemma3"):
        p = os.path.join(MODELS, m + ".gguf")
        if os.path.exists(p):
            readers[m] = gguf.GGUFReader(p)
        else:
            print(f"note: {p} is absent; no real blocks or tensor hashes from it", file=sys.stderr)
    manifest = {"generator": "tests/reference/gen_quant_goldens.py", "gguf": gguf.__version__ if hasattr(gguf, "__version__") else "",
                "numpy": np.__version__, "layout": "N raw blocks, then N*block_elems little-endian float32",
                "types": [], "tensors": []}
    try:
        from importlib.metadata import version
        manifest["gguf"] = version("gguf")
    except Exception:
        pass
    total = 0
    for name, (n_real, n_quant, n_rand) in PLAN.items():
        block_elems, block_bytes = sizes(name)
        real, sources = real_blocks(readers, name, n_real) if n_real else (np.zeros((0, block_bytes), np.uint8), [])
        parts = [real]
        if n_quant:
            parts.append(quantized_blocks(name, n_quant))
        parts.append(random_blocks(name, n_rand))
        raw = np.ascontiguousarray(np.concatenate(parts).astype(np.uint8))
        ref = reference(name, raw).astype("<f4")
        assert ref.size == raw.shape[0] * block_elems
        path = os.path.join(OUT, name.lower() + ".bin")
        with open(path, "wb") as f:
            f.write(raw.tobytes())
            f.write(ref.tobytes())
        total += os.path.getsize(path)
        manifest["types"].append({
            "type": name, "id": int(T[name]), "file": name.lower() + ".bin", "blocks": int(raw.shape[0]),
            "block_elems": int(block_elems), "block_bytes": int(block_bytes),
            "real_blocks": int(len(real)), "quantized_blocks": int(n_quant), "random_blocks": int(n_rand),
            "reference": "numpy float32 d * q (gguf has no Q8_K dequantizer)" if name == "Q8_K" else "gguf.quants.dequantize",
            "sources": sources,
        })
    for model, tname in WHOLE:
        r = readers.get(model)
        if r is None:
            continue
        t = next(t for t in r.tensors if t.name == tname)
        v = np.asarray(dequantize(np.asarray(t.data), t.tensor_type), dtype=np.float32)
        manifest["tensors"].append({
            "model": model, "tensor": tname, "type": t.tensor_type.name, "ne": [int(x) for x in t.shape],
            "elements": int(v.size), "sha256": hashlib.sha256(v.astype("<f4").tobytes()).hexdigest(),
        })
    with open(os.path.join(OUT, "manifest.json"), "w") as f:  # one line per type and per tensor
        head = {k: v for k, v in manifest.items() if k not in ("types", "tensors")}
        f.write(json.dumps(head)[:-1] + ',\n "types": [\n')
        f.write(",\n".join("  " + json.dumps(t) for t in manifest["types"]))
        f.write('\n ],\n "tensors": [\n')
        f.write(",\n".join("  " + json.dumps(t) for t in manifest["tensors"]))
        f.write("\n ]\n}\n")
    print(f"wrote {len(PLAN)} types, {total} bytes of blocks and floats, {len(manifest['tensors'])} tensor hashes to {OUT}")


if __name__ == "__main__":
    main()
