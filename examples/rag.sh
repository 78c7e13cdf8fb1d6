#!/usr/bin/env bash
# RAG over a folder of documents — the main job that `make demo` runs.
#
#   examples/rag.sh [DOCS_DIR [QUESTION]]   (default: the bundled examples/docs and a question on them)
#
# The full pipeline: chunk | embed | index build, then retrieve | rerank | generate for a question.
# Retrieval is hybrid (dense all-MiniLM-L6-v2 vectors in FAISS fused with BM25 over the chunks'
# text); reranking uses the default LLM (smollm2): no cross-encoder weights come with loom.
set -euo pipefail
here=${LOOM_EXAMPLES_DIR:-$(cd "$(dirname "$0")" && pwd)}
work=${LOOM_WORK:-$(mktemp -d)}
if [ $# -eq 0 ]; then cd "$here"; docs=docs; else docs=$1; fi   # doc ids are paths as given
question=${2:-"How do I test a logrotate rule?"}

# 1. chunk: every .md/.html/.txt/.rst file under $docs, ~600 characters with 100 of overlap
loom chunk "$docs" --size 600 --overlap 100 -o "$work/chunks.jsonl"
n_docs=$(jq -r .doc_id "$work/chunks.jsonl" | sort -u | wc -l)
n_chunks=$(wc -l <"$work/chunks.jsonl")
echo "chunked $n_docs documents into $n_chunks chunks ($work/chunks.jsonl)"
[ "$n_chunks" -gt 0 ] || { echo "no chunks produced" >&2; exit 1; }

# A look at the chunks: where each comes from and how long it is.
jq -r '"  \(.id)  [\(.section)]  \(.end - .start) bytes"' "$work/chunks.jsonl" | head -12

# 2..5. embed, index, retrieve the 10 best chunks for the question, rerank them, keep 3
query=$(jq -cn --arg q "$question" '{id: "q1", text: $q}')
loom embed -m minilm -q <"$work/chunks.jsonl" | loom index build -q -o "$work/kb"
loom index info "$work/kb" | jq -r --arg kb "$work/kb" \
  '"indexed \(.counts.records) chunks: \(.counts.vectors) vectors (\(.factory), \(.dimension) dimensions), \(.counts.bm25_docs) BM25 documents (\($kb))"'
echo "$query" | loom retrieve "$work/kb" -k 10 --mode hybrid >"$work/retrieved.jsonl"
echo "retrieved $(jq '.hits | length' "$work/retrieved.jsonl") chunks (dense + BM25, fused by reciprocal rank); reranking them with smollm2"
loom rerank -m smollm2 -k 3 -q <"$work/retrieved.jsonl" >"$work/hits.jsonl"
echo
echo "question: $question"
jq -r 'def r(n): if . == null then "-" else . * n | round / n end;
  .hits[] | "  [\(.rank)] \(.id)  score \(.score | r(1000)) (similarity \(.dense_score | r(1000)), BM25 \(.bm25_score | r(100)))"' \
  "$work/hits.jsonl"

# 6. generate: SmolLM2 answers from the hits, citing them as [n] (greedy, 64 tokens at most)
loom generate -m smollm2 --rag --temperature 0 -n 64 -q <"$work/hits.jsonl" >"$work/answer.jsonl"
echo
echo "answer ($(jq -r '"\(.usage.completion_tokens) tokens, \(.finish_reason), \(.timings.decode_tokens_per_s | floor) tokens/s"' "$work/answer.jsonl")):"
jq -r '.completion' "$work/answer.jsonl" | sed 's/^/  /'
jq -r 'if (.citations | length) > 0 then "cited: " + (.citations | map("[\(.n)] \(.id)") | join(", ")) else "cited: no source" end' \
  "$work/answer.jsonl"
# the answer must be there: a record with a completion that is not empty
jq -e '(.completion | length) > 0 and (.finish_reason == "stop" or .finish_reason == "length")' "$work/answer.jsonl" >/dev/null ||
  { echo "no answer generated" >&2; exit 1; }
