#!/usr/bin/env python3
"""On-demand check that the files loom quantize writes load in llama.cpp and give the logits loom
gives: a model converted to F32 by loom, then quantized by loom to each type (optionally with an
importance matrix loom collected), and each file run by both, two ways:

  1. llama.cpp's llama-perplexity, the portable AVX2 build that loom's decoder reproduces bit for
     bit (tests/reference/build-llama-perplexity; -c 128 -b 128 --chunks 4, flash attention off)
     against loom eval perplexity with the same windows: the printed PPL (4 decimals) must be
     equal. This is the strict check of "the same logits".
  2. llama-cpp-python (its own build, compiled by pip for this CPU: AVX-512 here) through
     llama_cpp.Llama (flash attention off, all logits) against loom generate --score on paragraphs
     of golden/eval_perplexity/apache-2.0.txt: from llama.cpp's logits the script computes what
     --score reports (the sum over the paragraph's tokens after the first of log softmax, in
     double). That build rounds attention inputs to f16 in another order than the portable one,
     which moves small models' log-likelihoods by up to a few percent (llama.cpp against itself);
     the bound --tol (default 0.05 nats per token) is that spread, and the figures are printed.
     With LLAMA_CPP_LIB_PATH naming a portable AVX2 build of the same llama.cpp as shared
     libraries (cmake -DGGML_NATIVE=OFF -DBUILD_SHARED_LIBS=ON, target llama), llama-cpp-python
     runs that build instead, and the differences should vanish (give --tol 1e-6).

Prints one line per type and check; exits 1 when a file fails to load or a check fails.

  tests/reference/.venv/bin/python tests/reference/check_quantized_in_llama_cpp.py \
      [--bin build/bin] [--model ~/.cache/loom/models/smollm2.gguf] [--types "Q8_0 Q4_K_M ..."] [--imatrix]
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

import numpy as np
import llama_cpp

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
TEXT = os.path.join(HERE, "golden", "eval_perplexity", "apache-2.0.txt")
TYPES = "F16 BF16 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q4_K_S Q4_K_M Q5_K_S Q5_K_M Q6_K"


def paragraphs(n):
    with open(TEXT, encoding="utf-8") as f:
        paras = [" ".join(p.split()) for p in f.read().split("\n\n")]
    return [p for p in paras if len(p) > 80][:n]


def loom_scores(loom_bin, model, texts):
    recs = "".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(texts))
    out = subprocess.run([os.path.join(loom_bin, "loom-generate"), "-q", "-t", "2", "-m", model, "--score", "--ctx", "512"],
                         input=recs, capture_output=True, text=True, check=True).stdout
    return [json.loads(line)["score"] for line in out.splitlines()]


def llama_scores(model, texts, **kw):
    """What loom generate --score reports, from llama.cpp's logits (kw: more llama_cpp.Llama
    arguments, such as lora_path)."""
    llm = llama_cpp.Llama(model_path=model, n_ctx=512, n_batch=512, logits_all=True, n_threads=2,
                          flash_attn=False, verbose=False, **kw)
    add_bos = llm._model.add_bos_token() if hasattr(llm._model, "add_bos_token") else True
    res = []
    for t in texts:
        toks = llm.tokenize(t.encode(), add_bos=add_bos, special=False)
        llm.reset()
        llm.eval(toks)
        logits = np.array(llm.scores[:len(toks)], dtype=np.float64)
        m = logits.max(axis=1, keepdims=True)
        logp = logits - m - np.log(np.exp(logits - m).sum(axis=1, keepdims=True))
        s = float(sum(logp[i, toks[i + 1]] for i in range(len(toks) - 1)))
        res.append({"sum": s, "tokens": len(toks) - 1})
    del llm
    return res


def perplexities(llama_ppl, loom_bin, model):
    """(llama-perplexity's printed PPL, loom's to 4 decimals) on the same windows."""
    out = subprocess.run([llama_ppl, "-m", model, "-f", TEXT, "-c", "128", "-b", "128", "--chunks", "4", "-t", "2",
                          "-fa", "off"], capture_output=True, text=True, check=True)
    m = re.search(r"Final estimate: PPL = ([0-9.]+)", out.stdout + out.stderr)
    got = subprocess.run([os.path.join(loom_bin, "loom-eval"), "perplexity", "-q", "-t", "2", "-m", model, "-c", "128",
                          "-b", "128", "--chunks", "4", TEXT], capture_output=True, text=True, check=True).stdout
    return m.group(1), f"{json.loads(got)['metrics']['perplexity']:.4f}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "bin"))
    ap.add_argument("--model", default=os.path.expanduser("~/.cache/loom/models/smollm2.gguf"))
    ap.add_argument("--types", default=TYPES)
    ap.add_argument("--imatrix", action="store_true")
    ap.add_argument("--paragraphs", type=int, default=12)
    ap.add_argument("--tol", type=float, default=0.05)
    ap.add_argument("--llama-perplexity",
                    default=os.path.expanduser("~/.cache/loom/llama.cpp-build-avx2/bin/llama-perplexity"))
    a = ap.parse_args()
    quant = os.path.join(a.bin, "loom-quantize")
    texts = paragraphs(a.paragraphs)
    bad = 0
    with tempfile.TemporaryDirectory() as tmp:
        f32 = os.path.join(tmp, "f32.gguf")
        subprocess.run([quant, "-q", a.model, f32, "--type", "F32", "--pure"], check=True, stdout=subprocess.DEVNULL)
        extra = []
        if a.imatrix:
            im = os.path.join(tmp, "imatrix.gguf")
            subprocess.run([quant, "imatrix", "-q", "-m", f32, "--data", "/usr/share/common-licenses/GPL-3", "-c", "256",
                            "-o", im], check=True, stdout=subprocess.DEVNULL)
            extra = ["--imatrix", im]
        for ty in a.types.split():
            q = os.path.join(tmp, f"{ty}.gguf")
            subprocess.run([quant, "-q", f32, q, "--type", ty] + extra, check=True, stdout=subprocess.DEVNULL)
            tag = ty + (" +imatrix" if a.imatrix else "")
            if os.path.exists(a.llama_perplexity):
                want, have = perplexities(a.llama_perplexity, a.bin, q)
                bad += want != have
                print(f"{tag}: llama-perplexity (AVX2) PPL {want}, loom {have}: {'equal' if want == have else 'DIFFERENT'}")
            try:
                ref = llama_scores(q, texts)
            except Exception as e:  # a file llama.cpp cannot load
                print(f"{ty}: llama.cpp could not load loom's file: {e}")
                bad += 1
                continue
            got = loom_scores(a.bin, q, texts)
            worst, toks = 0.0, 0
            for r, g in zip(ref, got):
                if r["tokens"] != g["tokens"]:
                    print(f"{ty}: token counts differ ({r['tokens']} vs loom {g['tokens']})")
                    bad += 1
                worst = max(worst, abs(r["sum"] - g["sum"]) / max(1, r["tokens"]))
                toks += r["tokens"]
            ok = worst <= a.tol
            bad += not ok
            print(f"{tag}: llama-cpp-python loaded it; {len(texts)} paragraphs, {toks} tokens; "
                  f"largest difference of the mean log-probability per token {worst:.2e} nats "
                  f"({'ok' if ok else 'OVER ' + str(a.tol)})")
    print(f"llama-cpp-python {llama_cpp.__version__}: {llama_cpp.llama_print_system_info().decode().strip()}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
