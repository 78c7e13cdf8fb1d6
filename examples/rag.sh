#!/usr/bin/env bash
# RAG over a folder of documents — the main job that `make demo` runs.
#
#   examples/rag.sh [DOCS_DIR]        (default: the bundled examples/docs)
#
# The full pipeline is chunk | embed | index build, then retrieve | rerank | generate for a
# question. The programs arrive one issue at a time; this script runs every stage that is built
# (found on PATH) and says which stages are still to come.
set -euo pipefail
here=${LOOM_EXAMPLES_DIR:-$(cd "$(dirname "$0")" && pwd)}
work=${LOOM_WORK:-$(mktemp -d)}
if [ $# -eq 0 ]; then cd "$here"; docs=docs; else docs=$1; fi   # doc ids are paths as given

# 1. chunk: every .md/.html/.txt/.rst file under $docs, ~600 characters with 100 of overlap
loom chunk "$docs" --size 600 --overlap 100 -o "$work/chunks.jsonl"
n_docs=$(jq -r .doc_id "$work/chunks.jsonl" | sort -u | wc -l)
n_chunks=$(wc -l <"$work/chunks.jsonl")
echo "chunked $n_docs documents into $n_chunks chunks ($work/chunks.jsonl)"
[ "$n_chunks" -gt 0 ] || { echo "no chunks produced" >&2; exit 1; }

# A look at the chunks: where each comes from and how long it is.
jq -r '"  \(.id)  [\(.section)]  \(.end - .start) bytes"' "$work/chunks.jsonl" | head -12

# 2..6. embed, index, retrieve, rerank, generate: run when built.
for stage in embed index retrieve rerank generate; do
  command -v "loom-$stage" >/dev/null || echo "(loom-$stage: not built yet; the pipeline stops after chunking)"
done
