#!/usr/bin/env python3
"""all-MiniLM-L6-v2 embeddings from sentence-transformers: the golden file loom's encoder is held to.

    tests/reference/setup-venv-torch
    tests/reference/.venv-torch/bin/python tests/reference/gen_embed_goldens.py [MODEL_DIR]

MODEL_DIR defaults to ~/.cache/loom/models/minilm (scripts/fetch-models). Writes
tests/reference/golden/embed/minilm.jsonl.zst, one record per text:
  id, text
  n_tokens     tokens the model saw ([CLS] and [SEP] included, after truncation to max_seq_length)
  truncated    whether the untruncated tokenization was longer than max_seq_length
  embedding    SentenceTransformer(MODEL_DIR).encode(text): mean pooling + Normalize, float32
  mean, cls    the last hidden state's masked mean and [CLS] row, not normalized (transformers)
Texts: 640 picked deterministically from the tokenizer parity corpus
(golden/tokenize/corpus.jsonl: multilingual, code, emoji, whitespace and control-character edge
cases, the empty string) and 40 long English texts (300-700 words) that go past 256 tokens.
Floats are written as the shortest decimal that reads back as the same float32.
"""
import json
import os
import random
import sys

import numpy as np
import torch
import zstandard
from sentence_transformers import SentenceTransformer
from transformers import AutoModel, AutoTokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "golden", "embed", "minilm.jsonl.zst")
model_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.expanduser("~/.cache/loom/models/minilm")
torch.manual_seed(0)
torch.set_num_threads(2)

corpus = [json.loads(l) for l in open(os.path.join(HERE, "golden", "tokenize", "corpus.jsonl"), encoding="utf-8")]
rng = random.Random(20261201)
fixed = [r for r in corpus if r["id"].startswith("fixed-")]
gen = [r for r in corpus if not r["id"].startswith("fixed-")]
picked = fixed + rng.sample(gen, 640 - len(fixed))
texts = [(r["id"], r["text"]) for r in picked]
words = " ".join(r["text"] for r in gen[:400]).split()
for i in range(40):
    n = rng.randint(300, 700)
    texts.append((f"long-{i:02d}", " ".join(rng.choice(words) for _ in range(n))))

st = SentenceTransformer(model_dir, device="cpu")
st.eval()
max_len = st.max_seq_length
tok = AutoTokenizer.from_pretrained(model_dir)
hf = AutoModel.from_pretrained(model_dir, torch_dtype=torch.float32).eval()


def num(x):
    # shortest repr that round-trips float32
    return np.format_float_scientific(np.float32(x), unique=True, trim="-")


emb = st.encode([t for _, t in texts], batch_size=16, convert_to_numpy=True, normalize_embeddings=False)
cctx = zstandard.ZstdCompressor(level=19)
lines = []
with torch.no_grad():
    for (tid, text), e in zip(texts, emb):
        full = tok(text, add_special_tokens=True)["input_ids"]
        enc = tok(text, truncation=True, max_length=max_len, return_tensors="pt")
        out = hf(**enc).last_hidden_state[0]
        mask = enc["attention_mask"][0].unsqueeze(-1).float()
        mean = (out * mask).sum(0) / mask.sum(0).clamp(min=1e-9)
        cls = out[0]
        rec = {
            "id": tid,
            "text": text,
            "n_tokens": int(enc["input_ids"].shape[1]),
            "truncated": len(full) > max_len,
        }
        body = json.dumps(rec, ensure_ascii=False)[:-1]
        vec = lambda v: "[" + ",".join(num(x) for x in np.asarray(v, dtype=np.float32)) + "]"
        body += ',"embedding":' + vec(e) + ',"mean":' + vec(mean.numpy()) + ',"cls":' + vec(cls.numpy()) + "}"
        lines.append(body)
data = ("\n".join(lines) + "\n").encode("utf-8")
os.makedirs(os.path.dirname(OUT), exist_ok=True)
with open(OUT, "wb") as f:
    f.write(cctx.compress(data))
n_trunc = sum(1 for l in lines if '"truncated": true' in l)
print(f"{OUT}: {len(lines)} texts, {n_trunc} truncated, "
      f"max_seq_length {max_len}, sentence-transformers {__import__('sentence_transformers').__version__}, torch {torch.__version__}")
