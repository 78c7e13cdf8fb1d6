#!/usr/bin/env python3
"""Deterministic test records for loom-index / loom-retrieve: id, text, meta and a random vector.

    gen-vectors.py N DIM SEED [--prefix v]    (JSON Lines on stdout)

Record i is {"id": "<prefix><i>", "text": ..., "meta": {"lang", "year", "tags"}, "embedding": [...]}:
the text is a few words from a small vocabulary (so BM25 has overlapping terms), the vector
Gaussian with a few clusters (so IVF lists are uneven, as with real embeddings).
"""
import json
import random
import sys

n, dim, seed = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
prefix = sys.argv[5] if len(sys.argv) > 5 and sys.argv[4] == "--prefix" else "v"
rng = random.Random(seed)
words = ("log rotate daemon kernel network socket file system disk memory cache index query search "
         "vector token model embed chunk shell pipe stream compress archive backup restore user group "
         "permission process thread signal timer clock package install update upgrade remove").split()
centers = [[rng.gauss(0, 1) for _ in range(dim)] for _ in range(8)]
for i in range(n):
    c = centers[rng.randrange(len(centers))]
    vec = [round(c[j] + rng.gauss(0, 0.6), 6) for j in range(dim)]
    text = " ".join(rng.choice(words) for _ in range(rng.randint(3, 12)))
    meta = {"lang": rng.choice(["en", "en", "de", "fr"]), "year": rng.randint(2000, 2025),
            "tags": rng.sample(["linux", "admin", "dev", "ml"], rng.randint(0, 2))}
    print(json.dumps({"id": f"{prefix}{i}", "text": text, "meta": meta, "embedding": vec}, separators=(",", ":")))
