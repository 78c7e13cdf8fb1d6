#!/usr/bin/env bash
# Batch evaluation of the RAG pipeline over the bundled documents, gated as a CI job would gate it.
#
#   examples/batch-eval.sh
#
# examples/eval/questions.jsonl holds questions on examples/docs, each with the document that
# answers it and a reference answer. A chunk counts as relevant when it comes from that document
# (the qrels are made from the chunks). The example
#   1. indexes the documents (chunk | embed | index build), as rag.sh does;
#   2. retrieves the 10 best chunks of each question three ways (dense, BM25, hybrid) and scores
#      each run with trec_eval's measures (loom eval retrieval), then compares hybrid against BM25
#      query by query (loom eval compare: paired t-test and bootstrap);
#   3. answers the questions from the hybrid hits (loom generate --rag, greedy) and scores the
#      answers against the references (loom eval text: SQuAD F1, ROUGE-L);
#   4. judges three answers with the RAG metrics (loom eval rag, the default local judge);
#   5. gates: exits 1 when hybrid retrieval's recall@10 falls under 0.8 (--fail-under).
set -euo pipefail
here=${LOOM_EXAMPLES_DIR:-$(cd "$(dirname "$0")" && pwd)}
work=${LOOM_WORK:-$(mktemp -d)}
cd "$here"

# 1. the index, and the qrels: every chunk of a question's document is relevant to it
loom chunk docs --size 600 --overlap 100 -q -o "$work/chunks.jsonl"
loom embed -m minilm -q <"$work/chunks.jsonl" | loom index build -q -o "$work/kb"
jq -r --slurpfile chunks "$work/chunks.jsonl" '. as $q | $chunks[] | select(.doc_id == $q.doc) | "\($q.id) 0 \(.id) 1"' \
  eval/questions.jsonl >"$work/qrels.txt"
echo "indexed $(wc -l <"$work/chunks.jsonl") chunks; $(wc -l <eval/questions.jsonl) questions, $(wc -l <"$work/qrels.txt") relevant chunks"

# 2. three runs, scored as trec_eval scores them
echo
printf '%-8s %8s %8s %8s %8s\n' mode ndcg@10 mrr@10 'P@5' recall@10
for mode in dense bm25 hybrid; do
  loom retrieve "$work/kb" -k 10 --mode "$mode" -q <eval/questions.jsonl >"$work/run.$mode.jsonl"
  loom eval retrieval --qrels "$work/qrels.txt" -m ndcg@10,mrr@10,P@5,recall@10 --per-query "$work/run.$mode.jsonl" \
    >"$work/eval.$mode.jsonl"
  tail -1 "$work/eval.$mode.jsonl" | jq -r --arg m "$mode" \
    '.metrics | "\($m | .[0:8] + "        " | .[0:8]) \(.ndcg_cut_10 * 1e4 | round / 1e4) \(.recip_rank_cut_10 * 1e4 | round / 1e4) \(.P_5 * 1e4 | round / 1e4) \(.recall_10 * 1e4 | round / 1e4)"' |
    awk '{printf "%-8s %8.4f %8.4f %8.4f %8.4f\n", $1, $2, $3, $4, $5}'
done
echo
echo "hybrid against BM25, query by query:"
loom eval compare --format table "$work/eval.bm25.jsonl" "$work/eval.hybrid.jsonl" | sed 's/^/  /'

# 3. answers from the hybrid hits, scored against the references
loom generate -m smollm2 --rag --temperature 0 -n 48 -q <"$work/run.hybrid.jsonl" |
  jq -c --slurpfile q eval/questions.jsonl '. as $r | ($q[] | select(.id == $r.id)) as $x |
    {id, question: .text, prediction: .completion, references: [$x.reference], hits}' >"$work/answers.jsonl"
echo
loom eval text -m f1,rouge --per-item "$work/answers.jsonl" >"$work/text.jsonl"
tail -1 "$work/text.jsonl" | jq -r '"answers vs references (\(.items) items): SQuAD F1 \(.metrics.f1 * 100 | round / 100), ROUGE-L \(.metrics.rougeL * 1e4 | round / 1e4)"'

# 4. RAG metrics for three answers, judged by the default local model (reproducible, not strong)
head -3 "$work/answers.jsonl" | jq -c '{id, question, answer: .prediction, reference: .references[0], hits: .hits[0:3]}' |
  loom eval rag -q --per-item >"$work/rag.jsonl"
tail -1 "$work/rag.jsonl" | jq -r '"RAG metrics (3 answers, judge \(.judge | split("/") | last)): " +
  (.metrics | to_entries | map("\(.key) \(if .value == null then "-" else (.value * 1000 | round / 1000) end)") | join(", "))'

# 5. the gate: a CI job fails when retrieval gets worse than this
loom eval retrieval --qrels "$work/qrels.txt" -m recall@10 --fail-under recall@10=0.8 "$work/run.hybrid.jsonl" >/dev/null
echo "gate passed: hybrid recall@10 >= 0.8"
