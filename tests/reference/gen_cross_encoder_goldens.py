#!/usr/bin/env python3
"""A tiny random BERT cross-encoder and its reference scores; the same weights as a GGUF.

    tests/reference/setup-venv-torch
    tests/reference/.venv-torch/bin/python tests/reference/gen_cross_encoder_goldens.py LLAMA_CPP_DIR

LLAMA_CPP_DIR: llama.cpp's source (convert_hf_to_gguf.py, gguf-py), e.g. vendor/llama.cpp of the
llama_cpp_python 0.3.36 sdist (pip download --no-deps --no-binary :all: llama_cpp_python==0.3.36).
Writes under tests/reference/golden/encoder/:
  tiny-cross-encoder/    BertForSequenceClassification (num_labels 1; hidden 32, 2 layers, 4 heads,
                         intermediate 64, 512 positions, all-MiniLM-L6-v2's WordPiece vocabulary),
                         random weights (torch seed 20261201, initializer_range 0.1) stored as F16
                         safetensors by save_pretrained, with the MiniLM tokenizer files
  cross_encoder.jsonl    200 (query, passage) pairs: n_tokens after tokenizer(query, passage,
                         truncation="longest_first", max_length=512) — what sentence-transformers'
                         CrossEncoder does — and `logit`, the model's output computed in float32
                         from the stored F16 weights (checked equal to CrossEncoder.predict with
                         an identity activation)
  tiny-bert.gguf         the same encoder (architectures BertModel, no head) converted by llama.cpp's
                         convert_hf_to_gguf.py --outtype f16 (weights were F16: no rounding),
                         --model-name tiny-bert (else general.name is the temporary folder's)
  tiny-bert-embed.jsonl  60 texts: transformers BertModel, masked mean pooling, L2 normalized
"""
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import torch
from sentence_transformers import CrossEncoder
from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification, BertModel

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "golden", "encoder")
MINILM = os.path.expanduser(os.environ.get("LOOM_MODELS", "~/.cache/loom/models")) + "/minilm"
llama_cpp = sys.argv[1]
torch.manual_seed(20261201)
torch.set_num_threads(2)
rng = random.Random(20261201)

cfg = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                 max_position_embeddings=512, type_vocab_size=2, num_labels=1, hidden_act="gelu", initializer_range=0.1)
model = BertForSequenceClassification(cfg).eval()
model_dir = os.path.join(OUT, "tiny-cross-encoder")
shutil.rmtree(model_dir, ignore_errors=True)
model.half().save_pretrained(model_dir, safe_serialization=True)
for f in ["tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"]:
    shutil.copy(os.path.join(MINILM, f), model_dir)

ref = BertForSequenceClassification.from_pretrained(model_dir, torch_dtype=torch.float32).eval()
tok = AutoTokenizer.from_pretrained(model_dir)

corpus = [json.loads(l)["text"] for l in open(os.path.join(HERE, "golden", "tokenize", "corpus.jsonl"), encoding="utf-8")]
corpus = [t for t in corpus if t.strip()]
short = [t for t in corpus if len(t) < 120]
words = " ".join(corpus[:300]).split()
pairs = []
for i in range(200):
    q = rng.choice(short)
    if i % 20 == 0:
        q = " ".join(rng.choice(words) for _ in range(rng.randint(300, 500)))  # both parts long
    if i % 10 == 0:
        p = " ".join(rng.choice(words) for _ in range(rng.randint(500, 900)))  # past 512 tokens
    else:
        p = rng.choice(corpus)[:2000]
    pairs.append((q, p))

rows = []
with torch.no_grad():
    for q, p in pairs:
        enc = tok(q, p, truncation="longest_first", max_length=512, return_tensors="pt")
        logit = ref(**enc).logits[0, 0].item()
        rows.append({"query": q, "passage": p, "n_tokens": int(enc["input_ids"].shape[1]),
                     "logit": float(np.float32(logit))})
ce = CrossEncoder(model_dir, device="cpu", max_length=512, automodel_args={"torch_dtype": torch.float32})
st = ce.predict(pairs, batch_size=16, activation_fct=torch.nn.Identity(), convert_to_numpy=True)
worst = max(abs(a - r["logit"]) for a, r in zip(st, rows))
assert worst < 1e-5, f"CrossEncoder and the plain model disagree by {worst}"
with open(os.path.join(OUT, "cross_encoder.jsonl"), "w", encoding="utf-8") as f:
    for r in rows:
        f.write(json.dumps(r, ensure_ascii=False) + "\n")

# the encoder alone, through llama.cpp's converter
with tempfile.TemporaryDirectory() as tmp:
    bert = BertModel(BertConfig(**{**cfg.to_dict(), "architectures": ["BertModel"]}), add_pooling_layer=False)
    bert.load_state_dict({k[len("bert."):]: v.float() for k, v in ref.state_dict().items() if k.startswith("bert.") and "pooler" not in k})
    bert.half().save_pretrained(tmp, safe_serialization=True)
    for f in ["tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"]:
        shutil.copy(os.path.join(MINILM, f), tmp)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(llama_cpp, "gguf-py"), llama_cpp]))
    # The converter names dtypes that Debian's torch 1.13 predates (float8, uint16...) in lookup
    # tables only: stand-ins let it import; this checkpoint holds none of them.
    shim = ("import runpy, sys, torch\n"
            "for n in ['float8_e4m3fn', 'float8_e5m2', 'float8_e4m3fnuz', 'float8_e5m2fnuz', 'uint16', 'uint32', 'uint64']:\n"
            "    hasattr(torch, n) or setattr(torch, n, type(n, (), {})())\n"
            "sys.argv = sys.argv[1:]\n"
            "runpy.run_path(sys.argv[0], run_name='__main__')\n")
    subprocess.run([sys.executable, "-c", shim, os.path.join(llama_cpp, "convert_hf_to_gguf.py"), tmp, "--outtype", "f16",
                    "--model-name", "tiny-bert", "--outfile", os.path.join(OUT, "tiny-bert.gguf")], check=True, env=env, stdout=subprocess.DEVNULL)
    emb = BertModel.from_pretrained(tmp, torch_dtype=torch.float32).eval()
with open(os.path.join(OUT, "tiny-bert-embed.jsonl"), "w", encoding="utf-8") as f, torch.no_grad():
    for t in rng.sample(short, 50) + [" ".join(rng.choice(words) for _ in range(rng.randint(20, 200))) for _ in range(10)]:
        enc = tok(t, truncation=True, max_length=512, return_tensors="pt")
        h = emb(**enc).last_hidden_state[0]
        v = h.mean(0)
        v = v / v.norm().clamp(min=1e-12)
        f.write(json.dumps({"text": t, "embedding": [float(np.float32(x)) for x in v.numpy()]}, ensure_ascii=False) + "\n")
n_trunc = sum(1 for r in rows if r["n_tokens"] == 512)
print(f"{OUT}: 200 pairs ({n_trunc} at 512 tokens), CrossEncoder agrees within {worst:.2g}; tiny-bert.gguf; 60 embedding texts")
