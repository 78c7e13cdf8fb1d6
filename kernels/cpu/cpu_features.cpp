#include "kernels/cpu/cpu_features.h"

namespace loom::kernels {

std::string simd_compiled() {
  std::string s;
  auto add = [&](const char* n) { s += s.empty() ? "" : " "; s += n; };
#if defined(__AVX512F__)
  add("avx512f");
#endif
#if defined(__AVX512BW__)
  add("avx512bw");
#endif
#if defined(__AVX512VNNI__)
  add("avx512vnni");
#endif
#if defined(__AVX2__)
  add("avx2");
#endif
#if defined(__FMA__)
  add("fma");
#endif
#if defined(__F16C__)
  add("f16c");
#endif
#if defined(__ARM_NEON)
  add("neon");
#endif
  return s.empty() ? "scalar" : s;
}

std::string simd_available() {
  std::string s;
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  auto add = [&](const char* n) { s += s.empty() ? "" : " "; s += n; };
  if (__builtin_cpu_supports("avx512f")) add("avx512f");
  if (__builtin_cpu_supports("avx512bw")) add("avx512bw");
  if (__builtin_cpu_supports("avx512vnni")) add("avx512vnni");
  if (__builtin_cpu_supports("avx2")) add("avx2");
  if (__builtin_cpu_supports("fma")) add("fma");
#endif
  return s.empty() ? "scalar" : s;
}

}  // namespace loom::kernels
