// float32 → GGUF tensor types: the quantizers behind `loom quantize`.
//
// quantize_row turns n floats (a whole number of blocks; any number of rows laid end to end)
// into n / block_elems blocks of the type's layout (kernels/cpu/ggml_blocks.h):
//
//   std::vector<uint8_t> out(quant::row_bytes(GgmlType::Q4_K, w.size()));
//   quant::quantize_row(GgmlType::Q4_K, w.data(), out.data(), w.size());
//
// What it matches: the bytes are identical to those llama.cpp writes without an importance
// matrix (ggml_quantize_chunk with imatrix NULL, which llama_model_quantize calls per tensor),
// for the llama.cpp sources vendored in llama-cpp-python 0.3.36. That is ggml's reference
// quantizers quantize_row_<type>_ref (ggml-quants.c), ggml_fp32_to_fp16_row and
// ggml_fp32_to_bf16_row_ref, built as ggml builds them: plain float32 arithmetic, no fused
// multiply-add (quantize.cpp turns FP contraction off), round-to-nearest.
// Goldens: tests/reference/gen_quant_row_goldens.py.
//
//   type   block  how a block is chosen
//   F32        1  copied
//   F16        1  round to nearest even; overflow → ±inf; NaN → sign | 0x7e00
//   BF16       1  round to nearest even on the top 16 bits; NaN → quieted, payload kept
//   Q8_0      32  d = max|x| / 127, q = round-half-away(x / d)
//   Q4_0      32  d = (signed value of largest |x|) / -8, q = trunc(x/d + 8.5) capped at 15
//   Q5_0      32  the same with -16 and 16.5, 5-bit q
//   Q4_1      32  d = (max - min) / 15, m = min, q = trunc((x - m)/d + 0.5) capped at 15
//   Q5_1      32  the same with 31
//   Q4_K     256  eight 32-wide sub-blocks, each an asymmetric 4-bit fit (weighted least
//                 squares over 21 candidate scales), sub-scales and mins to 6 bits
//   Q5_K     256  the same with 5-bit values (16 candidate scales)
//   Q6_K     256  sixteen 16-wide sub-blocks, each a symmetric 6-bit fit weighted by x²
//                 (19 candidate scales), sub-scales to int8
//
// Non-finite input: no crash and no undefined behaviour; the result is what ggml gives on x86-64
// where ggml's arithmetic defines it (F16/BF16 exactly; the block types follow the same
// operations, with out-of-range float→int conversions giving INT32_MIN's low bits, as x86's
// cvttss2si does), but nothing there is meaningful: such blocks decode to garbage or NaN.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "kernels/cpu/ggml_blocks.h"

namespace loom::quant {

using kernels::GgmlType;

// True for the types quantize_row writes.
bool can_quantize(GgmlType t);

// The supported types' names, comma-separated ("F32, F16, BF16, Q8_0, ...").
std::string quantizable_types();

// Bytes of n elements of type t: n / block_elems * block_bytes. loom::Error (Usage) for a type
// quantize_row does not write or an n that is not a whole number of blocks.
size_t row_bytes(GgmlType t, size_t n);

// dst[0 .. row_bytes(t, n)) = x[0 .. n) in type t. No alignment needed for dst.
// loom::Error (Usage) for an unsupported type (the message lists the supported ones) or an n that
// is not a multiple of the block size.
void quantize_row(GgmlType t, const float* x, void* dst, size_t n);

// Importance-weighted quantization, as llama.cpp quantizes with an importance matrix
// (ggml_quantize_chunk with quant_weights): nrows rows of n_per_row values, `importance` the
// n_per_row column weights (an imatrix entry's mean squared activations) or null. Q4_0, Q4_1,
// Q5_0, Q5_1, Q4_K, Q5_K and Q6_K use the weights (ggml's quantize_row_<type>_impl; the bytes
// are ggml's); the other types ignore them, and a null `importance` gives quantize_row's bytes.
void quantize_rows(GgmlType t, const float* x, void* dst, size_t nrows, size_t n_per_row, const float* importance);

// True for the types whose quantization uses importance weights.
bool takes_importance(GgmlType t);

// One value to IEEE half / bfloat16 bits, as ggml converts (see the table above).
uint16_t f32_to_f16(float f);
uint16_t f32_to_bf16(float f);

}  // namespace loom::quant
