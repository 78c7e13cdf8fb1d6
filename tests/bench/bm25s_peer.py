#!/usr/bin/env python3
"""The bm25s peer of bench-retrieve: BM25 as loom scores it (bm25s method="lucene", k1 1.5, b 0.75,
bm25s.tokenize with its English stop words and PyStemmer's english stemmer). Prints one JSON object
of timings (seconds, timed inside Python: the interpreter's start and the imports are not counted).

  bm25s_peer.py build CORPUS OUTDIR
      read (records {"id", "text", ...} parsed with orjson), tokenize (bm25s.tokenize of every
      text), index (BM25(method="lucene").index), save (retriever.save with the corpus {"id",
      "text"}, as bm25s keeps documents beside its index). bm25s tokenizes and indexes on one thread
      (it has no threads option there).
      {"read", "tokenize", "index", "save", "total", "n"}

  bm25s_peer.py search INDEXDIR QUERIES OUT [--threads N] [-k K] [--backend numpy|numba]
      load (BM25.load with the corpus), read (query records), tokenize (bm25s.tokenize of the query
      texts), search (retriever.retrieve, n_threads N), write (each query record with "hits":
      [{"id", "score", "rank", "text"}] as loom retrieve adds them, documents scoring 0 left out as
      loom leaves them out; orjson). With --backend numba the JIT compilation is done by a retrieve
      of one query before the clock starts; its time is reported as "jit".
      {"load", "read", "tokenize", "search", "write", "total", "jit", "nq"}
"""
import argparse
import json
import os
import time

import numpy as np
import orjson
import bm25s
import Stemmer


def tokenize(texts):
    return bm25s.tokenize(texts, stopwords="en", stemmer=Stemmer.Stemmer("english"), show_progress=False)


def build(a):
    t0 = time.perf_counter()
    docs = []
    with open(a.corpus, "rb") as f:
        for line in f:
            rec = orjson.loads(line)
            docs.append({"id": rec["id"], "text": rec["text"]})
    t1 = time.perf_counter()
    tokens = tokenize([d["text"] for d in docs])
    t2 = time.perf_counter()
    retriever = bm25s.BM25(method="lucene", k1=1.5, b=0.75)
    retriever.index(tokens, show_progress=False)
    t3 = time.perf_counter()
    retriever.save(a.outdir, corpus=docs, show_progress=False)
    t4 = time.perf_counter()
    print(json.dumps({"read": t1 - t0, "tokenize": t2 - t1, "index": t3 - t2, "save": t4 - t3, "total": t4 - t0,
                      "n": len(docs)}))


def search(a):
    jit = 0.0
    if a.backend == "numba":
        import numba
        numba.set_num_threads(a.threads)
        warm = bm25s.BM25.load(a.indexdir, backend="numba", load_corpus=False, show_progress=False)
        with open(a.queries, "rb") as f:
            first = orjson.loads(f.readline())["text"]
        tj = time.perf_counter()
        warm.retrieve(tokenize([first]), k=a.k, n_threads=a.threads, show_progress=False)
        jit = time.perf_counter() - tj
        del warm
    t0 = time.perf_counter()
    retriever = bm25s.BM25.load(a.indexdir, backend=a.backend, load_corpus=True, show_progress=False)
    t1 = time.perf_counter()
    recs = []
    with open(a.queries, "rb") as f:
        for line in f:
            recs.append(orjson.loads(line))
    t2 = time.perf_counter()
    qtokens = tokenize([r["text"] for r in recs])
    t3 = time.perf_counter()
    res = retriever.retrieve(qtokens, k=a.k, n_threads=a.threads, show_progress=False)
    t4 = time.perf_counter()
    with open(a.out, "wb") as f:
        # with the corpus loaded, retrieve returns its documents ({"id", "text"}) best first
        for rec, drow, srow in zip(recs, res.documents, np.asarray(res.scores).tolist()):
            rec["hits"] = [{"id": d["id"], "score": s, "rank": r + 1, "text": d["text"]}
                           for r, (d, s) in enumerate(zip(drow, srow)) if s > 0]
            f.write(orjson.dumps(rec) + b"\n")
    t5 = time.perf_counter()
    print(json.dumps({"load": t1 - t0, "read": t2 - t1, "tokenize": t3 - t2, "search": t4 - t3, "write": t5 - t4,
                      "total": t5 - t0, "jit": jit, "nq": len(recs)}))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build")
    b.add_argument("corpus")
    b.add_argument("outdir")
    s = sub.add_parser("search")
    s.add_argument("indexdir")
    s.add_argument("queries")
    s.add_argument("out")
    s.add_argument("-k", type=int, default=10)
    s.add_argument("--threads", type=int, default=2)
    s.add_argument("--backend", default="numpy", choices=["numpy", "numba"])
    a = p.parse_args()
    build(a) if a.cmd == "build" else search(a)


if __name__ == "__main__":
    main()
