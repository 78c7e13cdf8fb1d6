#!/usr/bin/env python3
"""Deterministic inputs of bench-retrieve (run with tests/bench/.venv's python: numpy, orjson, bm25s).

  gen-retrieve-data.py vectors N DIM Q CORPUS.jsonl QUERIES.jsonl
      N records {"id": "v<i>", "embedding": [...]} and Q queries {"id": "q<i>", "embedding": [...]}:
      unit vectors with cluster structure (max(16, N/100) random centres, each vector a centre plus
      Gaussian noise, normalized), float32 written as JSON arrays (orjson's shortest float32
      digits, as a reader parsing to float32 gets them back exactly). Queries are drawn the same way
      from the same centres. Also writes CORPUS.npy and QUERIES.npy (the same float32 values).

  gen-retrieve-data.py bm25 N Q CORPUS.jsonl QUERIES.jsonl [--lists DIR]
      N records {"id": package, "text": description, "embedding": [4 small floats]}: Debian package
      descriptions, as tests/reference/gen_bm25_goldens.py makes them (the long Description-en of
      apt's Translation-en lists, continuation lines joined, " ." an empty line; the package names
      sorted and every k-th taken, k = count // N). Without --lists, apt-get update fetches the lists
      (Acquire::Languages=en) into a private temporary folder, leaving the system's alone; if that
      fails, the system's lists are used (one-line descriptions where Translation-en is absent: said
      on stderr). The tiny vector is there because loom index build wants one per record. Q queries
      {"id": "q<i>", "text": ...}: 1-5 words taken in a row from a random description, at least one
      of them not a stop word.
"""
import os
import random
import re
import subprocess
import sys
import tempfile

import numpy as np
import orjson

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference"))
import debian_descriptions  # noqa: E402 (tests/reference: the golden corpus is read the same way)


def vectors(n, dim, q, corpus, queries):
    rng = np.random.default_rng(20251207)
    k = max(16, n // 100)
    centres = rng.standard_normal((k, dim), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)

    def draw(count, prefix, path):
        out = np.empty((count, dim), dtype=np.float32)
        with open(path, "wb") as f:
            for lo in range(0, count, 10000):
                hi = min(count, lo + 10000)
                x = centres[rng.integers(0, k, hi - lo)] + 0.08 * rng.standard_normal((hi - lo, dim), dtype=np.float32)
                x /= np.linalg.norm(x, axis=1, keepdims=True)
                out[lo:hi] = x
                f.write(b"".join(orjson.dumps({"id": f"{prefix}{lo + i}", "embedding": x[i]},
                                              option=orjson.OPT_SERIALIZE_NUMPY) + b"\n" for i in range(hi - lo)))
        np.save(path[:-len(".jsonl")] + ".npy" if path.endswith(".jsonl") else path + ".npy", out)

    draw(n, "v", corpus)
    draw(q, "q", queries)


def bm25(n, q, corpus, queries, lists):
    import bm25s.stopwords
    with tempfile.TemporaryDirectory() as tmp:
        if lists is None:
            try:
                lists = debian_descriptions.fetch_lists(tmp, quiet=True)
            except (subprocess.CalledProcessError, OSError):
                print("gen-retrieve-data: apt-get update failed; using the system's lists", file=sys.stderr)
                lists = None
        packages, translations = debian_descriptions.read(lists, tmp)
    names = sorted(packages)
    step = len(names) // n
    if step < 1:
        sys.exit(f"gen-retrieve-data: only {len(names)} packages in apt's lists; {n} wanted")
    if not translations:
        print("gen-retrieve-data: no Translation-en lists: one-line descriptions", file=sys.stderr)
    rng = random.Random(20251207)
    texts = []
    with open(corpus, "wb") as f:
        for name in names[::step][:n]:
            short, md5 = packages[name]
            text = debian_descriptions.joined_description(translations.get((name, md5), short))
            texts.append(text)
            vec = [round(rng.uniform(-1, 1), 4) for _ in range(4)]
            f.write(orjson.dumps({"id": name, "text": text, "embedding": vec}) + b"\n")
    stop = set(bm25s.stopwords.STOPWORDS_EN)
    word = re.compile(r"\w[\w'+.-]*\w|\w")
    with open(queries, "wb") as f:
        i = 0
        while i < q:
            ws = word.findall(rng.choice(texts))
            if not ws:
                continue
            m = rng.randint(1, min(5, len(ws)))
            j = rng.randint(0, len(ws) - m)
            pick = ws[j:j + m]
            if not any(len(w) > 1 and w.lower() not in stop for w in pick):
                continue
            f.write(orjson.dumps({"id": f"q{i}", "text": " ".join(pick)}) + b"\n")
            i += 1


def main():
    a = sys.argv[1:]
    if a[:1] == ["vectors"] and len(a) == 6:
        vectors(int(a[1]), int(a[2]), int(a[3]), a[4], a[5])
    elif a[:1] == ["bm25"] and len(a) in (5, 7):
        lists = a[6] if len(a) == 7 and a[5] == "--lists" else None
        bm25(int(a[1]), int(a[2]), a[3], a[4], lists)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
