#!/usr/bin/env python3
"""Agreement of two runs' hits (bench-retrieve): the same query records, each with "hits":
[{"id", "score", ...}] best first, matched by line.

  compare_hits.py same A.jsonl B.jsonl [--tol T]
      Should be the same lists (exact search): counts the queries whose ids are identical in order,
      and those that agree up to ties: scores equal within T (absolute, as float32) at every rank,
      the id sets equal but for ids scoring within T of the last hit's score (which of equal
      scores fills the last places is arbitrary), and each id found by both with the same score. Prints {"queries", "identical", "up_to_ties",
      "differ", "max_score_diff", "first_differ"}.

  compare_hits.py recall A.jsonl EXACT.jsonl
      Approximate search: mean recall@k of A's ids against EXACT's. Prints {"queries", "recall"}.
      A may be a .npy of labels (faiss_peer.py search with .npy queries): label l is the record of
      row l, whose id gen-retrieve-data.py made "v<l>".
"""
import json
import sys

import numpy as np


def hits(path):
    with open(path, "rb") as f:
        for line in f:
            rec = json.loads(line)
            hs = rec.get("hits") or []
            yield rec.get("id"), [h["id"] for h in hs], np.array([h["score"] for h in hs], dtype=np.float32)


def same(a, b, tol):
    n = identical = ties = 0
    maxdiff = 0.0
    first = None
    for (qa, ia, sa), (qb, ib, sb) in zip(hits(a), hits(b)):
        n += 1
        if qa != qb:
            sys.exit(f"compare_hits: query {n}: ids {qa!r} and {qb!r} (not the same queries)")
        if ia == ib:
            identical += 1
        ok = len(ia) == len(ib)
        if ok and len(sa):
            d = float(np.max(np.abs(sa.astype(np.float64) - sb.astype(np.float64))))
            maxdiff = max(maxdiff, d)
            last = min(float(sa[-1]), float(sb[-1])) if sa[0] >= sa[-1] else max(float(sa[-1]), float(sb[-1]))
            if d > tol:
                ok = False
            else:
                da = {i for i, s in zip(ia, sa) if abs(float(s) - last) > tol}
                db = {i for i, s in zip(ib, sb) if abs(float(s) - last) > tol}
                ma, mb = dict(zip(ia, sa.tolist())), dict(zip(ib, sb.tolist()))
                ok = (da == db and set(ia) - set(ib) <= {i for i, s in zip(ia, sa) if abs(float(s) - last) <= tol}
                      and all(abs(ma[i] - mb[i]) <= tol for i in ma.keys() & mb.keys()))
        if ok and ia != ib:
            ties += 1
        if not ok and first is None:
            first = {"query": qa, "a": list(zip(ia, sa.tolist())), "b": list(zip(ib, sb.tolist()))}
    print(json.dumps({"queries": n, "identical": identical, "up_to_ties": ties, "differ": n - identical - ties,
                      "max_score_diff": maxdiff, "first_differ": first}))


def labels(path):
    for row in np.load(path).tolist():
        yield None, [f"v{l}" for l in row if l >= 0], None


def recall(a, exact):
    n, total = 0, 0.0
    for (qa, ia, _), (qe, ie, _) in zip(labels(a) if a.endswith(".npy") else hits(a), hits(exact)):
        n += 1
        if ie:
            total += len(set(ia) & set(ie)) / len(ie)
    print(json.dumps({"queries": n, "recall": total / max(n, 1)}))


def main():
    a = sys.argv[1:]
    if len(a) >= 3 and a[0] == "same":
        tol = float(a[a.index("--tol") + 1]) if "--tol" in a else 0.0
        same(a[1], a[2], tol)
    elif len(a) == 3 and a[0] == "recall":
        recall(a[1], a[2])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
