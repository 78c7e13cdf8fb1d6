#!/usr/bin/env python3
"""onnxruntime: the same model exported to ONNX (export_onnx.py), texts tokenized with the
`tokenizers` library (truncation to MAX_TOKENS), sorted by length and padded to the longest of
each batch (as sentence-transformers does), masked mean pooling and L2 normalization in numpy.
Session: all graph optimizations, intra_op THREADS, inter_op 1. Timed inside Python after loading.
Prints {"load_seconds", "seconds", "texts"}.
usage: ort_embed.py ONNX TOKENIZER_JSON TEXTS_JSONL BATCH THREADS [MAX_TOKENS=256]"""
import json, sys, time
import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer
onnx, tok_path, path, batch, threads = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
max_tokens = int(sys.argv[6]) if len(sys.argv) > 6 else 256
texts = [json.loads(l)["text"] for l in open(path, encoding="utf-8")]
t0 = time.perf_counter()
so = ort.SessionOptions()
so.intra_op_num_threads = threads
so.inter_op_num_threads = 1
so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
sess = ort.InferenceSession(onnx, so, providers=["CPUExecutionProvider"])
tok = Tokenizer.from_file(tok_path)
tok.enable_truncation(max_tokens)
tok.no_padding()
load = time.perf_counter() - t0
t0 = time.perf_counter()
encs = tok.encode_batch(texts)
order = sorted(range(len(texts)), key=lambda i: -len(encs[i].ids))
out = np.zeros((len(texts), 0), dtype=np.float32)
vecs = [None] * len(texts)
for b in range(0, len(order), batch):
    idx = order[b:b + batch]
    L = max(len(encs[i].ids) for i in idx)
    ids = np.zeros((len(idx), L), dtype=np.int64)
    mask = np.zeros((len(idx), L), dtype=np.int64)
    for r, i in enumerate(idx):
        n = len(encs[i].ids)
        ids[r, :n] = encs[i].ids
        mask[r, :n] = 1
    h = sess.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})[0]
    m = mask[..., None].astype(np.float32)
    v = (h * m).sum(1) / m.sum(1)
    v /= np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    for r, i in enumerate(idx):
        vecs[i] = v[r]
print(json.dumps({"load_seconds": load, "seconds": time.perf_counter() - t0, "texts": len(texts)}))
