#!/usr/bin/env python3
"""Vocabulary-only GGUF files for five more tokenizer families, and what llama.cpp makes of the
golden corpus with them (through `llama-cpp-python`, pinned in tests/reference/requirements.txt).

    tests/reference/setup-venv
    tests/reference/.venv/bin/python tests/reference/gen_gguf_vocab_goldens.py

No GGUF model of these families is at hand, so the files are built here from the Hugging Face
tokenizer files the other goldens use, the way llama.cpp's convert_hf_to_gguf.py lays them out:

  llama3  $SHARED/llama3.tokenizer.json.zst   gpt2 (byte-level BPE), pre "llama-bpe", add_bos
  qwen3   $SHARED/qwen3.tokenizer.json.zst    gpt2, pre "qwen2", no BOS
  gpt2    $SHARED/gpt2.encoder.json.zst       gpt2, pre "gpt-2"
          + $SHARED/gpt2.vocab.bpe.zst
  llama2  $SHARED/llama2.tokenizer.json.zst   llama (SentencePiece BPE), space prefix, add_bos
  minilm  files/minilm.tokenizer.json.zst     bert (WordPiece, all-MiniLM-L6-v2, uncased)

($SHARED is /work/shared/tokenizers, or $LOOM_SHARED_TOKENIZERS; when a file is not there, the
identical copy committed in tests/reference/golden/tokenize/files/ is used.)

Writes, in tests/reference/golden/tokenize:
  files/<name>.vocab.gguf.zst  the GGUF (version 3, no tensors): general.architecture "llama",
                               a few placeholder llama.* hyperparameters (llama.cpp reads them
                               even with vocab_only) and the tokenizer.ggml.* keys
  gguf-<name>.jsonl.zst        one line per corpus record, in corpus order:
                                 {"id", "ids", "ids_bos", "ids_nospecial", "detok_llama"}
                               with the same meaning as in gguf-<smollm2|gemma3>.jsonl.zst
                               (gen_gguf_tokenizer_goldens.py): llm.tokenize(text.encode(),
                               add_bos=False/True, special=True/False) and llama_detokenize(ids,
                               remove_special=False, unparse_special=True).decode(errors="replace")
  gguf-vocab-MANIFEST.json     llama-cpp-python / llama.cpp / gguf versions, corpus sha256, and
                               per family: sources with sha256 (of the decompressed content), the
                               GGUF's sha256, size and tokenizer.ggml.* settings, token counts,
                               ids of the records whose detok_llama differs from the text
                               (null when over MAX_LISTED: minilm lowercases everything)

Deterministic: the same corpus, sources, gguf package and llama.cpp give the same bytes (zstd
level 19, single-threaded, with checksum). The GGUF llama.cpp reads is the very file compressed.
"""
import hashlib
import io
import json
import os
import sys
import tempfile

import gguf
import llama_cpp
import zstandard

# Helpers shared with the GGUF-model goldens (same folder): zstd settings, manifest metadata,
# llama_detokenize with a large enough buffer, and the corpus' JSON line style.
from gen_gguf_tokenizer_goldens import (dump_line, gguf_meta, llama_cpp_commit, llama_detokenize,
                                        sha256_file, zstd_compress)

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(HERE, "golden", "tokenize")
CORPUS = os.path.join(GOLDEN, "corpus.jsonl")
FILES = os.path.join(GOLDEN, "files")
SHARED = os.environ.get("LOOM_SHARED_TOKENIZERS", "/work/shared/tokenizers")
REL = "tests/reference/golden/tokenize/"
MAX_LISTED = 1000  # the manifest lists the records whose detok_llama differs up to this many

# llama.cpp's loader reads the architecture's hyperparameters before the vocabulary, even for
# Llama(vocab_only=True); these (SmolLM2-135M's) only have to be consistent, nothing uses them.
LLAMA_HPARAMS = (
    ("llama.context_length", "u32", 8192),
    ("llama.embedding_length", "u32", 576),
    ("llama.feed_forward_length", "u32", 1536),
    ("llama.block_count", "u32", 30),
    ("llama.attention.head_count", "u32", 9),
    ("llama.attention.head_count_kv", "u32", 3),
    ("llama.rope.dimension_count", "u32", 64),
    ("llama.rope.freq_base", "f32", 100000.0),
    ("llama.attention.layer_norm_rms_epsilon", "f32", 1e-5),
)


def zstd_decompress(path):
    with open(path, "rb") as f:
        return zstandard.ZstdDecompressor().stream_reader(f).read()


def source(fname, sources):
    """The decompressed bytes of <fname>.zst: from SHARED, or else the committed copy in files/.
    Appends {"file", "sha256"} to `sources` (the hash is of the content, which both copies share)."""
    shared, committed = os.path.join(SHARED, fname + ".zst"), os.path.join(FILES, fname + ".zst")
    path = shared if os.path.exists(shared) else committed
    data = zstd_decompress(path)
    sha = hashlib.sha256(data).hexdigest()
    if path == shared and os.path.exists(committed):
        assert hashlib.sha256(zstd_decompress(committed)).hexdigest() == sha, \
            f"{shared} and {committed} differ"
    shown = REL + "files/" + fname + ".zst" if path == committed else path
    sources.append({"file": shown, "sha256": sha})
    return data


def new_writer(path):
    w = gguf.GGUFWriter(path, "llama")  # writes general.architecture
    for key, kind, value in LLAMA_HPARAMS:
        (w.add_uint32 if kind == "u32" else w.add_float32)(key, value)
    return w


def finish(w):
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def build_bpe_json(path, fname, pre, bos, eos, add_bos, sources):
    """Byte-level BPE from a tokenizer.json (llama3, qwen3): model vocabulary as NORMAL tokens,
    added tokens as CONTROL (special) or USER_DEFINED (not special), merges as "a b" strings."""
    d = json.loads(source(fname, sources))
    vocab = d["model"]["vocab"]
    added = {a["id"]: a for a in d["added_tokens"]}
    n = max(list(vocab.values()) + list(added)) + 1
    toks = [f"[PAD{i}]" for i in range(n)]  # holes (none in these two) as convert_hf_to_gguf
    types = [gguf.TokenType.UNUSED] * n
    for t, i in vocab.items():
        toks[i], types[i] = t, gguf.TokenType.NORMAL
    for i, a in added.items():
        toks[i] = a["content"]
        types[i] = gguf.TokenType.CONTROL if a["special"] else gguf.TokenType.USER_DEFINED
    assert types[bos] == types[eos] == gguf.TokenType.CONTROL
    merges = [m if isinstance(m, str) else " ".join(m) for m in d["model"]["merges"]]
    w = new_writer(path)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(pre)
    w.add_token_list(toks)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(bos)
    w.add_eos_token_id(eos)
    w.add_add_bos_token(add_bos)
    finish(w)


def build_gpt2(path, sources):
    """GPT-2 from the original encoder.json + vocab.bpe; <|endoftext|> (50256) is CONTROL."""
    enc = json.loads(source("gpt2.encoder.json", sources))
    lines = source("gpt2.vocab.bpe", sources).decode("utf-8").split("\n")
    merges = [l for l in lines if l and not l.startswith("#version")]
    toks = [None] * len(enc)
    for t, i in enc.items():
        toks[i] = t
    types = [gguf.TokenType.NORMAL] * len(enc)
    types[50256] = gguf.TokenType.CONTROL
    assert toks[50256] == "<|endoftext|>" and None not in toks
    w = new_writer(path)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt-2")
    w.add_token_list(toks)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(50256)
    w.add_eos_token_id(50256)
    finish(w)


def build_spm(path, fname, sources):
    """SentencePiece BPE (llama2) from its tokenizer.json: the pieces in id order, <0xXX> as BYTE,
    <unk> UNKNOWN, the other added tokens (<s>, </s>) CONTROL. tokenizer.json has no scores; the
    pieces' ids are their merge ranks, so score -id orders them as tokenizer.model's scores do."""
    d = json.loads(source(fname, sources))
    vocab = d["model"]["vocab"]
    n = max(vocab.values()) + 1
    toks = [None] * n
    types = [gguf.TokenType.NORMAL] * n
    scores = [0.0] * n
    for t, i in vocab.items():
        toks[i], scores[i] = t, -float(i)
        if t.startswith("<0x") and len(t) == 6:
            types[i] = gguf.TokenType.BYTE
    for a in d["added_tokens"]:
        i = a["id"]
        types[i] = gguf.TokenType.UNKNOWN if a["content"] == "<unk>" else gguf.TokenType.CONTROL
        scores[i] = 0.0
    assert None not in toks and toks[:3] == ["<unk>", "<s>", "</s>"]
    w = new_writer(path)
    w.add_tokenizer_model("llama")
    w.add_tokenizer_pre("default")
    w.add_token_list(toks)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    w.add_add_space_prefix(True)
    finish(w)


def build_bert(path, fname, sources):
    """WordPiece (minilm) as convert_hf_to_gguf's BertModel.set_vocab writes it ("phantom space"
    vocabulary): the added special tokens ([PAD] [UNK] [CLS] [SEP] [MASK]) CONTROL and as they are;
    every other token NORMAL, "##x" continuation pieces as "x" and the rest as "▁" + token (a word
    start; [unused0] and the like too)."""
    d = json.loads(source(fname, sources))
    vocab = d["model"]["vocab"]
    special = {a["id"] for a in d["added_tokens"] if a["special"]}
    n = max(vocab.values()) + 1
    toks = [None] * n
    types = [gguf.TokenType.NORMAL] * n
    for t, i in vocab.items():
        if i in special:
            toks[i], types[i] = t, gguf.TokenType.CONTROL
        elif t.startswith("##"):
            toks[i] = t[2:]
        else:
            toks[i] = "\u2581" + t
    assert None not in toks and len(set(toks)) == n, "phantom-space conversion made duplicates"
    assert toks[100:103] == ["[UNK]", "[CLS]", "[SEP]"]
    w = new_writer(path)
    w.add_tokenizer_model("bert")
    w.add_token_list(toks)
    w.add_token_types(types)
    w.add_bos_token_id(101)  # [CLS]
    w.add_unk_token_id(100)
    w.add_sep_token_id(102)
    w.add_pad_token_id(0)
    finish(w)


FAMILIES = {
    "llama3": lambda p, s: build_bpe_json(p, "llama3.tokenizer.json", "llama-bpe", 128000, 128001,
                                          True, s),
    "qwen3": lambda p, s: build_bpe_json(p, "qwen3.tokenizer.json", "qwen2", 151643, 151645,
                                         False, s),
    "gpt2": build_gpt2,
    "llama2": lambda p, s: build_spm(p, "llama2.tokenizer.json", s),
    "minilm": lambda p, s: build_bert(p, "minilm.tokenizer.json", s),
}


def main():
    with open(CORPUS, encoding="utf-8") as f:
        corpus = [json.loads(line) for line in f]
    try:
        from importlib.metadata import version
        gguf_version = version("gguf")
    except Exception:
        gguf_version = None
    manifest = {
        "generator": "tests/reference/gen_gguf_vocab_goldens.py",
        "llama_cpp_python_version": llama_cpp.__version__,
        "llama_cpp_commit": llama_cpp_commit(),
        "gguf_version": gguf_version,
        "corpus": {"path": REL + "corpus.jsonl", "sha256": sha256_file(CORPUS),
                   "records": len(corpus)},
        "calls": {
            "load": "llama_cpp.Llama(model_path=<the decompressed .vocab.gguf>, vocab_only=True, "
                    "verbose=False)",
            "ids": "llm.tokenize(text.encode('utf-8'), add_bos=False, special=True)",
            "ids_bos": "llm.tokenize(text.encode('utf-8'), add_bos=True, special=True)",
            "ids_nospecial": "llm.tokenize(text.encode('utf-8'), add_bos=False, special=False)",
            "detok_llama": "llama_detokenize(vocab, ids, remove_special=False, unparse_special=True)"
                           ".decode('utf-8', errors='replace')",
        },
        "families": {},
    }
    with tempfile.TemporaryDirectory(prefix="loom-gguf-vocab-") as tmp:
        for name, build in FAMILIES.items():
            path = os.path.join(tmp, name + ".gguf")
            sources = []
            build(path, sources)
            with open(path, "rb") as f:
                gguf_bytes = f.read()
            gguf_out = os.path.join(FILES, name + ".vocab.gguf.zst")
            with open(gguf_out, "wb") as f:
                f.write(zstd_compress(gguf_bytes))

            llm = llama_cpp.Llama(model_path=path, vocab_only=True, verbose=False)
            buf = io.StringIO()
            n_ids = n_bos = n_nosp = 0
            mism = []
            for r in corpus:
                b = r["text"].encode("utf-8")
                ids = llm.tokenize(b, add_bos=False, special=True)
                ids_bos = llm.tokenize(b, add_bos=True, special=True)
                ids_nosp = llm.tokenize(b, add_bos=False, special=False)
                detok = llama_detokenize(llm, ids).decode("utf-8", errors="replace")
                buf.write(dump_line({"id": r["id"], "ids": ids, "ids_bos": ids_bos,
                                     "ids_nospecial": ids_nosp, "detok_llama": detok}))
                n_ids += len(ids)
                n_bos += len(ids_bos)
                n_nosp += len(ids_nosp)
                if detok != r["text"]:
                    mism.append(r["id"])
            golden_out = os.path.join(GOLDEN, f"gguf-{name}.jsonl.zst")
            with open(golden_out, "wb") as f:
                f.write(zstd_compress(buf.getvalue().encode("utf-8")))
            entry = {
                "sources": sources,
                "gguf": REL + f"files/{name}.vocab.gguf.zst",
                "gguf_sha256": hashlib.sha256(gguf_bytes).hexdigest(),
                "gguf_bytes": len(gguf_bytes),
                "gguf_zst_bytes": os.path.getsize(gguf_out),
                "metadata": gguf_meta(path),
                "n_vocab": llm.n_vocab(),
                "token_bos": llm.token_bos(),
                "token_eos": llm.token_eos(),
                "records": len(corpus),
                "tokens": n_ids,
                "tokens_bos": n_bos,
                "tokens_nospecial": n_nosp,
                "detok_llama_mismatches": len(mism),
                # minilm (uncased) differs nearly everywhere: no list then
                "detok_llama_mismatch_ids": mism if len(mism) <= MAX_LISTED else None,
                "golden": REL + f"gguf-{name}.jsonl.zst",
                "golden_bytes": os.path.getsize(golden_out),
            }
            manifest["families"][name] = entry
            del llm
            print(f"{name:8s} tokens={n_ids:8d} bos={n_bos:8d} nospecial={n_nosp:8d} "
                  f"detok_llama!=text: {len(mism):4d}  gguf.zst {entry['gguf_zst_bytes']} bytes, "
                  f"golden {entry['golden_bytes']} bytes", file=sys.stderr)
    with open(os.path.join(GOLDEN, "gguf-vocab-MANIFEST.json"), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2, ensure_ascii=False)
        f.write("\n")


if __name__ == "__main__":
    main()
