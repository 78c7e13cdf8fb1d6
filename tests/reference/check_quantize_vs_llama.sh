#!/usr/bin/env bash
# loom quantize against llama.cpp's own llama-quantize --pure: the whole output files must be
# byte-identical, for every pure type, from the tiny random-weight models of each architecture
# (tests/reference/golden/arch, golden/encoder) as they are (mixed quantized: --allow-requantize)
# and converted to F32 by loom first.
#
#   tests/reference/check_quantize_vs_llama.sh [BIN_DIR]      (default: build/bin)
#
# llama-quantize is built from the llama.cpp that llama-cpp-python 0.3.36 vendors, in the build
# tests/reference/build-llama-perplexity makes (its target llama-quantize). Prints one line per
# comparison; exits 1 when any differs.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=$(cd "${1:-$root/build/bin}" && pwd)
ppl=$("$root/tests/reference/build-llama-perplexity")
build=$(dirname "$(dirname "$ppl")")
cmake --build "$build" --target llama-quantize -j "${JOBS:-2}" >/dev/null
lq=$build/bin/llama-quantize
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
status=0
for src in "$root"/tests/reference/golden/arch/{qwen3,llama-k,gemma3,qwen2,llama-scaled}.gguf "$root"/tests/reference/golden/encoder/tiny-bert.gguf; do
  m=$(basename "$src" .gguf)
  "$bin/loom-quantize" -q "$src" "$work/$m-f32.gguf" --type F32 >/dev/null
  for in in "$src" "$work/$m-f32.gguf"; do
    for ty in F32 F16 BF16 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q4_K Q5_K Q6_K; do
      "$lq" --allow-requantize --pure "$in" "$work/lq.gguf" "$ty" >"$work/lq.log" 2>&1 || { echo "$m $ty: llama-quantize failed"; status=1; continue; }
      "$bin/loom-quantize" -q "$in" "$work/lo.gguf" --type "$ty" >/dev/null
      if cmp -s "$work/lq.gguf" "$work/lo.gguf"; then
        echo "$(basename "$in") $ty: identical"
      else
        echo "$(basename "$in") $ty: DIFFER ($(cmp -l "$work/lq.gguf" "$work/lo.gguf" | wc -l) bytes)"
        status=1
      fi
    done
  done
done
exit $status
