#include "kernels/cpu/train_ops.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/cpu/vec_exp.h"
#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#endif

namespace loom::kernels::train {

void gemm(bool ta, bool tb, size_t M, size_t N, size_t K, float alpha, const float* A, size_t lda, const float* B,
          size_t ldb, float beta, float* C, size_t ldc) {
  if (M == 0 || N == 0) return;
  if (K == 0) {
    for (size_t i = 0; i < M; ++i)
      for (size_t j = 0; j < N; ++j) C[i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[i * ldc + j];
    return;
  }
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, static_cast<int>(M),
              static_cast<int>(N), static_cast<int>(K), alpha, A, static_cast<int>(lda), B, static_cast<int>(ldb), beta, C,
              static_cast<int>(ldc));
}

float rms_norm_fwd(const float* x, const float* w, float* y, size_t n, float eps) {
  double ss = 0;
  for (size_t i = 0; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
  const float r = 1.0f / std::sqrt(static_cast<float>(ss / static_cast<double>(n)) + eps);
  for (size_t i = 0; i < n; ++i) y[i] = x[i] * r * w[i];
  return r;
}

void rms_norm_bwd(const float* x, const float* w, float rstd, const float* dy, float* dx, size_t n) {
  // y_i = x_i r w_i, r = (mean(x^2) + eps)^-1/2, dr/dx_j = -r^3 x_j / n
  double dot = 0;
  for (size_t i = 0; i < n; ++i) dot += static_cast<double>(dy[i]) * w[i] * x[i];
  const float c = static_cast<float>(dot) * rstd * rstd * rstd / static_cast<float>(n);
  for (size_t i = 0; i < n; ++i) dx[i] = dy[i] * w[i] * rstd - x[i] * c;
}

void rope_fwd(float* x, const float* cs, size_t half, bool neox) {
  for (size_t i = 0; i < half; ++i) {
    const size_t a = neox ? i : 2 * i, b = neox ? i + half : 2 * i + 1;
    const float x0 = x[a], x1 = x[b], c = cs[2 * i], s = cs[2 * i + 1];
    x[a] = x0 * c - x1 * s;
    x[b] = x0 * s + x1 * c;
  }
}

void rope_bwd(float* dx, const float* cs, size_t half, bool neox) {
  for (size_t i = 0; i < half; ++i) {
    const size_t a = neox ? i : 2 * i, b = neox ? i + half : 2 * i + 1;
    const float d0 = dx[a], d1 = dx[b], c = cs[2 * i], s = cs[2 * i + 1];
    dx[a] = d0 * c + d1 * s;
    dx[b] = -d0 * s + d1 * c;
  }
}

namespace {
constexpr float kGeluC = 0.7978845608028654f;  // sqrt(2 / pi)
constexpr float kGeluA = 0.044715f;
inline float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }
}  // namespace

void glu_fwd(bool gelu, const float* g, const float* u, float* a, size_t n) {
  if (gelu)
    for (size_t i = 0; i < n; ++i) {
      const float x = g[i];
      a[i] = 0.5f * x * (1.0f + std::tanh(kGeluC * (x + kGeluA * x * x * x))) * u[i];
    }
  else
    for (size_t i = 0; i < n; ++i) a[i] = g[i] * sigmoid(g[i]) * u[i];
}

void glu_bwd(bool gelu, const float* g, const float* u, const float* da, float* dg, float* du, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    const float x = g[i];
    float act, dact;
    if (gelu) {
      const float t = std::tanh(kGeluC * (x + kGeluA * x * x * x));
      act = 0.5f * x * (1.0f + t);
      dact = 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * kGeluC * (1.0f + 3.0f * kGeluA * x * x);
    } else {
      const float s = sigmoid(x);
      act = x * s;
      dact = s * (1.0f + x * (1.0f - s));
    }
    const float d = da[i];
    du[i] = d * act;
    dg[i] = d * u[i] * dact;
  }
}

namespace {
inline size_t first_key(size_t i, size_t window) { return window && i + 1 > window ? i + 1 - window : 0; }
}  // namespace

void attention_fwd(size_t T, size_t d, size_t dv, const float* q, size_t ldq, const float* k, size_t ldk, const float* v,
                   size_t ldv, float scale, size_t window, float* o, size_t ldo, float* lse, float* scratch) {
  float* S = scratch;
  gemm(false, true, T, T, d, scale, q, ldq, k, ldk, 0.0f, S, T);
  for (size_t i = 0; i < T; ++i) {
    float* s = S + i * T;
    const size_t j0 = first_key(i, window);
    float mx = -std::numeric_limits<float>::infinity();
    for (size_t j = j0; j <= i; ++j) mx = std::max(mx, s[j]);
    double sum = 0;
    for (size_t j = 0; j < T; ++j) {
      if (j < j0 || j > i) {
        s[j] = 0.0f;
        continue;
      }
      s[j] = std::exp(s[j] - mx);
      sum += s[j];
    }
    const float inv = static_cast<float>(1.0 / sum);
    for (size_t j = j0; j <= i; ++j) s[j] *= inv;
    lse[i] = mx + static_cast<float>(std::log(sum));
  }
  gemm(false, false, T, dv, T, 1.0f, S, T, v, ldv, 0.0f, o, ldo);
}

void attention_bwd(size_t T, size_t d, size_t dv, const float* q, size_t ldq, const float* k, size_t ldk, const float* v,
                   size_t ldv, float scale, size_t window, const float* lse, const float* d_o, size_t lddo, float* dq,
                   size_t lddq, float* dk, size_t lddk, float* dvv, size_t lddv, float* scratch) {
  float *P = scratch, *dP = scratch + T * T;
  gemm(false, true, T, T, d, scale, q, ldq, k, ldk, 0.0f, P, T);
  for (size_t i = 0; i < T; ++i) {
    float* p = P + i * T;
    const size_t j0 = first_key(i, window);
    for (size_t j = 0; j < T; ++j) p[j] = (j < j0 || j > i) ? 0.0f : std::exp(p[j] - lse[i]);
  }
  gemm(false, true, T, T, dv, 1.0f, d_o, lddo, v, ldv, 0.0f, dP, T);
  for (size_t i = 0; i < T; ++i) {
    const float* p = P + i * T;
    float* dp = dP + i * T;
    double D = 0;
    for (size_t j = 0; j < T; ++j) D += static_cast<double>(p[j]) * dp[j];
    const float Df = static_cast<float>(D);
    for (size_t j = 0; j < T; ++j) dp[j] = p[j] * (dp[j] - Df);  // dS
  }
  gemm(false, false, T, d, T, scale, dP, T, k, ldk, 0.0f, dq, lddq);
  gemm(true, false, T, d, T, scale, dP, T, q, ldq, 0.0f, dk, lddk);
  gemm(true, false, T, dv, T, 1.0f, P, T, d_o, lddo, 0.0f, dvv, lddv);
}

double log_softmax_target(float* logits, size_t n, size_t target, float weight, bool grad) {
  float mx = -std::numeric_limits<float>::infinity();
  for (size_t i = 0; i < n; ++i) mx = std::max(mx, logits[i]);
  // e_i = exp(z_i - max), ~1 ulp (ggml's polynomial, 8 lanes where AVX2 is built); with grad the
  // logits hold e_i until they are scaled into the gradient
  float* e = grad ? logits : nullptr;
  const float z_target = logits[target];
  double sum = 0;
  size_t i = 0;
#if defined(__AVX2__) && defined(__FMA__)
  const __m256 vmx = _mm256_set1_ps(mx);
  __m256 acc = _mm256_setzero_ps();
  for (; i + 8 <= n; i += 8) {
    const __m256 v = expf8(_mm256_sub_ps(_mm256_loadu_ps(logits + i), vmx));
    if (e) _mm256_storeu_ps(e + i, v);
    acc = _mm256_add_ps(acc, v);
    if ((i & 1023) == 1016) {  // flush to double every 1024 values
      alignas(32) float t[8];
      _mm256_store_ps(t, acc);
      for (float x : t) sum += x;
      acc = _mm256_setzero_ps();
    }
  }
  alignas(32) float t[8];
  _mm256_store_ps(t, acc);
  for (float x : t) sum += x;
#endif
  for (; i < n; ++i) {
    const float v = ggml_expf(logits[i] - mx);
    if (e) e[i] = v;
    sum += v;
  }
  const double lse = static_cast<double>(mx) + std::log(sum);
  const double lp = static_cast<double>(z_target) - lse;
  if (grad) {
    const float s = weight * static_cast<float>(1.0 / sum);
    for (size_t k = 0; k < n; ++k) logits[k] *= s;
    logits[target] -= weight;
  }
  return lp;
}

}  // namespace loom::kernels::train
