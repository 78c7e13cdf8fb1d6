#!/usr/bin/env python3
"""On-demand check that the adapters loom finetune writes load in llama.cpp and give the logits
loom gives with them: an adapter (given, or trained here for a few steps by loom finetune on
SmolLM2 with every linear layer adapted) applied by llama-cpp-python (lora_path, lora_scale) and by
loom generate --lora --score, on paragraphs of golden/eval_perplexity/apache-2.0.txt. From
llama.cpp's logits the script computes what --score reports (the sum over the text's tokens after
the first of log softmax, in double) and prints the largest difference per token, with and
without the adapter (the adapter must move the scores by far more than the difference).

Run with LLAMA_CPP_LIB_PATH naming the portable AVX2 shared build of llama.cpp
(~/.cache/loom/llama.cpp-build-avx2-shared/bin; set by default when it exists) — the build loom's
decoder reproduces bit for bit — and the differences should be 0 (--tol 1e-9). Exits 1 when the
adapter does not load or a difference is over --tol.

  tests/reference/.venv/bin/python tests/reference/check_lora_in_llama_cpp.py [--adapter A.gguf] \\
      [--bin build/bin] [--model ~/.cache/loom/models/smollm2.gguf] [--scale 0.7]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

PORTABLE = os.path.expanduser("~/.cache/loom/llama.cpp-build-avx2-shared/bin")
if "LLAMA_CPP_LIB_PATH" not in os.environ and os.path.isdir(PORTABLE):
    os.environ["LLAMA_CPP_LIB_PATH"] = PORTABLE

import llama_cpp  # noqa: E402
from check_quantized_in_llama_cpp import llama_scores, paragraphs  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def loom_scores(loom_bin, model, texts, lora, scale):
    recs = "".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(texts))
    cmd = [os.path.join(loom_bin, "loom-generate"), "-q", "-t", "2", "-m", model, "--score", "--ctx", "512"]
    if lora:
        cmd += ["--lora", lora, "--lora-scale", str(scale)]
    out = subprocess.run(cmd, input=recs, capture_output=True, text=True, check=True).stdout
    return [json.loads(line)["score"]["sum"] for line in out.splitlines()]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "bin"))
    ap.add_argument("--model", default=os.path.expanduser("~/.cache/loom/models/smollm2.gguf"))
    ap.add_argument("--adapter")
    ap.add_argument("--scale", type=float, default=0.7)
    ap.add_argument("--paragraphs", type=int, default=8)
    ap.add_argument("--tol", type=float, default=1e-9)
    a = ap.parse_args()
    texts = paragraphs(a.paragraphs)
    bad = 0
    with tempfile.TemporaryDirectory() as tmp:
        adapter = a.adapter
        if not adapter:  # a few steps on the paragraphs themselves: an adapter that moves the scores
            data = os.path.join(tmp, "train.jsonl")
            with open(data, "w") as f:
                for t in texts:
                    f.write(json.dumps({"prompt": t[:40], "completion": t[40:]}) + "\n")
            adapter = os.path.join(tmp, "a.lora.gguf")
            subprocess.run([os.path.join(a.bin, "loom-finetune"), "-q", "-t", "2", "-m", a.model, "--data", data, "-o", adapter,
                            "--lora-targets", "all", "--rank", "4", "--lr", "3e-3", "--epochs", "3", "--batch", "2", "--no-pack"],
                           check=True, stdout=subprocess.DEVNULL)
        base = loom_scores(a.bin, a.model, texts, None, 1.0)
        for scale in (1.0, a.scale):
            try:
                ref = [(r["sum"], r["tokens"]) for r in llama_scores(a.model, texts, lora_path=adapter, lora_scale=scale)]
            except Exception as e:  # llama.cpp refused the adapter
                print(f"llama.cpp could not load loom's adapter: {e}")
                sys.exit(1)
            got = loom_scores(a.bin, a.model, texts, adapter, scale)
            worst = max(abs(r - g) / n for (r, n), g in zip(ref, got))
            moved = max(abs(r - b) / n for (r, n), b in zip(ref, base))
            ok = worst <= a.tol and moved > 100 * worst
            bad += not ok
            print(f"scale {scale}: {len(texts)} paragraphs, {sum(n for _, n in ref)} tokens; largest difference of the mean "
                  f"log-probability per token, llama.cpp vs loom: {worst:.2e} nats; the adapter moves it by up to {moved:.3f} "
                  f"({'ok' if ok else 'FAILED'})")
    print(f"llama-cpp-python {llama_cpp.__version__} ({os.environ.get('LLAMA_CPP_LIB_PATH', 'its own build')})")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
