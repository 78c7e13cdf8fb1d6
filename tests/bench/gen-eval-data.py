#!/usr/bin/env python3
"""Deterministic inputs of bench-eval (standard library only).

  gen-eval-data.py retrieval Q HITS QRELS RUN_TREC RUN_JSONL
      Q queries ("q<i>"), each with 20-200 judged documents of grades 0-3 (most 0, about 30%
      relevant) in QRELS (TREC: "qid 0 docid rel"), and a run of HITS documents per query drawn from
      a pool of judged and unjudged ones (scores from a noisy relevance signal, rounded to 4 digits
      so ties happen; about 1% of the qrels queries absent from the run) written as a TREC run
      ("qid Q0 docid rank score tag") and as loom-retrieve records ({"id", "hits": [{"id", "score",
      "rank"}]}).
"""
import json
import random
import sys


def retrieval(nq, hits, qrels_path, trec_path, jsonl_path):
    rng = random.Random(20261207)
    with open(qrels_path, "w") as fq, open(trec_path, "w") as ft, open(jsonl_path, "w") as fj:
        for i in range(nq):
            q = f"q{i}"
            judged = {}
            for j in range(rng.randint(20, 200)):
                r = rng.random()
                judged[f"d{rng.randrange(10 ** 6)}"] = 0 if r < 0.7 else 1 if r < 0.85 else 2 if r < 0.95 else 3
            for d, rel in judged.items():
                fq.write(f"{q} 0 {d} {rel}\n")
            if rng.random() < 0.01:
                continue
            pool = list(judged) + [f"d{rng.randrange(10 ** 6)}" for _ in range(hits)]
            docs = list(dict.fromkeys(rng.sample(pool, min(len(pool), hits + 50))))[:hits]
            scored = sorted(((round(judged.get(d, 0) + rng.gauss(0, 1.5), 4), d) for d in docs), reverse=True)
            rec = []
            for rank, (s, d) in enumerate(scored, 1):
                ft.write(f"{q} Q0 {d} {rank} {s} bench\n")
                rec.append({"id": d, "score": s, "rank": rank})
            fj.write(json.dumps({"id": q, "hits": rec}) + "\n")


if __name__ == "__main__":
    if sys.argv[1] == "retrieval":
        retrieval(int(sys.argv[2]), int(sys.argv[3]), *sys.argv[4:7])
    else:
        sys.exit(f"unknown mode {sys.argv[1]}")
