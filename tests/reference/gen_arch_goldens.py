#!/usr/bin/env python3
"""Tiny random-weight models of every architecture loom-generate runs, and llama.cpp's logits on
them: the check that each architecture's forward pass (not just the two default models') is
llama.cpp's.

Each model is written by the gguf package's GGUFWriter with random weights (fixed seeds) and a
small byte-level vocabulary (llama.cpp needs one to load a model; the tests feed token ids):
  llama-k      llama, n_embd 256, GQA 8/2, K-quant weights (Q4_K repacked and not, Q5_K, Q6_K),
               rope_freqs.weight (Llama 3.1's frequency factors), an output matrix
  llama-scaled llama, n_embd 64, Q8_0/Q4_0/Q5_1 weights, linear RoPE scaling x4, tied embeddings
  qwen2        qwen2, q/k/v biases, NeoX RoPE, tied embeddings
  qwen3        qwen3, q/k norms, key_length 32 (q_dim 128 != n_embd 64), an output matrix
  gemma3       gemma3, 6 layers (the 6th global, the others a sliding window of 5), post-norms,
               GELU, q scaled first, RoPE scaled x8 in the global layer only
llama.cpp (llama-cpp-python, CPU, flash attention off, 2 threads) computes, for 24 tokens:
  batch: the logits of all 24 in one batch;
  steps: the first 8 as one batch, then the other 16 one at a time (logits of each step).
Writes tests/reference/golden/arch/<name>.gguf and <name>-logits.jsonl.zst
({"mode", "tokens", "logits": [[n_vocab floats] per position]}). Run with
tests/reference/.venv/bin/python."""
import ctypes
import json
import os

import numpy as np
import zstandard
import gguf
from gguf import GGMLQuantizationType as Q

import llama_cpp

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "golden", "arch")
N_TOKENS, N_FIRST = 24, 8


# ---- a byte-level BPE vocabulary: the 256 byte symbols, one merge, one end token ------------------

def byte_symbols():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for _, c in sorted(zip(bs, cs))]


TOKENS = byte_symbols() + ["ab", "<|endoftext|>"]
N_VOCAB = len(TOKENS)


# ---- random weights ----------------------------------------------------------------------------

def f16_bytes(x):
    return np.array(x, dtype=np.float16).tobytes()


def k_blocks(rng, qtype, rows, cols, scale):
    """Random but well-formed K-quant blocks: small positive d (and dmin), random quants."""
    assert cols % 256 == 0
    out = bytearray()
    for _ in range(rows * cols // 256):
        if qtype == Q.Q4_K or qtype == Q.Q5_K:
            d, dmin = rng.uniform(0.2, 1.0) * scale / 16, rng.uniform(0.2, 1.0) * scale / 16
            out += f16_bytes(d) + f16_bytes(dmin) + rng.integers(0, 256, 12, dtype=np.uint8).tobytes()
            if qtype == Q.Q5_K:
                out += rng.integers(0, 256, 32, dtype=np.uint8).tobytes()  # qh
            out += rng.integers(0, 256, 128, dtype=np.uint8).tobytes()     # qs
        elif qtype == Q.Q6_K:
            out += rng.integers(0, 256, 128 + 64, dtype=np.uint8).tobytes()          # ql, qh
            out += rng.integers(-32, 32, 16).astype(np.int8).tobytes()               # scales
            out += f16_bytes(rng.uniform(0.2, 1.0) * scale / 256)
        else:
            raise ValueError(qtype)
    bs = {Q.Q4_K: 144, Q.Q5_K: 176, Q.Q6_K: 210}[qtype]
    return np.frombuffer(bytes(out), dtype=np.uint8).reshape(rows, cols // 256 * bs)


class Model:
    def __init__(self, name, arch, seed):
        self.name, self.arch = name, arch
        self.rng = np.random.default_rng(seed)
        self.path = os.path.join(OUT, name + ".gguf")
        self.w = gguf.GGUFWriter(self.path, arch)

    def matrix(self, name, rows, cols, qtype, scale=None):
        scale = scale if scale is not None else 1.0 / np.sqrt(cols)
        if qtype in (Q.Q4_K, Q.Q5_K, Q.Q6_K):
            self.w.add_tensor(name, k_blocks(self.rng, qtype, rows, cols, scale), raw_dtype=qtype)
            return
        x = (self.rng.standard_normal((rows, cols)) * scale).astype(np.float32)
        if qtype == Q.F32:
            self.w.add_tensor(name, x)
        elif qtype == Q.F16:
            self.w.add_tensor(name, x.astype(np.float16))
        else:
            self.w.add_tensor(name, gguf.quants.quantize(x, qtype), raw_dtype=qtype)

    def vector(self, name, n, around=1.0, spread=0.1):
        self.w.add_tensor(name, (around + self.rng.standard_normal(n) * spread).astype(np.float32))

    def finish(self):
        w = self.w
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre("default")
        w.add_token_list(TOKENS)
        w.add_token_types([1] * (N_VOCAB - 1) + [3])
        w.add_token_merges(["a b"])
        w.add_bos_token_id(N_VOCAB - 1)
        w.add_eos_token_id(N_VOCAB - 1)
        w.add_add_bos_token(False)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()


def common(m, n_embd, n_layer, n_head, n_head_kv, n_ff, key_length=None, eps=1e-6, base=10000.0):
    w, a = m.w, m.arch
    w.add_context_length(512)
    w.add_embedding_length(n_embd)
    w.add_block_count(n_layer)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_head_kv)
    w.add_layer_norm_rms_eps(eps)
    w.add_rope_freq_base(base)
    if key_length:
        w.add_key_length(key_length)
        w.add_value_length(key_length)


def layer(m, l, n_embd, n_head, n_head_kv, hd, n_ff, types, bias=False, qk_norm=False, post_norms=False):
    p = f"blk.{l}."
    tq, tk, tv, to, tg, tu, td = types
    m.vector(p + "attn_norm.weight", n_embd)
    m.matrix(p + "attn_q.weight", n_head * hd, n_embd, tq)
    m.matrix(p + "attn_k.weight", n_head_kv * hd, n_embd, tk)
    m.matrix(p + "attn_v.weight", n_head_kv * hd, n_embd, tv)
    if bias:
        m.vector(p + "attn_q.bias", n_head * hd, 0.0, 0.5)
        m.vector(p + "attn_k.bias", n_head_kv * hd, 0.0, 0.5)
        m.vector(p + "attn_v.bias", n_head_kv * hd, 0.0, 0.5)
    if qk_norm:
        m.vector(p + "attn_q_norm.weight", hd)
        m.vector(p + "attn_k_norm.weight", hd)
    m.matrix(p + "attn_output.weight", n_embd, n_head * hd, to)
    if post_norms:
        m.vector(p + "post_attention_norm.weight", n_embd)
    m.vector(p + "ffn_norm.weight", n_embd)
    m.matrix(p + "ffn_gate.weight", n_ff, n_embd, tg)
    m.matrix(p + "ffn_up.weight", n_ff, n_embd, tu)
    m.matrix(p + "ffn_down.weight", n_embd, n_ff, td)
    if post_norms:
        m.vector(p + "post_ffw_norm.weight", n_embd)


def build_models():
    os.makedirs(OUT, exist_ok=True)
    models = []

    m = Model("llama-k", "llama", 11)
    E, H, KV, hd, FF = 256, 8, 2, 32, 512
    common(m, E, 2, H, KV, FF)
    m.matrix("token_embd.weight", N_VOCAB, E, Q.Q6_K, 1.0)
    m.w.add_tensor("rope_freqs.weight", m.rng.uniform(1.0, 8.0, hd // 2).astype(np.float32))
    for l in range(2):
        layer(m, l, E, H, KV, hd, FF, (Q.Q4_K, Q.Q4_K, Q.Q6_K, Q.Q4_K, Q.Q5_K, Q.Q6_K, Q.Q4_K))
    m.vector("output_norm.weight", E)
    m.matrix("output.weight", N_VOCAB, E, Q.Q4_K)  # 258 rows: not repacked
    models.append(m)

    m = Model("llama-scaled", "llama", 12)
    E, H, KV, hd, FF = 64, 4, 2, 16, 128
    common(m, E, 2, H, KV, FF, base=500000.0)
    m.w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
    m.w.add_rope_scaling_factor(4.0)
    m.matrix("token_embd.weight", N_VOCAB, E, Q.Q8_0, 1.0)
    for l in range(2):
        layer(m, l, E, H, KV, hd, FF, (Q.Q8_0, Q.Q4_0, Q.Q5_1, Q.Q8_0, Q.Q4_0, Q.Q5_1, Q.Q8_0))
    m.vector("output_norm.weight", E)
    models.append(m)

    m = Model("qwen2", "qwen2", 13)
    E, H, KV, hd, FF = 64, 4, 2, 16, 128
    common(m, E, 2, H, KV, FF, base=1000000.0)
    m.matrix("token_embd.weight", N_VOCAB, E, Q.Q8_0, 1.0)
    for l in range(2):
        layer(m, l, E, H, KV, hd, FF, (Q.Q5_1, Q.Q8_0, Q.Q8_0, Q.Q4_0, Q.Q8_0, Q.Q5_1, Q.Q8_0), bias=True)
    m.vector("output_norm.weight", E)
    models.append(m)

    m = Model("qwen3", "qwen3", 14)
    E, H, KV, hd, FF = 64, 4, 2, 32, 128
    common(m, E, 2, H, KV, FF, key_length=hd, base=1000000.0)
    m.matrix("token_embd.weight", N_VOCAB, E, Q.Q8_0, 1.0)
    for l in range(2):
        layer(m, l, E, H, KV, hd, FF, (Q.Q8_0, Q.Q8_0, Q.Q4_0, Q.Q8_0, Q.Q5_1, Q.Q8_0, Q.Q4_0), qk_norm=True)
    m.vector("output_norm.weight", E)
    m.matrix("output.weight", N_VOCAB, E, Q.Q8_0)
    models.append(m)

    m = Model("gemma3", "gemma3", 15)
    E, H, KV, hd, FF = 64, 4, 1, 32, 128
    common(m, E, 6, H, KV, FF, key_length=hd, base=1000000.0)
    m.w.add_sliding_window(5)
    m.w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
    m.w.add_rope_scaling_factor(8.0)
    m.matrix("token_embd.weight", N_VOCAB, E, Q.Q8_0, 0.2)
    for l in range(6):
        layer(m, l, E, H, KV, hd, FF, (Q.Q8_0, Q.Q4_0, Q.Q8_0, Q.Q5_1, Q.Q8_0, Q.Q8_0, Q.Q4_0), qk_norm=True,
              post_norms=True)
    m.vector("output_norm.weight", E)
    models.append(m)

    for m in models:
        m.finish()
    return [m.name for m in models]


# ---- llama.cpp --------------------------------------------------------------------------------

@llama_cpp.llama_log_callback
def _log(level, text, user_data):
    if level == 3:
        print(text.decode("utf-8", "replace"), end="")


llama_cpp.llama_log_set(_log, ctypes.c_void_p(0))
llama_cpp.llama_backend_init()


def run(path, tokens, mode):
    mp = llama_cpp.llama_model_default_params()
    model = llama_cpp.llama_model_load_from_file(path.encode(), mp)
    assert model, path
    cp = llama_cpp.llama_context_default_params()
    cp.n_ctx, cp.n_batch, cp.n_ubatch = 512, 512, 512
    cp.n_threads = cp.n_threads_batch = 2
    cp.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
    ctx = llama_cpp.llama_init_from_model(model, cp)
    n_vocab = llama_cpp.llama_vocab_n_tokens(llama_cpp.llama_model_get_vocab(model))
    parts = [tokens] if mode == "batch" else [tokens[:N_FIRST]] + [[t] for t in tokens[N_FIRST:]]
    rows, pos = [], 0
    for part in parts:
        b = llama_cpp.llama_batch_init(len(part), 0, 1)
        b.n_tokens = len(part)
        for i, t in enumerate(part):
            b.token[i], b.pos[i], b.n_seq_id[i], b.logits[i] = t, pos + i, 1, 1
            b.seq_id[i][0] = 0
        assert llama_cpp.llama_decode(ctx, b) == 0
        for i in range(len(part)):
            p = llama_cpp.llama_get_logits_ith(ctx, i)
            rows.append(np.ctypeslib.as_array(p, shape=(n_vocab,)).astype(np.float32).tolist())
        llama_cpp.llama_batch_free(b)
        pos += len(part)
    llama_cpp.llama_free(ctx)
    llama_cpp.llama_model_free(model)
    return rows


def main():
    names = build_models()
    rng = np.random.default_rng(5)
    tokens = [int(t) for t in rng.integers(0, N_VOCAB - 1, N_TOKENS)]
    for name in names:
        path = os.path.join(OUT, name + ".gguf")
        lines = []
        for mode in ("batch", "steps"):
            lines.append(json.dumps({"mode": mode, "tokens": tokens, "logits": run(path, tokens, mode)}))
        with open(os.path.join(OUT, name + "-logits.jsonl.zst"), "wb") as f:
            f.write(zstandard.ZstdCompressor(level=19).compress(("\n".join(lines) + "\n").encode()))
        print(name, os.path.getsize(path), "bytes")
    manifest = {"llama_cpp_python": llama_cpp.__version__, "gguf": gguf.__version__ if hasattr(gguf, "__version__") else "",
                "tokens": N_TOKENS, "first_batch": N_FIRST, "models": names}
    with open(os.path.join(OUT, "MANIFEST.json"), "w") as f:
        json.dump(manifest, f, indent=1)


if __name__ == "__main__":
    main()
