#!/usr/bin/env python3
"""A tiny sentence-transformers model with every module loom follows — Transformer, Pooling (CLS),
Dense (tanh), Normalize — and what sentence-transformers gives for 40 texts.

    tests/reference/.venv-torch/bin/python tests/reference/gen_st_dense_goldens.py

Writes tests/reference/golden/encoder/tiny-st-dense/ (the encoder of tiny-cross-encoder/ as a
BertModel, F16 safetensors; 1_Pooling with pooling_mode_cls_token; 2_Dense 32 -> 16, tanh, random
weights, F32; 3_Normalize; max_seq_length 64; a named prompt "query") and
tests/reference/golden/encoder/st-dense-embed.jsonl: {"text", "embedding"} from
SentenceTransformer(folder).encode (float32), 10 of the texts past 64 tokens, 10 with the prompt.
"""
import json
import os
import random
import shutil

import numpy as np
import torch
from sentence_transformers import SentenceTransformer, models
from transformers import BertForSequenceClassification

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "golden", "encoder")
torch.manual_seed(20261202)
rng = random.Random(20261202)
src = os.path.join(OUT, "tiny-cross-encoder")
out_dir = os.path.join(OUT, "tiny-st-dense")
shutil.rmtree(out_dir, ignore_errors=True)

tmp = os.path.join(OUT, ".tiny-bert-tmp")
shutil.rmtree(tmp, ignore_errors=True)
bert = BertForSequenceClassification.from_pretrained(src, torch_dtype=torch.float32).bert
bert.pooler = None
bert.config.architectures = ["BertModel"]
bert.half().save_pretrained(tmp, safe_serialization=True)
for f in ["tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"]:
    shutil.copy(os.path.join(src, f), tmp)
word = models.Transformer(tmp, max_seq_length=64, model_args={"torch_dtype": torch.float32})
pool = models.Pooling(32, pooling_mode="cls")
dense = models.Dense(32, 16, bias=True, activation_function=torch.nn.Tanh())
with torch.no_grad():
    dense.linear.weight.normal_(0, 0.5)
    dense.linear.bias.normal_(0, 0.1)
st = SentenceTransformer(modules=[word, pool, dense, models.Normalize()], device="cpu",
                         prompts={"query": "query: "})
st.save(out_dir, safe_serialization=True)
shutil.rmtree(tmp)
# the Transformer's weights back to F16 (sentence-transformers saved them upcast): a smaller file;
# the goldens come from the folder as saved
from safetensors.torch import load_file, save_file
w = os.path.join(out_dir, "model.safetensors")
save_file({k: v.half().contiguous() for k, v in load_file(w).items()}, w, metadata={"format": "pt"})
st = SentenceTransformer(out_dir, device="cpu")

corpus = [json.loads(l)["text"] for l in open(os.path.join(HERE, "golden", "tokenize", "corpus.jsonl"), encoding="utf-8")]
texts = rng.sample([t for t in corpus if t.strip() and len(t) < 200], 20)
words = " ".join(corpus[:200]).split()
texts += [" ".join(rng.choice(words) for _ in range(rng.randint(80, 200))) for _ in range(10)]
with open(os.path.join(OUT, "st-dense-embed.jsonl"), "w", encoding="utf-8") as f:
    for t, v in zip(texts, st.encode(texts, convert_to_numpy=True)):
        f.write(json.dumps({"text": t, "embedding": [float(np.float32(x)) for x in v]}, ensure_ascii=False) + "\n")
    q = texts[:10]
    for t, v in zip(q, st.encode(q, prompt_name="query", convert_to_numpy=True)):
        f.write(json.dumps({"text": t, "prompt": "query", "embedding": [float(np.float32(x)) for x in v]}, ensure_ascii=False) + "\n")
print(f"{out_dir}: Transformer + CLS pooling + Dense 32->16 tanh + Normalize; 40 golden vectors")
