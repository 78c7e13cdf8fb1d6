#!/usr/bin/env python3
"""Golden token ids for loom's tokenizers, from Hugging Face `tokenizers` (the reference).

    tests/reference/setup-venv
    python3 tests/reference/gen_tokenizer_corpus.py
    tests/reference/.venv/bin/python tests/reference/gen_tokenizer_goldens.py

Reads tests/reference/golden/tokenize/corpus.jsonl and writes, in that folder:
  <family>.jsonl.zst   one line per corpus record, in corpus order:
                         {"id", "ids", "ids_special", "offsets", "decoded"}
                       ids          encode(text, add_special_tokens=False).ids
                       ids_special  encode(text, add_special_tokens=True).ids
                       offsets      that first encoding's offsets, [[start, end], ...], in
                                    characters (Unicode code points) of the text
                       decoded      decode(ids, skip_special_tokens=False)
  MANIFEST.json        tokenizers version, and per family: source file, sha256 of the
                       tokenizer definition used, record and token counts, settings changed
  files/<name>.zst     the (decompressed) tokenizer definitions used, when under 20 MB each

Families: gpt2 (built here from encoder.json + vocab.bpe, as Hugging Face's own gpt2
tokenizer.json is: byte-level BPE, ByteLevel pre-tokenizer with add_prefix_space=False, ByteLevel
decoder and post-processor, <|endoftext|> an added special token), llama3, qwen3, llama2, gemma3
(tokenizer.json files from /work/shared/tokenizers), minilm (all-MiniLM-L6-v2's tokenizer.json,
BERT uncased WordPiece, from ~/.cache/loom/models/minilm; its truncation to 128 tokens and padding
to 128 are switched off, so ids cover the whole text).

Everything is deterministic: same corpus and tokenizer files give the same bytes (zstd level 19,
single-threaded, via the zstandard module).
"""
import hashlib
import io
import json
import os
import sys

import tokenizers
import zstandard
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
GOLDEN = os.path.join(HERE, "golden", "tokenize")
CORPUS = os.path.join(GOLDEN, "corpus.jsonl")
FILES = os.path.join(GOLDEN, "files")
SHARED = os.environ.get("LOOM_SHARED_TOKENIZERS", "/work/shared/tokenizers")
MINILM = os.path.expanduser("~/.cache/loom/models/minilm/tokenizer.json")
MAX_COPY = 20 * 1024 * 1024
LEVEL = 19


def zstd_compress(data):
    return zstandard.ZstdCompressor(level=LEVEL, threads=0, write_checksum=True).compress(data)


def zstd_decompress(path):
    with open(path, "rb") as f:
        return zstandard.ZstdDecompressor().stream_reader(f).read()


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def build_gpt2():
    """GPT-2's tokenizer from the original encoder.json + vocab.bpe, the way Hugging Face's
    gpt2 tokenizer.json defines it. Returns (Tokenizer, its tokenizer.json bytes)."""
    vocab = json.loads(zstd_decompress(os.path.join(SHARED, "gpt2.encoder.json.zst")))
    lines = zstd_decompress(os.path.join(SHARED, "gpt2.vocab.bpe.zst")).decode("utf-8").split("\n")
    merges = [tuple(l.split(" ")) for l in lines if l and not l.startswith("#version")]
    assert all(len(m) == 2 for m in merges), "malformed merges line"
    model = models.BPE(vocab=vocab, merges=merges, dropout=None, unk_token=None,
                       continuing_subword_prefix="", end_of_word_suffix="", fuse_unk=False,
                       byte_fallback=False)
    tok = Tokenizer(model)
    tok.normalizer = None
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True,
                                                 use_regex=True)
    tok.post_processor = processors.ByteLevel(add_prefix_space=True, trim_offsets=False,
                                              use_regex=True)
    tok.decoder = decoders.ByteLevel(add_prefix_space=True, trim_offsets=True, use_regex=True)
    tok.add_special_tokens([AddedToken("<|endoftext|>", single_word=False, lstrip=False,
                                       rstrip=False, normalized=True, special=True)])
    assert tok.token_to_id("<|endoftext|>") == 50256 and tok.get_vocab_size() == 50257
    assert tok.encode("Hello world").ids == [15496, 995]
    # Round-trip through JSON so the goldens come from exactly the file that is written.
    data = tok.to_str(pretty=True).encode("utf-8")
    return Tokenizer.from_str(data.decode("utf-8")), data


def load_families():
    """[(family, source description, file name in files/, tokenizer.json bytes, Tokenizer, notes)]"""
    out = []
    tok, data = build_gpt2()
    out.append(("gpt2", "built from " + os.path.join(SHARED, "gpt2.encoder.json.zst") + " + " +
                os.path.join(SHARED, "gpt2.vocab.bpe.zst"), "gpt2.tokenizer.json", data, tok, []))
    for fam in ("llama3", "qwen3", "llama2", "gemma3"):
        src = os.path.join(SHARED, f"{fam}.tokenizer.json.zst")
        data = zstd_decompress(src)
        out.append((fam, src, f"{fam}.tokenizer.json", data,
                    Tokenizer.from_str(data.decode("utf-8")), []))
    with open(MINILM, "rb") as f:
        data = f.read()
    tok = Tokenizer.from_str(data.decode("utf-8"))
    notes = []
    if tok.truncation is not None:
        notes.append(f"truncation {json.dumps(tok.truncation, sort_keys=True)} switched off")
        tok.no_truncation()
    if tok.padding is not None:
        notes.append(f"padding {json.dumps(tok.padding, sort_keys=True)} switched off")
        tok.no_padding()
    out.append(("minilm", MINILM.replace(os.path.expanduser("~"), "~"), "minilm.tokenizer.json",
                data, tok, notes))
    return out


def main():
    with open(CORPUS, encoding="utf-8") as f:
        corpus = [json.loads(line) for line in f]
    ids_ = [r["id"] for r in corpus]
    texts = [r["text"] for r in corpus]
    os.makedirs(FILES, exist_ok=True)
    manifest = {
        "generator": "tests/reference/gen_tokenizer_goldens.py",
        "tokenizers_version": tokenizers.__version__,
        "corpus": {"path": "tests/reference/golden/tokenize/corpus.jsonl",
                   "sha256": sha256(open(CORPUS, "rb").read()), "records": len(corpus),
                   "text_utf8_bytes": sum(len(t.encode("utf-8")) for t in texts)},
        "families": {},
    }
    for fam, src, fname, data, tok, notes in load_families():
        enc = tok.encode_batch(texts, add_special_tokens=False)
        enc_sp = tok.encode_batch(texts, add_special_tokens=True)
        ids = [e.ids for e in enc]
        decoded = tok.decode_batch(ids, skip_special_tokens=False)
        buf = io.StringIO()
        mismatches = []
        for rid, text, e, es, d in zip(ids_, texts, enc, enc_sp, decoded):
            rec = {"id": rid, "ids": e.ids, "ids_special": es.ids,
                   "offsets": [list(o) for o in e.offsets], "decoded": d}
            buf.write(json.dumps(rec, ensure_ascii=False, separators=(",", ":"))
                      .replace("\u0085", "\\u0085").replace("\u2028", "\\u2028")
                      .replace("\u2029", "\\u2029"))
            buf.write("\n")
            if d != text:
                mismatches.append(rid)
        out = os.path.join(GOLDEN, f"{fam}.jsonl.zst")
        with open(out, "wb") as f:
            f.write(zstd_compress(buf.getvalue().encode("utf-8")))
        entry = {
            "source": src,
            "tokenizer_file": fname,
            "tokenizer_sha256": sha256(data),
            "tokenizer_bytes": len(data),
            "copied_to": None,
            "records": len(corpus),
            "tokens": sum(len(x) for x in ids),
            "tokens_special": sum(len(e.ids) for e in enc_sp),
            "vocab_size": tok.get_vocab_size(with_added_tokens=True),
            "settings_changed": notes,
            "decode_roundtrip_mismatches": len(mismatches),
            "golden": f"tests/reference/golden/tokenize/{fam}.jsonl.zst",
        }
        if len(data) < MAX_COPY:
            dst = os.path.join(FILES, fname + ".zst")
            with open(dst, "wb") as f:
                f.write(zstd_compress(data))
            entry["copied_to"] = f"tests/reference/golden/tokenize/files/{fname}.zst"
        manifest["families"][fam] = entry
        print(f"{fam:7s} tokens={entry['tokens']:8d} special={entry['tokens_special']:8d} "
              f"decode!=text: {len(mismatches):5d} ({', '.join(mismatches[:8])}"
              f"{', ...' if len(mismatches) > 8 else ''})  {os.path.getsize(out)} bytes",
              file=sys.stderr)
    with open(os.path.join(GOLDEN, "MANIFEST.json"), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2, ensure_ascii=False)
        f.write("\n")


if __name__ == "__main__":
    main()
