#!/usr/bin/env python3
"""Hugging Face tokenizers, single thread: encode every text of a JSONL corpus (ids only), timed
inside Python; loading (Tokenizer.from_str on the file's text) timed apart.
Prints {"load_seconds", "seconds", "tokens"}.
usage: hf_tokenize.py TOKENIZER_JSON[.zst] CORPUS_JSONL"""
import json, os, subprocess, sys, time
os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
from tokenizers import Tokenizer

path, corpus = sys.argv[1], sys.argv[2]
data = subprocess.run(["zstd", "-dc", path], capture_output=True).stdout.decode() if path.endswith(".zst") else open(path).read()
t_load = time.perf_counter()
tok = Tokenizer.from_str(data)
load_seconds = time.perf_counter() - t_load
tok.no_padding()
tok.no_truncation()
texts = [json.loads(l)["text"] for l in open(corpus, encoding="utf-8")]
t0 = time.perf_counter()
n = sum(len(tok.encode(t, add_special_tokens=False).ids) for t in texts)
print(json.dumps({"load_seconds": load_seconds, "seconds": time.perf_counter() - t0, "tokens": n}))
