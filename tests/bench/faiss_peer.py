#!/usr/bin/env python3
"""The FAISS-script peer of bench-retrieve: what a user writes instead of loom index build / loom
retrieve. Prints one JSON object of timings (seconds, timed inside Python: the interpreter's start
and the imports are not counted).

  faiss_peer.py build INPUT FACTORY OUTDIR [--threads N] [--metric ip|l2]
      INPUT: records {"id", "embedding": [...]} (JSONL, parsed with orjson) or a .npy matrix.
      read (parse, ids kept in order, vectors into one float32 matrix), train (factories that
      need it, on every vector), add, write (faiss.write_index + the ids as JSON).
      {"read", "train", "add", "write", "total", "n", "faiss"}

  faiss_peer.py search INDEXDIR QUERIES OUT [--threads N] [-k K] [--nprobe N] [--ef N]
      load (faiss.read_index and the ids), read (query records, parsed with orjson), search (one
      index.search of every query), write (each query record with "hits": [{"id", "score",
      "rank"}], as loom retrieve adds them, orjson, one line each; "-": none). With .npy queries
      (and .npy indexes) nothing is parsed and OUT gets the labels (a .npy), for the core timings.
      {"load", "read", "search", "write", "total", "nq"}
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import faiss

try:
    import orjson
    loads, dumps = orjson.loads, orjson.dumps
except ImportError:  # Debian's python3-faiss run: .npy inputs only
    loads = json.loads
    dumps = lambda o: json.dumps(o).encode()  # noqa: E731


def read_records(path):
    recs, vecs = [], []
    with open(path, "rb") as f:
        for line in f:
            rec = loads(line)
            vecs.append(rec["embedding"])
            recs.append(rec)
    return recs, np.array(vecs, dtype=np.float32)


def build(a):
    t0 = time.perf_counter()
    if a.input.endswith(".npy"):
        x, ids = np.load(a.input), None
    else:
        recs, x = read_records(a.input)
        ids = [r["id"] for r in recs]
        del recs
    t1 = time.perf_counter()
    metric = faiss.METRIC_INNER_PRODUCT if a.metric == "ip" else faiss.METRIC_L2
    index = faiss.index_factory(x.shape[1], a.factory, metric)
    if not index.is_trained:
        index.train(x)
    t2 = time.perf_counter()
    index.add(x)
    t3 = time.perf_counter()
    os.makedirs(a.outdir, exist_ok=True)
    faiss.write_index(index, os.path.join(a.outdir, "index.faiss"))
    if ids is not None:
        with open(os.path.join(a.outdir, "ids.json"), "wb") as f:
            f.write(dumps(ids))
    t4 = time.perf_counter()
    print(json.dumps({"read": t1 - t0, "train": t2 - t1, "add": t3 - t2, "write": t4 - t3, "total": t4 - t0,
                      "n": len(x), "faiss": faiss.__version__}))


def search(a):
    t0 = time.perf_counter()
    index = faiss.read_index(os.path.join(a.indexdir, "index.faiss"))
    ids_path = os.path.join(a.indexdir, "ids.json")
    ids = None
    if os.path.exists(ids_path):
        with open(ids_path, "rb") as f:
            ids = loads(f.read())
    ps = faiss.ParameterSpace()
    if a.nprobe:
        ps.set_index_parameter(index, "nprobe", a.nprobe)
    if a.ef:
        ps.set_index_parameter(index, "efSearch", a.ef)
    t1 = time.perf_counter()
    if a.queries.endswith(".npy"):
        recs, xq = None, np.load(a.queries)
    else:
        recs, xq = read_records(a.queries)
    t2 = time.perf_counter()
    scores, labels = index.search(xq, a.k)
    t3 = time.perf_counter()
    if recs is None:
        if a.out != "-":
            np.save(a.out, labels)
    elif a.out != "-":
        with open(a.out, "wb") as f:
            sl, ll = scores.tolist(), labels.tolist()
            for rec, srow, lrow in zip(recs, sl, ll):
                rec["hits"] = [{"id": ids[l], "score": s, "rank": r + 1}
                               for r, (s, l) in enumerate(zip(srow, lrow)) if l >= 0]
                f.write(dumps(rec) + b"\n")
    t4 = time.perf_counter()
    print(json.dumps({"load": t1 - t0, "read": t2 - t1, "search": t3 - t2, "write": t4 - t3, "total": t4 - t0,
                      "nq": len(xq)}))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build")
    b.add_argument("input")
    b.add_argument("factory")
    b.add_argument("outdir")
    b.add_argument("--metric", default="ip", choices=["ip", "l2"])
    s = sub.add_parser("search")
    s.add_argument("indexdir")
    s.add_argument("queries")
    s.add_argument("out")
    s.add_argument("-k", type=int, default=10)
    s.add_argument("--nprobe", type=int, default=0)
    s.add_argument("--ef", type=int, default=0)
    for q in (b, s):
        q.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    faiss.omp_set_num_threads(a.threads)
    build(a) if a.cmd == "build" else search(a)


if __name__ == "__main__":
    main()
