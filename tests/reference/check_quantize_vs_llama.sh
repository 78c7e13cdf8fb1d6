#!/usr/bin/env bash
# loom quantize against llama.cpp's own llama-quantize: the whole output files must be
# byte-identical, for every pure type (both with --pure) and every file type loom writes (both
# without --pure: llama.cpp's mix rules), from the tiny random-weight models of each architecture
# (tests/reference/golden/arch, golden/encoder) as they are (mixed quantized: --allow-requantize)
# and converted to F32 by loom first. Then with an importance matrix: loom quantize imatrix
# collects one for each decoder model (F32, from tests/reference/golden/eval_perplexity/
# apache-2.0.txt) and both programs quantize with --imatrix to every type (pure and mixes).
#
#   tests/reference/check_quantize_vs_llama.sh [BIN_DIR]      (default: build/bin)
#
# BIG="m.gguf ..." adds models (converted to F32 first; e.g. ~/.cache/loom/models/smollm2.gguf),
# compared for the file types in BIG_TYPES (default Q4_K_M), and with an importance matrix for
# those in BIG_IMATRIX. llama-quantize is built from the
# llama.cpp that llama-cpp-python 0.3.36 vendors, in the build tests/reference/build-llama-perplexity
# makes (its target llama-quantize); LLAMA_QUANTIZE=path uses that binary instead. Prints one line
# per comparison; exits 1 when any differs.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=$(cd "${1:-$root/build/bin}" && pwd)
if [ -n "${LLAMA_QUANTIZE:-}" ]; then
  lq=$LLAMA_QUANTIZE
else
  ppl=$("$root/tests/reference/build-llama-perplexity")
  build=$(dirname "$(dirname "$ppl")")
  cmake --build "$build" --target llama-quantize -j "${JOBS:-2}" >/dev/null
  lq=$build/bin/llama-quantize
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pure_types="F32 F16 BF16 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q4_K Q5_K Q6_K"
mix_types="F32 F16 BF16 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q4_K_S Q4_K_M Q5_K_S Q5_K_M Q6_K"
status=0 same=0 differ=0
# compare IN TYPE [--pure] (IMATRIX=file: both with --imatrix)
compare() {
  local in=$1 ty=$2 pure=${3:-} im=() what=""
  if [ -n "${IMATRIX:-}" ]; then im=(--imatrix "$IMATRIX"); what=" imatrix"; fi
  "$lq" --allow-requantize $pure "${im[@]}" "$in" "$work/lq.gguf" "$ty" >"$work/lq.log" 2>&1 || { echo "$(basename "$in") $ty $pure$what: llama-quantize failed"; status=1; return; }
  "$bin/loom-quantize" -q "$in" "$work/lo.gguf" --type "$ty" $pure "${im[@]}" >/dev/null
  if cmp -s "$work/lq.gguf" "$work/lo.gguf"; then
    echo "$(basename "$in") $ty ${pure:-mix}$what: identical"; same=$((same + 1))
  else
    echo "$(basename "$in") $ty ${pure:-mix}$what: DIFFER ($(cmp -l "$work/lq.gguf" "$work/lo.gguf" | wc -l) bytes)"
    differ=$((differ + 1)); status=1
  fi
}
for src in "$root"/tests/reference/golden/arch/{qwen3,llama-k,gemma3,qwen2,llama-scaled}.gguf "$root"/tests/reference/golden/encoder/tiny-bert.gguf; do
  m=$(basename "$src" .gguf)
  "$bin/loom-quantize" -q "$src" "$work/$m-f32.gguf" --type F32 --pure >/dev/null
  for in in "$src" "$work/$m-f32.gguf"; do
    for ty in $pure_types; do compare "$in" "$ty" --pure; done
    for ty in $mix_types; do compare "$in" "$ty"; done
  done
done
text=$root/tests/reference/golden/eval_perplexity/apache-2.0.txt
for m in qwen3 llama-k gemma3 qwen2 llama-scaled; do
  "$bin/loom-quantize" imatrix -q -m "$work/$m-f32.gguf" --data "$text" -c 128 --chunks 4 -o "$work/$m.imatrix.gguf" >/dev/null
  for ty in $pure_types; do IMATRIX=$work/$m.imatrix.gguf compare "$work/$m-f32.gguf" "$ty" --pure; done
  for ty in $mix_types; do IMATRIX=$work/$m.imatrix.gguf compare "$work/$m-f32.gguf" "$ty"; done
done
for src in ${BIG:-}; do
  m=$(basename "$src" .gguf)
  "$bin/loom-quantize" -q "$src" "$work/$m-f32.gguf" --type F32 --pure >/dev/null
  for ty in ${BIG_TYPES:-Q4_K_M}; do compare "$work/$m-f32.gguf" "$ty"; done
  if [ -n "${BIG_IMATRIX:-}" ]; then
    "$bin/loom-quantize" imatrix -q -m "$work/$m-f32.gguf" --data "$text" -c 256 -o "$work/$m.imatrix.gguf" >/dev/null
    for ty in $BIG_IMATRIX; do IMATRIX=$work/$m.imatrix.gguf compare "$work/$m-f32.gguf" "$ty"; done
  fi
  rm -f "$work/$m-f32.gguf"
done
echo "$same identical, $differ differ"
exit $status
