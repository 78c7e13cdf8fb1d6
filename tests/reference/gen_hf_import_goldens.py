#!/usr/bin/env python3
"""Tiny Hugging Face checkpoints and what llama.cpp's converter and transformers make of them: the
goldens of loom's Hugging Face -> GGUF importer (lib/quant/hf_import.h, `loom quantize --from-hf`).

Six folders, random weights from fixed seeds, hidden size 64, 2 layers, a small tokenizer.json
built with the `tokenizers` library (a byte-level BPE of ~360 tokens for the decoders, a WordPiece
of 150 for bert) and a tokenizer_config.json:
  llama   LlamaForCausalLM (transformers), GQA 4/2, untied output, saved BF16 and sharded
          (model-0000X-of-0000N.safetensors + model.safetensors.index.json), Llama 3 pre-tokenizer
          and BOS template, a chat template
  qwen2   Qwen2ForCausalLM (transformers), q/k/v biases, tied embeddings, F16, config vocab_size
          4 over the tokenizer's (padding rows), Qwen2 pre-tokenizer, one non-special added token
  bert    BertModel (transformers), F32, a sentence-transformers folder (modules.json, mean Pooling)
  qwen3   Qwen3ForCausalLM written by hand (transformers 4.41 predates it): q/k norms, head_dim 32
          (q_dim 128 != hidden 64), tied embeddings, F16
  gemma3  Gemma3ForCausalLM written by hand (text-only config, model_type gemma3_text), BF16,
          config vocab_size 8 over the tokenizer's (the converter drops those embedding rows)
  gemma3-spm  Gemma3ForCausalLM by hand, F16, with a SentencePiece tokenizer.model (BPE, byte
          fallback, no dummy prefix; trained here with the sentencepiece package) and no
          tokenizer.json: the converter's SentencePiece path (tokenizer.ggml.model "llama",
          scores, added_tokens_decoder, add_space_prefix false), eos_token_id a list
Norm weights are 1 + noise so that a missed +1 (gemma) or permutation (llama) shows.

For each <name>, tests/reference/golden/hf_import/<name>/ gets the HF folder, and beside it
  <name>.digest-f32.json  llama.cpp's convert_hf_to_gguf.py --outtype f32 output: every metadata
                          key (type and value) and every tensor (name, ne, ggml type, sha256 of
                          its bytes), in file order
  <name>.digest-{f16,bf16}.json  the same for --outtype f16 (llama, gemma3), bf16 (qwen2)
  MANIFEST.json           versions, token ids, and transformers' tokenizer check hash (chkhsh)
                          of each folder's tokenizer
  <name>.ref.json         transformers' float32 outputs (the saved folder read back with
                          from_pretrained) for TOKENS: decoders {"tokens", "logits":
                          [[vocab floats] per position], "logits_f16_attention": the same with
                          the attention at llama.cpp's precision (q, K, V and the softmax
                          probabilities rounded to float16, as loom's decoder and llama.cpp's
                          f16 KV cache compute it)} (llama, qwen2); bert {"tokens",
                          "hidden": [[64 floats] per position], "mean": [...], "cls": [...]}
The converter runs from the llama-cpp-python 0.3.36 sdist's vendor/llama.cpp (as
gen_minilm_gguf.sh fetches it; gguf-py 0.19.0) with two shims:
  * torch 1.13 lacks dtypes the converter names in tables (float8_*, uint16..64): stand-ins;
  * the converter imports sentencepiece before it looks for a tokenizer.model (there is none
    here): a stand-in module when the package is not installed;
  * tokenizer.ggml.pre: the converter names a BPE pre-tokenizer by hashing the tokens of a check
    text against a table of known models and refuses any other tokenizer (so any tiny one). The
    shim keeps the converter's answer when it has one and otherwise answers as loom's importer
    does for an unknown hash: by the tokenizer's structure (WordPiece -> "default"; the Llama 3
    Split regex -> "llama-bpe"; the Qwen2 one -> "qwen2"; a lone ByteLevel with its regex ->
    "gpt-2").
Run with tests/reference/.venv-torch/bin/python (transformers 4.41.2, tokenizers 0.19.1, and
sentencepiece 0.2.0 for gemma3-spm: pip install sentencepiece==0.2.0 there).
"""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer, Regex, decoders, models, normalizers, pre_tokenizers, processors, trainers

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "golden", "hf_import")
LLAMA_CPP = os.environ.get("LLAMA_CPP_DIR") or os.path.expanduser(
    "~/.cache/loom/src/llama_cpp_python-0.3.36/vendor/llama.cpp")

LLAMA3_RE = ("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*"
             "|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+")
QWEN2_RE = ("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*"
            "|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+")

CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Logs are rotated daily by logrotate; old files are compressed with gzip.",
    "A tokenizer splits text into pieces, and a model turns pieces into numbers.",
    "Hello world! How are you today? I am fine, thank you.",
    "In 2024 the team shipped 3 releases, each with 12 new features.",
    "def main(): print('hello') return 0",
    "Small models are good for tests: they load fast and fit in a few kilobytes.",
    "the the the and and of of to to in in is is it it that that",
] * 4

CHAT_TEMPLATE = ("{% for m in messages %}<|start|>{{ m['role'] }}\n{{ m['content'] }}<|end|>\n{% endfor %}"
                 "{% if add_generation_prompt %}<|start|>assistant\n{% endif %}")

# Other --outtype runs digested: F16 from BF16 weights (llama), BF16 from F16 weights (qwen2),
# F16 from BF16 with gemma's +1 norms (gemma3).
EXTRA_OUTTYPES = {"llama": ["f16"], "qwen2": ["bf16"], "gemma3": ["f16"], "gemma3-spm": ["bf16"]}

# The token ids every reference output is computed for (all below the smallest vocabulary).
TOKENS = [0, 17, 300, 42, 5, 99, 256, 120, 7, 64, 33, 180, 2, 250, 11, 77]
BERT_TOKENS = [2, 17, 40, 42, 5, 99, 56, 120, 7, 64, 33, 80, 12, 50, 11, 3]  # [CLS] ... [SEP]


# ---- tokenizers ----------------------------------------------------------------------------------

def bpe_tokenizer(regex, specials, post, added=()):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(regex), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=360, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(CORPUS, trainer)
    tok.add_special_tokens(list(specials))
    if added:
        tok.add_tokens(list(added))
    if post == "bos":
        bos = specials[0]
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B:1", special_tokens=[(bos, tok.token_to_id(bos))])
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return tok


def wordpiece_tokenizer():
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    # a fixed vocabulary (the WordPiece trainer breaks ties differently from run to run): the
    # specials, every character alone and as a continuation, then the corpus' commonest words
    words = {}
    for line in CORPUS:
        for w in pre_tokenizers.BertPreTokenizer().pre_tokenize_str(line.lower()):
            words[w[0]] = words.get(w[0], 0) + 1
    chars = sorted({c for w in words for c in w})
    vocab = specials + chars + ["##" + c for c in chars]
    vocab += [w for w, _ in sorted(words.items(), key=lambda kv: (-kv[1], kv[0])) if w not in vocab][:200 - len(vocab)]
    tok = Tokenizer(models.WordPiece({t: i for i, t in enumerate(vocab)}, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=None,
                                                lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    tok.add_special_tokens(specials)
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    return tok


def write_tokenizer(d, tok, config):
    tok.save(os.path.join(d, "tokenizer.json"))
    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
        json.dump(config, f, indent=1)


# ---- weights -------------------------------------------------------------------------------------

def randomize(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            if "norm" in name.lower() and name.endswith("weight"):
                p.copy_(1 + 0.2 * noise)
            elif name.endswith("bias"):
                p.copy_(0.1 * noise)
            else:
                p.copy_(0.15 * noise)


def round_to(model, dtype):
    # the values the checkpoint holds, so that float32 references see exactly the saved weights
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.to(dtype).to(torch.float32))


def save_config(d, cfg):
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)


# ---- the five models -----------------------------------------------------------------------------

def make_llama(d):
    from transformers import LlamaConfig, LlamaForCausalLM
    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|start|>", "<|end|>"]
    tok = bpe_tokenizer(LLAMA3_RE, specials, "bos")
    n_vocab = tok.get_vocab_size()
    cfg = LlamaConfig(vocab_size=n_vocab, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256, rms_norm_eps=1e-5,
                      rope_theta=50000.0, tie_word_embeddings=False, bos_token_id=tok.token_to_id(specials[0]),
                      eos_token_id=tok.token_to_id(specials[3]), attn_implementation="eager")
    torch.manual_seed(1)
    model = LlamaForCausalLM(cfg).eval()
    randomize(model, 1)
    round_to(model, torch.bfloat16)
    model.to(torch.bfloat16).save_pretrained(d, safe_serialization=True, max_shard_size="150KB")
    model.to(torch.float32)
    write_tokenizer(d, tok, {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": specials[0],
                             "eos_token": specials[3], "add_bos_token": True, "chat_template": CHAT_TEMPLATE,
                             "model_max_length": 256})
    return model


def make_qwen2(d):
    from transformers import Qwen2Config, Qwen2ForCausalLM
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok = bpe_tokenizer(QWEN2_RE, specials, "bytelevel", added=["<think>"])
    n_vocab = tok.get_vocab_size() + 4
    cfg = Qwen2Config(vocab_size=n_vocab, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512, rms_norm_eps=1e-6,
                      rope_theta=1000000.0, tie_word_embeddings=True, bos_token_id=tok.token_to_id(specials[0]),
                      eos_token_id=tok.token_to_id(specials[2]), attn_implementation="eager")
    torch.manual_seed(2)
    model = Qwen2ForCausalLM(cfg).eval()
    randomize(model, 2)
    model.tie_weights()
    round_to(model, torch.float16)
    model.to(torch.float16).save_pretrained(d, safe_serialization=True)
    model.to(torch.float32)
    write_tokenizer(d, tok, {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": None,
                             "eos_token": specials[2], "pad_token": specials[0], "chat_template": CHAT_TEMPLATE,
                             "model_max_length": 512})
    return model


def make_bert(d):
    from transformers import BertConfig, BertModel
    tok = wordpiece_tokenizer()
    cfg = BertConfig(vocab_size=tok.get_vocab_size(), hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                     num_attention_heads=4, max_position_embeddings=128, type_vocab_size=2, layer_norm_eps=1e-12,
                     pad_token_id=0, attn_implementation="eager")
    torch.manual_seed(3)
    model = BertModel(cfg).eval()
    randomize(model, 3)
    model.save_pretrained(d, safe_serialization=True)
    write_tokenizer(d, tok, {"tokenizer_class": "BertTokenizer", "do_lower_case": True, "cls_token": "[CLS]",
                             "sep_token": "[SEP]", "pad_token": "[PAD]", "unk_token": "[UNK]", "mask_token": "[MASK]",
                             "model_max_length": 128})
    with open(os.path.join(d, "modules.json"), "w") as f:
        json.dump([{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                   {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}], f,
                  indent=1)
    os.makedirs(os.path.join(d, "1_Pooling"))
    with open(os.path.join(d, "1_Pooling", "config.json"), "w") as f:
        json.dump({"word_embedding_dimension": 64, "pooling_mode_cls_token": False, "pooling_mode_mean_tokens": True,
                   "pooling_mode_max_tokens": False, "pooling_mode_mean_sqrt_len_tokens": False}, f, indent=1)
    return model


def hand_written(d, seed, tensors, dtype):
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name, shape in tensors:
        noise = torch.randn(shape, generator=g)
        out[name] = ((1 + 0.2 * noise) if name.endswith("norm.weight") else 0.15 * noise).to(dtype).contiguous()
    save_file(out, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})


def make_qwen3(d):
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok = bpe_tokenizer(QWEN2_RE, specials, "bytelevel")
    V, E, F, L, H, KV, D = tok.get_vocab_size(), 64, 96, 2, 4, 2, 32
    save_config(d, {"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "vocab_size": V, "hidden_size": E,
                    "intermediate_size": F, "num_hidden_layers": L, "num_attention_heads": H,
                    "num_key_value_heads": KV, "head_dim": D, "max_position_embeddings": 1024,
                    "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "rope_scaling": None, "tie_word_embeddings": True,
                    "hidden_act": "silu", "attention_bias": False, "bos_token_id": tok.token_to_id(specials[0]),
                    "eos_token_id": tok.token_to_id(specials[2]), "torch_dtype": "float16"})
    ts = [("model.embed_tokens.weight", (V, E))]
    for i in range(L):
        p = f"model.layers.{i}."
        ts += [(p + "input_layernorm.weight", (E,)), (p + "self_attn.q_proj.weight", (H * D, E)),
               (p + "self_attn.k_proj.weight", (KV * D, E)), (p + "self_attn.v_proj.weight", (KV * D, E)),
               (p + "self_attn.o_proj.weight", (E, H * D)), (p + "self_attn.q_norm.weight", (D,)),
               (p + "self_attn.k_norm.weight", (D,)), (p + "post_attention_layernorm.weight", (E,)),
               (p + "mlp.gate_proj.weight", (F, E)), (p + "mlp.up_proj.weight", (F, E)),
               (p + "mlp.down_proj.weight", (E, F))]
    ts += [("model.norm.weight", (E,))]
    hand_written(d, 4, ts, torch.float16)
    write_tokenizer(d, tok, {"tokenizer_class": "PreTrainedTokenizerFast", "eos_token": specials[2],
                             "pad_token": specials[0], "chat_template": CHAT_TEMPLATE, "add_bos_token": False})


def gemma3_tensors(V, E, F, L, H, KV, D):
    """A Gemma 3 checkpoint's tensors (name, torch shape), in the order they are written."""
    ts = [("model.embed_tokens.weight", (V, E))]
    for i in range(L):
        p = f"model.layers.{i}."
        ts += [(p + "input_layernorm.weight", (E,)), (p + "self_attn.q_proj.weight", (H * D, E)),
               (p + "self_attn.k_proj.weight", (KV * D, E)), (p + "self_attn.v_proj.weight", (KV * D, E)),
               (p + "self_attn.o_proj.weight", (E, H * D)), (p + "self_attn.q_norm.weight", (D,)),
               (p + "self_attn.k_norm.weight", (D,)), (p + "post_attention_layernorm.weight", (E,)),
               (p + "pre_feedforward_layernorm.weight", (E,)), (p + "post_feedforward_layernorm.weight", (E,)),
               (p + "mlp.gate_proj.weight", (F, E)), (p + "mlp.up_proj.weight", (F, E)),
               (p + "mlp.down_proj.weight", (E, F))]
    return ts + [("model.norm.weight", (E,))]


def make_gemma3(d):
    specials = ["<pad>", "<eos>", "<bos>", "<start_of_turn>", "<end_of_turn>"]
    tok = bpe_tokenizer(LLAMA3_RE, specials, "bytelevel")
    n_real = tok.get_vocab_size()
    V, E, F, L, H, KV, D = n_real + 8, 64, 96, 2, 4, 1, 16
    save_config(d, {"architectures": ["Gemma3ForCausalLM"], "model_type": "gemma3_text", "vocab_size": V,
                    "hidden_size": E, "intermediate_size": F, "num_hidden_layers": L, "num_attention_heads": H,
                    "num_key_value_heads": KV, "head_dim": D, "max_position_embeddings": 2048,
                    "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "rope_local_base_freq": 10000.0,
                    "rope_scaling": {"rope_type": "linear", "factor": 8.0}, "sliding_window": 16,
                    "sliding_window_pattern": 6, "query_pre_attn_scalar": 16, "hidden_activation": "gelu_pytorch_tanh",
                    "final_logit_softcapping": None, "attn_logit_softcapping": None, "attention_bias": False,
                    "pad_token_id": 0, "eos_token_id": 1, "bos_token_id": 2, "torch_dtype": "bfloat16"})
    ts = gemma3_tensors(V, E, F, L, H, KV, D)
    hand_written(d, 5, ts, torch.bfloat16)
    write_tokenizer(d, tok, {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<bos>", "eos_token": "<eos>",
                             "pad_token": "<pad>", "add_bos_token": True, "add_eos_token": False,
                             "chat_template": CHAT_TEMPLATE})


def make_gemma3_spm(d):
    # Gemma 3 as Google ships it: a SentencePiece tokenizer.model (byte fallback, no dummy prefix,
    # identity normalization), which the converter reads instead of tokenizer.json
    import sentencepiece as spm
    prefix = os.path.join(d, "sp")
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(CORPUS), model_prefix=prefix, vocab_size=320, model_type="bpe", byte_fallback=True,
        pad_id=0, eos_id=1, bos_id=2, unk_id=3, user_defined_symbols=["<start_of_turn>", "<end_of_turn>"],
        add_dummy_prefix=False, remove_extra_whitespaces=False, normalization_rule_name="identity",
        character_coverage=1.0, hard_vocab_limit=False, num_threads=1, minloglevel=2)
    os.replace(prefix + ".model", os.path.join(d, "tokenizer.model"))
    os.remove(prefix + ".vocab")
    sp = spm.SentencePieceProcessor(model_file=os.path.join(d, "tokenizer.model"))
    V, E, F, L, H, KV, D = sp.get_piece_size(), 64, 96, 2, 4, 1, 16
    save_config(d, {"architectures": ["Gemma3ForCausalLM"], "model_type": "gemma3_text", "vocab_size": V,
                    "hidden_size": E, "intermediate_size": F, "num_hidden_layers": L, "num_attention_heads": H,
                    "num_key_value_heads": KV, "head_dim": D, "max_position_embeddings": 32768,
                    "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "rope_local_base_freq": 10000.0,
                    "rope_scaling": None, "sliding_window": 512, "sliding_window_pattern": 6,
                    "query_pre_attn_scalar": 16, "hidden_activation": "gelu_pytorch_tanh",
                    "final_logit_softcapping": None, "attn_logit_softcapping": None, "attention_bias": False,
                    "pad_token_id": 0, "eos_token_id": [1, 5], "bos_token_id": 2, "torch_dtype": "float16"})
    ts = gemma3_tensors(V, E, F, L, H, KV, D)
    hand_written(d, 6, ts, torch.float16)
    turn = {"content": "<start_of_turn>", "special": True, "normalized": False, "lstrip": False, "rstrip": False,
            "single_word": False}
    write_json(os.path.join(d, "tokenizer_config.json"),
               {"tokenizer_class": "GemmaTokenizer", "bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>",
                "add_bos_token": True, "add_eos_token": False, "chat_template": CHAT_TEMPLATE,
                "added_tokens_decoder": {"4": turn, "5": dict(turn, content="<end_of_turn>")}})


# ---- the converter and its output's digest -------------------------------------------------------

SHIM = r'''
import runpy, sys, json, torch
for n in ["float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz", "uint16", "uint32", "uint64"]:
    hasattr(torch, n) or setattr(torch, n, type(n, (), {})())
import types, transformers
try:
    import sentencepiece
except ImportError:  # only imported before the converter looks for tokenizer.model (absent here)
    sp = types.ModuleType("sentencepiece")
    sp.SentencePieceProcessor = None
    sys.modules["sentencepiece"] = sp
import conversion.base as base
orig = base.TextModel.get_vocab_base_pre
def by_structure(self, tokenizer):
    try:
        return orig(self, tokenizer)
    except NotImplementedError:
        pass
    with open(self.dir_model / "tokenizer.json", encoding="utf-8") as f:
        tj = json.load(f)
    if tj["model"]["type"] == "WordPiece":
        return "default"
    pre = tj.get("pre_tokenizer") or {}
    parts = pre.get("pretokenizers", [pre])
    for p in parts:
        if p.get("type") == "Split":
            rx = p.get("pattern", {}).get("Regex")
            if rx == LLAMA3_RE: return "llama-bpe"
            if rx == QWEN2_RE: return "qwen2"
    if len(parts) == 1 and parts[0].get("type") == "ByteLevel" and parts[0].get("use_regex", True):
        return "gpt-2"
    raise NotImplementedError("no structural answer either")
base.TextModel.get_vocab_base_pre = by_structure
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
'''.replace("LLAMA3_RE", repr(LLAMA3_RE)).replace("QWEN2_RE", repr(QWEN2_RE))


def convert(d, outtype, out):
    env = dict(os.environ, PYTHONPATH=f"{LLAMA_CPP}/gguf-py:{LLAMA_CPP}")
    r = subprocess.run([sys.executable, "-c", SHIM, f"{LLAMA_CPP}/convert_hf_to_gguf.py", d, "--outtype", outtype,
                        "--outfile", out], env=env, capture_output=True, text=True)
    if r.returncode != 0:
        sys.stderr.write(r.stdout + r.stderr)
        raise SystemExit(f"convert_hf_to_gguf.py failed on {d}")


def digest(path):
    sys.path.insert(0, f"{LLAMA_CPP}/gguf-py")
    from gguf import GGUFReader, GGUFValueType
    r = GGUFReader(path)
    kv = []
    for f in r.fields.values():
        if f.name.startswith("GGUF."):
            continue
        t = f.types[0]
        if t == GGUFValueType.ARRAY:
            et = f.types[-1] if len(f.types) > 1 else GGUFValueType.UINT8
            if et == GGUFValueType.STRING:
                val = [bytes(f.parts[i]).decode("utf-8") for i in f.data]
            else:
                val = [f.parts[i].tolist()[0] for i in f.data]
            kv.append({"key": f.name, "type": "array", "elem": et.name.lower(), "value": val})
        elif t == GGUFValueType.STRING:
            kv.append({"key": f.name, "type": "string", "value": bytes(f.parts[f.data[0]]).decode("utf-8")})
        else:
            kv.append({"key": f.name, "type": t.name.lower(), "value": f.parts[f.data[0]].tolist()[0]})
    tensors = []
    for t in r.tensors:
        tensors.append({"name": t.name, "ne": [int(x) for x in t.shape], "type": int(t.tensor_type),
                        "sha256": hashlib.sha256(np.ascontiguousarray(t.data).tobytes()).hexdigest()})
    return {"kv": kv, "tensors": tensors}


def check_text():
    # the converter's check text, read from its source (get_vocab_base_pre)
    import ast
    src = open(os.path.join(LLAMA_CPP, "conversion", "base.py"), encoding="utf-8").read()
    i = src.index("chktxt = ")
    return ast.literal_eval(src[i + len("chktxt = "):src.index("\n", i)])


CHKTXT = check_text()


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, separators=(",", ":"))
        f.write("\n")


def f16_round(t):
    return t.to(torch.float16).to(torch.float32)


def llamacpp_attention_logits(model, name, tokens):
    """transformers' logits with its eager attention computed at llama.cpp's precision (what loom's
    decoder reproduces): q, K and V rounded to float16 (llama.cpp's f16 KV cache; q is rounded for
    the f16 dot products), the softmax probabilities rounded to float16 before they weigh V. All
    else (projections, norms, RoPE, MLP) is transformers' float32 as it stands."""
    import importlib
    mod = importlib.import_module(f"transformers.models.{name}.modeling_{name}")
    orig_rope, orig_repeat, orig_softmax = mod.apply_rotary_pos_emb, mod.repeat_kv, torch.nn.functional.softmax

    def rope(q, k, *a, **kw):
        q, k = orig_rope(q, k, *a, **kw)
        return f16_round(q), k

    def repeat(h, n):
        return orig_repeat(f16_round(h), n)

    def softmax(*a, **kw):
        return f16_round(orig_softmax(*a, **kw))

    mod.apply_rotary_pos_emb, mod.repeat_kv, torch.nn.functional.softmax = rope, repeat, softmax
    try:
        return model(input_ids=torch.tensor([tokens])).logits[0]
    finally:
        mod.apply_rotary_pos_emb, mod.repeat_kv, torch.nn.functional.softmax = orig_rope, orig_repeat, orig_softmax


def f32s(x):
    return [float(np.float32(v)) for v in x]


def main():
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    makers = {"llama": make_llama, "qwen2": make_qwen2, "bert": make_bert, "qwen3": make_qwen3, "gemma3": make_gemma3,
              "gemma3-spm": make_gemma3_spm}
    manifest = {"converter": LLAMA_CPP.split("/src/")[-1], "tokens": TOKENS, "bert_tokens": BERT_TOKENS, "models": []}
    for name, make in makers.items():
        d = os.path.join(OUT, name)
        os.makedirs(d)
        model = make(d)
        with tempfile.TemporaryDirectory() as tmp:
            for outtype in ["f32"] + EXTRA_OUTTYPES.get(name, []):
                g = os.path.join(tmp, f"{name}-{outtype}.gguf")
                convert(d, outtype, g)
                write_json(os.path.join(OUT, f"{name}.digest-{outtype}.json"), digest(g))
        if model is not None:
            # the reference runs the folder as saved, read back in float32 (the model object itself
            # went through .to(bfloat16/float16) for saving, which also rounded its RoPE buffer)
            model = type(model).from_pretrained(d, torch_dtype=torch.float32, attn_implementation="eager").eval()
            with torch.no_grad():
                if name == "bert":
                    ids = torch.tensor([BERT_TOKENS])
                    h = model(input_ids=ids, token_type_ids=torch.zeros_like(ids)).last_hidden_state[0]
                    ref = {"tokens": BERT_TOKENS, "hidden": [f32s(r) for r in h.numpy()],
                           "mean": f32s(h.mean(0).numpy()), "cls": f32s(h[0].numpy())}
                else:
                    logits = model(input_ids=torch.tensor([TOKENS])).logits[0]
                    f16 = llamacpp_attention_logits(model, name, TOKENS)
                    ref = {"tokens": TOKENS, "logits": [f32s(r) for r in logits.numpy()],
                           "logits_f16_attention": [f32s(r) for r in f16.numpy()]}
            write_json(os.path.join(OUT, f"{name}.ref.json"), ref)
        # the converter's tokenizer check hash as transformers computes it (none of these tiny
        # tokenizers is in its table; the test holds loom's hash to this one)
        if os.path.exists(os.path.join(d, "tokenizer.json")):
            from transformers import AutoTokenizer
            tok = AutoTokenizer.from_pretrained(d)
            manifest.setdefault("chkhsh", {})[name] = hashlib.sha256(str(tok.encode(CHKTXT)).encode()).hexdigest()
        manifest["models"].append(name)
    import transformers, tokenizers
    manifest["transformers"], manifest["tokenizers"], manifest["torch"] = (
        transformers.__version__, tokenizers.__version__, torch.__version__)
    with open(os.path.join(OUT, "MANIFEST.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
