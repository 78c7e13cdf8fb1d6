#!/usr/bin/env python3
"""llama.cpp's tokenizer (llama-cpp-python, vocab_only), single thread: every text of a JSONL
corpus tokenized (add_bos off, special tokens parsed, as loom --no-add-special --parse-special),
timed inside Python; loading timed apart. Prints {"load_seconds", "seconds", "tokens"}.
usage: llamacpp_tokenize.py MODEL_GGUF CORPUS_JSONL"""
import json, sys, time
import llama_cpp

path, corpus = sys.argv[1], sys.argv[2]
t_load = time.perf_counter()
llm = llama_cpp.Llama(model_path=path, vocab_only=True, verbose=False, n_threads=1)
load_seconds = time.perf_counter() - t_load
texts = [json.loads(l)["text"].encode("utf-8") for l in open(corpus, encoding="utf-8")]
t0 = time.perf_counter()
n = sum(len(llm.tokenize(t, add_bos=False, special=True)) for t in texts)
print(json.dumps({"load_seconds": load_seconds, "seconds": time.perf_counter() - t0, "tokens": n}))
