#!/usr/bin/env python3
"""Metaspace with prepend_scheme "first" next to added tokens: the reference prepends U+2581 only
at the start of the whole input, not at the start of each stretch between added tokens.

Takes the committed unigram-ws tokenizer (WhitespaceSplit + Metaspace "first"), adds one ordinary
added token "<mark>" with Hugging Face tokenizers, and writes
  golden/tokenize/files/unigram-ws-mark.tokenizer.json.zst   the tokenizer
  golden/tokenize/unigram-ws-mark.jsonl                        {"text", "ids", "offsets"} per case
Run with tests/reference/.venv/bin/python (tokenizers pinned in requirements.txt)."""
import json, os
import zstandard
from tokenizers import Tokenizer, AddedToken

here = os.path.dirname(os.path.abspath(__file__))
gold = os.path.join(here, "golden", "tokenize")
src = zstandard.ZstdDecompressor().decompress(open(os.path.join(gold, "files", "unigram-ws.tokenizer.json.zst"), "rb").read(),
                                              max_output_size=1 << 28)
tok = Tokenizer.from_str(src.decode("utf-8"))
tok.add_tokens([AddedToken("<mark>", special=False)])
data = tok.to_str().encode("utf-8")
open(os.path.join(gold, "files", "unigram-ws-mark.tokenizer.json.zst"), "wb").write(zstandard.ZstdCompressor(level=19).compress(data))
cases = ["hello <mark>world", "<mark>world again", "a<mark> b<mark>c", "<mark>", " lead<mark> trail ",
         "no mark at all", "x<mark><mark>y z", "Ünïcode <mark>wörds"]
with open(os.path.join(gold, "unigram-ws-mark.jsonl"), "w", encoding="utf-8") as f:
    for text in cases:
        e = tok.encode(text, add_special_tokens=False)
        f.write(json.dumps({"text": text, "ids": e.ids, "offsets": e.offsets}, ensure_ascii=False) + "\n")
