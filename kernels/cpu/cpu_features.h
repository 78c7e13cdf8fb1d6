// What SIMD the CPU kernels were compiled for, and what the running CPU offers.
#pragma once
#include <string>

namespace loom::kernels {

// Instruction sets enabled at compile time, e.g. "avx2 fma f16c" or "scalar".
std::string simd_compiled();
// Instruction sets the running CPU reports, among those loom's kernels can use.
std::string simd_available();

}  // namespace loom::kernels
