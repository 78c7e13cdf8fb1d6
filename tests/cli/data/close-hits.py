#!/usr/bin/env python3
"""Compares two files of {"labels":[...],"scores":[...]} lines (one per query), as exact searches
by two implementations that round differently: every score within `tol` of the other's
(relative, 1 + |score|), and the same labels at each rank, except that labels may trade places
among hits whose scores are within `tol` (near-ties). Prints "same" or what differs; exit 1 then.
Usage: close-hits.py A B [tol]"""
import json
import sys


def main():
    a_path, b_path = sys.argv[1], sys.argv[2]
    tol = float(sys.argv[3]) if len(sys.argv) > 3 else 1e-5
    a = [json.loads(l) for l in open(a_path)]
    b = [json.loads(l) for l in open(b_path)]
    if len(a) != len(b):
        print(f"{len(a)} queries vs {len(b)}")
        return 1
    close = lambda x, y: abs(x - y) <= tol * (1 + abs(y))
    for q, (x, y) in enumerate(zip(a, b)):
        if len(x["labels"]) != len(y["labels"]):
            print(f"query {q}: {len(x['labels'])} hits vs {len(y['labels'])}")
            return 1
        for r, (sx, sy) in enumerate(zip(x["scores"], y["scores"])):
            if not close(sx, sy):
                print(f"query {q} rank {r}: score {sx} vs {sy}")
                return 1
        for r, (lx, ly) in enumerate(zip(x["labels"], y["labels"])):
            if lx == ly:
                continue
            # a swap among near-ties: the other side holds lx at a rank whose score is within tol
            s = x["scores"][r]
            others = [i for i, l in enumerate(y["labels"]) if l == lx]
            last = y["scores"][-1]
            if not (others and close(y["scores"][others[0]], s)) and not close(s, last):
                print(f"query {q} rank {r}: label {lx} vs {ly}")
                return 1
    print("same")
    return 0


if __name__ == "__main__":
    sys.exit(main())
