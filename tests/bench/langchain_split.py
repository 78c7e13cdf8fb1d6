#!/usr/bin/env python3
"""LangChain's RecursiveCharacterTextSplitter over every file of a corpus folder, with the
separators loom-chunk uses by default (paragraphs, lines, sentence ends, words, characters; kept
at the end of the piece they close). Prints the number of chunks and the seconds spent (reading
and splitting) as JSON on stdout.
usage: langchain_split.py CORPUS_DIR SIZE OVERLAP"""
import json, os, sys, time

from langchain_text_splitters import RecursiveCharacterTextSplitter

corpus, size, overlap = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
files = sorted(os.path.join(d, f) for d, _, fs in os.walk(corpus) for f in fs)
splitter = RecursiveCharacterTextSplitter(
    chunk_size=size, chunk_overlap=overlap,
    separators=["\n\n", "\n", r"[.!?]\s+", " ", ""],
    is_separator_regex=True, keep_separator="end")
t0 = time.perf_counter()
n = 0
for path in files:
    with open(path, encoding="utf-8") as f:
        n += len(splitter.split_text(f.read()))
secs = time.perf_counter() - t0
print(json.dumps({"chunks": n, "seconds": secs, "files": len(files)}))
