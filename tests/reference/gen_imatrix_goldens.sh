#!/usr/bin/env bash
# Goldens for loom quantize imatrix (lib/quant/imatrix.h): llama.cpp's own llama-imatrix (the
# llama.cpp vendored by llama-cpp-python 0.3.36, built by build-llama-perplexity, target
# llama-imatrix; portable AVX2 build, flash attention off) run on the tiny random-weight models
# of every decoder architecture (golden/arch/*.gguf) over the start of
# golden/eval_perplexity/apache-2.0.txt, chunks of 64 tokens, 3 chunks, one chunk per batch (-b 64, as loom
# decodes them).
# Writes golden/imatrix/<model>.imatrix.gguf (llama.cpp's GGUF imatrix format).
#   tests/reference/gen_imatrix_goldens.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
ppl=$("$here/build-llama-perplexity")
build=$(dirname "$(dirname "$ppl")")
cmake --build "$build" --target llama-imatrix -j "${JOBS:-2}" >/dev/null
out=$here/golden/imatrix
mkdir -p "$out"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for m in llama-k llama-scaled qwen2 qwen3 gemma3; do
  # -f names the text as the unit test passes it (the datasets key records it)
  (cd "$here/golden" && "$build/bin/llama-imatrix" -m "arch/$m.gguf" -f eval_perplexity/apache-2.0.txt \
    -o "$out/$m.imatrix.gguf" -c 64 -b 64 --chunks 3 -t 2 -fa off --no-ppl >"$log" 2>&1) ||
    { cat "$log" >&2; echo "gen_imatrix_goldens: llama-imatrix failed on $m" >&2; exit 1; }
done
ls -l "$out"
