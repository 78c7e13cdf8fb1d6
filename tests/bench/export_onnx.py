#!/usr/bin/env python3
"""Exports a BERT folder's encoder to ONNX (dynamic batch and sequence axes; inputs input_ids,
attention_mask, token_type_ids; output last_hidden_state) with torch.onnx.export, and checks
onnxruntime's masked-mean, normalized vectors against sentence-transformers on a few texts.
usage: export_onnx.py MODEL_DIR OUT.onnx"""
import sys
import numpy as np
import torch
import onnxruntime as ort
from sentence_transformers import SentenceTransformer
from transformers import AutoModel, AutoTokenizer
model_dir, out = sys.argv[1], sys.argv[2]
tok = AutoTokenizer.from_pretrained(model_dir)
model = AutoModel.from_pretrained(model_dir, torch_dtype=torch.float32).eval()
enc = tok(["an example", "a second, somewhat longer example text"], padding=True, return_tensors="pt")
args = (enc["input_ids"], enc["attention_mask"], enc["token_type_ids"])
dyn = {k: {0: "batch", 1: "seq"} for k in ["input_ids", "attention_mask", "token_type_ids", "last_hidden_state"]}
torch.onnx.export(model, args, out, input_names=["input_ids", "attention_mask", "token_type_ids"],
                  output_names=["last_hidden_state"], dynamic_axes=dyn, opset_version=14)
sess = ort.InferenceSession(out, providers=["CPUExecutionProvider"])
texts = ["How do I rotate logs?", "Embeddings map text to vectors. " * 20, "x"]
e = tok(texts, padding=True, truncation=True, max_length=256, return_tensors="np")
h = sess.run(None, {k: e[k].astype(np.int64) for k in ["input_ids", "attention_mask", "token_type_ids"]})[0]
m = e["attention_mask"][..., None].astype(np.float32)
v = (h * m).sum(1) / m.sum(1)
v /= np.linalg.norm(v, axis=1, keepdims=True)
ref = SentenceTransformer(model_dir, device="cpu").encode(texts)
cos = (v * ref).sum(1) / np.linalg.norm(ref, axis=1)
assert cos.min() > 0.99999, cos
print(f"{out}: onnxruntime vs sentence-transformers min cosine {cos.min():.7f}")
