#!/usr/bin/env python3
"""Writes a deterministic JSONL file of realistic records (chunks with text, metadata, a small
embedding) of about SIZE_MB megabytes, for the record I/O benchmark.
usage: gen-records.py OUT [SIZE_MB]"""
import json, random, sys

out, size_mb = sys.argv[1], float(sys.argv[2]) if len(sys.argv) > 2 else 200
rng = random.Random(42)
words = ("the of and to in is that for it as was with be by on not he this are or his from at which "
         "but have an they you were their one all we can her has there been if more when will would "
         "who so no data model index token vector query retrieval embedding chunk café naïve 東京 "
         "データ résumé Zürich αβγ 🙂").split()
target = int(size_mb * 1e6)
written = 0
with open(out, "w", encoding="utf-8") as f:
    i = 0
    while written < target:
        n = rng.randint(20, 200)
        text = " ".join(rng.choice(words) for _ in range(n))
        if rng.random() < 0.3:
            text += '\n\n"Quoted" text with \\ backslash\tand tab.'
        rec = {
            "id": f"doc{i // 10}#{i % 10}",
            "doc_id": f"doc{i // 10}",
            "chunk": i % 10,
            "text": text,
            "start": rng.randint(0, 100000),
            "end": rng.randint(100000, 200000),
            "meta": {"source": f"https://example.com/{i}", "lang": rng.choice(["en", "fr", "ja"]),
                     "score": rng.random(), "tags": [rng.choice(words) for _ in range(3)]},
            "embedding": [round(rng.uniform(-1, 1), 6) for _ in range(16)],
        }
        line = json.dumps(rec, ensure_ascii=rng.random() < 0.5) + "\n"
        f.write(line)
        written += len(line.encode())
        i += 1
print(f"{out}: {i} records, {written / 1e6:.1f} MB", file=sys.stderr)
