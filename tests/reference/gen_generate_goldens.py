#!/usr/bin/env python3
"""Golden forward passes and greedy continuations of the default models, computed by llama.cpp
(through llama-cpp-python, pinned in tests/reference/requirements.txt), for the decoder engine's
parity tests (issue 4).

    tests/reference/.venv/bin/python tests/reference/gen_generate_goldens.py [--quick]

Models: ~/.cache/loom/models/{smollm2,gemma3}.gguf (LOOM_MODELS overrides the folder). For each
model it writes, in tests/reference/golden/generate/:

  The text is natural English prose: the Debian license texts (/usr/share/common-licenses/*,
  regular files in name order, joined by blank lines; the manifest records their sha256),
  tokenized by llama.cpp. Goldens hold token ids, so tests need not have the text.

  <model>-logits.jsonl.zst   20 windows of 256 tokens, evenly spaced through the text (BOS first
      where the model adds one). Full logit vectors at every position would
      be 1 GB, so each record keeps, per position:
        top      the 16 highest logits as [[id, logit], ...] (ties by lower id)
        lse      log-sum-exp of the logits (float64)
        proj     8 projections of the logit vector on fixed random unit vectors (numpy
                 default_rng(1234) normal over the vocabulary, normalized; float64): any change
                 anywhere in the vector moves them
      and, for the first text only, the full logit vectors of positions 0, 127 and 255 (float32,
      base64 of little-endian bytes).
  <model>-greedy.jsonl        the same 20 prompts' first 64 tokens, then 128 greedy tokens
                              (llama.cpp argmax, no penalties) as ids.
  <model>-loglik.json         log-likelihood of the text's first 20480 tokens: chunks of 1024 tokens, each token after the first of
                              its chunk scored by log softmax; sum, count, per-token mean,
                              perplexity.
  MANIFEST.json               versions, model sha256, settings.

llama.cpp runs with n_threads=2, n_batch=n_ubatch=512, logits for every position, no flash
attention, f16 KV cache (its defaults); these match what llama-cpp-python does by default.
"""
import argparse
import base64
import hashlib
import io
import json
import math
import os

import llama_cpp
import numpy as np
import zstandard

HERE = os.path.dirname(os.path.abspath(__file__))
LICENSES = "/usr/share/common-licenses"
OUT = os.path.join(HERE, "golden", "generate")
MODELS = os.environ.get("LOOM_MODELS") or os.path.expanduser("~/.cache/loom/models")
NAMES = ("smollm2", "gemma3")
N_TEXTS, N_POS, N_PROMPT, N_GREEDY, TOP, N_PROJ = 20, 256, 64, 128, 16, 8
CHUNK, LOGLIK_TOKENS = 1024, 20480


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def source_files():
    return [os.path.join(LICENSES, n) for n in sorted(os.listdir(LICENSES)) if os.path.isfile(os.path.join(LICENSES, n)) and not os.path.islink(os.path.join(LICENSES, n))]


def source_text():
    return "\n\n".join(open(p, encoding="utf-8", errors="replace").read() for p in source_files())


def load(path, n_ctx):
    return llama_cpp.Llama(model_path=path, n_ctx=n_ctx, n_batch=512, n_ubatch=512, n_threads=2,
                           n_threads_batch=2, logits_all=True, verbose=False, seed=0)


def forward(llm, tokens):
    """Logits (n_tokens x n_vocab, float32) of one sequence from an empty cache."""
    llm.reset()
    llm._ctx.kv_cache_clear() if hasattr(llm._ctx, "kv_cache_clear") else None
    llm.eval(tokens)
    return np.array(llm.scores[: len(tokens)], dtype=np.float32)


def windows(ids, add_bos, bos):
    """N_TEXTS windows of N_POS tokens evenly spaced through the text's ids."""
    need = N_POS - (1 if add_bos else 0)
    step = (len(ids) - need) // (N_TEXTS - 1)
    assert step > 0, "text too short"
    return [([bos] if add_bos else []) + ids[k * step:k * step + need] for k in range(N_TEXTS)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="2 texts, short log-likelihood (a smoke run)")
    args = ap.parse_args()
    n_texts = 2 if args.quick else N_TEXTS
    os.makedirs(OUT, exist_ok=True)
    text = source_text()
    manifest = {"llama_cpp_python": llama_cpp.__version__,
                "text": {os.path.basename(p): sha256(p) for p in source_files()}, "settings": {
        "n_threads": 2, "n_batch": 512, "top": TOP, "projections": N_PROJ, "positions": N_POS,
        "prompt_tokens": N_PROMPT, "greedy_tokens": N_GREEDY, "loglik_chunk": CHUNK}, "models": {}}
    for name in NAMES:
        path = os.path.join(MODELS, name + ".gguf")
        if not os.path.exists(path):
            print("skip", name, "(no", path + ")")
            continue
        llm = load(path, 2048)
        add_bos = llm._model.add_bos_token() if hasattr(llm._model, "add_bos_token") else True
        n_vocab = llm.n_vocab()
        rng = np.random.default_rng(1234)
        proj = rng.standard_normal((N_PROJ, n_vocab))
        proj /= np.linalg.norm(proj, axis=1, keepdims=True)
        all_ids = llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)
        seqs = windows(all_ids, add_bos, llm.token_bos())[:n_texts]
        buf = io.StringIO()
        for k, seq in enumerate(seqs):
            logits = forward(llm, seq)
            l64 = logits.astype(np.float64)
            m = l64.max(axis=1, keepdims=True)
            lse = (m[:, 0] + np.log(np.exp(l64 - m).sum(axis=1)))
            order = np.argsort(-logits, axis=1, kind="stable")[:, :TOP]
            rec = {"text": k, "tokens": seq,
                   "top": [[[int(i), float(logits[p, i])] for i in order[p]] for p in range(len(seq))],
                   "lse": [float(x) for x in lse],
                   "proj": [[float(x) for x in row] for row in (l64 @ proj.T)]}
            if k == 0:
                rec["full"] = {str(p): base64.b64encode(logits[p].astype("<f4").tobytes()).decode() for p in (0, 127, 255)}
            buf.write(json.dumps(rec) + "\n")
        with open(os.path.join(OUT, name + "-logits.jsonl.zst"), "wb") as f:
            f.write(zstandard.ZstdCompressor(level=19).compress(buf.getvalue().encode()))
        # greedy continuations
        with open(os.path.join(OUT, name + "-greedy.jsonl"), "w") as f:
            for k, seq in enumerate(seqs):
                prompt = seq[:N_PROMPT]
                llm.reset()
                out = []
                for t in llm.generate(prompt, top_k=1, top_p=1.0, min_p=0.0, temp=0.0, repeat_penalty=1.0, reset=True):
                    out.append(int(t))
                    if len(out) == N_GREEDY:
                        break
                f.write(json.dumps({"text": k, "prompt": prompt, "greedy": out}) + "\n")
        # log-likelihood
        total = LOGLIK_TOKENS // (8 if args.quick else 1)
        ids = list(all_ids)
        ids = ids[:total]
        llm_ll = load(path, CHUNK)
        s, n = 0.0, 0
        for c in range(0, len(ids), CHUNK):
            chunk = ids[c:c + CHUNK]
            if len(chunk) < 2:
                break
            lg = forward(llm_ll, chunk).astype(np.float64)
            mx = lg.max(axis=1, keepdims=True)
            lsm = lg - (mx + np.log(np.exp(lg - mx).sum(axis=1, keepdims=True)))
            for p in range(1, len(chunk)):
                s += lsm[p - 1, chunk[p]]
                n += 1
        with open(os.path.join(OUT, name + "-loglik.json"), "w") as f:
            json.dump({"tokens": ids, "chunk": CHUNK, "sum": s, "count": n, "mean": s / n, "perplexity": math.exp(-s / n)}, f)
        manifest["models"][name] = {"file": os.path.basename(path), "sha256": sha256(path), "n_vocab": n_vocab,
                                    "add_bos": bool(add_bos), "texts": len(seqs)}
        print(name, "done: loglik mean", s / n)
    with open(os.path.join(OUT, "MANIFEST.json"), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
