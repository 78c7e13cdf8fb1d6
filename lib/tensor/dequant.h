// Tensor element types → float32: dequantization of GGUF tensor data.
//
// A tensor's data (gguf::File::tensor_data) is rows of ne[0] elements; a row of a quantized type
// is ne[0] / block_elems blocks laid one after another (layouts: kernels/cpu/ggml_blocks.h).
// dequantize_row turns n elements (a whole number of blocks, any number of rows) into n floats:
//
//   std::string_view bytes = f.tensor_data(*t);
//   std::vector<float> w(t->n_elements());
//   tensor::dequantize_row(GgmlType(t->ggml_type), bytes.data(), w.data(), w.size());
//
// The floats are bit-exact with the `gguf` Python package's dequantizers (gguf.quants, numpy
// float32 arithmetic), which compute:
//
//   F32   x                          Q4_K  (d*sc_j) * q - (dmin*m_j)     sc_j, m_j: 6-bit
//   F16   exact widening             Q5_K  (d*sc_j) * q - (dmin*m_j)
//   BF16  bits << 16                 Q6_K  (d*sc_j) * (q - 32)           sc_j: int8
//   Q4_0  d * (q - 8)                Q8_K  d * q                         d: f32 (no gguf reference;
//   Q4_1  d * q + m                                                      ggml's formula)
//   Q5_0  d * (q - 16)
//   Q5_1  d * q + m
//   Q8_0  d * q
//
// Every product there is exact in float32 (f16 scales times small integers; Q8_K's one product
// rounds once), so the only other rounding is the final + or -, and the bits do not depend on the
// order of the multiplications or on FMA contraction. f16 → f32 is
// exact for every bit pattern, NaN payloads included (as numpy does: a signalling NaN stays
// signalling). Golden tests: tests/reference/gen_quant_goldens.py.
//
// With AVX2 (LOOM_NATIVE builds on a machine that has it) the K types and the 32-element types
// have vector paths that give the same bits as the scalar path; dequantize_row_scalar is the
// plain reference, always available and tested against the vector one.
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels/cpu/ggml_blocks.h"

namespace loom::tensor {

using kernels::GgmlType;

// True for the types dequantize_row handles.
bool can_dequantize(GgmlType t);

// dst[0..n) = the first n elements of src. n must be a multiple of the type's block size
// (kernels::type_size); src holds n / block_elems * block_bytes bytes (no alignment needed).
// loom::Error (BadInput) for a type it does not handle or an n that is not whole blocks.
void dequantize_row(GgmlType t, const void* src, float* dst, size_t n);
// The same without SIMD: the reference the vector paths are tested against.
void dequantize_row_scalar(GgmlType t, const void* src, float* dst, size_t n);

// Exact conversions of one value (f16: IEEE binary16; bf16: the top half of a float32).
float f16_to_f32(uint16_t h);
float bf16_to_f32(uint16_t h);

// "avx2" or "scalar": which path dequantize_row takes in this build.
const char* dequant_path();

}  // namespace loom::tensor
