#!/usr/bin/env python3
"""N deterministic English-like texts of RAG-chunk lengths, as {"id", "text"} records:
20% of 5-20 words, 60% of 30-120, 20% of 150-300 (sentences of 6-18 words, capitalized, with
punctuation and the odd number). Standard library only; the same bytes on every run.
usage: gen-embed-texts.py N OUT.jsonl [--short]   (--short: every text 3-8 words)"""
import json
import random
import sys

n, out = int(sys.argv[1]), sys.argv[2]
short = "--short" in sys.argv
rng = random.Random(7)
WORDS = ("system log file rotate service user network request server client data index query model vector token "
         "embedding search result document page section table value error message config option default version "
         "release update install package build test run time memory disk cache thread process signal output input "
         "stream record field batch size rate limit policy access key secret storage backup restore cluster node "
         "the a of to and in is for on with as by at from it this that be are or an have not which one can when "
         "will its into only other some these two may than then first any such like over even most after also "
         "many before must through back where much well down should because each just those how too little good "
         "very make still own see work long get here between both life being under never day same another know "
         "while last might great old year off come since against go came right used take three").split()


def sentence():
    k = rng.randint(6, 18)
    w = [rng.choice(WORDS) for _ in range(k)]
    if rng.random() < 0.15:
        w[rng.randrange(k)] = str(rng.randint(1, 5000))
    s = " ".join(w)
    return s[0].upper() + s[1:] + rng.choice([".", ".", ".", "?", "!", ";"])


def text(words):
    parts, count = [], 0
    while count < words:
        s = sentence()
        parts.append(s)
        count += s.count(" ") + 1
    return " ".join(parts).split(" ")[:words]


with open(out, "w") as f:
    for i in range(n):
        if short:
            words = rng.randint(3, 8)
        else:
            r = rng.random()
            words = rng.randint(5, 20) if r < 0.2 else rng.randint(30, 120) if r < 0.8 else rng.randint(150, 300)
        f.write(json.dumps({"id": str(i), "text": " ".join(text(words))}) + "\n")
