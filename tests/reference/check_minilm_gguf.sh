#!/usr/bin/env bash
# On-demand parity check of loom's GGUF bert path on the real all-MiniLM-L6-v2: converts the
# minilm folder with llama.cpp's convert_hf_to_gguf.py (gen_minilm_gguf.sh), embeds the 679
# non-empty texts of golden/embed/minilm.jsonl.zst from the folder and from the GGUF (cut at the
# folder's 256 tokens), and counts: texts tokenized alike by the two vocabularies (the GGUF is
# tokenized as llama.cpp tokenizes WordPiece), and vectors at cosine >= 0.99999, split by whether
# the tokens agree. Prints one line per count.
#   tests/reference/check_minilm_gguf.sh [BUILD_DIR]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin=${1:-$here/../../build}/bin
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$here/gen_minilm_gguf.sh" "$work/minilm.gguf"
zstd -dc "$here/golden/embed/minilm.jsonl.zst" | jq -c 'select(.text != "") | {id, text}' >"$work/texts.jsonl"
"$bin/loom-embed" -q -m minilm -i "$work/texts.jsonl" --key v >"$work/folder.jsonl"
"$bin/loom-embed" -q -m "$work/minilm.gguf" --max-tokens 256 -i "$work/texts.jsonl" --key v >"$work/gguf.jsonl"
"$bin/loom-tokenize" -m minilm --parse-special -i "$work/texts.jsonl" | jq -c .tokens >"$work/t1"
"$bin/loom-tokenize" -m "$work/minilm.gguf" --parse-special -i "$work/texts.jsonl" | jq -c .tokens >"$work/t2"
paste -d' ' "$work/t1" "$work/t2" | awk '{print ($1 == $2) ? "same-tokens" : "other-tokens"}' >"$work/same"
jq -n -r --slurpfile a "$work/folder.jsonl" --slurpfile b "$work/gguf.jsonl" \
  '[$a, $b] | transpose[] | (.[0].v as $x | .[1].v as $y | [range($x | length)] | map($x[.] * $y[.]) | add)
   | if . >= 0.99999 then "cosine>=0.99999" else "cosine<0.99999" end' >"$work/ok"
paste -d' ' "$work/same" "$work/ok" | sort | uniq -c
