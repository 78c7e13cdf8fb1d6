#!/usr/bin/env bash
# Converts all-MiniLM-L6-v2 (scripts/fetch-models' minilm/ folder) to a GGUF with llama.cpp's own
# converter, convert_hf_to_gguf.py, --outtype f32: the file an on-demand parity check holds loom's
# GGUF BERT path to (loom's output on it must equal its output on the safetensors folder). About
# 90 MB: not committed.
#
#   tests/reference/gen_minilm_gguf.sh OUT.gguf [MODEL_DIR]
#
# MODEL_DIR defaults to $LOOM_MODELS/minilm (~/.cache/loom/models/minilm). The converter and
# gguf-py (0.19.0) come from $LLAMA_CPP_DIR when set (a llama.cpp source tree), otherwise from the
# vendor/llama.cpp of the llama_cpp_python 0.3.36 sdist, downloaded once from PyPI (pip download,
# sha256 checked) and unpacked under ~/.cache/loom/src/. Runs in tests/reference/.venv-torch
# (set up here by setup-venv-torch). Quiet unless something fails.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if [ $# -lt 1 ] || [ $# -gt 2 ]; then
  echo "usage: tests/reference/gen_minilm_gguf.sh OUT.gguf [MODEL_DIR]" >&2
  exit 2
fi
out=$1
model=${2:-${LOOM_MODELS:-$HOME/.cache/loom/models}/minilm}
[ -f "$model/config.json" ] || { echo "gen_minilm_gguf: no model at $model (run scripts/fetch-models)" >&2; exit 1; }
"$here/setup-venv-torch"
py="$here/.venv-torch/bin/python"
log=$(mktemp)
trap 'rm -f "$log"' EXIT

sdist=llama_cpp_python-0.3.36
sdist_sha256=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e
if [ -n "${LLAMA_CPP_DIR:-}" ]; then
  llama_cpp=$LLAMA_CPP_DIR
else
  src="${XDG_CACHE_HOME:-$HOME/.cache}/loom/src"
  llama_cpp="$src/$sdist/vendor/llama.cpp"
  if [ ! -f "$llama_cpp/convert_hf_to_gguf.py" ]; then
    mkdir -p "$src"
    tmp=$(mktemp -d "$src/.download.XXXXXX")
    if ! "$py" -m pip download --disable-pip-version-check --no-deps --no-binary :all: "${sdist/_python-/_python==}" \
         -d "$tmp" >"$log" 2>&1; then
      cat "$log" >&2; rm -rf "$tmp"
      echo "gen_minilm_gguf: could not download $sdist" >&2
      exit 1
    fi
    if [ "$(sha256sum "$tmp/$sdist.tar.gz" | cut -d' ' -f1)" != "$sdist_sha256" ]; then
      rm -rf "$tmp"
      echo "gen_minilm_gguf: $sdist.tar.gz does not have the pinned sha256" >&2
      exit 1
    fi
    tar -xzf "$tmp/$sdist.tar.gz" -C "$tmp" "$sdist/vendor/llama.cpp"
    rm -rf "${src:?}/$sdist"
    mv "$tmp/$sdist" "$src/$sdist"
    rm -rf "$tmp"
  fi
fi
[ -f "$llama_cpp/convert_hf_to_gguf.py" ] || { echo "gen_minilm_gguf: no convert_hf_to_gguf.py in $llama_cpp" >&2; exit 1; }

# The converter names dtypes that Debian's torch 1.13 predates (float8_*, uint16/32/64) in lookup
# tables only: stand-ins let it import; this checkpoint (F32) holds none of them.
shim='import runpy, sys, torch
for n in ["float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz", "uint16", "uint32", "uint64"]:
    hasattr(torch, n) or setattr(torch, n, type(n, (), {})())
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")'
mkdir -p "$(dirname "$out")"
if ! PYTHONPATH="$llama_cpp/gguf-py:$llama_cpp" "$py" -c "$shim" "$llama_cpp/convert_hf_to_gguf.py" "$model" \
     --outtype f32 --outfile "$out.tmp" >"$log" 2>&1; then
  cat "$log" >&2; rm -f "$out.tmp"
  echo "gen_minilm_gguf: convert_hf_to_gguf.py failed on $model" >&2
  exit 1
fi
mv "$out.tmp" "$out"
