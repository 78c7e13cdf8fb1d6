#!/usr/bin/env python3
"""LangChain's RecursiveCharacterTextSplitter over every file of a corpus folder, with the
separators loom-chunk uses by default (paragraphs, lines, sentence ends, words, characters; kept
at the end of the piece they close). Two measurements, both timed inside Python (interpreter start
and imports excluded, in LangChain's favour):
  split   read each file and split it (the chunk count is kept)
  jsonl   the same, writing each chunk as a JSON record as loom-chunk does (id, doc_id, chunk,
          text, start, end) to OUT — the glue script loom-chunk replaces
Prints {"chunks", "split_seconds", "jsonl_seconds", "files"} as JSON.
usage: langchain_split.py CORPUS_DIR SIZE OVERLAP [OUT]"""
import json, os, sys, time

from langchain_text_splitters import RecursiveCharacterTextSplitter

corpus, size, overlap = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
out_path = sys.argv[4] if len(sys.argv) > 4 else os.devnull
files = sorted(os.path.join(d, f) for d, _, fs in os.walk(corpus) for f in fs)
splitter = RecursiveCharacterTextSplitter(
    chunk_size=size, chunk_overlap=overlap,
    separators=["\n\n", "\n", r"[.!?]\s+", " ", ""],
    is_separator_regex=True, keep_separator="end")

t0 = time.perf_counter()
n = 0
for path in files:
    with open(path, encoding="utf-8", newline="") as f:
        n += len(splitter.split_text(f.read()))
split_seconds = time.perf_counter() - t0

t0 = time.perf_counter()
with open(out_path, "w", encoding="utf-8") as out:
    for path in files:
        with open(path, encoding="utf-8", newline="") as f:
            text = f.read()
        pos = 0  # character offset of the previous chunk's start
        b = 0    # its byte offset (kept incrementally: linear time)
        for i, chunk in enumerate(splitter.split_text(text)):
            start = text.find(chunk, pos if i == 0 else pos + 1)
            b += len(text[pos:start].encode())
            pos = start
            out.write(json.dumps({"id": f"{path}#{i}", "doc_id": path, "chunk": i, "text": chunk,
                                  "start": b, "end": b + len(chunk.encode())}, ensure_ascii=False) + "\n")
jsonl_seconds = time.perf_counter() - t0
print(json.dumps({"chunks": n, "split_seconds": split_seconds, "jsonl_seconds": jsonl_seconds, "files": len(files)}))
