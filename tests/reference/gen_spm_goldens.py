#!/usr/bin/env python3
"""Golden tokenizations for SentencePiece .model files, from the `sentencepiece` Python package.

    tests/reference/setup-venv
    tests/reference/.venv/bin/python tests/reference/gen_spm_goldens.py            # ~10 s
    tests/reference/.venv/bin/python tests/reference/gen_spm_goldens.py --train build/bin   # retrain first

Models (tests/reference/golden/tokenize/files/<name>.model) are inputs, trained once on the lines of
the corpus texts (each text split at "\\n", empty lines dropped: what `loom tokenize train` feeds
sentencepiece, and what spm_train reads from a text file):
  loom-unigram       `loom tokenize train` Unigram, 8000 pieces, nmt_nfkc, <unk> for rare characters
  loom-bpe           `loom tokenize train` BPE, 4000 pieces, byte fallback, split digits,
                     user-defined <|im_start|> and <|im_end|>
  spmtrain-bpe       spm_train (Debian sentencepiece 0.1.97) BPE the way Llama's is made: identity
                     normalization, whitespace kept, byte fallback, split digits, whitespace-only
                     pieces, user-defined <|endoftext|>, control <|eot_id|>
  spmtrain-unigram   spm_train Unigram, 3000 pieces, nmt_nfkc_cf (case folding), no dummy prefix,
                     character coverage 0.98, T5's special ids (<pad> 0, </s> 1, <unk> 2, no <s>)
With --train BIN_DIR the models are trained again (BIN_DIR/loom-tokenize, spm_train on PATH) and,
for the two loom models, spm_train is run with the same options on the same lines: its .vocab must
be byte-identical to loom's (written as files/<name>.spm_train.vocab.zst, the CLI test
tokenize-train-parity compares a fresh `loom tokenize train` against it).

Writes, in tests/reference/golden/tokenize/:
  spm-<name>.jsonl.zst  one line per corpus record, in corpus order:
                          {"id", "ids", "ids_special", "pieces", "offsets", "decoded"}
                        ids          sp.encode(text)                       (no BOS/EOS)
                        ids_special  sp.encode(text, add_bos=True) when the model has <s>, else
                                     sp.encode(text, add_eos=True) when it has </s>
                        pieces       sp.encode(text, out_type=str)  (an <unk> piece is the text it covers)
                        offsets      [[begin, end], ...] of sp.encode_as_immutable_proto(text): spans
                                     of the text in characters (code points), as sentencepiece
                                     reports them (a piece without surface has begin == end)
                        decoded      sp.decode(ids)
  spm-MANIFEST.json     sentencepiece version, corpus sha256, per model: sha256, size, how it was
                        trained, vocabulary size, special ids, token counts, decode != text count

Deterministic: the same corpus and models give the same bytes (zstd level 19).
"""
import argparse
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile

import sentencepiece
import zstandard

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(HERE, "golden", "tokenize")
CORPUS = os.path.join(GOLDEN, "corpus.jsonl")
FILES = os.path.join(GOLDEN, "files")
LEVEL = 19

# name -> (trainer, options for that trainer, the same options for spm_train or None)
MODELS = {
    "loom-unigram": ("loom-tokenize train", ["--model-type", "unigram", "--vocab-size", "8000"],
                     ["--model_type=unigram", "--vocab_size=8000"]),
    "loom-bpe": ("loom-tokenize train",
                 ["--model-type", "bpe", "--vocab-size", "4000", "--character-coverage", "0.995",
                  "--byte-fallback", "--split-digits", "--user-defined-symbols", "<|im_start|>,<|im_end|>"],
                 ["--model_type=bpe", "--vocab_size=4000", "--character_coverage=0.995",
                  "--byte_fallback=true", "--split_digits=true",
                  "--user_defined_symbols=<|im_start|>,<|im_end|>"]),
    "spmtrain-bpe": ("spm_train",
                     ["--model_type=bpe", "--vocab_size=6000", "--character_coverage=0.99995",
                      "--byte_fallback=true", "--normalization_rule_name=identity",
                      "--remove_extra_whitespaces=false", "--split_digits=true",
                      "--allow_whitespace_only_pieces=true", "--user_defined_symbols=<|endoftext|>",
                      "--control_symbols=<|eot_id|>"], None),
    "spmtrain-unigram": ("spm_train",
                         ["--model_type=unigram", "--vocab_size=3000", "--character_coverage=0.98",
                          "--normalization_rule_name=nmt_nfkc_cf", "--add_dummy_prefix=false",
                          "--pad_id=0", "--eos_id=1", "--unk_id=2", "--bos_id=-1"], None),
}


def zstd_compress(data):
    return zstandard.ZstdCompressor(level=LEVEL, threads=0, write_checksum=True).compress(data)


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def corpus_lines(texts):
    """The training sentences: every non-empty line ("\\n"-separated, bytes) of every text."""
    out = []
    for t in texts:
        out.extend(l for l in t.encode("utf-8").split(b"\n") if l)
    return out


def train(bin_dir, texts):
    loom = os.path.join(bin_dir, "loom-tokenize")
    spm_train = shutil.which("spm_train")
    if not spm_train:
        sys.exit("gen_spm_goldens: --train needs spm_train (Debian package `sentencepiece`)")
    with tempfile.TemporaryDirectory() as tmp:
        lines = os.path.join(tmp, "lines.txt")
        with open(lines, "wb") as f:
            f.write(b"".join(l + b"\n" for l in corpus_lines(texts)))

        def run_spm(prefix, opts):
            subprocess.run([spm_train, f"--input={lines}", f"--model_prefix={prefix}",
                            "--minloglevel=2", *opts], check=True)

        for name, (trainer, opts, spm_opts) in MODELS.items():
            out = os.path.join(FILES, name)
            if trainer == "spm_train":
                run_spm(os.path.join(tmp, name), opts)
                shutil.copy(os.path.join(tmp, name + ".model"), out + ".model")
            else:
                subprocess.run([loom, "train", "-q", "-i", CORPUS, "-o", out + ".model", *opts],
                               check=True)
                run_spm(os.path.join(tmp, name), spm_opts)
                with open(os.path.join(tmp, name + ".vocab"), "rb") as f:
                    ref_vocab = f.read()
                with open(out + ".vocab", "rb") as f:
                    if f.read() != ref_vocab:
                        sys.exit(f"gen_spm_goldens: {name}: loom's .vocab differs from spm_train's")
                os.remove(out + ".vocab")  # identical to the reference's, kept below
                with open(out + ".spm_train.vocab.zst", "wb") as f:
                    f.write(zstd_compress(ref_vocab))
            print(f"trained {name}", file=sys.stderr)


def spans(sp, text):
    p = sp.encode_as_immutable_proto(text)
    return [[x.begin, x.end] for x in p.pieces]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--train", metavar="BIN_DIR", help="retrain the models first (loom-tokenize from BIN_DIR)")
    args = ap.parse_args()
    with open(CORPUS, encoding="utf-8") as f:
        corpus = [json.loads(line) for line in f]
    texts = [r["text"] for r in corpus]
    if args.train:
        train(args.train, texts)
    manifest = {
        "generator": "tests/reference/gen_spm_goldens.py",
        "sentencepiece_version": sentencepiece.__version__,
        "corpus": {"path": "tests/reference/golden/tokenize/corpus.jsonl",
                   "sha256": sha256(open(CORPUS, "rb").read()), "records": len(corpus),
                   "training_lines": len(corpus_lines(texts))},
        "models": {},
    }
    for name, (trainer, opts, spm_opts) in MODELS.items():
        path = os.path.join(FILES, name + ".model")
        with open(path, "rb") as f:
            data = f.read()
        sp = sentencepiece.SentencePieceProcessor(model_proto=data)
        buf = io.StringIO()
        mismatches, tokens, unks = [], 0, 0
        for r, text in zip(corpus, texts):
            ids = sp.encode(text)
            if sp.bos_id() >= 0:
                ids_special = sp.encode(text, add_bos=True)
            elif sp.eos_id() >= 0:
                ids_special = sp.encode(text, add_eos=True)
            else:
                ids_special = ids
            decoded = sp.decode(ids)
            rec = {"id": r["id"], "ids": ids, "ids_special": ids_special,
                   "pieces": sp.encode(text, out_type=str), "offsets": spans(sp, text),
                   "decoded": decoded}
            assert len(rec["offsets"]) == len(ids) == len(rec["pieces"])
            buf.write(json.dumps(rec, ensure_ascii=False, separators=(",", ":"))
                      .replace("\u0085", "\\u0085").replace("\u2028", "\\u2028")
                      .replace("\u2029", "\\u2029"))
            buf.write("\n")
            tokens += len(ids)
            unks += sum(1 for i in ids if i == sp.unk_id())
            if decoded != text:
                mismatches.append(r["id"])
        out = os.path.join(GOLDEN, f"spm-{name}.jsonl.zst")
        with open(out, "wb") as f:
            f.write(zstd_compress(buf.getvalue().encode("utf-8")))
        manifest["models"][name] = {
            "model": f"tests/reference/golden/tokenize/files/{name}.model",
            "sha256": sha256(data),
            "bytes": len(data),
            "trained_by": trainer,
            "training_options": opts,
            "spm_train_vocab_identical": (f"tests/reference/golden/tokenize/files/{name}.spm_train.vocab.zst"
                                          if spm_opts else None),
            "vocab_size": sp.get_piece_size(),
            "ids": {"unk": sp.unk_id(), "bos": sp.bos_id(), "eos": sp.eos_id(), "pad": sp.pad_id()},
            "tokens": tokens,
            "unk_tokens": unks,
            "decode_roundtrip_mismatches": len(mismatches),
            "golden": f"tests/reference/golden/tokenize/spm-{name}.jsonl.zst",
        }
        print(f"{name:17s} tokens={tokens:8d} unk={unks:6d} decode!=text: {len(mismatches):5d} "
              f"({', '.join(mismatches[:6])}{', ...' if len(mismatches) > 6 else ''})  "
              f"{os.path.getsize(out)} bytes", file=sys.stderr)
    with open(os.path.join(GOLDEN, "spm-MANIFEST.json"), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2, ensure_ascii=False)
        f.write("\n")


if __name__ == "__main__":
    main()
