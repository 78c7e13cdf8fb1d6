// The float32 operations of a decoder's training pass, forward and backward, on the CPU: what
// lib/train/network.cpp strings together. Row-major matrices; every backward function is checked
// against finite differences of its forward (tests/unit/test_train_ops.cpp).
//
// Unlike the inference kernels (quant_dot.h), nothing here follows llama.cpp's rounding: training
// is compared with PyTorch in float32, so these are plain float32 formulas.
#pragma once
#include <cstddef>

namespace loom::kernels::train {

// C = alpha * op(A) op(B) + beta * C, op = transpose when ta / tb; C is M x N, the inner size K.
// One thread (OpenBLAS's sgemm); callers split rows across their threads.
void gemm(bool ta, bool tb, size_t M, size_t N, size_t K, float alpha, const float* A, size_t lda, const float* B,
          size_t ldb, float beta, float* C, size_t ldc);

// y = x * w / sqrt(mean(x^2) + eps) over n values; returns 1 / sqrt(mean(x^2) + eps). y may be x.
float rms_norm_fwd(const float* x, const float* w, float* y, size_t n, float eps);
// dx = d/dx of (y . dy) for the forward above, given its returned rstd; dx may alias dy.
void rms_norm_bwd(const float* x, const float* w, float rstd, const float* dy, float* dx, size_t n);

// Rotary embedding of one head in place: pair i is (2i, 2i+1) (normal) or (i, i + half) (neox),
// rotated by the angle whose cosine and sine are cs[2i], cs[2i+1]. The backward rotates back.
void rope_fwd(float* x, const float* cs, size_t half, bool neox);
void rope_bwd(float* dx, const float* cs, size_t half, bool neox);

// a = act(g) * u, act = SiLU or GELU (tanh form); and its backward: dg, du from da.
void glu_fwd(bool gelu, const float* g, const float* u, float* a, size_t n);
void glu_bwd(bool gelu, const float* g, const float* u, const float* da, float* dg, float* du, size_t n);

// Causal attention of one head over one sequence of T tokens: row i attends to positions
// [i - window + 1, i] (window 0: [0, i]); s = scale * q.k, p = softmax(s), o = p v.
// q: T x d (row stride ldq), k: T x d (ldk), v: T x dv (ldv), o: T x dv (ldo), lse: T (the log of
// each row's softmax denominator, plus its max). scratch: T * T floats.
void attention_fwd(size_t T, size_t d, size_t dv, const float* q, size_t ldq, const float* k, size_t ldk, const float* v,
                   size_t ldv, float scale, size_t window, float* o, size_t ldo, float* lse, float* scratch);
// The backward from d_o (T x dv, row stride lddo) given the forward's lse: dq, dk, dvv are
// written (not accumulated), each with its row stride ldg. scratch: 2 * T * T floats.
void attention_bwd(size_t T, size_t d, size_t dv, const float* q, size_t ldq, const float* k, size_t ldk, const float* v,
                   size_t ldv, float scale, size_t window, const float* lse, const float* d_o, size_t lddo, float* dq,
                   size_t lddq, float* dk, size_t lddk, float* dvv, size_t lddv, float* scratch);

// Cross-entropy of one row of n logits against `target`: returns log p(target) and, when grad is
// set, overwrites the logits with weight * (softmax - onehot(target)).
double log_softmax_target(float* logits, size_t n, size_t target, float weight, bool grad);

}  // namespace loom::kernels::train
