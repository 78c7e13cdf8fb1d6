#!/usr/bin/env python3
"""llama.cpp's logits with the LoRA adapters of gen_finetune_goldens.py applied: the check that loom
applies an adapter (its generate path) as llama.cpp does.

For each adapter golden/finetune/<model>-<case>.lora.gguf (the qv case of every model, the all case
of llama-k and gemma3) on its base model golden/arch/<model>.gguf, llama.cpp (llama-cpp-python's
low-level API, CPU, flash attention off, 2 threads, n_ctx 64) computes the logits of every position
of the first sequence of <model>-<case>.json, in one batch, with the adapter set at scale 1.0 (and
0.5 for llama-k qv) by llama_set_adapters_lora. llama.cpp adds scale * alpha / rank * B (A x) to
each adapted matmul, rank being lora_b's ne[0].

The portable AVX2 build of llama.cpp as shared libraries is used (the build loom's decoder
reproduces; LLAMA_CPP_LIB_PATH, set here to ~/.cache/loom/llama.cpp-build-avx2-shared/bin unless
the environment sets it). Also, for comparison, the logits of the same tokens without any adapter
(scale 0 means none), which with the torch reference's logits_last gives a printed check.

Writes golden/finetune/<model>-<case>.llama-logits.json.zst:
  {"tokens", "scale", "logits": [[n_vocab floats] per position], "logits_base": the same without
  the adapter}; for llama-k-qv, which has two scales, a JSON list of two such objects (1.0, 0.5).
With --check-f32 it writes nothing under golden/ but checks the torch reference's architecture and
LoRA semantics: it writes float32 copies of the base models (every tensor dequantized by the gguf
package) to a temporary folder and prints, per adapter, the largest difference of llama.cpp's
last-position logits on that copy with the adapter at scale 1 and the torch reference's float32
logits_last (llama.cpp then only rounds q, k, v and the probabilities to f16: ~1e-2 or less, except
on llama-k, whose saturated attention amplifies any rounding).
Run after gen_finetune_goldens.py:
  tests/reference/.venv/bin/python tests/reference/gen_lora_llama_goldens.py [--check-f32]
"""
import ctypes
import json
import os
import sys
import tempfile

os.environ.setdefault("LLAMA_CPP_LIB_PATH", os.path.expanduser("~/.cache/loom/llama.cpp-build-avx2-shared/bin"))

import numpy as np  # noqa: E402
import zstandard  # noqa: E402
import gguf  # noqa: E402
import llama_cpp  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ARCH = os.path.join(HERE, "golden", "arch")
OUT = os.path.join(HERE, "golden", "finetune")
# (model, case, scales)
FILES = [("llama-k", "qv", [1.0, 0.5]), ("llama-k", "all", [1.0]), ("llama-scaled", "qv", [1.0]),
         ("qwen2", "qv", [1.0]), ("qwen3", "qv", [1.0]), ("gemma3", "qv", [1.0]), ("gemma3", "all", [1.0])]


@llama_cpp.llama_log_callback
def _log(level, text, user_data):
    if level in (3, 4):  # warnings and errors
        print(text.decode("utf-8", "replace"), end="")


llama_cpp.llama_log_set(_log, ctypes.c_void_p(0))
llama_cpp.llama_backend_init()


def run(model_path, adapter_path, scale, tokens):
    """Logits of every position of tokens (one batch from position 0); no adapter when scale is 0."""
    mp = llama_cpp.llama_model_default_params()
    model = llama_cpp.llama_model_load_from_file(model_path.encode(), mp)
    assert model, model_path
    adapter = None
    if scale:
        adapter = llama_cpp.llama_adapter_lora_init(model, adapter_path.encode())
        if not adapter:
            raise RuntimeError(f"llama.cpp refused the adapter {adapter_path} (see the log above)")
    cp = llama_cpp.llama_context_default_params()
    cp.n_ctx, cp.n_batch, cp.n_ubatch = 64, 64, 64
    cp.n_threads = cp.n_threads_batch = 2
    cp.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
    ctx = llama_cpp.llama_init_from_model(model, cp)
    assert ctx
    if adapter:
        adapters = (llama_cpp.llama_adapter_lora_p_ctypes * 1)(adapter)
        scales = (ctypes.c_float * 1)(scale)
        rc = llama_cpp.llama_set_adapters_lora(ctx, adapters, 1, scales)
        assert rc == 0, f"llama_set_adapters_lora returned {rc}"
    n_vocab = llama_cpp.llama_vocab_n_tokens(llama_cpp.llama_model_get_vocab(model))
    b = llama_cpp.llama_batch_init(len(tokens), 0, 1)
    b.n_tokens = len(tokens)
    for i, t in enumerate(tokens):
        b.token[i], b.pos[i], b.n_seq_id[i], b.logits[i] = t, i, 1, 1
        b.seq_id[i][0] = 0
    assert llama_cpp.llama_decode(ctx, b) == 0
    rows = []
    for i in range(len(tokens)):
        p = llama_cpp.llama_get_logits_ith(ctx, i)
        rows.append(np.ctypeslib.as_array(p, shape=(n_vocab,)).astype(np.float32).tolist())
    llama_cpp.llama_batch_free(b)
    llama_cpp.llama_free(ctx)
    if adapter:
        llama_cpp.llama_adapter_lora_free(adapter)
    llama_cpp.llama_model_free(model)
    return rows


def f32_copy(src, dst):
    """src with every tensor dequantized to F32, the metadata as it is."""
    r = gguf.GGUFReader(src)
    w = gguf.GGUFWriter(dst, r.fields["general.architecture"].contents())
    for k, f in r.fields.items():
        if k.startswith("GGUF.") or k == "general.architecture":
            continue
        vt = f.types[0]
        w.add_key_value(k, f.contents(), vt, f.types[1] if vt == gguf.GGUFValueType.ARRAY else None)
    for t in r.tensors:
        x = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
        w.add_tensor(t.name, x.reshape([int(d) for d in reversed(t.shape)]))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def check_f32():
    with tempfile.TemporaryDirectory() as tmp:
        for name, case, _ in FILES:
            stem = f"{name}-{case}"
            with open(os.path.join(OUT, stem + ".json")) as f:
                ref = json.load(f)
            path = os.path.join(tmp, name + ".gguf")
            if not os.path.exists(path):
                f32_copy(os.path.join(ARCH, name + ".gguf"), path)
            lg = np.array(run(path, os.path.join(OUT, stem + ".lora.gguf"), 1.0, ref["sequences"][0]["tokens"]),
                          dtype=np.float32)
            want = np.array(ref["logits_last"], dtype=np.float32)
            print(f"{stem}: llama.cpp on the F32 copy with the adapter vs torch fp32 logits_last: max abs diff "
                  f"{np.abs(lg[-1] - want).max():.2e} (max |logit| {np.abs(want).max():.1f})")


def main():
    if "--check-f32" in sys.argv[1:]:
        check_f32()
        return
    print("llama.cpp library:", os.environ["LLAMA_CPP_LIB_PATH"])
    summary = {}
    for name, case, scales in FILES:
        stem = f"{name}-{case}"
        with open(os.path.join(OUT, stem + ".json")) as f:
            ref = json.load(f)
        tokens = ref["sequences"][0]["tokens"]
        model_path = os.path.join(ARCH, name + ".gguf")
        adapter_path = os.path.join(OUT, stem + ".lora.gguf")
        base = np.array(run(model_path, None, 0.0, tokens), dtype=np.float32)
        recs = []
        for s in scales:
            lg = run(model_path, adapter_path, s, tokens)
            recs.append({"tokens": tokens, "scale": s, "logits": lg, "logits_base": base.tolist()})
            a = np.array(lg, dtype=np.float32)
            line = f"{stem} scale {s}: |lora - base| max {np.abs(a - base).max():.4f}"
            if s == 1.0:
                d = float(np.abs(a[-1] - np.array(ref["logits_last"], dtype=np.float32)).max())
                line += f", last position vs torch fp32 logits_last max abs diff {d:.4f}"
                summary[stem] = d
            print(line)
        obj = recs[0] if len(recs) == 1 else recs
        with open(os.path.join(OUT, stem + ".llama-logits.json.zst"), "wb") as f:
            f.write(zstandard.ZstdCompressor(level=19).compress(json.dumps(obj, separators=(",", ":")).encode()))
    with open(os.path.join(OUT, "MANIFEST-llama.json"), "w") as f:
        json.dump({"llama_cpp_python": llama_cpp.__version__, "lib": "llama.cpp-build-avx2-shared",
                   "last_position_vs_torch_max_abs": summary}, f, indent=1)


if __name__ == "__main__":
    main()
