#!/usr/bin/env python3
"""Goldens for loom's perplexity (lib/eval/perplexity.h, `loom eval perplexity`) from llama.cpp's own
`llama-perplexity` (tools/perplexity of the llama.cpp vendored in llama_cpp_python 0.3.36, built by
tests/reference/build-llama-perplexity).

    tests/reference/gen_eval_perplexity_goldens.py [--only NAME...]

Each case runs llama-perplexity on apache-2.0.txt (a copy of Debian's
/usr/share/common-licenses/Apache-2.0, kept next to the goldens) with 2 threads, flash attention
off (loom's decoder computes attention as llama.cpp does without it) and -b equal to -c (one
sequence per batch), and writes tests/reference/golden/eval_perplexity/<name>.json. (-f drops the
file's final newline before tokenizing; a test that feeds loom the file must drop it too.)

  command        the exact command (the model and text as $LOOM_MODELS/... and the golden folder)
  n_ctx, n_batch the window and batch llama-perplexity reports using (stride mode: its context,
                 c + stride/2 rounded up to 256, not -c)
  stride, chunks --ppl-stride (0: none) and the windows evaluated
  tokens         the text's token count (from a run with a context too large for the text, whose
                 error message gives it; that message is in too_short.json)
  ppl            the final perplexity: "Final estimate: PPL = %.4lf" (chunks mode); stride mode
                 prints no final line, its last running value is the final one
  uncertainty    the "+/- %.5lf" of the final estimate (chunks mode only)
  running        the perplexity after each window (%.4lf)
  running_nll    chunks mode (--ppl-output-type 1): the mean -ln p after each window (%lf) ...
  running_stderr ... and its standard error (%lf)
  quick          whether tests/unit/test_eval_perplexity.cpp runs the case by default (the others
                 with LOOM_PERPLEXITY_ALL=1)

The models are $LOOM_MODELS/{smollm2,gemma3}.gguf (default ~/.cache/loom/models); their sha256 go
into MANIFEST.json. Each case takes seconds; all of them about two minutes on two cores.
"""
import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "golden", "eval_perplexity")
TEXT = "apache-2.0.txt"
TEXT_SOURCE = "/usr/share/common-licenses/Apache-2.0"
MODELS = os.environ.get("LOOM_MODELS") or os.path.expanduser("~/.cache/loom/models")
THREADS = 2

# name, model, -c, --ppl-stride, --chunks (None: all), quick
CASES = [
    ("smollm2-c128-chunks4", "smollm2", 128, 0, 4, True),
    ("smollm2-c256-chunks2", "smollm2", 256, 0, 2, True),
    ("smollm2-c192-stride128-chunks2", "smollm2", 192, 128, 2, True),
    ("smollm2-c128", "smollm2", 128, 0, None, False),
    ("smollm2-c224-stride64", "smollm2", 224, 64, None, False),
    ("gemma3-c128-chunks2", "gemma3", 128, 0, 2, True),
    ("gemma3-c256-chunks1", "gemma3", 256, 0, 1, True),
    ("gemma3-c192-stride128-chunks1", "gemma3", 192, 128, 1, True),
    ("gemma3-c256", "gemma3", 256, 0, None, False),
]
# a context too large for the text: llama-perplexity's error message gives the token count
TOO_SHORT_CTX = 2048


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def run(binary, model, args):
    cmd = [binary, "-m", os.path.join(MODELS, model + ".gguf"), "-f", os.path.join(OUT, TEXT),
           "-t", str(THREADS), "-fa", "off"] + args
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if p.returncode != 0:
        sys.exit(f"gen_eval_perplexity_goldens: {' '.join(cmd)} failed:\n{p.stdout[-4000:]}")
    shown = ["llama-perplexity", "-m", f"$LOOM_MODELS/{model}.gguf", "-f",
             f"tests/reference/golden/eval_perplexity/{TEXT}"] + cmd[5:]
    return p.stdout, shown


def token_count(binary, model):
    out, shown = run(binary, model, ["-c", str(TOO_SHORT_CTX), "-b", str(TOO_SHORT_CTX)])
    m = re.search(r"you need at least (\d+) tokens to evaluate perplexity with a context of (\d+)\n"
                  r"(?:.*\n)*?.*the data file you provided tokenizes to only (\d+) tokens", out)
    if not m:
        sys.exit(f"gen_eval_perplexity_goldens: no token count in the output of {' '.join(shown)}:\n{out[-3000:]}")
    lines = [re.sub(r"^[0-9.]+ [A-Z] ", "", l) for l in out.splitlines() if "you need at least" in l or "tokenizes to only" in l]
    return int(m.group(3)), {"command": shown, "n_ctx": int(m.group(2)), "needed": int(m.group(1)),
                             "tokens": int(m.group(3)), "messages": lines}


def case(binary, name, model, c, stride, chunks, quick, tokens):
    args = ["-c", str(c), "-b", str(c)]
    if chunks is not None:
        args += ["--chunks", str(chunks)]
    if stride:
        args += ["--ppl-stride", str(stride)]
    else:
        args += ["--ppl-output-type", "1"]
    out, shown = run(binary, model, args)
    head = re.search(r"(?:calculating perplexity|computing) over (\d+) chunks, n_ctx=(\d+), batch_size=(\d+), n_seq=(\d+)", out)
    if not head:
        sys.exit(f"gen_eval_perplexity_goldens: {name}: no 'over N chunks' line:\n{out[-3000:]}")
    g = {"name": name, "model": model, "command": shown, "threads": THREADS, "c": c,
         "n_ctx": int(head.group(2)), "n_batch": int(head.group(3)), "stride": stride,
         "chunks": int(head.group(1)), "tokens": tokens}
    if stride:
        running = [float(v) for _, v in re.findall(r"\[(\d+)\]([0-9.]+|nan|inf),", out)]
        g["ppl"] = running[-1] if running else None
        g["running"] = running
    else:
        rows = re.findall(r"^\s*(\d+)\s+([0-9.]+)\s+([-0-9.e]+)\s+([-0-9.e]+)\s*$", out, re.M)
        final = re.search(r"Final estimate: PPL = ([0-9.]+) \+/- ([0-9.]+)", out)
        if not final:
            sys.exit(f"gen_eval_perplexity_goldens: {name}: no final estimate:\n{out[-3000:]}")
        g["ppl"] = float(final.group(1))
        g["uncertainty"] = float(final.group(2))
        g["running"] = [float(r[1]) for r in rows]
        g["running_nll"] = [float(r[2]) for r in rows]
        g["running_stderr"] = [float(r[3]) for r in rows]
    if len(g["running"]) != g["chunks"]:
        sys.exit(f"gen_eval_perplexity_goldens: {name}: {len(g['running'])} running values for {g['chunks']} chunks")
    g["quick"] = quick
    return g


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", nargs="*", help="regenerate only these cases")
    a = ap.parse_args()
    binary = subprocess.run([os.path.join(HERE, "build-llama-perplexity")], check=True,
                            stdout=subprocess.PIPE, text=True).stdout.strip()
    os.makedirs(OUT, exist_ok=True)
    text = os.path.join(OUT, TEXT)
    if not os.path.exists(text):
        shutil.copyfile(TEXT_SOURCE, text)
    manifest = {"llama_cpp_python": "0.3.36", "tool": "llama-perplexity (tools/perplexity/perplexity.cpp)",
                "build": "tests/reference/build-llama-perplexity: GGML_NATIVE=OFF (AVX, AVX2, FMA, F16C, BMI2; no AVX-512)",
                "text": {"file": TEXT, "source": TEXT_SOURCE, "bytes": os.path.getsize(text), "sha256": sha256(text)},
                "models": {}, "too_short": {}}
    for model in sorted({c[1] for c in CASES}):
        path = os.path.join(MODELS, model + ".gguf")
        if not os.path.exists(path):
            sys.exit(f"gen_eval_perplexity_goldens: no {path} (run scripts/fetch-models)")
        n, short = token_count(binary, model)
        manifest["models"][model] = {"file": model + ".gguf", "sha256": sha256(path), "tokens": n}
        manifest["too_short"][model] = short
    for name, model, c, stride, chunks, quick in CASES:
        if a.only and name not in a.only:
            continue
        g = case(binary, name, model, c, stride, chunks, quick, manifest["models"][model]["tokens"])
        with open(os.path.join(OUT, name + ".json"), "w") as f:
            json.dump(g, f, indent=1)
            f.write("\n")
        print(f"{name}: PPL {g['ppl']} over {g['chunks']} windows of {g['n_ctx']}", file=sys.stderr)
    with open(os.path.join(OUT, "MANIFEST.json"), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
