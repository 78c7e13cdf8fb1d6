#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <utility>

#include <fmt/format.h>
#if defined(__F16C__)
#include <immintrin.h>
#endif

#include "kernels/cpu/quant_dot.h"
#include "kernels/cpu/vec_exp.h"
#include "loom/core/error.h"
#include "loom/core/parallel.h"
#include "loom/model/backend.h"
#include "loom/model/decoder.h"
#include "loom/tensor/dequant.h"

namespace loom::model {

using kernels::GgmlType;
#if defined(__AVX2__) && defined(__FMA__)
using kernels::expf8;
#endif
using kernels::ggml_expf;

namespace {

// f32 -> f16, round to nearest even (as ggml's conversion).
uint16_t f32_to_f16(float f) {
#if defined(__F16C__)
  return static_cast<uint16_t>(_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT));
#else
  uint32_t x;
  std::memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000, mant = x & 0x7FFFFF;
  int32_t exp = static_cast<int32_t>((x >> 23) & 0xFF);
  if (exp == 0xFF) return static_cast<uint16_t>(sign | 0x7C00 | (mant ? 0x200 | (mant >> 13) : 0));
  exp -= 127 - 15;
  if (exp >= 0x1F) return static_cast<uint16_t>(sign | 0x7C00);
  if (exp <= 0) {
    if (exp < -10) return static_cast<uint16_t>(sign);
    mant |= 0x800000;
    uint32_t shift = static_cast<uint32_t>(14 - exp);
    uint32_t half = mant >> shift, rem = mant & ((1u << shift) - 1), mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1))) ++half;
    return static_cast<uint16_t>(sign | half);
  }
  uint32_t half = (static_cast<uint32_t>(exp) << 10) | (mant >> 13), rem = mant & 0x1FFF;
  if (rem > 0x1000 || (rem == 0x1000 && (half & 1))) ++half;
  return static_cast<uint16_t>(sign | half);
#endif
}

// x * w / rms(x), the sum of squares in double (as ggml).
void rms_norm(const float* x, const float* w, float* out, size_t n, float eps) {
  double sum = 0;
  for (size_t i = 0; i < n; ++i) sum += static_cast<double>(x[i] * x[i]);
  float scale = 1.0f / std::sqrt(static_cast<float>(sum / static_cast<double>(n)) + eps);
  for (size_t i = 0; i < n; ++i) out[i] = x[i] * scale * w[i];
}

// GELU (tanh form) as ggml computes it on the CPU: a table of f16 results indexed by the input
// rounded to f16 (0 at or below -10, x at or above 10). The table is built once, from the same
// formula.
float gelu_tanh(float x) {
  if (x <= -10.0f) return 0.0f;
  if (x >= 10.0f) return x;
  static const std::vector<uint16_t> table = [] {
    std::vector<uint16_t> t(65536);
    const float c = 0.797884560802865355f;  // sqrt(2/pi)
    for (uint32_t i = 0; i < 65536; ++i) {
      const float h = tensor::f16_to_f32(static_cast<uint16_t>(i));
      t[i] = f32_to_f16(0.5f * h * (1.0f + std::tanh(c * h * (1.0f + 0.044715f * h * h))));
    }
    return t;
  }();
  return tensor::f16_to_f32(table[f32_to_f16(x)]);
}
float silu(float x) { return x / (1.0f + ggml_expf(0.0f - x)); }

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#define LOOM_DEC_SIMD 1
// ((a0+a4)+(a2+a6)) + ((a1+a5)+(a3+a7)), as ggml's and tinyBLAS's 8-lane sums.
inline float hsum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
inline __m256 load_h8(const uint16_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
// f32 -> f16 -> f32 on 8 lanes (round to nearest even).
inline __m256 round_h8(__m256 v) { return _mm256_cvtph_ps(_mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT)); }
// ggml_vec_dot_f16's final sum of its four 8-lane accumulators: (a0+a2)+(a1+a3), then the lanes
// as ((l0+l4)+(l1+l5)) + ((l2+l6)+(l3+l7)).
inline float sum_acc4(__m256 a0, __m256 a1, __m256 a2, __m256 a3) {
  const __m256 r = _mm256_add_ps(_mm256_add_ps(a0, a2), _mm256_add_ps(a1, a3));
  const __m128 t0 = _mm_add_ps(_mm256_castps256_ps128(r), _mm256_extractf128_ps(r, 1));
  const __m128 t1 = _mm_hadd_ps(t0, t0);
  return _mm_cvtss_f32(_mm_hadd_ps(t1, t1));
}
#else
#define LOOM_DEC_SIMD 0
#endif

// The dot of an f16 row with f16-valued floats as llama.cpp's CPU matmul (tinyBLAS on AVX2) does
// it for attention: one 8-lane accumulator (element i in lane i % 8), fused multiply-adds, the
// lanes summed as hsum8. n is a multiple of 8.
[[maybe_unused]] float dot_hq(const uint16_t* k, const float* q, size_t n) {
#if LOOM_DEC_SIMD
  __m256 acc = _mm256_setzero_ps();
  for (size_t i = 0; i < n; i += 8) acc = _mm256_fmadd_ps(load_h8(k + i), _mm256_loadu_ps(q + i), acc);
  return hsum8(acc);
#else
  float acc[8] = {};
  for (size_t i = 0; i < n; i += 8)
    for (size_t l = 0; l < 8; ++l) acc[l] = std::fma(tensor::f16_to_f32(k[i + l]), q[i + l], acc[l]);
  return ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
#endif
}

// The same dot in the order of ggml_vec_dot_f16 on AVX2, which llama.cpp uses when a batch
// has one token (tinyBLAS declines n < 2): four 8-lane accumulators over 32-element steps
// (element i in accumulator (i % 32) / 8, lane i % 8), combined as (a0+a2)+(a1+a3), then the 8
// lanes as ((l0+l4)+(l1+l5)) + ((l2+l6)+(l3+l7)); elements past the last whole step are added
// in double.
float dot_hq_vec(const uint16_t* k, const float* q, size_t n) {
  const size_t np = n & ~size_t{31};
#if LOOM_DEC_SIMD
  __m256 a[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
  for (size_t i = 0; i < np; i += 32)
    for (size_t c = 0; c < 4; ++c) a[c] = _mm256_fmadd_ps(load_h8(k + i + 8 * c), _mm256_loadu_ps(q + i + 8 * c), a[c]);
  double sum = sum_acc4(a[0], a[1], a[2], a[3]);
#else
  float a[4][8] = {};
  for (size_t i = 0; i < np; i += 32)
    for (size_t c = 0; c < 4; ++c)
      for (size_t l = 0; l < 8; ++l) a[c][l] = std::fma(tensor::f16_to_f32(k[i + 8 * c + l]), q[i + 8 * c + l], a[c][l]);
  float r[8];
  for (size_t l = 0; l < 8; ++l) r[l] = (a[0][l] + a[2][l]) + (a[1][l] + a[3][l]);
  double sum = ((r[0] + r[4]) + (r[1] + r[5])) + ((r[2] + r[6]) + (r[3] + r[7]));
#endif
  for (size_t i = np; i < n; ++i) sum += static_cast<double>(tensor::f16_to_f32(k[i]) * q[i]);
  return static_cast<float>(sum);
}

float round_f16(float x) {
#if LOOM_DEC_SIMD
  return _cvtsh_ss(_cvtss_sh(x, _MM_FROUND_TO_NEAREST_INT));
#else
  return tensor::f16_to_f32(f32_to_f16(x));
#endif
}

#if LOOM_DEC_SIMD
// Cells (scores) or value columns per attention tile, for up to 4 query heads: the tile's
// accumulators and operands in registers (16 on AVX2: 4 x 4 spilled).
#if defined(__AVX512F__)
constexpr int kCells = 4;
#else
constexpr int kCells = 2;
#endif

// Scores of NJ consecutive cells (from j) for NG query heads: each an 8-lane f16 dot in tinyBLAS
// order (see dot_hq); the tile shares every key chunk and query chunk loaded.
template <int NJ, int NG>
inline void scores_tile(const uint16_t* K, size_t k_stride, uint32_t j, const float* qh, size_t hd, float scale,
                        float* const* ws) {
  __m256 acc[NJ][NG];
  for (int a = 0; a < NJ; ++a)
    for (int g = 0; g < NG; ++g) acc[a][g] = _mm256_setzero_ps();
  for (size_t i = 0; i < hd; i += 8) {
    __m256 k[NJ];
    for (int a = 0; a < NJ; ++a) k[a] = load_h8(K + size_t{j + a} * k_stride + i);
    for (int g = 0; g < NG; ++g) {
      const __m256 qv = _mm256_loadu_ps(qh + g * hd + i);
      for (int a = 0; a < NJ; ++a) acc[a][g] = _mm256_fmadd_ps(k[a], qv, acc[a][g]);
    }
  }
  for (int a = 0; a < NJ; ++a)
    for (int g = 0; g < NG; ++g) ws[g][j + a] = hsum8(acc[a][g]) * scale;
}

// Outputs i..i+NI-1 of NG heads: value columns dotted with each head's f16-rounded
// probabilities over the 8-cell groups [g0, g1), lanes by cell % 8 (tinyBLAS order); cells past
// p are masked to zero.
template <int NI, int NG>
inline void values_tile(const uint16_t* const* vcols, size_t i, uint32_t g0, uint32_t g1, __m256 tail,
                        const float* const* ws, float* out, size_t hdv) {
  __m256 acc[NI][NG];
  for (int a = 0; a < NI; ++a)
    for (int g = 0; g < NG; ++g) acc[a][g] = _mm256_setzero_ps();
  for (uint32_t j0 = g0; j0 < g1; j0 += 8) {
    __m256 v[NI];
    for (int a = 0; a < NI; ++a) {
      v[a] = load_h8(vcols[i + a] + j0);
      if (j0 + 8 == g1) v[a] = _mm256_and_ps(v[a], tail);
    }
    for (int g = 0; g < NG; ++g) {
      const __m256 pv = _mm256_loadu_ps(ws[g] + j0);
      for (int a = 0; a < NI; ++a) acc[a][g] = _mm256_fmadd_ps(v[a], pv, acc[a][g]);
    }
  }
  for (int a = 0; a < NI; ++a)
    for (int g = 0; g < NG; ++g) out[g * hdv + i + a] = hsum8(acc[a][g]);
}

// dot_hq_vec's scores of one cell for two query heads at once (the key row widened once): per
// head exactly dot_hq_vec's operations.
inline void scores_vec_2(const uint16_t* k, const float* qh, size_t hd, float scale, float* const* ws, uint32_t j) {
  const size_t np = hd & ~size_t{31};
  __m256 a[2][4];
  for (auto& h : a)
    for (auto& x : h) x = _mm256_setzero_ps();
  for (size_t i = 0; i < np; i += 32)
    for (size_t c = 0; c < 4; ++c) {
      const __m256 kv = load_h8(k + i + 8 * c);
      for (size_t g = 0; g < 2; ++g) a[g][c] = _mm256_fmadd_ps(kv, _mm256_loadu_ps(qh + g * hd + i + 8 * c), a[g][c]);
    }
  for (size_t g = 0; g < 2; ++g) {
    double sum = sum_acc4(a[g][0], a[g][1], a[g][2], a[g][3]);
    for (size_t i = np; i < hd; ++i) sum += static_cast<double>(tensor::f16_to_f32(k[i]) * qh[g * hd + i]);
    ws[g][j] = static_cast<float>(sum) * scale;
  }
}

// The one-token value sums of column `col` for NH heads at once (the column widened once): per
// head ggml_vec_dot_f16's order over the cells (see dot_hq_vec): cell j in accumulator
// (j % 32) / 8, lane j % 8, the accumulators combined by sum_acc4. The groups of 8 cells run
// four to a step, each into its accumulator by name; the last group is masked past p (tail).
template <int NH>
inline void values_vec(const uint16_t* col, uint32_t g0, uint32_t g1, __m256 tail, const float* const* ws, float* const* out) {
  __m256 a[NH][4];
  for (auto& h : a)
    for (auto& x : h) x = _mm256_setzero_ps();
  auto group = [&]<int C>(uint32_t j) {
    __m256 v = load_h8(col + j);
    if (j + 8 == g1) v = _mm256_and_ps(v, tail);
    for (int h = 0; h < NH; ++h) a[h][C] = _mm256_fmadd_ps(v, _mm256_loadu_ps(ws[h] + j), a[h][C]);
  };
  auto any_group = [&](uint32_t j) {
    switch ((j / 8) % 4) {
      case 0: group.template operator()<0>(j); break;
      case 1: group.template operator()<1>(j); break;
      case 2: group.template operator()<2>(j); break;
      default: group.template operator()<3>(j); break;
    }
  };
  uint32_t j0 = g0;
  for (; j0 < g1 && (j0 / 8) % 4 != 0; j0 += 8) any_group(j0);
  for (; j0 + 32 <= g1; j0 += 32) {
    group.template operator()<0>(j0);
    group.template operator()<1>(j0 + 8);
    group.template operator()<2>(j0 + 16);
    group.template operator()<3>(j0 + 24);
  }
  for (; j0 < g1; j0 += 8) any_group(j0);
  for (int h = 0; h < NH; ++h) *out[h] = sum_acc4(a[h][0], a[h][1], a[h][2], a[h][3]);
}

// Runs fn.template operator()<N>() with N = n (1..4).
template <class F>
inline void with_count(size_t n, F&& fn) {
  switch (n) {
    case 1: fn.template operator()<1>(); break;
    case 2: fn.template operator()<2>(); break;
    case 3: fn.template operator()<3>(); break;
    default: fn.template operator()<4>(); break;
  }
}
#endif

// The query heads of one token that share a key/value head (G of them: q and out hold them one
// after another) against its sequence's cache, as llama.cpp computes attention without flash
// attention: scores q·k over the cache cells by f16 dot products (q rounded to f16), scaled;
// cells outside [first, p] masked; softmax through ggml's exp with the sum in double over 8-cell
// groups; probabilities rounded to f16; each value column dotted with them. llama.cpp runs over
// the whole padded cache window; masked cells add exact zeros there, so only the 8-cell groups
// that touch [first, p] are visited here (same lanes, same sums). Each key row and value column is
// widened once for all G heads.
void attend_group(const float* q, size_t G, const uint16_t* K, size_t k_stride, const uint16_t* const* vcols,
                         size_t hd, size_t hdv, uint32_t first, uint32_t p, float q_scale, float scale, bool one_token, float* out) {
  thread_local std::vector<float> qh, w;
  const uint32_t g0 = first / 8 * 8, g1 = (p / 8 + 1) * 8;  // [g0, g1): whole 8-cell groups
  const size_t span = g1 - g0;
  qh.resize(G * hd);
  for (size_t i = 0; i < G * hd; ++i) qh[i] = round_f16(q[i] * q_scale);
  w.assign(G * span, 0.0f);
  auto wv = [&](size_t g) { return w.data() + g * span - g0; };  // wv(g)[j] for j in [g0, g1)
  // scores
  std::vector<float*> ws(G);
  for (size_t g = 0; g < G; ++g) ws[g] = wv(g);
  if (one_token) {
    for (uint32_t j = first; j <= p; ++j) {
      size_t g = 0;
#if LOOM_DEC_SIMD
      for (; g + 2 <= G; g += 2) scores_vec_2(K + size_t{j} * k_stride, &qh[g * hd], hd, scale, &ws[g], j);
#endif
      for (; g < G; ++g) ws[g][j] = dot_hq_vec(K + size_t{j} * k_stride, &qh[g * hd], hd) * scale;
    }
  } else {
#if LOOM_DEC_SIMD
    for (size_t g = 0; g < G; g += 4)
      with_count(std::min<size_t>(4, G - g), [&]<int NG>() {
        uint32_t j = first;
        for (; j + kCells <= p + 1; j += kCells) scores_tile<kCells, NG>(K, k_stride, j, &qh[g * hd], hd, scale, &ws[g]);
        for (; j <= p; ++j) scores_tile<1, NG>(K, k_stride, j, &qh[g * hd], hd, scale, &ws[g]);
      });
#else
    for (uint32_t j = first; j <= p; ++j)
      for (size_t g = 0; g < G; ++g) ws[g][j] = dot_hq(K + size_t{j} * k_stride, &qh[g * hd], hd) * scale;
#endif
  }
  // softmax per head
  for (size_t g = 0; g < G; ++g) {
    float* ws = wv(g);
    float mx = -INFINITY;
    for (uint32_t j = first; j <= p; ++j) mx = std::max(mx, ws[j]);
    double sum = 0;
    for (uint32_t j0 = g0; j0 < g1; j0 += 8) {
#if LOOM_DEC_SIMD
      const __m256i idx = _mm256_add_epi32(_mm256_set1_epi32(static_cast<int>(j0)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
      const __m256i lo = _mm256_set1_epi32(static_cast<int>(first) - 1), hi = _mm256_set1_epi32(static_cast<int>(p) + 1);
      const __m256 live = _mm256_castsi256_ps(_mm256_and_si256(_mm256_cmpgt_epi32(idx, lo), _mm256_cmpgt_epi32(hi, idx)));
      const __m256 e = _mm256_and_ps(expf8(_mm256_sub_ps(_mm256_loadu_ps(ws + j0), _mm256_set1_ps(mx))), live);
      _mm256_storeu_ps(ws + j0, e);
      sum += static_cast<double>(hsum8(e));
#else
      float e[8];
      for (uint32_t l = 0; l < 8; ++l) {
        const uint32_t j = j0 + l;
        e[l] = ws[j] = (j >= first && j <= p) ? ggml_expf(ws[j] - mx) : 0.0f;
      }
      sum += static_cast<double>(((e[0] + e[4]) + (e[2] + e[6])) + ((e[1] + e[5]) + (e[3] + e[7])));
#endif
    }
    const float inv = static_cast<float>(1.0 / sum);
    for (uint32_t j = g0; j < g1; ++j) ws[j] = round_f16(ws[j] * inv);
  }
  // value columns; the cells past p (unwritten) are read as zero
  if (one_token) {
    // ggml_vec_dot_f16's order over the n_kv cells (see dot_hq_vec): cell j in accumulator
    // (j % 32) / 8, lane j % 8. The groups before g0 and after g1 would add exact zeros.
#if LOOM_DEC_SIMD
    const __m256 tail = _mm256_castsi256_ps(_mm256_cmpgt_epi32(
        _mm256_set1_epi32(static_cast<int>(p) + 1),
        _mm256_add_epi32(_mm256_set1_epi32(static_cast<int>(g1 - 8)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))));
    size_t g = 0;
    for (; g + 2 <= G; g += 2)
      for (size_t i = 0; i < hdv; ++i) {
        float* o[2] = {&out[g * hdv + i], &out[(g + 1) * hdv + i]};
        values_vec<2>(vcols[i], g0, g1, tail, &ws[g], o);
      }
    for (; g < G; ++g)
      for (size_t i = 0; i < hdv; ++i) {
        float* o[1] = {&out[g * hdv + i]};
        values_vec<1>(vcols[i], g0, g1, tail, &ws[g], o);
      }
#else
    for (size_t g = 0; g < G; ++g)
      for (size_t i = 0; i < hdv; ++i) {
        float a[4][8] = {};
        for (uint32_t j0 = g0; j0 < g1; j0 += 8)
          for (uint32_t l = 0; l < 8; ++l) {
            const uint32_t j = j0 + l;
            const float v = j <= p ? tensor::f16_to_f32(vcols[i][j]) : 0.0f;
            a[(j0 / 8) % 4][l] = std::fma(v, ws[g][j], a[(j0 / 8) % 4][l]);
          }
        float r[8];
        for (size_t l = 0; l < 8; ++l) r[l] = (a[0][l] + a[2][l]) + (a[1][l] + a[3][l]);
        out[g * hdv + i] = ((r[0] + r[4]) + (r[1] + r[5])) + ((r[2] + r[6]) + (r[3] + r[7]));
      }
#endif
    return;
  }
#if LOOM_DEC_SIMD
  const __m256 tail = _mm256_castsi256_ps(_mm256_cmpgt_epi32(
      _mm256_set1_epi32(static_cast<int>(p) + 1),
      _mm256_add_epi32(_mm256_set1_epi32(static_cast<int>(g1 - 8)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))));
  for (size_t g = 0; g < G; g += 4)
    with_count(std::min<size_t>(4, G - g), [&]<int NG>() {
      size_t i = 0;
      for (; i + kCells <= hdv; i += kCells) values_tile<kCells, NG>(vcols, i, g0, g1, tail, &ws[g], out + g * hdv, hdv);
      for (; i < hdv; ++i) values_tile<1, NG>(vcols, i, g0, g1, tail, &ws[g], out + g * hdv, hdv);
    });
#else
  for (size_t i = 0; i < hdv; ++i)
    for (size_t g = 0; g < G; ++g) {
      const float* w8 = ws[g];
      float acc[8] = {};
      for (uint32_t j0 = g0; j0 < g1; j0 += 8)
        for (uint32_t l = 0; l < 8; ++l) {
          const uint32_t j = j0 + l;
          const float v = j <= p ? tensor::f16_to_f32(vcols[i][j]) : 0.0f;
          acc[l] = std::fma(v, w8[j], acc[l]);
        }
      out[g * hdv + i] = ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
    }
#endif
}

}  // namespace

namespace {

class CpuBackend final : public Backend {
 public:
  CpuBackend(const Config& cfg, const DecoderOptions& opt) : c_(cfg), n_ctx_(opt.n_ctx), n_seq_(opt.n_seq),
                                                              threads_(std::max(1u, opt.threads)) {
    const size_t kv_dim = size_t{c_.n_head_kv} * c_.head_dim, v_dim = size_t{c_.n_head_kv} * c_.head_dim_v;
    // new[] without initialization: the pages stay untouched (and out of the RSS) until written
    k_cache_.reset(new uint16_t[size_t{n_seq_} * c_.n_layer * n_ctx_ * kv_dim]);
    v_cache_.reset(new uint16_t[size_t{n_seq_} * c_.n_layer * n_ctx_ * v_dim]);
    pool_ = std::make_unique<SpinPool>(threads_);
  }
  const char* name() const override { return "cpu"; }

  void begin(const std::vector<BatchToken>& batch) override {
    batch_ = &batch;
    used_ = 0;
    rope_bases_.clear();
    rope_tables_.clear();
    // A sequence with one token in this batch gets its attention in the order llama.cpp uses for
    // a one-token batch (see dot_hq_vec); one with more, tinyBLAS's. So each sequence's logits are
    // what llama.cpp computes for it alone, whatever else shares the batch.
    seq_tokens_.assign(n_seq_, 0);
    for (const BatchToken& b : batch) ++seq_tokens_[b.seq];
    // Likewise the K-type mat-muls, whose order in llama.cpp depends on the batch
    // (kernels::llama_order): each token is placed in a batch of its own sequence's tokens.
    tok_pos_.resize(batch.size());
    tok_len_.resize(batch.size());
    std::vector<uint32_t> seen(n_seq_, 0);
    for (size_t t = 0; t < batch.size(); ++t) {
      tok_pos_[t] = seen[batch[t].seq]++;
      tok_len_[t] = seq_tokens_[batch[t].seq];
    }
  }

  Act alloc(size_t rows, size_t cols) override {
    if (used_ == bufs_.size()) bufs_.emplace_back();
    std::vector<float>& b = bufs_[used_++];
    b.resize(rows * cols);
    return {b.data(), rows, cols};
  }

  void embed(const Weight& table, float scale, Act x) override {
    const auto ts = kernels::type_size(table.type);
    const size_t E = x.cols, row_bytes = E / ts.block_elems * ts.block_bytes;
    split(x.rows, x.rows * E, [&](size_t t0, size_t t1) {
      for (size_t t = t0; t < t1; ++t) {
        float* xr = f(x) + t * E;
        tensor::dequantize_row(table.type, static_cast<const char*>(table.data) + size_t((*batch_)[t].token) * row_bytes, xr, E);
        if (scale != 1.0f)
          for (size_t i = 0; i < E; ++i) xr[i] *= scale;
      }
    });
  }

  void rms_norm(Act x, const Weight& w, float eps, size_t width, Act out) override {
    split(x.rows, x.rows * x.cols, [&](size_t r0, size_t r1) {
      for (size_t r = r0; r < r1; ++r)
        for (size_t s = 0; s < x.cols; s += width)
          model::rms_norm(f(x) + r * x.cols + s, w.f32.data(), f(out) + r * x.cols + s, width, eps);
    });
  }

  void matmul(const Weight& w, Act x, Act y) override {
    // activations quantized as llama.cpp quantizes them (Q8_0/Q8_1/Q8_K per weight type), rows
    // split across the pool
    kernels::ThreadHint hint;
    hint.threads = static_cast<int>(threads_);
    hint.run = [this](size_t n_tasks, const std::function<void(size_t)>& task) { pool_->for_each(n_tasks, task); };
    if (x.rows == 1)
      kernels::matvec(w.type, w.data, w.rows, w.cols, f(x), f(y), hint);
    else if (x.rows == batch_->size()) {
      const kernels::TokenBatches tb{tok_pos_.data(), tok_len_.data()};
      kernels::matmul(w.type, w.data, w.rows, w.cols, f(x), x.rows, f(y), hint, &tb);
    } else {  // the rows chosen for logits: one batch, as llama.cpp's output mat-mul
      kernels::matmul(w.type, w.data, w.rows, w.cols, f(x), x.rows, f(y), hint);
    }
  }

  void add_bias(const Weight& b, Act y) override {
    split(y.rows, y.rows * y.cols, [&](size_t t0, size_t t1) {
      for (size_t t = t0; t < t1; ++t)
        for (size_t i = 0; i < y.cols; ++i) f(y)[t * y.cols + i] += b.f32[i];
    });
  }

  // RoPE: theta_i = p * base^(-2i/d), built by repeated multiplication (as ggml); the cos/sin
  // tables are made once per token and base in a pass, then applied to every head.
  void rope(Act x, size_t n_heads, float base, float freq_scale) override {
    const std::vector<float>& cs = rope_table(base, freq_scale);
    const size_t hd = x.cols / n_heads, half = c_.rope_dims / 2;
    split(x.rows, x.rows * n_heads * half * 4, [&](size_t t0, size_t t1) {
      for (size_t t = t0; t < t1; ++t)
        for (size_t hh = 0; hh < n_heads; ++hh) {
          float* hv = f(x) + t * x.cols + hh * hd;
          const float* tc = &cs[t * half * 2];
          for (size_t i = 0; i < half; ++i) {
            const size_t a = c_.rope == RopeStyle::Normal ? 2 * i : i, b = c_.rope == RopeStyle::Normal ? 2 * i + 1 : i + half;
            const float x0 = hv[a], x1 = hv[b], co = tc[2 * i], sn = tc[2 * i + 1];
            // as ggml's compiled rotation: the first product fused with the rounded second
            hv[a] = std::fma(x0, co, -(x1 * sn));
            hv[b] = std::fma(x0, sn, x1 * co);
          }
        }
    });
  }

  void attention(const AttentionParams& ap, Act q, Act k, Act v, Act out) override {
    const std::vector<BatchToken>& batch = *batch_;
    const size_t n = q.rows, hd = c_.head_dim, hdv = c_.head_dim_v, H = c_.n_head, Hkv = c_.n_head_kv;
    const size_t q_dim = H * hd, kv_dim = Hkv * hd, v_dim = Hkv * hdv, group = H / Hkv;
    const uint32_t l = ap.layer;
    // into the caches as f16: keys by token, values (transposed) by column, so that no two
    // threads write into one cache line
    split(n, n * kv_dim, [&](size_t t0, size_t t1) {
      for (size_t t = t0; t < t1; ++t) {
        uint16_t* kc = k_at(batch[t].seq, l, batch[t].pos);
        for (size_t i = 0; i < kv_dim; ++i) kc[i] = f32_to_f16(f(k)[t * kv_dim + i]);
      }
    });
    split(v_dim, n * v_dim, [&](size_t i0, size_t i1) {
      for (size_t i = i0; i < i1; ++i)
        for (size_t t = 0; t < n; ++t) v_col(batch[t].seq, l, i)[batch[t].pos] = f32_to_f16(f(v)[t * v_dim + i]);
    });
    vcols_.resize(n * H * hdv);
    // a task per token and key/value head (its query heads share the widened keys and values);
    // when that leaves too few tasks for the threads (decoding), a task per G of its query heads:
    // the largest share that gives every thread the same number of tasks, else one head
    size_t G = group;
    if (n * Hkv < 4 * size_t{threads_}) {
      G = 1;
      for (size_t d = group; d > 1; --d)
        if (group % d == 0 && n * Hkv * (group / d) % threads_ == 0) {
          G = d;
          break;
        }
    }
    const size_t per_t = H / G;
    pool_->for_each(n * per_t, [&](size_t job) {
      const size_t t = job / per_t, h0 = job % per_t * G, kvh = h0 / group;
      const uint32_t p = batch[t].pos, seq = batch[t].seq;
      const uint32_t first = ap.window && p >= ap.window ? p - ap.window + 1 : 0;
      const uint16_t** cols = &vcols_[(t * H + h0) * hdv];
      for (size_t i = 0; i < hdv; ++i) cols[i] = v_col(seq, l, kvh * hdv + i);
      attend_group(f(q) + t * q_dim + h0 * hd, G, k_at(seq, l, 0) + kvh * hd, kv_dim, cols, hd, hdv, first, p, ap.q_scale, ap.scale,
                   seq_tokens_[seq] == 1, f(out) + t * H * hdv + h0 * hdv);
    });
  }

  void glu(Activation act, Act gate, Act up) override {
    float* g = f(gate);
    const float* u = f(up);
    const size_t n = gate.rows * gate.cols;
    split(n, 4 * n, [&](size_t i0, size_t i1) {
      if (act == Activation::Silu)
        for (size_t i = i0; i < i1; ++i) g[i] = silu(g[i]) * u[i];
      else
        for (size_t i = i0; i < i1; ++i) g[i] = gelu_tanh(g[i]) * u[i];
    });
  }

  void add(Act x, Act y) override {
    split(x.rows * x.cols, x.rows * x.cols, [&](size_t i0, size_t i1) {
      for (size_t i = i0; i < i1; ++i) f(x)[i] += f(y)[i];
    });
  }

  void scale(Act x, float s) override {
    split(x.rows * x.cols, x.rows * x.cols, [&](size_t i0, size_t i1) {
      for (size_t i = i0; i < i1; ++i) f(x)[i] *= s;
    });
  }

  void select_rows(Act x, const std::vector<size_t>& rows, Act out) override {
    for (size_t k = 0; k < rows.size(); ++k) std::copy_n(f(x) + rows[k] * x.cols, x.cols, f(out) + k * x.cols);
  }

  void read(Act x, float* host) override { std::copy_n(f(x), x.rows * x.cols, host); }

  void copy_sequence(uint32_t src, uint32_t dst, uint32_t n) override {
    const size_t kv_dim = size_t{c_.n_head_kv} * c_.head_dim, v_dim = size_t{c_.n_head_kv} * c_.head_dim_v;
    for (uint32_t l = 0; l < c_.n_layer; ++l) {
      std::memcpy(k_at(dst, l, 0), k_at(src, l, 0), size_t{n} * kv_dim * sizeof(uint16_t));
      for (size_t i = 0; i < v_dim; ++i) std::memcpy(v_col(dst, l, i), v_col(src, l, i), size_t{n} * sizeof(uint16_t));
    }
  }

 private:
  static float* f(Act a) { return static_cast<float*>(a.handle); }

  // fn(i0, i1) over [0, n): in one piece, or, when the work (about one unit per element
  // touched) pays for waking the pool, in a piece per thread (contiguous, so that no two threads
  // write into one cache line but at the seams).
  template <class F>
  void split(size_t n, size_t work, F&& fn) {
    constexpr size_t kMinWork = 1 << 14;
    const size_t parts = std::min<size_t>(threads_, n);
    if (parts <= 1 || work < kMinWork) return fn(0, n);
    pool_->for_each(parts, [&](size_t i) { fn(n * i / parts, n * (i + 1) / parts); });
  }

  // f16 caches. K: [seq][layer][pos][n_head_kv * head_dim]; V transposed, so that a value column
  // is contiguous: [seq][layer][n_head_kv * head_dim_v][pos].
  uint16_t* k_at(uint32_t seq, uint32_t layer, uint32_t pos) const {
    const size_t kv_dim = size_t{c_.n_head_kv} * c_.head_dim;
    return k_cache_.get() + ((size_t{seq} * c_.n_layer + layer) * n_ctx_ + pos) * kv_dim;
  }
  uint16_t* v_col(uint32_t seq, uint32_t layer, size_t i) const {
    const size_t v_dim = size_t{c_.n_head_kv} * c_.head_dim_v;
    return v_cache_.get() + ((size_t{seq} * c_.n_layer + layer) * v_dim + i) * n_ctx_;
  }

  const std::vector<float>& rope_table(float base, float freq_scale) {
    for (size_t i = 0; i < rope_bases_.size(); ++i)
      if (rope_bases_[i] == std::pair(base, freq_scale)) return rope_tables_[i];
    const std::vector<BatchToken>& batch = *batch_;
    const size_t half = c_.rope_dims / 2;
    std::vector<float> tab(batch.size() * half * 2);
    // as ggml's rope cache: theta_i = pos * theta_scale^i by repeated products; the angle is
    // freq_scale * (theta_i / factor_i)
    const float theta_scale = std::pow(base, -2.0f / static_cast<float>(c_.rope_dims));
    const std::vector<float>& ff = c_.rope_freq_factors;
    for (size_t t = 0; t < batch.size(); ++t) {
      float theta = static_cast<float>(batch[t].pos);
      for (size_t i = 0; i < half; ++i) {
        const float angle = freq_scale * (theta / (ff.empty() ? 1.0f : ff[i]));
        tab[(t * half + i) * 2] = std::cos(angle);
        tab[(t * half + i) * 2 + 1] = std::sin(angle);
        theta *= theta_scale;
      }
    }
    rope_bases_.emplace_back(base, freq_scale);
    rope_tables_.push_back(std::move(tab));
    return rope_tables_.back();
  }

  Config c_;
  uint32_t n_ctx_, n_seq_;
  unsigned threads_;
  std::unique_ptr<uint16_t[]> k_cache_, v_cache_;
  std::unique_ptr<SpinPool> pool_;
  const std::vector<BatchToken>* batch_ = nullptr;
  std::vector<std::vector<float>> bufs_;  // activations, reused pass after pass
  size_t used_ = 0;
  std::vector<std::pair<float, float>> rope_bases_;  // (base, freq_scale) of each table
  std::vector<std::vector<float>> rope_tables_;
  std::vector<uint32_t> seq_tokens_;
  std::vector<uint32_t> tok_pos_, tok_len_;  // each batch token's place among its sequence's
  std::vector<const uint16_t*> vcols_;
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(const Config& cfg, const DecoderOptions& opt) {
  return std::make_unique<CpuBackend>(cfg, opt);
}

}  // namespace loom::model
