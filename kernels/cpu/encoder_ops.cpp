#include "kernels/cpu/encoder_ops.h"

#include <cblas.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <new>
#include <utility>
#include <vector>

#include "kernels/cpu/vec_exp.h"

extern "C" void openblas_set_num_threads(int);

namespace loom::kernels {

void blas_single_threaded() { openblas_set_num_threads(1); }

void linear_f32(const float* x, size_t ldx, size_t M, size_t K, const float* W, size_t N, const float* b, float* y,
                size_t ldy) {
  if (M == 0 || N == 0) return;
  float beta = 0.0f;
  if (b) {
    for (size_t i = 0; i < M; ++i) std::copy(b, b + N, y + i * ldy);
    beta = 1.0f;
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(M), static_cast<int>(N), static_cast<int>(K),
              1.0f, x, static_cast<int>(ldx), W, static_cast<int>(K), beta, y, static_cast<int>(ldy));
}

void linear_f32_ref(const float* x, size_t ldx, size_t M, size_t K, const float* W, size_t N, const float* b, float* y,
                    size_t ldy) {
  for (size_t i = 0; i < M; ++i)
    for (size_t j = 0; j < N; ++j) {
      double s = b ? b[j] : 0.0;
      for (size_t k = 0; k < K; ++k) s += static_cast<double>(x[i * ldx + k]) * W[j * K + k];
      y[i * ldy + j] = static_cast<float>(s);
    }
}

#if defined(__AVX2__) && defined(__FMA__)
namespace {
inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
inline float hmax(__m256 v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
}  // namespace
#endif

void layer_norm_f32(float* x, size_t n, const float* add, const float* w, const float* b, float eps) {
  size_t i = 0;
  float sum = 0.0f;
#if defined(__AVX2__) && defined(__FMA__)
  __m256 acc = _mm256_setzero_ps();
  for (; i + 8 <= n; i += 8) {
    __m256 v = _mm256_loadu_ps(x + i);
    if (add) v = _mm256_add_ps(v, _mm256_loadu_ps(add + i));
    _mm256_storeu_ps(x + i, v);
    acc = _mm256_add_ps(acc, v);
  }
  sum = hsum(acc);
#endif
  for (; i < n; ++i) {
    if (add) x[i] += add[i];
    sum += x[i];
  }
  const float mean = sum / static_cast<float>(n);
  float ss = 0.0f;
  i = 0;
#if defined(__AVX2__) && defined(__FMA__)
  const __m256 vm = _mm256_set1_ps(mean);
  acc = _mm256_setzero_ps();
  for (; i + 8 <= n; i += 8) {
    __m256 d = _mm256_sub_ps(_mm256_loadu_ps(x + i), vm);
    acc = _mm256_fmadd_ps(d, d, acc);
  }
  ss = hsum(acc);
#endif
  for (; i < n; ++i) ss += (x[i] - mean) * (x[i] - mean);
  const float rstd = 1.0f / std::sqrt(ss / static_cast<float>(n) + eps);
  i = 0;
#if defined(__AVX2__) && defined(__FMA__)
  const __m256 vr = _mm256_set1_ps(rstd);
  for (; i + 8 <= n; i += 8) {
    __m256 d = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm), vr);
    _mm256_storeu_ps(x + i, _mm256_fmadd_ps(d, _mm256_loadu_ps(w + i), _mm256_loadu_ps(b + i)));
  }
#endif
  for (; i < n; ++i) x[i] = (x[i] - mean) * rstd * w[i] + b[i];
}

void layer_norm_f32_ref(float* x, size_t n, const float* add, const float* w, const float* b, float eps) {
  std::vector<double> v(n);
  double mean = 0;
  for (size_t i = 0; i < n; ++i) mean += v[i] = static_cast<double>(x[i]) + (add ? add[i] : 0.0f);
  mean /= static_cast<double>(n);
  double var = 0;
  for (size_t i = 0; i < n; ++i) var += (v[i] - mean) * (v[i] - mean);
  var /= static_cast<double>(n);
  for (size_t i = 0; i < n; ++i) x[i] = static_cast<float>((v[i] - mean) / std::sqrt(var + eps) * w[i] + b[i]);
}

namespace {
// erf by a series near 0 and A&S 7.1.26 elsewhere (see the header for the error bound).
constexpr float kSeries[] = {1.128379167f, -0.3761263890f, 0.1128379167f, -0.02686617064f, 0.005223977625f,
                             -0.0008548327023f};  // 2/sqrt(pi) * (-1)^n / (n! (2n+1))
constexpr float kP = 0.3275911f;
constexpr float kA[] = {0.254829592f, -0.284496736f, 1.421413741f, -1.453152027f, 1.061405429f};

inline float erf_scalar(float z) {
  const float a = std::min(std::fabs(z), 6.0f);
  float r;
  if (a < 0.5f) {
    const float a2 = a * a;
    float p = kSeries[5];
    for (int i = 4; i >= 0; --i) p = std::fma(p, a2, kSeries[i]);
    r = p * a;
  } else {
    const float t = 1.0f / std::fma(kP, a, 1.0f);
    float p = kA[4];
    for (int i = 3; i >= 0; --i) p = std::fma(p, t, kA[i]);
    r = 1.0f - p * t * ggml_expf(-a * a);
  }
  return std::copysign(r, z);
}
}  // namespace

float gelu_erf_ref(float x) { return static_cast<float>(0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0)))); }

void gelu_erf_f32(float* x, size_t n) {
  constexpr float kInvSqrt2 = 0.70710678118654752f;
  size_t i = 0;
#if defined(__AVX512F__)
  {
    const __m512 one = _mm512_set1_ps(1.0f), half = _mm512_set1_ps(0.5f);
    for (; i + 16 <= n; i += 16) {
      const __m512 v = _mm512_loadu_ps(x + i);
      const __m512 z = _mm512_mul_ps(v, _mm512_set1_ps(kInvSqrt2));
      const __m512 a = _mm512_min_ps(_mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(z), _mm512_set1_epi32(0x7FFFFFFF))), _mm512_set1_ps(6.0f));
      const __m512 a2 = _mm512_mul_ps(a, a);
      __m512 s = _mm512_set1_ps(kSeries[5]);
      for (int k = 4; k >= 0; --k) s = _mm512_fmadd_ps(s, a2, _mm512_set1_ps(kSeries[k]));
      s = _mm512_mul_ps(s, a);
      const __m512 t = _mm512_div_ps(one, _mm512_fmadd_ps(_mm512_set1_ps(kP), a, one));
      __m512 p = _mm512_set1_ps(kA[4]);
      for (int k = 3; k >= 0; --k) p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(kA[k]));
      const __m512 e = expf16_near(_mm512_sub_ps(_mm512_setzero_ps(), a2));
      __m512 r = _mm512_fnmadd_ps(_mm512_mul_ps(p, t), e, one);
      r = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, half, _CMP_LT_OQ), r, s);
      // erf is odd: the sign of z
      r = _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(r),
                                              _mm512_and_si512(_mm512_castps_si512(z), _mm512_set1_epi32(INT32_MIN))));
      _mm512_storeu_ps(x + i, _mm512_mul_ps(_mm512_mul_ps(half, v), _mm512_add_ps(one, r)));
    }
  }
#endif
#if defined(__AVX2__) && defined(__FMA__)
  const __m256 sign = _mm256_set1_ps(-0.0f), one = _mm256_set1_ps(1.0f), half = _mm256_set1_ps(0.5f);
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    const __m256 z = _mm256_mul_ps(v, _mm256_set1_ps(kInvSqrt2));
    const __m256 a = _mm256_min_ps(_mm256_andnot_ps(sign, z), _mm256_set1_ps(6.0f));
    const __m256 a2 = _mm256_mul_ps(a, a);
    __m256 s = _mm256_set1_ps(kSeries[5]);
    for (int k = 4; k >= 0; --k) s = _mm256_fmadd_ps(s, a2, _mm256_set1_ps(kSeries[k]));
    s = _mm256_mul_ps(s, a);
    const __m256 t = _mm256_div_ps(one, _mm256_fmadd_ps(_mm256_set1_ps(kP), a, one));
    __m256 p = _mm256_set1_ps(kA[4]);
    for (int k = 3; k >= 0; --k) p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(kA[k]));
    const __m256 e = expf8(_mm256_sub_ps(_mm256_setzero_ps(), a2));
    const __m256 l = _mm256_fnmadd_ps(_mm256_mul_ps(p, t), e, one);
    const __m256 small = _mm256_cmp_ps(a, half, _CMP_LT_OQ);
    __m256 r = _mm256_blendv_ps(l, s, small);
    r = _mm256_or_ps(r, _mm256_and_ps(z, sign));  // erf is odd
    _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_mul_ps(half, v), _mm256_add_ps(one, r)));
  }
#endif
  for (; i < n; ++i) {
    x[i] = 0.5f * x[i] * (1.0f + erf_scalar(x[i] * kInvSqrt2));
  }
}

void softmax_f32(float* x, size_t n) {
  if (n == 0) return;
  float mx = x[0];
  size_t i = 0;
#if defined(__AVX2__) && defined(__FMA__)
  if (n >= 8) {
    __m256 m = _mm256_loadu_ps(x);
    for (i = 8; i + 8 <= n; i += 8) m = _mm256_max_ps(m, _mm256_loadu_ps(x + i));
    mx = hmax(m);
  }
#endif
  for (; i < n; ++i) mx = std::max(mx, x[i]);
  float sum = 0.0f;
  i = 0;
#if defined(__AVX2__) && defined(__FMA__)
  __m256 acc = _mm256_setzero_ps();
  const __m256 vm = _mm256_set1_ps(mx);
  for (; i + 8 <= n; i += 8) {
    const __m256 e = expf8(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm));
    _mm256_storeu_ps(x + i, e);
    acc = _mm256_add_ps(acc, e);
  }
  sum = hsum(acc);
#endif
  for (; i < n; ++i) sum += x[i] = ggml_expf(x[i] - mx);
  const float inv = 1.0f / sum;
  for (i = 0; i < n; ++i) x[i] *= inv;
}

void softmax_f32_ref(float* x, size_t n) {
  if (n == 0) return;
  double mx = *std::max_element(x, x + n), sum = 0;
  std::vector<double> e(n);
  for (size_t i = 0; i < n; ++i) sum += e[i] = std::exp(static_cast<double>(x[i]) - mx);
  for (size_t i = 0; i < n; ++i) x[i] = static_cast<float>(e[i] / sum);
}

void attention_head_f32(const float* q, const float* k, const float* v, size_t ld, size_t L, size_t dh, float scale,
                        float* out, size_t ldo, float* scores) {
  if (L == 0) return;
  const int l = static_cast<int>(L), d = static_cast<int>(dh);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, l, l, d, scale, q, static_cast<int>(ld), k, static_cast<int>(ld),
              0.0f, scores, l);
  for (size_t i = 0; i < L; ++i) softmax_f32(scores + i * L, L);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, l, d, l, 1.0f, scores, l, v, static_cast<int>(ld), 0.0f, out,
              static_cast<int>(ldo));
}

void attention_head_f32_ref(const float* q, const float* k, const float* v, size_t ld, size_t L, size_t dh, float scale,
                            float* out, size_t ldo) {
  std::vector<double> s(L);
  for (size_t i = 0; i < L; ++i) {
    double mx = -INFINITY;
    for (size_t j = 0; j < L; ++j) {
      double dot = 0;
      for (size_t c = 0; c < dh; ++c) dot += static_cast<double>(q[i * ld + c]) * k[j * ld + c];
      s[j] = dot * scale;
      mx = std::max(mx, s[j]);
    }
    double sum = 0;
    for (size_t j = 0; j < L; ++j) sum += s[j] = std::exp(s[j] - mx);
    for (size_t c = 0; c < dh; ++c) {
      double o = 0;
      for (size_t j = 0; j < L; ++j) o += s[j] / sum * v[j * ld + c];
      out[i * ldo + c] = static_cast<float>(o);
    }
  }
}

}  // namespace loom::kernels

namespace loom::kernels {

namespace {
// Every output element is its bias (or 0) followed by one fma per k in order, whatever the tile
// shape, the row's place in the batch or the vector width: a row gets the same bits in any batch,
// and AVX2 machines the same bits as AVX-512 ones. C is stored between K blocks (exact in fp32).
#if defined(__AVX512F__)
constexpr size_t kNR = 32;   // columns of a panel (two zmm registers)
constexpr size_t kMR = 12;   // rows of a register tile: 24 accumulators
#define LOOM_PACKED_LINEAR 1
#elif defined(__AVX2__) && defined(__FMA__)
constexpr size_t kNR = 16;   // columns of a panel (two ymm registers)
constexpr size_t kMR = 6;    // rows of a register tile: 12 accumulators of the 16 registers
#define LOOM_PACKED_LINEAR 1
#endif
#if defined(LOOM_PACKED_LINEAR)
constexpr size_t kKC = 384;  // rows of a panel per pass (its slice of B stays in L1/L2)
constexpr size_t kMC = 96;   // rows of x per block (their kc slices stay in L2 across panels)
#endif

#if defined(__AVX512F__)
// C[MR x 32] (+)= A[MR x kc] B[kc x 32]; `first`: start from the bias (or 0), else from C.
// The columns past `cols` (the padded end of the last panel) are neither read nor written.
template <int MR>
inline void tile(const float* A, size_t lda, const float* B, size_t kc, float* C, size_t ldc, bool first,
                 const float* bias, size_t cols) {
  const __mmask16 m0 = cols >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << cols) - 1);
  const __mmask16 m1 = cols >= 32 ? 0xFFFF : cols <= 16 ? 0 : static_cast<__mmask16>((1u << (cols - 16)) - 1);
  __m512 c0[MR], c1[MR];
  if (first) {
    const __m512 b0 = bias ? _mm512_maskz_loadu_ps(m0, bias) : _mm512_setzero_ps();
    const __m512 b1 = bias ? _mm512_maskz_loadu_ps(m1, bias + 16) : _mm512_setzero_ps();
    for (int r = 0; r < MR; ++r) c0[r] = b0, c1[r] = b1;
  } else {
    for (int r = 0; r < MR; ++r) {
      c0[r] = _mm512_maskz_loadu_ps(m0, C + r * ldc);
      c1[r] = _mm512_maskz_loadu_ps(m1, C + r * ldc + 16);
    }
  }
  for (size_t k = 0; k < kc; ++k) {
    const __m512 b0 = _mm512_load_ps(B + k * kNR), b1 = _mm512_load_ps(B + k * kNR + 16);
    for (int r = 0; r < MR; ++r) {
      const __m512 a = _mm512_set1_ps(A[r * lda + k]);
      c0[r] = _mm512_fmadd_ps(a, b0, c0[r]);
      c1[r] = _mm512_fmadd_ps(a, b1, c1[r]);
    }
  }
  for (int r = 0; r < MR; ++r) {
    _mm512_mask_storeu_ps(C + r * ldc, m0, c0[r]);
    _mm512_mask_storeu_ps(C + r * ldc + 16, m1, c1[r]);
  }
}
#elif defined(LOOM_PACKED_LINEAR)
// The same over panels of 16 columns: C[MR x 16] (+)= A[MR x kc] B[kc x 16]. Lanes past `cols`
// are masked off (maskload reads nothing there, maskstore writes nothing), and a second half with
// no lanes is not touched at all (AMD leaves faults of masked-off lanes to the model). The loops
// over rows are unrolled by pragma: otherwise GCC keeps the accumulator arrays in memory and
// stores all 12 every step (14 GMAC/s instead of 40 on a Zen 3).
inline __m256i lanes_below(size_t n) {
  const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(std::min<size_t>(n, 8))), idx);
}
template <int MR>
inline void tile(const float* A, size_t lda, const float* B, size_t kc, float* C, size_t ldc, bool first,
                 const float* bias, size_t cols) {
  const bool full = cols >= 16;
  const __m256i m0 = lanes_below(cols), m1 = lanes_below(cols > 8 ? cols - 8 : 0);
  __m256 c0[MR], c1[MR];
  if (first) {
    __m256 b0 = _mm256_setzero_ps(), b1 = _mm256_setzero_ps();
    if (bias) {
      b0 = full ? _mm256_loadu_ps(bias) : _mm256_maskload_ps(bias, m0);
      if (cols > 8) b1 = full ? _mm256_loadu_ps(bias + 8) : _mm256_maskload_ps(bias + 8, m1);
    }
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) c0[r] = b0, c1[r] = b1;
  } else if (full) {
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) c0[r] = _mm256_loadu_ps(C + r * ldc), c1[r] = _mm256_loadu_ps(C + r * ldc + 8);
  } else {
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      c0[r] = _mm256_maskload_ps(C + r * ldc, m0);
      c1[r] = cols > 8 ? _mm256_maskload_ps(C + r * ldc + 8, m1) : _mm256_setzero_ps();
    }
  }
  for (size_t k = 0; k < kc; ++k) {
    const __m256 b0 = _mm256_load_ps(B + k * kNR), b1 = _mm256_load_ps(B + k * kNR + 8);
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      const __m256 a = _mm256_broadcast_ss(A + r * lda + k);
      c0[r] = _mm256_fmadd_ps(a, b0, c0[r]);
      c1[r] = _mm256_fmadd_ps(a, b1, c1[r]);
    }
  }
  if (full) {
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) _mm256_storeu_ps(C + r * ldc, c0[r]), _mm256_storeu_ps(C + r * ldc + 8, c1[r]);
  } else {
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      _mm256_maskstore_ps(C + r * ldc, m0, c0[r]);
      if (cols > 8) _mm256_maskstore_ps(C + r * ldc + 8, m1, c1[r]);
    }
  }
}
#endif

#if defined(LOOM_PACKED_LINEAR)
using TileFn = void (*)(const float*, size_t, const float*, size_t, float*, size_t, bool, const float*, size_t);
template <size_t... I>
constexpr auto make_tiles(std::index_sequence<I...>) {
  return std::array<TileFn, sizeof...(I)>{&tile<static_cast<int>(I + 1)>...};
}
constexpr auto kTiles = make_tiles(std::make_index_sequence<kMR>{});
#endif
}  // namespace

PackedWeights pack_weights(const float* W, size_t N, size_t K) {
  PackedWeights p;
  p.w = W, p.n = N, p.k = K;
#if defined(LOOM_PACKED_LINEAR)
  const size_t panels = (N + kNR - 1) / kNR;
  float* buf = static_cast<float*>(std::aligned_alloc(64, std::max<size_t>(64, panels * K * kNR * sizeof(float))));
  if (!buf) throw std::bad_alloc();
  p.panels = std::shared_ptr<float>(buf, [](float* q) { std::free(q); });
  for (size_t pi = 0; pi < panels; ++pi)
    for (size_t k = 0; k < K; ++k)
      for (size_t c = 0; c < kNR; ++c) {
        const size_t n = pi * kNR + c;
        buf[(pi * K + k) * kNR + c] = n < N ? W[n * K + k] : 0.0f;
      }
#endif
  return p;
}

void linear_packed_f32(const float* x, size_t ldx, size_t M, const PackedWeights& W, const float* b, float* y, size_t ldy,
                       bool gelu) {
#if defined(LOOM_PACKED_LINEAR)
  const size_t N = W.n, K = W.k, panels = (N + kNR - 1) / kNR;
  for (size_t m0 = 0; m0 < M; m0 += kMC) {
    const size_t mc = std::min(kMC, M - m0);
    for (size_t k0 = 0; k0 < K || (K == 0 && k0 == 0); k0 += kKC) {
      const size_t kc = std::min(kKC, K - k0);
      const bool first = k0 == 0, last = k0 + kc >= K;
      for (size_t pi = 0; pi < panels; ++pi) {
        const size_t cols = std::min(kNR, N - pi * kNR);
        const float* B = W.panels.get() + (pi * K + k0) * kNR;
        const float* bias = b ? b + pi * kNR : nullptr;
        for (size_t r = 0; r < mc; r += kMR) {
          const size_t mr = std::min(kMR, mc - r);
          float* C = y + (m0 + r) * ldy + pi * kNR;
          kTiles[mr - 1](x + (m0 + r) * ldx + k0, ldx, B, kc, C, ldy, first, bias, cols);
          if (last && gelu)
            for (size_t i = 0; i < mr; ++i) gelu_erf_f32(C + i * ldy, cols);
        }
      }
      if (K == 0) break;
    }
  }
#else
  linear_f32(x, ldx, M, W.k, W.w, W.n, b, y, ldy);
  if (gelu)
    for (size_t i = 0; i < M; ++i) gelu_erf_f32(y + i * ldy, W.n);
#endif
}

}  // namespace loom::kernels
