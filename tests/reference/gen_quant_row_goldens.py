#!/usr/bin/env python3
"""Goldens for loom's quantizers (lib/quant/quantize.h), from llama.cpp's own ggml.

llama.cpp quantizes a tensor through ggml_quantize_chunk (llama_model_quantize calls it per
tensor); without an importance matrix that runs ggml's reference quantizers (quantize_row_*_ref,
ggml_fp32_to_fp16_row, ggml_fp32_to_bf16_row_ref). This script compiles quant_rows_driver.c
against the ggml-base library of a llama.cpp build of the sources vendored in llama-cpp-python
0.3.36 (the build tests/reference/build-llama-perplexity makes) and runs it on float32 rows.

Written to tests/reference/golden/quant_rows/:
  inputs.f32     ROWS rows of N_PER_ROW little-endian float32 (named in manifest.json):
                 seeded random rows (normal, outliers, zeros, f16 and f32 denormals, constants, a
                 single nonzero, one-signed, large, exact grid values, zero sub-blocks) and slices
                 of real tensors of smollm2.gguf dequantized to float32 by gguf-py
  specials.f32   rows for F16/BF16 only: rounding boundaries, inf, NaN, random bit patterns
  <TYPE>.bin     the bytes ggml_quantize_chunk writes for inputs.f32 (F16 and BF16: inputs.f32
                 then specials.f32)
  importance.f32 importance weights (column weights, as llama-quantize passes an imatrix
                 entry): IW_SHORT vectors of N_PER_ROW, then one of LONG_ROW
  <TYPE>.iw<k>.bin   the bytes ggml_quantize_chunk writes for inputs.f32 with weight vector k
                 (the types that use weights: Q4_0/1, Q5_0/1, Q4_K, Q5_K, Q6_K)
  <TYPE>.iw-long.bin the first rows of inputs.f32 laid end to end as rows of LONG_ROW (the
                 32-element types' weights depend on the whole row) with the long vector
  manifest.json  row names, sizes, sha256 of every file

  tests/bench/.venv/bin/python tests/reference/gen_quant_row_goldens.py
Environment: LLAMA_CPP_SRC (vendored llama.cpp sources), LLAMA_CPP_BUILD (its build folder),
LOOM_MODELS (folder of smollm2.gguf).
"""
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import types

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "golden", "quant_rows")
CACHE = os.path.expanduser("~/.cache/loom")
SRC = os.environ.get("LLAMA_CPP_SRC") or os.path.join(CACHE, "src/llama_cpp_python-0.3.36/vendor/llama.cpp")
BUILD = os.environ.get("LLAMA_CPP_BUILD") or os.path.join(CACHE, "llama.cpp-build-avx2")
MODELS = os.environ.get("LOOM_MODELS") or os.path.join(CACHE, "models")

N_PER_ROW = 256
LONG_ROW = 1024
WEIGHTED = ["Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q4_K", "Q5_K", "Q6_K"]
# ggml type ids (ggml.h)
TYPES = {"F16": 1, "Q4_0": 2, "Q4_1": 3, "Q5_0": 6, "Q5_1": 7, "Q8_0": 8,
         "Q4_K": 12, "Q5_K": 13, "Q6_K": 14, "BF16": 30}


def synthetic_rows():
    rng = np.random.default_rng(20240609)
    n = N_PER_ROW
    rows = []

    def add(name, v):
        rows.append((name, np.asarray(v, dtype=np.float32)))

    for i, s in enumerate([1.0, 0.02, 0.3, 5.0]):
        add(f"normal_{i}", rng.standard_normal(n) * s)
    add("uniform", rng.uniform(-1, 1, n))
    for i in range(2):
        v = rng.standard_normal(n) * 0.05
        idx = rng.choice(n, 4, replace=False)
        v[idx] = rng.standard_normal(4) * 3.0
        add(f"outliers_{i}", v)
    v = rng.standard_normal(n) * 0.01
    v[rng.choice(n, 1)] = -40.0
    add("outlier_negative", v)
    add("zeros", np.zeros(n))
    add("f16_denormal", rng.standard_normal(n) * 3e-6)
    add("f16_tiny", rng.standard_normal(n) * 1e-9)
    add("f32_denormal", rng.standard_normal(n) * 1e-39)
    add("const_pos", np.full(n, 0.75))
    add("const_neg", np.full(n, -3.0))
    v = np.zeros(n); v[37] = 2.5
    add("single_pos", v)
    v = np.zeros(n); v[200] = -0.125
    add("single_neg", v)
    add("negative_only", -np.abs(rng.standard_normal(n)))
    add("positive_only", np.abs(rng.standard_normal(n)) + 0.5)
    add("large", rng.standard_normal(n) * 1000.0)
    add("very_large", rng.standard_normal(n) * 20000.0)
    add("grid_ints", rng.integers(-8, 8, n).astype(np.float64))
    add("grid_halves", rng.integers(-33, 33, n) * 0.5)
    v = rng.standard_normal(n)
    for b in (1, 4, 6):
        v[32 * b:32 * b + 32] = 0
    add("zero_subblocks", v)
    v = rng.standard_normal(n) * 0.1
    v[64:96] = 0.3
    v[160:176] = -2.0
    add("flat_subblocks", v)
    v = rng.standard_normal(n) * 0.1
    v[:128] *= 1e-4
    add("mixed_scale", v)
    return rows


def model_rows():
    """256-element slices of a few tensors of smollm2.gguf, dequantized by gguf-py."""
    path = os.path.join(MODELS, "smollm2.gguf")
    if not os.path.exists(path):
        sys.exit(f"missing {path}")
    sys.path.insert(0, os.path.join(SRC, "gguf-py"))
    try:
        import yaml  # noqa: F401  (gguf.metadata imports it; reading tensors does not use it)
    except ImportError:
        sys.modules["yaml"] = types.ModuleType("yaml")
    import gguf
    from gguf.quants import dequantize
    r = gguf.GGUFReader(path)
    want = {"token_embd.weight": [5, 1000, 30000], "blk.0.attn_q.weight": [0, 17, 300],
            "blk.3.ffn_down.weight": [2, 400], "blk.0.attn_norm.weight": [0]}
    rows = []
    for t in r.tensors:
        if t.name not in want:
            continue
        w = dequantize(t.data, t.tensor_type).reshape(-1, int(t.shape[0])).astype(np.float32)
        for ri in want[t.name]:
            for off in range(0, w.shape[1] - N_PER_ROW + 1, N_PER_ROW):
                rows.append((f"{t.name}:row{ri}:{off}-{off + N_PER_ROW}", w[ri, off:off + N_PER_ROW]))
    return rows


def special_rows():
    """Rows for the f16/bf16 conversions only: boundaries, ties, infinities, NaNs, random bits."""
    f = np.float32
    vals = [0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, np.nan, -np.nan, 65504.0, 65519.99, 65520.0,
            -65520.0, 1e6, 3.4028235e38, 2.0**-24, 2.0**-25, 3 * 2.0**-25, 2.0**-26, 2.0**-14,
            2.0**-14 - 2.0**-25, 1e-8, 1e-45, -1e-45, 1.0 + 2.0**-11, 1.0 + 3 * 2.0**-11,
            1.0 + 2.0**-11 + 2.0**-20, 1.0 + 2.0**-8, 1.0 + 3 * 2.0**-8, 1.0 + 2.0**-8 + 2.0**-22,
            2048.0 + 1.0, 2048.0 + 3.0, 0.1, -0.1, 1.0 / 3.0]
    v = np.array(vals, dtype=f)
    nan_bits = np.array([0x7fc00001, 0x7f800001, 0xffa00000, 0x7fbfffff, 0x7f802000, 0xff800001],
                        dtype=np.uint32).view(f)
    row = np.zeros(N_PER_ROW, dtype=f)
    row[:len(v)] = v
    row[len(v):len(v) + len(nan_bits)] = nan_bits
    rng = np.random.default_rng(7)
    # f16 ties and near-ties around random normal halves
    h = rng.integers(0x0400, 0x7bff, 64).astype(np.uint32)
    base = h.astype(np.uint16).view(np.float16).astype(f).view(np.uint32)
    ties = base + np.uint32(0x1000)  # exactly halfway to the next half
    k = len(v) + len(nan_bits)
    row[k:k + 64] = ties.view(f)
    row[k + 64:k + 128] = (ties + np.uint32(1)).view(f)
    rand_bits = rng.integers(0, 2**32, 2 * N_PER_ROW, dtype=np.uint64).astype(np.uint32).view(f)
    return [("specials", row), ("random_bits_0", rand_bits[:N_PER_ROW]),
            ("random_bits_1", rand_bits[N_PER_ROW:])]


def importance_vectors():
    """Column weights like an imatrix's mean squared activations: gamma-distributed (spread over
    orders of magnitude), with exact zeros (columns never active), and all equal; then a long one."""
    rng = np.random.default_rng(99)
    n = N_PER_ROW
    spread = rng.gamma(0.5, 2.0, n) * 10.0 ** rng.uniform(-3, 3, n)
    zeros = rng.gamma(1.0, 1.0, n)
    zeros[rng.choice(n, 40, replace=False)] = 0.0
    zeros[96:128] = 0.0  # a whole block
    short = [spread, zeros, np.ones(n)]
    long = rng.gamma(0.7, 1.5, LONG_ROW)
    return [np.asarray(v, dtype="<f4") for v in short], np.asarray(long, dtype="<f4")


def build_driver(tmp):
    exe = os.path.join(tmp, "quant_rows_driver")
    lib = os.path.join(BUILD, "ggml", "src", "libggml-base.a")
    if not os.path.exists(lib):
        sys.exit(f"missing {lib}: build llama.cpp first (tests/reference/build-llama-perplexity)")
    subprocess.run(["cc", "-O2", "-I", os.path.join(SRC, "ggml", "include"),
                    os.path.join(HERE, "quant_rows_driver.c"), lib,
                    "-fopenmp", "-lm", "-lstdc++", "-lpthread", "-o", exe], check=True)
    return exe


def quantize(exe, type_id, data, n_per_row=N_PER_ROW, weights_file=None):
    args = [exe, str(type_id), str(n_per_row)] + ([weights_file] if weights_file else [])
    return subprocess.run(args, input=data.tobytes(), capture_output=True, check=True).stdout


def main():
    os.makedirs(OUT, exist_ok=True)
    rows = synthetic_rows() + model_rows()
    specials = special_rows()
    inputs = np.stack([v for _, v in rows]).astype("<f4")
    spec = np.stack([v for _, v in specials]).astype("<f4")
    short, long = importance_vectors()
    files = {"inputs.f32": inputs.tobytes(), "specials.f32": spec.tobytes(),
             "importance.f32": b"".join(v.tobytes() for v in short) + long.tobytes()}
    n_long_rows = inputs.size // LONG_ROW
    long_inputs = inputs.reshape(-1)[:n_long_rows * LONG_ROW]
    with tempfile.TemporaryDirectory() as tmp:
        exe = build_driver(tmp)
        for name, tid in TYPES.items():
            data = np.concatenate([inputs, spec]) if name in ("F16", "BF16") else inputs
            files[f"{name}.bin"] = quantize(exe, tid, data)
        wfiles = []
        for k, v in enumerate(short + [long]):
            wfiles.append(os.path.join(tmp, f"w{k}.f32"))
            v.tofile(wfiles[-1])
        for name in WEIGHTED:
            for k in range(len(short)):
                files[f"{name}.iw{k}.bin"] = quantize(exe, TYPES[name], inputs, N_PER_ROW, wfiles[k])
            files[f"{name}.iw-long.bin"] = quantize(exe, TYPES[name], long_inputs, LONG_ROW, wfiles[-1])
    for fn, b in files.items():
        with open(os.path.join(OUT, fn), "wb") as fh:
            fh.write(b)
    manifest = {
        "source": "ggml_quantize_chunk, llama.cpp vendored in llama-cpp-python 0.3.36",
        "n_per_row": N_PER_ROW,
        "importance": {"short_vectors": len(short), "long_row": LONG_ROW, "long_rows": n_long_rows,
                       "types": WEIGHTED},
        "rows": [n for n, _ in rows],
        "special_rows": [n for n, _ in specials],
        "types": {n: {"id": t, "file": f"{n}.bin", "with_specials": n in ("F16", "BF16")}
                  for n, t in TYPES.items()},
        "sha256": {fn: hashlib.sha256(b).hexdigest() for fn, b in sorted(files.items())},
    }
    with open(os.path.join(OUT, "manifest.json"), "w") as fh:
        json.dump(manifest, fh, indent=1)
        fh.write("\n")
    total = sum(len(b) for b in files.values())
    print(f"{len(rows)} rows + {len(specials)} special rows, {total} bytes in {OUT}")


if __name__ == "__main__":
    main()
