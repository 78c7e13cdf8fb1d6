#!/usr/bin/env python3
"""tiktoken, single thread, GPT-2: an Encoding built offline from GPT-2's own encoder.json (the
byte-level characters mapped back to bytes; ranks are the ids) with GPT-2's regex, then every text
of a JSONL corpus encoded (special tokens allowed, as loom --parse-special), timed inside Python.
Prints {"load_seconds", "seconds", "tokens"}.
usage: tiktoken_gpt2.py ENCODER_JSON[.zst] CORPUS_JSONL"""
import json, sys, time, subprocess
import tiktoken
enc_json, corpus = sys.argv[1], sys.argv[2]
def rd(p): return subprocess.run(["zstd","-dcq",p],capture_output=True).stdout if p.endswith(".zst") else open(p,"rb").read()
t_load = time.perf_counter()
encoder = json.loads(rd(enc_json))
bs = list(range(ord("!"), ord("~")+1)) + list(range(ord("¡"), ord("¬")+1)) + list(range(ord("®"), ord("ÿ")+1))
cs = bs[:]; n = 0
for b in range(256):
    if b not in bs: bs.append(b); cs.append(256+n); n += 1
dec = {chr(c): b for b, c in zip(bs, cs)}
ranks = {bytes(dec[ch] for ch in tok): i for tok, i in encoder.items() if tok != "<|endoftext|>"}
enc = tiktoken.Encoding("gpt2", pat_str=r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""", mergeable_ranks=ranks, special_tokens={"<|endoftext|>": 50256})
load_seconds = time.perf_counter() - t_load
texts = [json.loads(l)["text"] for l in open(corpus, encoding="utf-8")]
t0 = time.perf_counter()
n = sum(len(enc.encode(t, allowed_special="all")) for t in texts)
print(json.dumps({"load_seconds": load_seconds, "seconds": time.perf_counter() - t0, "tokens": n}))
