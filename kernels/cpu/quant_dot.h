// CPU dot products, mat-vec and mat-mat for GGUF weight types, computed the way llama.cpp's
// ggml-cpu computes them, so that loom's logits track llama.cpp's.
//
// The scheme (ggml's): a weight matrix W is stored row-major, `rows` rows of `cols` elements,
// each row a run of blocks of its type (ggml_blocks.h). The activation vector x (f32) is first
// converted, once per row of x, to the "activation type" the weight type pairs with:
//
//   weight type                  activation type   dot product
//   Q4_0, Q5_0, Q8_0             Q8_0              per block: dw*dx * sum(qw*qx)   (integers)
//   Q4_1, Q5_1                   Q8_1              per block: dw*dx * sum(qw*qx) + mw * sx
//   Q4_K, Q5_K                   Q8_K              per super-block: d*dx * sum(sc*qw*qx)
//                                                                   - dmin*dx * sum(m*bsum)
//   Q6_K                         Q8_K              per super-block: d*dx * sum(sc*(qw-32)*qx)
//   F32                          F32               float
//   F16                          F16 (x rounded)   float, after widening both sides to f32
//   BF16                         BF16 (x rounded)  float, likewise
//
// Activation quantization matches llama.cpp's x86 build bit for bit (its AVX2 quantize_row_q8_0
// and q8_1, and quantize_row_q8_K_ref): Q8_0/Q8_1 take amax = max|x| per 32 values,
// d = amax/127 stored as f16, q = round-half-even(x * (127/amax)); Q8_1 adds s = f16(d * sum q)
// with the f32 d. Q8_K takes the signed value `max` of the first element of largest |x| per 256
// values, iscale = -127/max, q = min(127, round-half-even(iscale*x)), d = 1/iscale (f32), and
// bsums = sums of q per 16. (llama.cpp's portable scalar quantize_row_q8_0_ref uses 1/d and
// round-half-away instead; its x86 build does not.)
//
// Float order. Integer block sums are exact; the float part follows llama.cpp's x86 (AVX2)
// build operation for operation, so that loom's results equal llama.cpp's bitwise:
//   - 32-element types: per block, 8 int32 lanes (lane i: elements 4i..4i+3) converted and
//     added with d_w*d_x into 8 float lanes by fma; the lanes summed as hsum_float_8 (reduce8);
//     Q4_1/Q5_1 add m_w*s_x into one scalar by fma. (tinyBLAS, its mat-mat, does the same.)
//   - K types, KOrder::VecDot: ggml_vec_dot_q*_K_q8_K's lanes (see KSums in quant_dot.cpp);
//     KOrder::Tiled: its tiled K-quant mat-mat, taken for batches of 8 tokens or more, which
//     converts a super-block's whole sums and accumulates d_x * (d_w * sum) by fma.
//   - Q4_K with a multiple of 8 rows: llama.cpp repacks these weights (8 rows interleaved) and
//     uses its gemv for a lone token and its gemm for groups of 4 tokens (the first n - n%4 of
//     a batch of n), which convert a super-block's sums (gemv) or each pair of sub-blocks' sums
//     (gemm) to float once, and quantize the gemm tokens' activations with their own rule
//     (Q8KMax::PositiveFirst). matvec takes the gemv order, matmul the one llama.cpp would take
//     for each token (llama_order).
//   - Q4_0 with a multiple of 8 rows: llama.cpp repacks these too (q4_0_8x8: its gemv and gemm
//     alike keep one float sum per output and add each block's exact integer dot times
//     d_w * d_x by fma, block after block): KOrder::RepackGemv, for every token.
//   - F32/F16/BF16 weights: loom's own order (element i in float lane i % 32, lanes summed in a
//     fixed tree), not yet ggml's: their results agree with llama.cpp's to float rounding.
// Every path — scalar, AVX2, AVX-512, matvec, matmul, any number of threads — performs the same
// float operations, so all give bit-identical results (the tests check ==).
//
// Preconditions: n (cols) must be a multiple of the weight type's block (32, or 256 for the K
// types); a violation, or a weight type not listed above, throws std::invalid_argument. Buffers
// are unaligned-safe.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>

#include "kernels/cpu/ggml_blocks.h"

namespace loom::kernels {

// ---- conversions (round-to-nearest-even, as F16C and ggml do) ----
float f16_to_f32(f16_bits h);
f16_bits f32_to_f16(float f);
float bf16_to_f32(bf16_bits h);
bf16_bits f32_to_bf16(float f);

// ---- activation quantization; n % block == 0, dst holds n/block blocks ----
void quantize_row_q8_0(const float* x, void* dst, size_t n);  // n % 32 == 0
void quantize_row_q8_1(const float* x, void* dst, size_t n);  // n % 32 == 0
// Which value's sign the Q8_K scale takes when +max and -max both occur: the first one
// (quantize_row_q8_K_ref), or the positive one (the AVX2 quantize_mat_q8_K of repacked gemm).
enum class Q8KMax : uint8_t { First, PositiveFirst };
void quantize_row_q8_K(const float* x, void* dst, size_t n, Q8KMax rule = Q8KMax::First);  // n % 256 == 0

// The float order of a dot (see above): the repacked orders are Q4_K's (both) and Q4_0's (gemv).
enum class KOrder : uint8_t { VecDot, RepackGemv, RepackGemm, Tiled };
// Does llama.cpp's x86 build repack these weights (Q4_K or Q4_0, rows % 8 == 0)?
bool repacked(GgmlType wtype, size_t rows);
// The order llama.cpp takes for token `pos` of a batch of `len` tokens (K types and Q4_0; else
// VecDot).
KOrder llama_order(GgmlType wtype, size_t rows, uint32_t pos, uint32_t len);
// For matmul: token t of the call is token pos[t] of a batch of len[t] tokens as llama.cpp would
// compute it (so that tokens of several sequences can share one call and each get what it alone
// would get).
struct TokenBatches {
  const uint32_t* pos;
  const uint32_t* len;
};

// Is `wtype` a weight type these kernels take (F32 F16 BF16 Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q4_K Q5_K
// Q6_K)?
bool supports_weight_type(GgmlType wtype);
// The type activations are converted to for a dot product with `wtype` weights (table above).
GgmlType activation_type(GgmlType wtype);
// Bytes of one activation row of n values for `wtype` weights.
size_t activation_row_bytes(GgmlType wtype, size_t n);
// x (n floats) -> dst (activation_row_bytes(wtype, n) bytes) in activation_type(wtype).
void quantize_activations(GgmlType wtype, const float* x, void* dst, size_t n);

// ---- dot products: one weight row (n values of wtype) · one activation row ----
// act is in activation_type(wtype) (from quantize_activations). Uses the best SIMD compiled in.
float vec_dot(GgmlType wtype, size_t n, const void* w_row, const void* act, KOrder order = KOrder::VecDot);
// The same, plain scalar code; bit-identical to vec_dot (the reference the tests hold SIMD to).
float vec_dot_scalar(GgmlType wtype, size_t n, const void* w_row, const void* act, KOrder order = KOrder::VecDot);

// ---- threading ----
// How a kernel may split its rows. `run(n_tasks, task)` must call task(i) once for every i in
// [0, n_tasks), in any order and on any threads, and return when all have finished: the engine
// passes its thread pool here. Without `run`, the kernel starts threads-1 std::threads per call
// (threads <= 1: the calling thread only). Results never depend on the thread count.
using ParallelFor = std::function<void(size_t n_tasks, const std::function<void(size_t)>& task)>;
struct ThreadHint {
  int threads = 1;
  ParallelFor run;
};

// y[r] = W[r] · x for r < rows. W: rows x cols of wtype (row stride = cols/block * block_bytes);
// x: cols floats; y: rows floats. x is converted to the activation type once. Repacked Q4_K:
// KOrder::RepackGemv.
void matvec(GgmlType wtype, const void* W, size_t rows, size_t cols, const float* x, float* y,
            const ThreadHint& threads = {});
// matvec with x already converted (act: activation_row_bytes(wtype, cols) bytes).
void matvec_act(GgmlType wtype, const void* W, size_t rows, size_t cols, const void* act,
                float* y, const ThreadHint& threads = {});

// Y[t*rows + r] = W[r] · X[t*cols ..] for t < n_tokens (prompt processing). X: n_tokens x cols
// floats; Y: n_tokens x rows floats. Each token is computed in the order llama_order gives for
// its place in its batch (`batches`; null: all n_tokens are one batch), with the repacked gemm's
// tokens quantized by Q8KMax::PositiveFirst: for the 32-element types that is matvec's order
// whatever the batch. Faster than matvec per token: each weight row is unpacked once for a tile
// of tokens.
void matmul(GgmlType wtype, const void* W, size_t rows, size_t cols, const float* X,
            size_t n_tokens, float* Y, const ThreadHint& threads = {}, const TokenBatches* batches = nullptr);

}  // namespace loom::kernels
