#!/usr/bin/env python3
"""Golden token ids for the vocabularies stored in GGUF model files, tokenized by llama.cpp
(through the `llama-cpp-python` binding, pinned in tests/reference/requirements.txt).

    tests/reference/setup-venv
    tests/reference/.venv/bin/python tests/reference/gen_gguf_tokenizer_goldens.py

Reads tests/reference/golden/tokenize/corpus.jsonl and the models ~/.cache/loom/models/<name>.gguf
(LOOM_MODELS overrides the folder) and writes, in tests/reference/golden/tokenize:
  gguf-<name>.jsonl.zst  one line per corpus record, in corpus order:
                           {"id", "ids", "ids_bos", "ids_nospecial",
                            "detok", "detok_special", "detok_llama"}
                         ids            llm.tokenize(text.encode(), add_bos=False, special=True)
                         ids_bos        llm.tokenize(text.encode(), add_bos=True,  special=True)
                                        (llama_tokenize's add_special: BOS only where the GGUF
                                        says tokenizer.ggml.add_bos_token)
                         ids_nospecial  llm.tokenize(text.encode(), add_bos=False, special=False)
                         detok          what llm.detokenize(ids) means: the concatenated
                                        llama_token_to_piece(t, lstrip=0, special=False) of each
                                        id, less one leading space when ids[0] is BOS; control
                                        tokens (<|im_start|>, <bos>, ...) render as nothing.
                                        Computed here with a large buffer, because llama-cpp-
                                        python 0.3.36's detokenize uses a 32-byte buffer and
                                        silently drops pieces longer than 32 bytes (the manifest
                                        counts the records where that changes its output).
                         detok_special  the same with special=True (control tokens as text)
                         detok_llama    llama.cpp's own llama_detokenize(ids, remove_special=False,
                                        unparse_special=True), as common_detokenize does
                         all three:     bytes .decode("utf-8", errors="replace")
  gguf-MANIFEST.json     llama-cpp-python and llama.cpp versions, corpus sha256, and per model:
                         file sha256 and size, tokenizer.ggml.* metadata (model, pre, bos/eos
                         ids, add_bos/add_space_prefix flags, vocab size), record and token
                         counts, ids of texts whose detok differs from the text

Names: smollm2 (SmolLM2-135M-Instruct, Q4_1), gemma3 (Gemma-3-270M, Q4_K_M). Models are loaded
with Llama(model_path, vocab_only=True, verbose=False): only the vocabulary, no weights.
Deterministic: same corpus, models and llama.cpp give the same bytes (zstd level 19, one thread).
"""
import ctypes
import hashlib
import io
import json
import os
import sys

import gguf
import llama_cpp
import zstandard

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(HERE, "golden", "tokenize")
CORPUS = os.path.join(GOLDEN, "corpus.jsonl")
MODELS = os.environ.get("LOOM_MODELS") or os.path.expanduser("~/.cache/loom/models")
NAMES = ("smollm2", "gemma3")
LEVEL = 19
META_KEYS = ("tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.bos_token_id",
             "tokenizer.ggml.eos_token_id", "tokenizer.ggml.unknown_token_id",
             "tokenizer.ggml.padding_token_id", "tokenizer.ggml.add_bos_token",
             "tokenizer.ggml.add_eos_token", "tokenizer.ggml.add_space_prefix")


def zstd_compress(data):
    return zstandard.ZstdCompressor(level=LEVEL, threads=0, write_checksum=True).compress(data)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def gguf_meta(path):
    """The tokenizer.ggml.* scalars in META_KEYS and the vocabulary length, via the gguf package."""
    r = gguf.GGUFReader(path)
    out = {}
    for key in META_KEYS:
        f = r.fields.get(key)
        if f is None:
            out[key] = None
            continue
        t = f.types[0]
        v = f.parts[f.data[0]]
        if t == gguf.GGUFValueType.STRING:
            out[key] = bytes(v).decode("utf-8")
        elif t == gguf.GGUFValueType.BOOL:
            out[key] = bool(v.tolist()[0])
        else:
            out[key] = v.tolist()[0]
    tokens = r.fields.get("tokenizer.ggml.tokens")
    out["tokenizer.ggml.tokens.length"] = len(tokens.data) if tokens is not None else None
    out["general.architecture"] = bytes(
        r.fields["general.architecture"].parts[r.fields["general.architecture"].data[0]]
    ).decode("utf-8")
    return out


# The llama.cpp commit each llama-cpp-python release vendors (vendor/llama.cpp in its sdist; the
# binding does not report it at run time). Add a line when the pin in requirements.txt moves.
LLAMA_CPP_COMMITS = {"0.3.36": "0c1e57098bba43ac29e6e3b677cdceebdd22334f"}


def llama_cpp_commit():
    return LLAMA_CPP_COMMITS.get(llama_cpp.__version__) or os.environ.get("LOOM_LLAMA_CPP_COMMIT")


def piece(model, token, special):
    """llama_token_to_piece(token, lstrip=0, special) with a buffer as large as it asks for."""
    size = 64
    while True:
        buf = (ctypes.c_char * size)()
        n = llama_cpp.llama_token_to_piece(model.vocab, llama_cpp.llama_token(token), buf, size,
                                           0, special)
        if n >= 0:
            return bytes(buf[:n])
        size = -n


def detokenize(llm, tokens, special):
    """llama-cpp-python's LlamaModel.detokenize without its 32-byte piece limit."""
    model = llm._model
    out = b"".join(piece(model, t, special) for t in tokens)
    if tokens and tokens[0] == model.token_bos() and out[:1] == b" ":
        out = out[1:]
    return out


def llama_detokenize(llm, tokens):
    """llama.cpp's llama_detokenize(remove_special=False, unparse_special=True)."""
    arr = (llama_cpp.llama_token * max(1, len(tokens)))(*tokens)
    size = 4 * len(tokens) + 64
    while True:
        buf = (ctypes.c_char * size)()
        n = llama_cpp.llama_detokenize(llm._model.vocab, arr, len(tokens), buf, size, False, True)
        if n >= 0:
            return bytes(buf[:n])
        size = -n


def dump_line(rec):
    # As corpus.jsonl: UTF-8 written literally except the three line separators JSON allows raw.
    return (json.dumps(rec, ensure_ascii=False, separators=(",", ":"))
            .replace("\u0085", "\\u0085").replace("\u2028", "\\u2028")
            .replace("\u2029", "\\u2029") + "\n")


def main():
    with open(CORPUS, encoding="utf-8") as f:
        corpus = [json.loads(line) for line in f]
    manifest = {
        "generator": "tests/reference/gen_gguf_tokenizer_goldens.py",
        "llama_cpp_python_version": llama_cpp.__version__,
        "llama_cpp_commit": llama_cpp_commit(),
        "gguf_version": None,
        "corpus": {"path": "tests/reference/golden/tokenize/corpus.jsonl",
                   "sha256": sha256_file(CORPUS), "records": len(corpus)},
        "calls": {
            "load": "llama_cpp.Llama(model_path=..., vocab_only=True, verbose=False)",
            "ids": "llm.tokenize(text.encode('utf-8'), add_bos=False, special=True)",
            "ids_bos": "llm.tokenize(text.encode('utf-8'), add_bos=True, special=True)",
            "ids_nospecial": "llm.tokenize(text.encode('utf-8'), add_bos=False, special=False)",
            "detok": "llm.detokenize(ids) semantics (llama_token_to_piece(t, 0, special=False) "
                     "concatenated, one leading space dropped after BOS), unlimited piece size; "
                     ".decode('utf-8', errors='replace')",
            "detok_special": "as detok with special=True",
            "detok_llama": "llama_detokenize(vocab, ids, remove_special=False, unparse_special=True)"
                           ".decode('utf-8', errors='replace')",
        },
        "models": {},
    }
    try:
        from importlib.metadata import version
        manifest["gguf_version"] = version("gguf")
    except Exception:
        pass
    for name in NAMES:
        path = os.path.join(MODELS, name + ".gguf")
        llm = llama_cpp.Llama(model_path=path, vocab_only=True, verbose=False)
        buf = io.StringIO()
        n_ids = n_bos = n_nosp = 0
        mism, mism_sp, mism_ll, lcp_bug = [], [], [], []
        for r in corpus:
            text = r["text"]
            b = text.encode("utf-8")
            ids = llm.tokenize(b, add_bos=False, special=True)
            ids_bos = llm.tokenize(b, add_bos=True, special=True)
            ids_nosp = llm.tokenize(b, add_bos=False, special=False)
            detok_b = detokenize(llm, ids, False)
            if llm.detokenize(ids) != detok_b:
                lcp_bug.append(r["id"])
            detok = detok_b.decode("utf-8", errors="replace")
            detok_sp = detokenize(llm, ids, True).decode("utf-8", errors="replace")
            detok_ll = llama_detokenize(llm, ids).decode("utf-8", errors="replace")
            buf.write(dump_line({"id": r["id"], "ids": ids, "ids_bos": ids_bos,
                                 "ids_nospecial": ids_nosp, "detok": detok,
                                 "detok_special": detok_sp, "detok_llama": detok_ll}))
            n_ids += len(ids)
            n_bos += len(ids_bos)
            n_nosp += len(ids_nosp)
            if detok != text:
                mism.append(r["id"])
            if detok_sp != text:
                mism_sp.append(r["id"])
            if detok_ll != text:
                mism_ll.append(r["id"])
        out = os.path.join(GOLDEN, f"gguf-{name}.jsonl.zst")
        with open(out, "wb") as f:
            f.write(zstd_compress(buf.getvalue().encode("utf-8")))
        entry = {
            "model_file": f"~/.cache/loom/models/{name}.gguf",
            "model_sha256": sha256_file(path),
            "model_bytes": os.path.getsize(path),
            "metadata": gguf_meta(path),
            "n_vocab": llm.n_vocab(),
            "token_bos": llm.token_bos(),
            "token_eos": llm.token_eos(),
            "records": len(corpus),
            "tokens": n_ids,
            "tokens_bos": n_bos,
            "tokens_nospecial": n_nosp,
            "detok_mismatches": len(mism),
            "detok_mismatch_ids": mism,
            "detok_special_mismatches": len(mism_sp),
            "detok_special_mismatch_ids": mism_sp,
            "detok_llama_mismatches": len(mism_ll),
            "detok_llama_mismatch_ids": mism_ll,
            "llama_cpp_python_detokenize_differs": len(lcp_bug),
            "llama_cpp_python_detokenize_differs_ids": lcp_bug,
            "golden": f"tests/reference/golden/tokenize/gguf-{name}.jsonl.zst",
            "golden_bytes": os.path.getsize(out),
        }
        manifest["models"][name] = entry
        del llm
        print(f"{name:8s} tokens={n_ids:8d} bos={n_bos:8d} nospecial={n_nosp:8d} "
              f"detok!=text: {len(mism)} detok_special!=text: {len(mism_sp)} "
              f"detok_llama!=text: {len(mism_ll)} llm.detokenize wrong: {len(lcp_bug)} "
              f"{entry['golden_bytes']} bytes", file=sys.stderr)
    with open(os.path.join(GOLDEN, "gguf-MANIFEST.json"), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2, ensure_ascii=False)
        f.write("\n")


if __name__ == "__main__":
    main()
