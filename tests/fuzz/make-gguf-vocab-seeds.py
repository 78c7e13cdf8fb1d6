#!/usr/bin/env python3
"""Writes the tiny GGUF vocabularies (SPM, byte-level BPE, WordPiece) that seed the fuzz_gguf target:
tests/fuzz/corpus/fuzz_gguf/vocab-*.gguf. Run with tests/reference/.venv/bin/python (the gguf package)."""
import gguf, os
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "fuzz_gguf")
def w(path, model, pre, toks, types, scores=None, merges=None, extra=None):
    g = gguf.GGUFWriter(path, "llama")
    g.add_tokenizer_model(model)
    if pre: g.add_tokenizer_pre(pre)
    g.add_token_list(toks)
    g.add_token_types(types)
    if scores is not None: g.add_token_scores(scores)
    if merges is not None: g.add_token_merges(merges)
    g.add_bos_token_id(1); g.add_eos_token_id(2)
    if extra: extra(g)
    g.write_header_to_file(); g.write_kv_data_to_file(); g.write_tensors_to_file(); g.close()
N, C, U, B, UD = 1, 3, 2, 6, 4
# SPM (llama): specials, bytes, a few pieces
toks = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)] + ["\u2581", "\u2581H", "el", "lo", "\u2581w", "or", "ld", "<mark>"]
types = [U, C, C] + [B]*256 + [N]*7 + [UD]
w(os.path.join(out, "vocab-spm.gguf"), "llama", "default", toks, types, scores=[0.0]*3 + [0.0]*256 + [-1.0, -2.0, -3.0, -3.5, -2.5, -4.0, -4.5, 0.0],
  extra=lambda g: g.add_add_bos_token(True))
# byte-level BPE (gpt2 / smollm)
from tokenizers.pre_tokenizers import ByteLevel
chars = ByteLevel.alphabet()
chars = sorted(chars)
toks = ["<|endoftext|>", "<s>", "</s>"] + chars + ["He", "ll", "Hell", "Hello", "\u0120w", "or", "\u0120wor", "ld", "\u0120world"]
types = [C, C, C] + [N]*(len(toks)-3)
merges = ["H e", "l l", "He ll", "Hell o", "\u0120 w", "o r", "\u0120w or", "l d", "\u0120wor ld"]
w(os.path.join(out, "vocab-bpe.gguf"), "gpt2", "smollm", toks, types, merges=merges)
# WordPiece (bert)
toks = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "\u2581hello", "\u2581world", "\u2581caf", "##e", ",", "!"]
types = [C, U, C, C] + [N]*6
w(os.path.join(out, "vocab-wpm.gguf"), "bert", None, toks, types, extra=lambda g: (g.add_sep_token_id(3), g.add_unk_token_id(1), g.add_pad_token_id(0)))
