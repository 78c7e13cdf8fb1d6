// Float32 kernels of encoder models (BERT family): dense layers, layer norm, GELU, softmax and
// one attention head over one sequence. Row-major matrices; each call runs on the calling thread
// (the backend splits the work across its threads), dense products through OpenBLAS's sgemm.
//
// Each has a plain reference (*_ref, double accumulation) that the tests compare against:
//   linear_f32      relative error of a K-term dot product in float (~K * 2^-24 worst case)
//   gelu_erf_f32    |err| <= 2e-7 * (1 + |x|): erf from a degree-11 series for |x/sqrt2| < 0.5,
//                   else Abramowitz & Stegun 7.1.26 (|err| < 1.5e-7) with exp from vec_exp.h
//   layer_norm_f32, softmax_f32, attention_head_f32: float sums in 8 lanes
#pragma once
#include <cstddef>
#include <memory>

namespace loom::kernels {

// Makes OpenBLAS run each call on the calling thread (loom threads across rows itself).
void blas_single_threaded();

// y[i] = W x[i] + b for M rows: x is M x K (row stride ldx), W is N x K (PyTorch's Linear
// layout), b has N values or is null, y is M x N (row stride ldy).
void linear_f32(const float* x, size_t ldx, size_t M, size_t K, const float* W, size_t N, const float* b, float* y,
                size_t ldy);
void linear_f32_ref(const float* x, size_t ldx, size_t M, size_t K, const float* W, size_t N, const float* b, float* y,
                    size_t ldy);

// One row of n values: with y = x + add (add may be null),
// x = (y - mean) / sqrt(var + eps) * w + b (var: the biased variance, as torch.nn.LayerNorm).
void layer_norm_f32(float* x, size_t n, const float* add, const float* w, const float* b, float eps);
void layer_norm_f32_ref(float* x, size_t n, const float* add, const float* w, const float* b, float eps);

// x = x * Phi(x) (exact GELU, the erf form of torch.nn.GELU()), in place. AVX-512 and AVX2
// bodies, scalar tail.
void gelu_erf_f32(float* x, size_t n);
float gelu_erf_ref(float x);

// x = softmax(x) in place.
void softmax_f32(float* x, size_t n);
void softmax_f32_ref(float* x, size_t n);

// Bidirectional attention of one head over one sequence of L tokens: for each token i,
// out[i] = sum_j softmax_j(scale * q[i].k[j]) v[j]. q, k, v: L rows of dh values with row
// stride ld; out: row stride ldo. `scores` is scratch of L * L floats.
void attention_head_f32(const float* q, const float* k, const float* v, size_t ld, size_t L, size_t dh, float scale,
                        float* out, size_t ldo, float* scores);
void attention_head_f32_ref(const float* q, const float* k, const float* v, size_t ld, size_t L, size_t dh, float scale,
                            float* out, size_t ldo);

}  // namespace loom::kernels

namespace loom::kernels {

// A weight matrix (N x K, PyTorch's Linear layout) repacked for linear_packed_f32: panels of 32
// output columns (16 with AVX2 only), each K rows of that many floats (the last panel padded with
// zeros), 64-byte aligned. Built once per weight; without AVX2 it only remembers the original.
struct PackedWeights {
  const float* w = nullptr;  // the original
  size_t n = 0, k = 0;
  std::shared_ptr<float> panels;
};
PackedWeights pack_weights(const float* W, size_t N, size_t K);

// y[i] = W x[i] + b for M rows, as linear_f32 (same shapes and strides), then GELU (gelu_erf_f32)
// when `gelu` is set: register tiles of 12 rows x 32 columns (AVX-512) or 6 x 16 (AVX2) over the
// packed panels, the bias and GELU applied to each tile as it is finished (no separate pass over
// y). Each element is its bias then one fma per k in order, so a row's result does not depend on
// the batch around it or on the vector width. Without AVX2: linear_f32 and gelu_erf_f32.
void linear_packed_f32(const float* x, size_t ldx, size_t M, const PackedWeights& W, const float* b, float* y, size_t ldy,
                       bool gelu = false);

}  // namespace loom::kernels
