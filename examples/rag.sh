#!/usr/bin/env bash
# RAG over a folder of documents — the main job that `make demo` runs.
#
#   examples/rag.sh [DOCS_DIR [QUESTION]]   (default: the bundled examples/docs and a question on them)
#
# The full pipeline is chunk | embed | index build, then retrieve | rerank | generate for a
# question. The programs arrive one issue at a time; this script runs every stage that is built
# (found on PATH) and says which stages are still to come. Until loom-embed, loom-index and
# loom-retrieve are built, a keyword match in jq stands in for retrieval, giving the same hit
# records ({id, text, score, rank}) that loom-retrieve writes.
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

# 2..5. embed, index, retrieve (and rerank): the 3 best chunks for the question
query=$(jq -cn --arg q "$question" '{id: "q1", text: $q}')
if command -v loom-embed >/dev/null && command -v loom-index >/dev/null && command -v loom-retrieve >/dev/null; then
  loom embed -m minilm <"$work/chunks.jsonl" | loom index build -o "$work/kb"
  if command -v loom-rerank >/dev/null; then
    echo "$query" | loom retrieve "$work/kb" -k 20 | loom rerank -k 3 >"$work/hits.jsonl"
  else
    echo "$query" | loom retrieve "$work/kb" -k 3 >"$work/hits.jsonl"
  fi
else
  echo "(loom-embed, loom-index, loom-retrieve: not all built yet; a keyword match stands in for retrieval)"
  # score = how many of the question's words (4+ letters) a chunk contains
  jq -c --argjson query "$query" -s '
    ($query.text | ascii_downcase | [scan("[a-z0-9]+")] | map(select(length > 3)) | unique) as $words
    | $query + {hits: (map(. as $c | [$c.text | ascii_downcase | scan("[a-z0-9]+")] as $t
                           | {id: $c.id, text: $c.text, score: ([$words[] | select(. as $w | $t | index($w))] | length)})
                       | sort_by(-.score) | .[:3] | to_entries | map(.value + {rank: (.key + 1)}))}' \
    "$work/chunks.jsonl" >"$work/hits.jsonl"
fi
echo
echo "question: $question"
jq -r '.hits[] | "  [\(.rank)] \(.id)  score \(.score)"' "$work/hits.jsonl"

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
