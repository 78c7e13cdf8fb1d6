#!/usr/bin/env python3
"""Reference goldens for loom finetune (LoRA training on the CPU): one training step's loss and LoRA
gradients, computed by a plain PyTorch float32 forward pass of the tiny random-weight decoders of
golden/arch/ (llama-k, llama-scaled, qwen2, qwen3, gemma3; see gen_arch_goldens.py for what each
exercises) with a LoRA adapter on some of their linear layers.

The forward pass mirrors loom's decoder (lib/model/config.cpp, decoder.cpp, cpu_backend.cpp) in
plain float32 math: no f16 rounding of keys, values or probabilities, the exact tanh GELU, RoPE
angles in double. Every tensor is dequantized to float32 by the gguf package (bit for bit what loom
dequantizes). Per layer: h = rms_norm(x) * w; q, k, v = h W^T (+ qwen2's biases); qwen3/gemma3 norm
q and k per head; RoPE (llama: adjacent pairs on the GGUF's permuted q/k; qwen2/qwen3/gemma3: NeoX
halves), angle_i = freq_scale * pos * base^(-2i/rope_dims) / freq_factor_i; causal attention with
GQA (gemma3: q times 1/sqrt(head_dim) first, a sliding window of positions p-window+1..p in 5 of
every 6 layers with RoPE base 10000 and no scaling there; the others scale the scores); output
projection (+ gemma3's post-attention norm); residual; ffn_norm; act(gate) * up (SiLU, gemma3 GELU
tanh); down (+ gemma3's post-FFN norm); residual. Then output_norm and the output matrix (token_embd
when tied). gemma3 scales the embeddings by sqrt(n_embd).

LoRA on a linear W (out x in): y = W x + (alpha / r) * B (A x), A r x in, B out x r (llama.cpp's
scale for an adapter applied at scale s is s * alpha / r, r = lora_b's ne[0]). Targets: q attn_q,
k attn_k, v attn_v, o attn_output, gate ffn_gate, up ffn_up, down ffn_down. Cases: "qv" (q, v, rank 4,
alpha 8) for every model, "all" (all seven, rank 2, alpha 4) for llama-k and gemma3. A and B are
random (numpy, fixed seeds), both nonzero, so both gradients carry information.

Writes, under tests/reference/golden/finetune/:
  <model>-<case>.lora.gguf  the initial adapter in llama.cpp's LoRA format (general.type "adapter",
                            adapter.type "lora", adapter.lora.alpha F32; blk.N.<t>.weight.lora_a
                            F32 ne [in, r], ...lora_b F32 ne [r, out])
  <model>-<case>.json       the batch (3 sequences of 24, 17, 9 random tokens, each from position 0
                            and attending only to itself, a 0/1 weight per position: position t
                            counts as a target, predicted from the logits at t-1, when weight[t] is
                            1; the first few are a weight-0 "prompt"); loss = the sum over targets of
                            the cross-entropy / the number of targets; the float32 gradients of the
                            loss by every lora_a (r x in) and lora_b (out x r), flat row-major;
                            "logits_last", the float32 logits (LoRA applied at scale 1) of the first
                            sequence's last position; for information the loss in float64 and the
                            largest difference of the float32 and float64 gradients relative to the
                            float64 gradient's largest magnitude, per tensor the worst
  llama-k-qv-dpo.json       DPO on the llama-k qv adapter: 2 pairs of (prompt 8, chosen 7, rejected 5
                            tokens), beta 0.1, policy = base + LoRA, reference = base; logp = the sum
                            of the completion tokens' log-probabilities given the prompt and the
                            completion before them; loss = the mean over pairs of
                            -logsigmoid(beta * ((pol(c) - ref(c)) - (pol(r) - ref(r)))); the rewards
                            beta * (pol - ref) of chosen and rejected, and the gradients
  MANIFEST.json             what was made, with the sanity check below

Sanity check (printed and kept in MANIFEST.json): the float32 logits without LoRA of the 24 tokens
of golden/arch/<model>-logits.jsonl.zst against llama.cpp's ("batch" mode). They do not agree to
1e-2: llama.cpp rounds a quantized matmul's activations to 8 bits (Q8_0/Q8_1/Q8_K) and keys, values,
queries and probabilities to f16, about 0.5% of these models' large logits (up to ~240 for llama-k),
and llama-k is chaotic (saturated attention: a rounding can flip which key wins; its float32 and
float64 logits already differ by 0.05). So the check also runs the forward with those roundings
emulated (forward(emul=True), for this check only): llama-k, whose weights are all K-quants, then
agrees to ~1e-4 at all but a chaotic position; the Q8_0/Q4_0/Q5_1 models stay ~0.5% off (the
emulation of those small-block dot products is not exact; e.g. Q8_1's f16 block sums). The strict
architecture check is gen_lora_llama_goldens.py --check-f32: llama.cpp on float32 copies of the
models, with the adapters, against logits_last below.

gen_lora_llama_goldens.py then runs the adapters in llama.cpp. Run (from the repository root):
  tests/reference/.venv-torch/bin/python tests/reference/gen_finetune_goldens.py
"""
import json
import math
import os

import numpy as np
import torch
import zstandard
import gguf

HERE = os.path.dirname(os.path.abspath(__file__))
ARCH = os.path.join(HERE, "golden", "arch")
OUT = os.path.join(HERE, "golden", "finetune")
MODELS = ["llama-k", "llama-scaled", "qwen2", "qwen3", "gemma3"]
TARGETS = {"q": "attn_q", "k": "attn_k", "v": "attn_v", "o": "attn_output",
           "gate": "ffn_gate", "up": "ffn_up", "down": "ffn_down"}
CASES = {"qv": (["q", "v"], 4, 8.0), "all": (["q", "k", "v", "o", "gate", "up", "down"], 2, 4.0)}
SEQ_LENS, PROMPT_LENS = [24, 17, 9], [5, 4, 3]
DPO_BETA = 0.1

torch.set_num_threads(2)


# ---- the model ---------------------------------------------------------------------------------

class Model:
    """Hyperparameters read as loom's Config::from_gguf reads them, every tensor dequantized."""

    def __init__(self, path):
        r = gguf.GGUFReader(path)
        kv = {k: f.contents() for k, f in r.fields.items() if not k.startswith("tokenizer.")}
        self.arch = a = kv["general.architecture"]
        get = lambda key, default=None: kv.get(f"{a}.{key}", default)
        self.n_embd, self.n_layer = get("embedding_length"), get("block_count")
        self.n_head = get("attention.head_count")
        self.n_head_kv = get("attention.head_count_kv", self.n_head)
        self.head_dim = get("attention.key_length", self.n_embd // self.n_head)
        self.head_dim_v = get("attention.value_length", self.head_dim)
        self.eps = float(np.float32(get("attention.layer_norm_rms_epsilon", 1e-5)))
        self.rope_base = float(np.float32(get("rope.freq_base", 10000.0)))
        self.rope_dims = get("rope.dimension_count", self.head_dim)
        self.rope_scale = 1.0
        if get("rope.scaling.type", "none") != "none":
            assert get("rope.scaling.type") == "linear"
            self.rope_scale = float(get("rope.scaling.factor", 1.0))
        self.rope_base_local, self.rope_scale_local = self.rope_base, self.rope_scale
        self.attn_scale = 1.0 / math.sqrt(self.head_dim)
        self.neox = a != "llama"
        self.scale_q = a == "gemma3"
        self.gelu = a == "gemma3"
        self.embd_scale = math.sqrt(self.n_embd) if a == "gemma3" else 1.0
        self.window = 0
        self.sliding = [False] * self.n_layer
        if a == "gemma3":
            if self.n_layer == 62:
                self.attn_scale = 1.0 / math.sqrt(self.n_embd // self.n_head)
            self.window = get("attention.sliding_window", 0)
            self.rope_base_local, self.rope_scale_local = 10000.0, 1.0
            self.sliding = [self.window > 0 and (l + 1) % 6 != 0 for l in range(self.n_layer)]
        self.w, self.types = {}, {}
        for t in r.tensors:
            self.types[t.name] = t.tensor_type
            x = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
            self.w[t.name] = x.reshape([int(d) for d in reversed(t.shape)]) if x.ndim > 1 or len(t.shape) > 1 else x
        self.tied = "output.weight" not in self.w
        self.n_vocab = self.w["token_embd.weight"].shape[0]
        self.freq_factors = self.w.get("rope_freqs.weight")

    def tensors(self, dtype):
        return {k: torch.tensor(v, dtype=dtype) for k, v in self.w.items()}

    def rope_cs(self, n, base, freq_scale, dtype):
        half = self.rope_dims // 2
        i = np.arange(half, dtype=np.float64)
        theta = np.arange(n, dtype=np.float64)[:, None] * base ** (-2.0 * i / self.rope_dims)[None, :]
        if self.freq_factors is not None:
            theta = theta / self.freq_factors.astype(np.float64)[None, :]
        ang = freq_scale * theta
        return torch.tensor(np.cos(ang), dtype=dtype), torch.tensor(np.sin(ang), dtype=dtype)


def rms_norm(x, w, eps):
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * w


def rope(x, cos, sin, rope_dims, neox):
    """x: (n, heads, hd); cos, sin: (n, rope_dims/2)."""
    half = rope_dims // 2
    c, s = cos[:, None, :], sin[:, None, :]
    if neox:
        x0, x1 = x[..., :half], x[..., half:rope_dims]
        r = torch.cat([x0 * c - x1 * s, x0 * s + x1 * c], -1)
    else:
        x0, x1 = x[..., 0:rope_dims:2], x[..., 1:rope_dims:2]
        r = torch.stack([x0 * c - x1 * s, x0 * s + x1 * c], -1).reshape(*x.shape[:-1], rope_dims)
    return torch.cat([r, x[..., rope_dims:]], -1)


def gelu_tanh(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * x * (1.0 + 0.044715 * x * x)))


def f16(x):
    return x.half().to(x.dtype)


def act_quant(x, qtype):
    """llama.cpp's rounding of a matmul's activations to the weight's vec_dot type (Q8_0, Q8_1 or
    Q8_K; the values only), for the sanity check alone."""
    Q = gguf.GGMLQuantizationType
    if qtype in (Q.F32,):
        return x
    kq = qtype in (Q.Q2_K, Q.Q3_K, Q.Q4_K, Q.Q5_K, Q.Q6_K)
    bs = 256 if kq else 32
    xb = x.detach().numpy().astype(np.float32).reshape(-1, bs)
    out = np.zeros_like(xb)
    for i, b in enumerate(xb):
        amax = np.abs(b).max()
        if amax == 0:
            continue
        if kq:
            mx = b[np.argmax(np.abs(b))]
            iscale = np.float32(-127.0) / mx
            q = np.minimum(127, np.rint(iscale * b))
            out[i] = q * (np.float32(1.0) / iscale)
        else:
            d = np.float32(amax / np.float32(127))
            q = np.rint(b * (np.float32(1.0) / d))
            out[i] = q * np.float32(np.float16(d))
    return torch.tensor(out.reshape(x.shape), dtype=x.dtype)


def forward(m, W, tokens, lora=None, lora_scale=0.0, emul=False):
    """Logits (n, n_vocab) of one sequence at positions 0..n-1. lora: {tensor name: (A, B)}.
    emul (the sanity check only): round as llama.cpp's CPU kernels do (activations to 8 bits
    before quantized weights, q, k, v and probabilities to f16, GELU through f16)."""
    dt = W["token_embd.weight"].dtype
    n = len(tokens)
    H, Hkv, hd, hdv = m.n_head, m.n_head_kv, m.head_dim, m.head_dim_v

    def lin(name, x):
        y = (act_quant(x, m.types[name]) if emul else x) @ W[name].t()
        if lora and name in lora:
            A, B = lora[name]
            y = y + lora_scale * ((x @ A.t()) @ B.t())
        return y

    x = W["token_embd.weight"][torch.tensor(tokens)] * m.embd_scale
    pos = torch.arange(n)
    causal = pos[None, :] <= pos[:, None]
    for l in range(m.n_layer):
        p = f"blk.{l}."
        h = rms_norm(x, W[p + "attn_norm.weight"], m.eps)
        q, k, v = lin(p + "attn_q.weight", h), lin(p + "attn_k.weight", h), lin(p + "attn_v.weight", h)
        if p + "attn_q.bias" in W:
            q, k, v = q + W[p + "attn_q.bias"], k + W[p + "attn_k.bias"], v + W[p + "attn_v.bias"]
        q, k, v = q.reshape(n, H, hd), k.reshape(n, Hkv, hd), v.reshape(n, Hkv, hdv)
        if p + "attn_q_norm.weight" in W:
            q = rms_norm(q, W[p + "attn_q_norm.weight"], m.eps)
            k = rms_norm(k, W[p + "attn_k_norm.weight"], m.eps)
        sliding = m.sliding[l]
        base = m.rope_base_local if sliding else m.rope_base
        freq_scale = 1.0 / (m.rope_scale_local if sliding else m.rope_scale)
        cos, sin = m.rope_cs(n, base, freq_scale, dt)
        q, k = rope(q, cos, sin, m.rope_dims, m.neox), rope(k, cos, sin, m.rope_dims, m.neox)
        g = H // Hkv
        k, v = k.repeat_interleave(g, dim=1), v.repeat_interleave(g, dim=1)  # head h uses kv head h // g
        if m.scale_q:
            q, score_scale = q * m.attn_scale, 1.0
        else:
            score_scale = m.attn_scale
        if emul:
            q, k, v = f16(q), f16(k), f16(v)
        s = torch.einsum("ihd,jhd->hij", q, k) * score_scale
        mask = causal
        if sliding:
            mask = mask & (pos[None, :] > pos[:, None] - m.window)
        s = s.masked_fill(~mask[None], float("-inf"))
        prob = torch.softmax(s, -1)
        att = torch.einsum("hij,jhd->ihd", f16(prob) if emul else prob, v).reshape(n, H * hdv)
        o = lin(p + "attn_output.weight", att)
        if p + "post_attention_norm.weight" in W:
            o = rms_norm(o, W[p + "post_attention_norm.weight"], m.eps)
        x = x + o
        h = rms_norm(x, W[p + "ffn_norm.weight"], m.eps)
        gate, up = lin(p + "ffn_gate.weight", h), lin(p + "ffn_up.weight", h)
        act = (f16(gelu_tanh(f16(gate))) if emul else gelu_tanh(gate)) if m.gelu else torch.nn.functional.silu(gate)
        o = lin(p + "ffn_down.weight", act * up)
        if p + "post_ffw_norm.weight" in W:
            o = rms_norm(o, W[p + "post_ffw_norm.weight"], m.eps)
        x = x + o
    h = rms_norm(x, W["output_norm.weight"], m.eps)
    out = "token_embd.weight" if m.tied else "output.weight"
    return (act_quant(h, m.types[out]) if emul else h) @ W[out].t()


# ---- the adapter -------------------------------------------------------------------------------

def init_adapter(m, targets, rank, seed):
    """{base tensor name: (A (r x in), B (out x r))} as float32 numpy, both random and nonzero."""
    rng = np.random.default_rng(seed)
    ad = {}
    for l in range(m.n_layer):
        for t in targets:
            name = f"blk.{l}.{TARGETS[t]}.weight"
            out_dim, in_dim = m.w[name].shape
            A = (rng.standard_normal((rank, in_dim)) * (0.5 / math.sqrt(in_dim))).astype(np.float32)
            B = (rng.standard_normal((out_dim, rank)) * 0.1).astype(np.float32)
            ad[name] = (A, B)
    return ad


def write_adapter(path, arch, alpha, ad):
    w = gguf.GGUFWriter(path, arch)
    w.add_type(gguf.GGUFType.ADAPTER)
    w.add_string(gguf.Keys.Adapter.TYPE, "lora")
    w.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(alpha))
    for name, (A, B) in ad.items():
        w.add_tensor(name + ".lora_a", np.ascontiguousarray(A))  # numpy (r, in): ne [in, r]
        w.add_tensor(name + ".lora_b", np.ascontiguousarray(B))  # numpy (out, r): ne [r, out]
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def torch_adapter(ad, dtype):
    return {k: (torch.tensor(A, dtype=dtype, requires_grad=True), torch.tensor(B, dtype=dtype, requires_grad=True))
            for k, (A, B) in ad.items()}


def grads_of(lora):
    g = {}
    for name, (A, B) in lora.items():
        g[name + ".lora_a"] = A.grad.detach().numpy().copy()
        g[name + ".lora_b"] = B.grad.detach().numpy().copy()
    return g


def rel_diff(g32, g64):
    """The largest |g32 - g64| over all the tensors / the largest |g64| over all the tensors, and
    per tensor [largest |g64|, largest |g32 - g64|] (a tensor whose gradient all but vanishes, as
    layer 1's attn_q in llama-k, whose attention is saturated, has only rounding noise in float32)."""
    per = {k: [float(np.abs(g64[k]).max()), float(np.abs(g32[k].astype(np.float64) - g64[k]).max())] for k in g64}
    return max(d for _, d in per.values()) / max(m for m, _ in per.values()), per


def flat(a):
    return [float(x) for x in np.asarray(a, dtype=np.float32).reshape(-1)]


# ---- the losses --------------------------------------------------------------------------------

def sft_loss(m, W, seqs, lora, scale):
    total, n_targets = 0.0, 0
    for s in seqs:
        toks, wts = s["tokens"], s["weights"]
        lp = torch.log_softmax(forward(m, W, toks, lora, scale), -1)
        for t in range(1, len(toks)):
            if wts[t]:
                total = total - lp[t - 1, toks[t]]
                n_targets += 1
    return total / n_targets, n_targets


def completion_logp(m, W, prompt, completion, lora, scale):
    toks = prompt + completion
    lp = torch.log_softmax(forward(m, W, toks, lora, scale), -1)
    return sum(lp[t - 1, toks[t]] for t in range(len(prompt), len(toks)))


def dpo_loss(m, W, pairs, lora, scale, beta):
    losses, rc, rr = [], [], []
    for p in pairs:
        pol_c = completion_logp(m, W, p["prompt"], p["chosen"], lora, scale)
        pol_r = completion_logp(m, W, p["prompt"], p["rejected"], lora, scale)
        with torch.no_grad():
            ref_c = completion_logp(m, W, p["prompt"], p["chosen"], None, 0.0)
            ref_r = completion_logp(m, W, p["prompt"], p["rejected"], None, 0.0)
        losses.append(-torch.nn.functional.logsigmoid(beta * ((pol_c - ref_c) - (pol_r - ref_r))))
        rc.append(float(beta * (pol_c - ref_c)))
        rr.append(float(beta * (pol_r - ref_r)))
    return sum(losses) / len(losses), rc, rr


# ---- main --------------------------------------------------------------------------------------

def make_batch(n_vocab):
    rng = np.random.default_rng(2024)
    seqs = []
    for n, np_ in zip(SEQ_LENS, PROMPT_LENS):
        toks = [int(t) for t in rng.integers(0, n_vocab, n)]
        seqs.append({"tokens": toks, "weights": [0] * np_ + [1] * (n - np_)})
    return seqs


def make_pairs(n_vocab):
    rng = np.random.default_rng(77)
    ids = lambda n: [int(t) for t in rng.integers(0, n_vocab, n)]
    return [{"prompt": ids(8), "chosen": ids(7), "rejected": ids(5)} for _ in range(2)]


def sanity(name, m):
    with open(os.path.join(ARCH, name + "-logits.jsonl.zst"), "rb") as f:
        lines = zstandard.ZstdDecompressor().decompress(f.read()).decode().splitlines()
    rec = [json.loads(x) for x in lines if json.loads(x)["mode"] == "batch"][0]
    W = m.tensors(torch.float32)
    with torch.no_grad():
        plain = forward(m, W, rec["tokens"]).numpy()
        emul = forward(m, W, rec["tokens"], emul=True).numpy()
    ref = np.array(rec["logits"], dtype=np.float32)
    return {"plain_max_abs": float(np.abs(plain - ref).max()), "emulated_max_abs": float(np.abs(emul - ref).max()),
            "emulated_median_of_position_max_abs": float(np.median(np.abs(emul - ref).max(1))),
            "max_abs_logit": float(np.abs(ref).max()), "argmax_agree": float((plain.argmax(1) == ref.argmax(1)).mean())}


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, separators=(",", ":"))


def run_case(name, m, case, seed, seqs, manifest):
    targets, rank, alpha = CASES[case]
    scale = alpha / rank
    ad = init_adapter(m, targets, rank, seed)
    stem = f"{name}-{case}"
    write_adapter(os.path.join(OUT, stem + ".lora.gguf"), m.arch, alpha, ad)

    res = {}
    for dt in (torch.float32, torch.float64):
        W = m.tensors(dt)
        lora = torch_adapter(ad, dt)
        loss, n_targets = sft_loss(m, W, seqs, lora, scale)
        loss.backward()
        with torch.no_grad():
            last = forward(m, W, seqs[0]["tokens"], lora, scale)[-1].numpy()
        res[dt] = (float(loss), n_targets, grads_of(lora), last)
    loss32, n_targets, g32, last32 = res[torch.float32]
    loss64, _, g64, _ = res[torch.float64]
    rd, per = rel_diff(g32, g64)
    obj = {"model": f"arch/{name}.gguf", "adapter": stem + ".lora.gguf", "targets": targets, "rank": rank,
           "alpha": alpha, "scale": scale, "sequences": seqs, "loss": loss32, "n_targets": n_targets,
           "loss_f64": loss64, "grad_f32_vs_f64_max_rel": rd, "grad_f32_vs_f64_per_tensor": per,
           "logits_last": flat(last32),
           "grads": {k: flat(v) for k, v in g32.items()}}
    write_json(os.path.join(OUT, stem + ".json"), obj)
    print(f"  {stem}: loss {loss32:.6f} (f64 {loss64:.6f}), {n_targets} targets, grads f32 vs f64 {rd:.2e}")
    manifest["cases"].append({"name": stem, "grad_f32_vs_f64_max_rel": rd})
    return ad


def run_dpo(name, m, ad, manifest):
    targets, rank, alpha = CASES["qv"]
    scale = alpha / rank
    pairs = make_pairs(m.n_vocab)
    res = {}
    for dt in (torch.float32, torch.float64):
        W = m.tensors(dt)
        lora = torch_adapter(ad, dt)
        loss, rc, rr = dpo_loss(m, W, pairs, lora, scale, DPO_BETA)
        loss.backward()
        res[dt] = (float(loss), rc, rr, grads_of(lora))
    loss32, rc, rr, g32 = res[torch.float32]
    loss64, _, _, g64 = res[torch.float64]
    rd, per = rel_diff(g32, g64)
    obj = {"model": f"arch/{name}.gguf", "adapter": f"{name}-qv.lora.gguf", "targets": targets, "rank": rank,
           "alpha": alpha, "scale": scale, "beta": DPO_BETA, "pairs": pairs, "loss": loss32, "loss_f64": loss64,
           "rewards_chosen": rc, "rewards_rejected": rr, "grad_f32_vs_f64_max_rel": rd,
           "grad_f32_vs_f64_per_tensor": per,
           "grads": {k: flat(v) for k, v in g32.items()}}
    write_json(os.path.join(OUT, f"{name}-qv-dpo.json"), obj)
    print(f"  {name}-qv-dpo: loss {loss32:.6f} (f64 {loss64:.6f}), rewards chosen {rc}, rejected {rr}, "
          f"grads f32 vs f64 {rd:.2e}")
    manifest["cases"].append({"name": f"{name}-qv-dpo", "grad_f32_vs_f64_max_rel": rd})


def main():
    os.makedirs(OUT, exist_ok=True)
    manifest = {"torch": torch.__version__, "gguf": "0.19.0", "seq_lens": SEQ_LENS, "prompt_lens": PROMPT_LENS,
                "cases_def": {k: {"targets": v[0], "rank": v[1], "alpha": v[2]} for k, v in CASES.items()},
                "dpo_beta": DPO_BETA, "sanity_vs_llama_arch_batch": {}, "cases": []}
    for mi, name in enumerate(MODELS):
        m = Model(os.path.join(ARCH, name + ".gguf"))
        sc = sanity(name, m)
        manifest["sanity_vs_llama_arch_batch"][name] = sc
        print(f"{name}: logits without LoRA vs llama.cpp (arch batch): max abs diff fp32 {sc['plain_max_abs']:.3e}, "
              f"emulating llama.cpp's roundings {sc['emulated_max_abs']:.3e} (median over positions "
              f"{sc['emulated_median_of_position_max_abs']:.1e}); max |logit| {sc['max_abs_logit']:.1f}, "
              f"argmax agree {sc['argmax_agree']:.2f}")
        seqs = make_batch(m.n_vocab)
        cases = ["qv", "all"] if name in ("llama-k", "gemma3") else ["qv"]
        for ci, case in enumerate(cases):
            ad = run_case(name, m, case, 1000 + 10 * mi + ci, seqs, manifest)
            if name == "llama-k" and case == "qv":
                run_dpo(name, m, ad, manifest)
    with open(os.path.join(OUT, "MANIFEST.json"), "w") as f:
        json.dump(manifest, f, indent=1)


if __name__ == "__main__":
    main()
