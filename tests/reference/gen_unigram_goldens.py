#!/usr/bin/env python3
"""Golden token ids for loom's Unigram tokenizers, from Hugging Face `tokenizers` (the reference).

    tests/reference/setup-venv
    tests/reference/.venv/bin/python tests/reference/gen_unigram_goldens.py     # ~1 min

No real Unigram tokenizer.json is at hand (no model hub access), so the files are made here the
way transformers makes them: SentencePiece Unigram models are trained on the golden corpus with
the `sentencepiece` package (default nmt_nfkc normalization, so the precompiled_charsmap is a real
one), then converted to tokenizer.json with transformers' own converters
(transformers.convert_slow_tokenizer). Families:

  unigram-t5   T5Converter: Precompiled + Strip(right) + Replace(" {2,}" -> "▁") normalizer,
               Metaspace(prepend_scheme "always") pre-tokenizer and decoder, "$A </s>" template;
               <pad>, </s>, <unk> and <extra_id_0..4> special added tokens, as T5TokenizerFast has.
  unigram-bf   SentencePiece trained with byte_fallback, converted by
               SpmConverter.build_tokenizer_from_spm_proto (transformers' path for a bare .model):
               Unigram(byte_fallback), Precompiled + Replace(" " -> "▁"), no pre-tokenizer,
               Replace/ByteFallback/Fuse decoder; <s>, </s>, <unk> special, "<s> $A" template.
  unigram-ws   the unigram-t5 model with another pipeline: Lowercase + Strip(both) normalizer,
               Sequence[WhitespaceSplit, Metaspace(prepend_scheme "first", split true)], Metaspace
               decoder (first), no added tokens (so "</s>" in a text is matched as a vocabulary piece).

Writes, in tests/reference/golden/tokenize/:
  <family>.jsonl.zst                 same fields as gen_tokenizer_goldens.py: id, ids, ids_special,
                                     offsets (code points), decoded
  files/<family>.tokenizer.json.zst  the tokenizer definitions
  files/<family>.model.zst           the trained SentencePiece models (unigram-t5 and unigram-ws share one)
  unigram-MANIFEST.json              versions, corpus sha256, per family sha256 / counts

Deterministic: training is single-threaded on the corpus in order; rerunning writes identical bytes.
"""
import hashlib
import io
import json
import os
import sys
import tempfile
import types

# sentencepiece's generated sentencepiece_model_pb2 predates protobuf 4's C++ descriptors
os.environ.setdefault("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION", "python")

import sentencepiece as spm
import tokenizers
import transformers
import zstandard
from tokenizers import AddedToken, Tokenizer, decoders, normalizers, pre_tokenizers, processors
from transformers.convert_slow_tokenizer import SpmConverter, T5Converter, import_protobuf

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(HERE, "golden", "tokenize")
CORPUS = os.path.join(GOLDEN, "corpus.jsonl")
FILES = os.path.join(GOLDEN, "files")
LEVEL = 19


def zstd_compress(data):
    return zstandard.ZstdCompressor(level=LEVEL, threads=0, write_checksum=True).compress(data)


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def train(texts, workdir, name, **extra):
    """Trains a Unigram SentencePiece model on the corpus lines; returns the .model bytes."""
    inp = os.path.join(workdir, "train.txt")
    with open(inp, "w", encoding="utf-8") as f:
        for t in texts:
            for line in t.splitlines():
                if line.strip():
                    f.write(line + "\n")
    prefix = os.path.join(workdir, name)
    spm.SentencePieceTrainer.train(
        input=inp, model_prefix=prefix, model_type="unigram", num_threads=1,
        minloglevel=2, max_sentence_length=1 << 16, **extra)
    # the model records where it was trained (a temporary folder): name the input plainly instead
    m = proto_of(open(prefix + ".model", "rb").read())
    del m.trainer_spec.input[:]
    m.trainer_spec.input.append("corpus.jsonl texts, one line each")
    m.trainer_spec.model_prefix = name
    data = m.SerializeToString(deterministic=True)
    with open(prefix + ".model", "wb") as f:
        f.write(data)
    return data


def proto_of(model_bytes):
    m = import_protobuf().ModelProto()
    m.ParseFromString(model_bytes)
    return m


def reload(tok):
    """Round-trip through JSON so the goldens come from exactly the file that is written."""
    data = tok.to_str(pretty=True).encode("utf-8")
    return Tokenizer.from_str(data.decode("utf-8")), data


def build_t5(model_path):
    extra = [f"<extra_id_{i}>" for i in range(5)]
    sp = spm.SentencePieceProcessor(model_file=model_path)
    orig = types.SimpleNamespace(vocab_file=model_path, _extra_ids=len(extra), add_prefix_space=True, legacy=True,
                                 convert_tokens_to_ids=sp.piece_to_id)
    tok = T5Converter(orig).converted()  # post-processor "$A </s>"
    tok.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in ["<pad>", "</s>", "<unk>"] + extra])
    return reload(tok)


def build_bf(model_bytes):
    proto = proto_of(model_bytes)
    vocab = [(p.piece, p.score) for p in proto.pieces]
    tok = SpmConverter.build_tokenizer_from_spm_proto(proto, vocab)
    assert isinstance(tok.model, tokenizers.models.Unigram) and proto.trainer_spec.byte_fallback
    tok.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in ["<unk>", "<s>", "</s>"]])
    tok.post_processor = processors.TemplateProcessing(single=["<s>", "$A"], pair=["<s>", "$A", "$B"],
                                                       special_tokens=[("<s>", tok.token_to_id("<s>"))])
    return reload(tok)


def build_ws(model_bytes):
    proto = proto_of(model_bytes)
    tok = Tokenizer(tokenizers.models.Unigram([(p.piece, p.score) for p in proto.pieces], unk_id=proto.trainer_spec.unk_id,
                                              byte_fallback=False))
    tok.normalizer = normalizers.Sequence([normalizers.Lowercase(), normalizers.Strip(left=True, right=True)])
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(),
                                                 pre_tokenizers.Metaspace(prepend_scheme="first", split=True)])
    tok.decoder = decoders.Metaspace(prepend_scheme="first")
    return reload(tok)


def main():
    with open(CORPUS, encoding="utf-8") as f:
        corpus = [json.loads(line) for line in f]
    ids_ = [r["id"] for r in corpus]
    texts = [r["text"] for r in corpus]
    os.makedirs(FILES, exist_ok=True)
    families = []
    with tempfile.TemporaryDirectory() as tmp:
        nmt = train(texts, tmp, "nmt", vocab_size=8000, character_coverage=0.9995)
        bf = train(texts, tmp, "bf", vocab_size=4000, character_coverage=0.995, byte_fallback=True)
        nmt_path = os.path.join(tmp, "nmt.model")
        tok, data = build_t5(nmt_path)
        families.append(("unigram-t5", tok, data, "nmt", nmt))
        tok, data = build_bf(bf)
        families.append(("unigram-bf", tok, data, "bf", bf))
        tok, data = build_ws(nmt)
        families.append(("unigram-ws", tok, data, "nmt", nmt))
    manifest = {
        "generator": "tests/reference/gen_unigram_goldens.py",
        "tokenizers_version": tokenizers.__version__,
        "transformers_version": transformers.__version__,
        "sentencepiece_version": spm.__version__,
        "corpus": {"path": "tests/reference/golden/tokenize/corpus.jsonl",
                   "sha256": sha256(open(CORPUS, "rb").read()), "records": len(corpus)},
        "families": {},
    }
    for fam, tok, data, model_name, model_bytes in families:
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
        with open(os.path.join(GOLDEN, f"{fam}.jsonl.zst"), "wb") as f:
            f.write(zstd_compress(buf.getvalue().encode("utf-8")))
        with open(os.path.join(FILES, f"{fam}.tokenizer.json.zst"), "wb") as f:
            f.write(zstd_compress(data))
        with open(os.path.join(FILES, f"unigram-{model_name}.model.zst"), "wb") as f:
            f.write(zstd_compress(model_bytes))
        unk = tok.model.unk_id if hasattr(tok.model, "unk_id") else None
        manifest["families"][fam] = {
            "tokenizer_file": f"tests/reference/golden/tokenize/files/{fam}.tokenizer.json.zst",
            "tokenizer_sha256": sha256(data),
            "tokenizer_bytes": len(data),
            "sentencepiece_model": f"tests/reference/golden/tokenize/files/unigram-{model_name}.model.zst",
            "sentencepiece_model_sha256": sha256(model_bytes),
            "records": len(corpus),
            "tokens": sum(len(x) for x in ids),
            "tokens_special": sum(len(e.ids) for e in enc_sp),
            "vocab_size": tok.get_vocab_size(with_added_tokens=True),
            "decode_roundtrip_mismatches": len(mismatches),
            "golden": f"tests/reference/golden/tokenize/{fam}.jsonl.zst",
        }
        print(f"{fam:11s} tokens={manifest['families'][fam]['tokens']:8d} decode!=text: {len(mismatches):5d}",
              file=sys.stderr)
    with open(os.path.join(GOLDEN, "unigram-MANIFEST.json"), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2, ensure_ascii=False)
        f.write("\n")


if __name__ == "__main__":
    main()
