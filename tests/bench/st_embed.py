#!/usr/bin/env python3
"""sentence-transformers: encode every text of a JSONL file (as a user would: SentenceTransformer
.encode, which sorts by length and pads each batch to its longest text), timed inside Python after
loading. Prints {"load_seconds", "seconds", "texts"}.
usage: st_embed.py MODEL_DIR TEXTS_JSONL BATCH THREADS"""
import json, sys, time
model_dir, path, batch, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
import torch
torch.set_num_threads(threads)
from sentence_transformers import SentenceTransformer
texts = [json.loads(l)["text"] for l in open(path, encoding="utf-8")]
t0 = time.perf_counter()
m = SentenceTransformer(model_dir, device="cpu")
load = time.perf_counter() - t0
t0 = time.perf_counter()
with torch.inference_mode():
    v = m.encode(texts, batch_size=batch, convert_to_numpy=True)
print(json.dumps({"load_seconds": load, "seconds": time.perf_counter() - t0, "texts": len(texts), "dims": int(v.shape[1])}))
