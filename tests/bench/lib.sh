# Shared helpers for the bench scripts (sourced).
bench_root=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd "$bench_root/../.." && pwd)
BUILD=${BUILD:-$repo_root/build}
mkdir -p "$bench_root/data"

# seconds <cmd...>: wall-clock seconds of one run of cmd (its stdout discarded)
seconds() {
  local t0 t1
  t0=$(date +%s.%N)
  "$@" >/dev/null
  t1=$(date +%s.%N)
  echo "$t1 - $t0" | bc -l
}

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END{print (NR%2)? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

# the widest x86 vector extension (the kernels' speed depends on it; the CPU name may not say)
simd() {
  local f; f=$(grep -m1 '^flags' /proc/cpuinfo)
  if grep -qw avx512_vnni <<<"$f"; then echo "AVX-512 + VNNI"; elif grep -qw avx512f <<<"$f"; then echo "AVX-512";
  elif grep -qw avx2 <<<"$f"; then echo "AVX2"; else echo "no AVX2"; fi
}
machine() { echo "$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //') (family $(grep -m1 'cpu family' /proc/cpuinfo | cut -d: -f2 | tr -d ' ') model $(grep -m1 '^model[[:space:]]' /proc/cpuinfo | cut -d: -f2 | tr -d ' '), $(simd)), $(free -g | awk '/Mem:/{print $2}') GiB"; }

# record TITLE BODY: appends a dated entry to RESULTS.md
record() {
  { echo; echo "## $(date -u +%Y-%m-%d) — $1"; echo; echo "$2"; } >>"$bench_root/RESULTS.md"
}
