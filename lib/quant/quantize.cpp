// ggml's reference quantizers, re-derived so that every float operation happens in the same order
// and precision as in ggml-quants.c (llama.cpp as vendored in llama-cpp-python 0.3.36). Notes on
// what that takes:
//   - no fused multiply-add anywhere: a*b + c must round twice, as it does in ggml-base (built
//     for baseline x86-64, no FMA); hence no FP contraction in this file (below);
//   - integer literals in float expressions (d = max / -8, nmax / (max - min)) are float
//     conversions of exact integers, which is what C's usual conversions do there too;
//   - ggml's float→small-integer casts ((int8_t)(x + 8.5f), (uint8_t)(x + 0.5f)) compile to a
//     truncating float→int32 conversion whose low byte is kept; trunc_i32 reproduces that, NaN
//     and out-of-range values included, so this file has no undefined conversions;
//   - "round to nearest" in the K types is the add-1.5·2^23 trick (ties to even), not roundf.
#include "loom/quant/quantize.h"

#if defined(__SSE__)
#include <immintrin.h>
#endif
#include <algorithm>
#include <bit>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <vector>

#include "loom/core/error.h"
#include "loom/tensor/dequant.h"

// ggml rounds every product and sum separately; contracting a*b + c into one fused multiply-add
// changes bytes (Q4_K and Q5_K on the goldens, with -march=native). The pragmas turn contraction
// off for this file whatever the build flags (as lib/index/bm25.cpp does).
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

namespace loom::quant {

using namespace kernels;

namespace {

// ============================== scalar helpers ==============================

// float → int32 truncating toward zero, like x86-64's cvttss2si: NaN and values outside int32's
// range give INT32_MIN (whose low byte is 0).
inline int32_t trunc_i32(float v) {
#if defined(__SSE__)
  return _mm_cvttss_si32(_mm_set_ss(v));  // the instruction itself: defined for every input
#else
  if (!(v > -2147483904.0f && v < 2147483648.0f)) return INT32_MIN;
  return static_cast<int32_t>(v);
#endif
}

// Round to nearest, ties to even, for |v| < 2^22: adding 1.5 * 2^23 leaves the rounded integer
// in the low mantissa bits of the sum (offset by 2^22). Outside that range (and for NaN) the bit
// arithmetic still runs and returns what ggml's nearest_int returns.
inline int nearest_int(float v) {
  const float shifted = v + 12582912.0f;
  const int32_t bits = std::bit_cast<int32_t>(shifted);
  return (bits & 0x007fffff) - 0x00400000;
}

// roundf (halves away from zero) without the libm call: v + copysign(0.5 - 2^-25, v) truncated,
// the sum's own rounding carrying a fraction of exactly .5 up (GCC's inline expansion of roundf;
// equal to roundf for every float but NaN, checked exhaustively; NaN stays NaN).
inline float round_away(float v) { return std::trunc(v + std::copysign(0.49999997f, v)); }

inline float half_to_float(uint16_t h) { return tensor::f16_to_f32(h); }

inline void put_half(uint8_t* p, uint16_t h) { std::memcpy(p, &h, 2); }

// ============================== 32-element types ==============================

// The element of largest magnitude, with its sign (the first one on ties); 0 for none.
inline float signed_absmax(const float* x, int n) {
  float amax = 0.0f, max = 0.0f;
  for (int j = 0; j < n; ++j) {
    if (amax < std::fabs(x[j])) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  }
  return max;
}

inline void min_max(const float* x, int n, float& lo, float& hi) {
  lo = FLT_MAX;
  hi = -FLT_MAX;
  for (int j = 0; j < n; ++j) {
    if (x[j] < lo) lo = x[j];
    if (x[j] > hi) hi = x[j];
  }
}

void q8_0(const float* x, BlockQ8_0* y, size_t nb) {
  for (size_t b = 0; b < nb; ++b, x += kQK) {
    float amax = 0.0f;
    for (int j = 0; j < kQK; ++j) {
      const float a = std::fabs(x[j]);
      amax = amax > a ? amax : a;  // a NaN replaces amax here, as in ggml's MAX macro
    }
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = f32_to_f16(d);
    for (int j = 0; j < kQK; ++j) y[b].qs[j] = static_cast<int8_t>(trunc_i32(round_away(x[j] * id)));
  }
}

// Symmetric 4/5-bit: d = max / -half, q = trunc(x / d + half + 0.5) capped at 2*half - 1.
template <int kHalf>
inline void symmetric_codes(const float* x, float& d, uint8_t q[kQK]) {
  d = signed_absmax(x, kQK) / static_cast<float>(-kHalf);
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  for (int j = 0; j < kQK; ++j) {
    const int8_t t = static_cast<int8_t>(trunc_i32(x[j] * id + (kHalf + 0.5f)));
    q[j] = static_cast<uint8_t>(std::min(2 * kHalf - 1, int{t}));
  }
}

void q4_0(const float* x, BlockQ4_0* y, size_t nb) {
  for (size_t b = 0; b < nb; ++b, x += kQK) {
    float d;
    uint8_t q[kQK];
    symmetric_codes<8>(x, d, q);
    y[b].d = f32_to_f16(d);
    for (int j = 0; j < kQK / 2; ++j) y[b].qs[j] = static_cast<uint8_t>(q[j] | (q[j + kQK / 2] << 4));
  }
}

// The 5th bits of 32 codes, bit j for element j, as ggml's little-endian uint32.
inline void pack_q5(const uint8_t q[kQK], uint8_t qh[4], uint8_t qs[kQK / 2]) {
  uint32_t h = 0;
  for (int j = 0; j < kQK / 2; ++j) {
    qs[j] = static_cast<uint8_t>((q[j] & 0x0f) | ((q[j + kQK / 2] & 0x0f) << 4));
    h |= uint32_t((q[j] >> 4) & 1) << j;
    h |= uint32_t((q[j + kQK / 2] >> 4) & 1) << (j + kQK / 2);
  }
  for (int k = 0; k < 4; ++k) qh[k] = static_cast<uint8_t>(h >> (8 * k));
}

void q5_0(const float* x, BlockQ5_0* y, size_t nb) {
  for (size_t b = 0; b < nb; ++b, x += kQK) {
    float d;
    uint8_t q[kQK];
    symmetric_codes<16>(x, d, q);
    y[b].d = f32_to_f16(d);
    pack_q5(q, y[b].qh, y[b].qs);
  }
}

// Asymmetric: m = min, d = (max - min) / levels, q = trunc((x - m) / d + 0.5). Q4_1 caps q at 15
// after an int8 cast; Q5_1 takes the low byte with no cap (ggml's two casts differ).
void q4_1(const float* x, BlockQ4_1* y, size_t nb) {
  for (size_t b = 0; b < nb; ++b, x += kQK) {
    float lo, hi;
    min_max(x, kQK, lo, hi);
    const float d = (hi - lo) / 15.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = f32_to_f16(d);
    y[b].m = f32_to_f16(lo);
    uint8_t q[kQK];
    for (int j = 0; j < kQK; ++j) {
      const int8_t t = static_cast<int8_t>(trunc_i32((x[j] - lo) * id + 0.5f));
      q[j] = static_cast<uint8_t>(std::min(15, int{t}));
    }
    for (int j = 0; j < kQK / 2; ++j) y[b].qs[j] = static_cast<uint8_t>(q[j] | (q[j + kQK / 2] << 4));
  }
}

void q5_1(const float* x, BlockQ5_1* y, size_t nb) {
  for (size_t b = 0; b < nb; ++b, x += kQK) {
    float lo, hi;
    min_max(x, kQK, lo, hi);
    const float d = (hi - lo) / 31.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = f32_to_f16(d);
    y[b].m = f32_to_f16(lo);
    uint8_t q[kQK];
    for (int j = 0; j < kQK; ++j) q[j] = static_cast<uint8_t>(trunc_i32((x[j] - lo) * id + 0.5f));
    pack_q5(q, y[b].qh, y[b].qs);
  }
}

// ============================== K types ==============================

constexpr float kGroupEps = 1e-15f;  // below this max |x|, a group is all zeros (ggml's GROUP_MAX_EPS)

// Asymmetric fit of n values to codes 0..nmax: x ≈ scale * L - min_out, weighted squared error.
// Starts from the plain (max - min) / nmax grid, then tries nstep + 1 stretched grids
// (nmax + rmin + rdelta*is levels over the range); for each it solves the weighted least-squares
// scale and offset for the codes that grid gives (offset forced to <= 0 in x terms, i.e. a
// non-negative min_out) and keeps the candidate with the smallest error. Returns the scale;
// *min_out receives the (non-negative) amount subtracted. Codes go to L (aux: scratch of n).
float fit_asymmetric(int n, int nmax, const float* x, const float* w, uint8_t* L, float* min_out, uint8_t* aux,
                     float rmin, float rdelta, int nstep) {
  float lo = x[0], hi = x[0];
  float sum_w = w[0];
  float sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    if (x[i] < lo) lo = x[i];
    if (x[i] > hi) hi = x[i];
    sum_w += w[i];
    sum_x += w[i] * x[i];
  }
  if (lo > 0) lo = 0;
  if (hi == lo) {
    std::fill(L, L + n, uint8_t{0});
    *min_out = -lo;
    return 0.0f;
  }
  float iscale = static_cast<float>(nmax) / (hi - lo);
  float scale = 1 / iscale;
  float best_err = 0;
  for (int i = 0; i < n; ++i) {
    L[i] = static_cast<uint8_t>(std::clamp(nearest_int(iscale * (x[i] - lo)), 0, nmax));
    const float diff = scale * L[i] + lo - x[i];
    best_err += w[i] * (diff * diff);
  }
  for (int is = 0; is <= nstep; ++is) {
    iscale = (rmin + rdelta * static_cast<float>(is) + static_cast<float>(nmax)) / (hi - lo);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      const int l = std::clamp(nearest_int(iscale * (x[i] - lo)), 0, nmax);
      aux[i] = static_cast<uint8_t>(l);
      const float wl = w[i] * static_cast<float>(l);
      sum_l += wl;
      sum_l2 += wl * static_cast<float>(l);
      sum_xl += wl * x[i];
    }
    const float det = sum_w * sum_l2 - sum_l * sum_l;
    if (!(det > 0)) continue;
    float s = (sum_w * sum_xl - sum_x * sum_l) / det;
    float m = (sum_l2 * sum_x - sum_l * sum_xl) / det;
    if (m > 0) {
      m = 0;
      s = sum_xl / sum_l2;
    }
    float err = 0;
    for (int i = 0; i < n; ++i) {
      const float diff = s * aux[i] + m - x[i];
      err += w[i] * (diff * diff);
    }
    if (err < best_err) {
      std::copy(aux, aux + n, L);
      best_err = err;
      scale = s;
      lo = m;
    }
  }
  *min_out = -lo;
  return scale;
}

#if defined(__AVX2__)
// fit_asymmetric for 8 groups at once, one per lane (group k: x + k * n, weights w + k * n):
// lane k runs exactly fit_asymmetric's float operations on its group, so the codes (L + k * n),
// scales and mins are the same bits. n <= 32.
void fit_asymmetric8(int n, int nmax, const float* x, const float* w, uint8_t* L, float* scale_out, float* min_out,
                     float rmin, float rdelta, int nstep) {
  alignas(32) float xt[32][8], wt[32][8];
  for (int k = 0; k < 8; ++k)
    for (int i = 0; i < n; ++i) {
      xt[i][k] = x[k * n + i];
      wt[i][k] = w[k * n + i];
    }
  __m256 lo = _mm256_load_ps(xt[0]), hi = lo;
  __m256 sum_w = _mm256_load_ps(wt[0]);
  __m256 sum_x = _mm256_mul_ps(sum_w, lo);
  for (int i = 1; i < n; ++i) {
    const __m256 v = _mm256_load_ps(xt[i]), wi = _mm256_load_ps(wt[i]);
    lo = _mm256_blendv_ps(lo, v, _mm256_cmp_ps(v, lo, _CMP_LT_OQ));
    hi = _mm256_blendv_ps(hi, v, _mm256_cmp_ps(v, hi, _CMP_GT_OQ));
    sum_w = _mm256_add_ps(sum_w, wi);
    sum_x = _mm256_add_ps(sum_x, _mm256_mul_ps(wi, v));
  }
  const __m256 zero = _mm256_setzero_ps();
  lo = _mm256_blendv_ps(lo, zero, _mm256_cmp_ps(lo, zero, _CMP_GT_OQ));
  const __m256 flat = _mm256_cmp_ps(hi, lo, _CMP_EQ_OQ);  // fit_asymmetric's early return
  const __m256 lo0 = lo;
  const __m256 nm = _mm256_set1_ps(static_cast<float>(nmax));
  const __m256i top = _mm256_set1_epi32(nmax);
  auto codes = [&](__m256 iscale, __m256 off, int i) {  // clamp(nearest_int(iscale * (x[i] - off)), 0, nmax)
    const __m256 t = _mm256_mul_ps(iscale, _mm256_sub_ps(_mm256_load_ps(xt[i]), off));
    const __m256 shifted = _mm256_add_ps(t, _mm256_set1_ps(12582912.0f));
    const __m256i l = _mm256_sub_epi32(_mm256_and_si256(_mm256_castps_si256(shifted), _mm256_set1_epi32(0x007fffff)),
                                       _mm256_set1_epi32(0x00400000));
    return _mm256_min_epi32(_mm256_max_epi32(l, _mm256_setzero_si256()), top);
  };
  alignas(32) int32_t lt[32][8], at[32][8];
  __m256 iscale = _mm256_div_ps(nm, _mm256_sub_ps(hi, lo));
  __m256 scale = _mm256_div_ps(_mm256_set1_ps(1.0f), iscale);
  __m256 best = zero;
  for (int i = 0; i < n; ++i) {
    const __m256i c = codes(iscale, lo, i);
    _mm256_store_si256(reinterpret_cast<__m256i*>(lt[i]), c);
    const __m256 diff = _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(scale, _mm256_cvtepi32_ps(c)), lo), _mm256_load_ps(xt[i]));
    best = _mm256_add_ps(best, _mm256_mul_ps(_mm256_load_ps(wt[i]), _mm256_mul_ps(diff, diff)));
  }
  for (int is = 0; is <= nstep; ++is) {
    iscale = _mm256_div_ps(_mm256_add_ps(_mm256_set1_ps(rmin + rdelta * static_cast<float>(is)), nm), _mm256_sub_ps(hi, lo));
    __m256 sum_l = zero, sum_l2 = zero, sum_xl = zero;
    for (int i = 0; i < n; ++i) {
      const __m256i c = codes(iscale, lo, i);
      _mm256_store_si256(reinterpret_cast<__m256i*>(at[i]), c);
      const __m256 l = _mm256_cvtepi32_ps(c);
      const __m256 wl = _mm256_mul_ps(_mm256_load_ps(wt[i]), l);
      sum_l = _mm256_add_ps(sum_l, wl);
      sum_l2 = _mm256_add_ps(sum_l2, _mm256_mul_ps(wl, l));
      sum_xl = _mm256_add_ps(sum_xl, _mm256_mul_ps(wl, _mm256_load_ps(xt[i])));
    }
    const __m256 det = _mm256_sub_ps(_mm256_mul_ps(sum_w, sum_l2), _mm256_mul_ps(sum_l, sum_l));
    const __m256 ok = _mm256_cmp_ps(det, zero, _CMP_GT_OQ);
    if (_mm256_testz_ps(ok, ok)) continue;
    __m256 sc = _mm256_div_ps(_mm256_sub_ps(_mm256_mul_ps(sum_w, sum_xl), _mm256_mul_ps(sum_x, sum_l)), det);
    __m256 m = _mm256_div_ps(_mm256_sub_ps(_mm256_mul_ps(sum_l2, sum_x), _mm256_mul_ps(sum_l, sum_xl)), det);
    const __m256 pos = _mm256_cmp_ps(m, zero, _CMP_GT_OQ);
    m = _mm256_blendv_ps(m, zero, pos);
    sc = _mm256_blendv_ps(sc, _mm256_div_ps(sum_xl, sum_l2), pos);
    __m256 err = zero;
    for (int i = 0; i < n; ++i) {
      const __m256 l = _mm256_cvtepi32_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(at[i])));
      const __m256 diff = _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(sc, l), m), _mm256_load_ps(xt[i]));
      err = _mm256_add_ps(err, _mm256_mul_ps(_mm256_load_ps(wt[i]), _mm256_mul_ps(diff, diff)));
    }
    const __m256 take = _mm256_and_ps(ok, _mm256_cmp_ps(err, best, _CMP_LT_OQ));
    if (_mm256_testz_ps(take, take)) continue;
    const __m256i tk = _mm256_castps_si256(take);
    for (int i = 0; i < n; ++i) {
      const __m256i old = _mm256_load_si256(reinterpret_cast<const __m256i*>(lt[i]));
      const __m256i nw = _mm256_load_si256(reinterpret_cast<const __m256i*>(at[i]));
      _mm256_store_si256(reinterpret_cast<__m256i*>(lt[i]), _mm256_blendv_epi8(old, nw, tk));
    }
    best = _mm256_blendv_ps(best, err, take);
    scale = _mm256_blendv_ps(scale, sc, take);
    lo = _mm256_blendv_ps(lo, m, take);
  }
  alignas(32) float sv[8], lv[8], fv[8];
  _mm256_store_ps(sv, scale);
  _mm256_store_ps(lv, _mm256_blendv_ps(lo, lo0, flat));
  _mm256_store_ps(fv, flat);
  for (int k = 0; k < 8; ++k) {
    const bool f = std::bit_cast<uint32_t>(fv[k]) != 0;
    scale_out[k] = f ? 0.0f : sv[k];
    min_out[k] = -lv[k];
    for (int i = 0; i < n; ++i) L[k * n + i] = f ? uint8_t{0} : static_cast<uint8_t>(lt[i][k]);
  }
}
#endif

// Symmetric fit of n values to codes -nmax..nmax-1 (stored as L + nmax), weights qw (x² when
// null): the scale that maps the largest-magnitude value to -nmax, then 18 nearby grids
// (nmax ± 0.1..0.9 levels); the least-squares scale of the best candidate is returned (0 for an
// all-zero group). ggml's make_qx_quants with rmse_type 1.
float fit_symmetric(int n, int nmax, const float* x, int8_t* L, const float* qw = nullptr) {
  float amax = 0, max = 0;
  for (int i = 0; i < n; ++i) {
    const float a = std::fabs(x[i]);
    if (a > amax) {
      amax = a;
      max = x[i];
    }
  }
  if (amax < kGroupEps) {
    std::fill(L, L + n, int8_t{0});
    return 0.0f;
  }
  auto code = [nmax](float v) { return std::clamp(nearest_int(v), -nmax, nmax - 1); };
  // Sums of w·x·l and w·l² for the codes of one grid, with ggml's association order.
  auto sums = [&](float iscale, float& sumlx, float& suml2) {
    sumlx = 0;
    suml2 = 0;
    for (int i = 0; i < n; ++i) {
      const float l = static_cast<float>(code(iscale * x[i]));
      const float w = qw ? qw[i] : x[i] * x[i];
      sumlx += w * x[i] * l;
      suml2 += w * l * l;
    }
  };
  float iscale = static_cast<float>(-nmax) / max;
  for (int i = 0; i < n; ++i) L[i] = static_cast<int8_t>(code(iscale * x[i]) + nmax);
  float sumlx, suml2;
  sums(iscale, sumlx, suml2);
  float scale = suml2 != 0 ? sumlx / suml2 : 0.0f;
  float best = scale * sumlx;
  for (int is = -9; is <= 9; ++is) {
    if (is == 0) continue;
    iscale = -(static_cast<float>(nmax) + 0.1f * static_cast<float>(is)) / max;
    sums(iscale, sumlx, suml2);
    if (suml2 > 0 && sumlx * sumlx > best * suml2) {
      for (int i = 0; i < n; ++i) L[i] = static_cast<int8_t>(code(iscale * x[i]) + nmax);
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

#if defined(__AVX2__)
// fit_symmetric for 8 groups at once, one per lane: lane k runs exactly fit_symmetric's float
// operations on group k (x + k * n, weights qw + k * n or x²), so the results are the same bits;
// the 8 independent chains of sums overlap instead of waiting on one another. n <= 32.
void fit_symmetric8(int n, int nmax, const float* x, int8_t* L, const float* qw, float* scale_out) {
  alignas(32) float xt[32][8], wt[32][8];  // [i][k]: element i of group k
  for (int k = 0; k < 8; ++k)
    for (int i = 0; i < n; ++i) {
      const float v = x[k * n + i];
      xt[i][k] = v;
      wt[i][k] = qw ? qw[k * n + i] : v * v;
    }
  const __m256 sign = _mm256_set1_ps(-0.0f);
  __m256 amax = _mm256_setzero_ps(), max = _mm256_setzero_ps();
  for (int i = 0; i < n; ++i) {
    const __m256 v = _mm256_load_ps(xt[i]);
    const __m256 a = _mm256_andnot_ps(sign, v);
    const __m256 gt = _mm256_cmp_ps(a, amax, _CMP_GT_OQ);
    amax = _mm256_blendv_ps(amax, a, gt);
    max = _mm256_blendv_ps(max, v, gt);
  }
  const __m256 zero_group = _mm256_cmp_ps(amax, _mm256_set1_ps(kGroupEps), _CMP_LT_OQ);
  const __m256i lo = _mm256_set1_epi32(-nmax), hi = _mm256_set1_epi32(nmax - 1);
  auto codes = [&](__m256 iscale, int i) {  // clamp(nearest_int(iscale * x[i]), -nmax, nmax - 1)
    const __m256 shifted = _mm256_add_ps(_mm256_mul_ps(iscale, _mm256_load_ps(xt[i])), _mm256_set1_ps(12582912.0f));
    const __m256i l = _mm256_sub_epi32(_mm256_and_si256(_mm256_castps_si256(shifted), _mm256_set1_epi32(0x007fffff)),
                                       _mm256_set1_epi32(0x00400000));
    return _mm256_min_epi32(_mm256_max_epi32(l, lo), hi);
  };
  auto sums = [&](__m256 iscale, __m256& sumlx, __m256& suml2) {
    sumlx = suml2 = _mm256_setzero_ps();
    for (int i = 0; i < n; ++i) {
      const __m256 l = _mm256_cvtepi32_ps(codes(iscale, i));
      const __m256 w = _mm256_load_ps(wt[i]);
      sumlx = _mm256_add_ps(sumlx, _mm256_mul_ps(_mm256_mul_ps(w, _mm256_load_ps(xt[i])), l));
      suml2 = _mm256_add_ps(suml2, _mm256_mul_ps(_mm256_mul_ps(w, l), l));
    }
  };
  alignas(32) int32_t lt[32][8];
  auto store_codes = [&](__m256 iscale, __m256 take) {
    for (int i = 0; i < n; ++i) {
      const __m256i c = _mm256_add_epi32(codes(iscale, i), _mm256_set1_epi32(nmax));
      const __m256i old = _mm256_load_si256(reinterpret_cast<const __m256i*>(lt[i]));
      _mm256_store_si256(reinterpret_cast<__m256i*>(lt[i]), _mm256_blendv_epi8(old, c, _mm256_castps_si256(take)));
    }
  };
  const __m256 nm = _mm256_set1_ps(static_cast<float>(nmax));
  __m256 iscale = _mm256_div_ps(_mm256_set1_ps(static_cast<float>(-nmax)), max);
  store_codes(iscale, _mm256_castsi256_ps(_mm256_set1_epi32(-1)));
  __m256 sumlx, suml2;
  sums(iscale, sumlx, suml2);
  const __m256 nonzero = _mm256_cmp_ps(suml2, _mm256_setzero_ps(), _CMP_NEQ_UQ);
  __m256 scale = _mm256_and_ps(_mm256_div_ps(sumlx, suml2), nonzero);
  __m256 best = _mm256_mul_ps(scale, sumlx);
  for (int is = -9; is <= 9; ++is) {
    if (is == 0) continue;
    iscale = _mm256_div_ps(_mm256_xor_ps(_mm256_add_ps(nm, _mm256_set1_ps(0.1f * static_cast<float>(is))), sign), max);
    sums(iscale, sumlx, suml2);
    const __m256 take = _mm256_and_ps(_mm256_cmp_ps(suml2, _mm256_setzero_ps(), _CMP_GT_OQ),
                                      _mm256_cmp_ps(_mm256_mul_ps(sumlx, sumlx), _mm256_mul_ps(best, suml2), _CMP_GT_OQ));
    if (_mm256_testz_ps(take, take)) continue;
    store_codes(iscale, take);
    const __m256 s2 = _mm256_div_ps(sumlx, suml2);
    scale = _mm256_blendv_ps(scale, s2, take);
    best = _mm256_blendv_ps(best, _mm256_mul_ps(s2, sumlx), take);
  }
  alignas(32) float sc[8], zg[8];
  _mm256_store_ps(sc, scale);
  _mm256_store_ps(zg, zero_group);
  for (int k = 0; k < 8; ++k) {
    const bool zero = std::bit_cast<uint32_t>(zg[k]) != 0;
    scale_out[k] = zero ? 0.0f : sc[k];
    for (int i = 0; i < n; ++i) L[k * n + i] = zero ? int8_t{0} : static_cast<int8_t>(lt[i][k]);
  }
}
#endif

// Fit of n non-negative values (sub-block scales or mins) to codes 0..nmax, weights w: the grid
// that maps the largest value to nmax and 8 nearby grids (nmax ± 0.1..0.4 levels) compared by
// weighted squared error, then up to 5 passes moving single codes while that improves the
// least-squares fit. Returns the least-squares scale (0 for an all-zero group). ggml's
// make_qp_quants.
float fit_positive(int n, int nmax, const float* x, uint8_t* L, const float* w) {
  float max = 0;
  for (int i = 0; i < n; ++i) max = std::max(max, x[i]);
  if (max < kGroupEps) {
    std::fill(L, L + n, uint8_t{0});
    return 0.0f;
  }
  float iscale = static_cast<float>(nmax) / max;
  for (int i = 0; i < n; ++i) L[i] = static_cast<uint8_t>(nearest_int(iscale * x[i]));
  const float scale = 1 / iscale;
  float best_err = 0;
  for (int i = 0; i < n; ++i) {
    const float diff = x[i] - scale * L[i];
    best_err += w[i] * diff * diff;
  }
  for (int is = -4; is <= 4; ++is) {
    if (is == 0) continue;
    const float iscale_is = (0.1f * static_cast<float>(is) + static_cast<float>(nmax)) / max;
    const float scale_is = 1 / iscale_is;
    float err = 0;
    for (int i = 0; i < n; ++i) {
      const int l = std::min(nmax, nearest_int(iscale_is * x[i]));
      const float diff = x[i] - scale_is * static_cast<float>(l);
      err += w[i] * diff * diff;
    }
    if (err < best_err) {
      best_err = err;
      iscale = iscale_is;
    }
  }
  float sumlx = 0, suml2 = 0;
  int Li[64];  // n <= 16 here; codes as ints, as ggml compares them
  for (int i = 0; i < n; ++i) {
    const int l = std::min(nmax, nearest_int(iscale * x[i]));
    Li[i] = l;
    sumlx += w[i] * x[i] * static_cast<float>(l);
    suml2 += w[i] * static_cast<float>(l) * static_cast<float>(l);
  }
  for (int pass = 0; pass < 5; ++pass) {
    int changed = 0;
    for (int i = 0; i < n; ++i) {
      const int li = static_cast<uint8_t>(Li[i]);  // ggml keeps L as uint8_t between passes
      float slx = sumlx - w[i] * x[i] * static_cast<float>(li);
      float sl2 = suml2 - w[i] * static_cast<float>(li) * static_cast<float>(li);
      if (slx > 0 && sl2 > 0) {
        const int nl = std::min(nmax, nearest_int(x[i] * sl2 / slx));
        if (nl != li) {
          slx += w[i] * x[i] * static_cast<float>(nl);
          sl2 += w[i] * static_cast<float>(nl) * static_cast<float>(nl);
          if (slx * slx * suml2 > sumlx * sumlx * sl2) {
            Li[i] = nl;
            sumlx = slx;
            suml2 = sl2;
            ++changed;
          }
        }
      }
    }
    if (!changed) break;
  }
  for (int i = 0; i < n; ++i) L[i] = static_cast<uint8_t>(Li[i]);
  return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

// 6-bit scale j and min j out of Q4_K/Q5_K's 12 packed bytes.
inline void unpack_scale_min(int j, const uint8_t* s, uint8_t& sc, uint8_t& m) {
  if (j < 4) {
    sc = s[j] & 63;
    m = s[j + 4] & 63;
  } else {
    sc = static_cast<uint8_t>((s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4));
    m = static_cast<uint8_t>((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
  }
}

// Shared by Q4_K and Q5_K: fits each 32-wide sub-block, quantizes the eight scales and mins to
// 6 bits against the super-block's d and dmin, then recomputes the codes (0..nmax) of each
// sub-block from the rounded scales. Writes d, dmin, scales[12]; codes to L[256].
// Without importance weights (qw null) this is ggml's quantize_row_q{4,5}_K_ref: sub-block
// weights av|x| + |x|, nstep + 1 grids from rmin, and d/dmin = the largest scale/min over 63.
// With them (qw: this super-block's 256 column weights) it is quantize_row_q{4,5}_K_impl: weights
// qw·sqrt(σ² + x²) with σ² = 2·mean x² over the super-block, 37 grids from -0.9, and d/dmin
// fitted by fit_positive to the sub-blocks' total weights.
void k_scales_and_codes(const float* x, int nmax, float rmin, int nstep, const float* qw, uint16_t& d_out,
                        uint16_t& dmin_out, uint8_t packed[kKScaleBytes], uint8_t L[kQKK]) {
  constexpr int kSub = kQKK / 32;
  float scales[kSub], mins[kSub], w[kQKK], sw[kSub];
  [[maybe_unused]] uint8_t aux[32];
  uint8_t Ls[kSub], Lm[kSub];
  float max_scale = 0, max_min = 0;
  float sigma2 = 0;
  if (qw) {
    float sum_x2 = 0;
    for (int l = 0; l < kQKK; ++l) sum_x2 += x[l] * x[l];
    sigma2 = 2 * sum_x2 / static_cast<float>(kQKK);
  }
  // the sub-blocks' weights, then their fits (8 at once with AVX2: the same bits)
  for (int j = 0; j < kSub; ++j) {
    const float* xs = x + 32 * j;
    float* wj = w + 32 * j;
    if (qw) {
      for (int l = 0; l < 32; ++l) wj[l] = qw[32 * j + l] * std::sqrt(sigma2 + xs[l] * xs[l]);
      float sum_w = 0;
      for (int l = 0; l < 32; ++l) sum_w += wj[l];
      sw[j] = sum_w;
    } else {
      float sum_x2 = 0;
      for (int l = 0; l < 32; ++l) sum_x2 += xs[l] * xs[l];
      const float av_x = std::sqrt(sum_x2 / 32.0f);
      for (int l = 0; l < 32; ++l) wj[l] = av_x + std::fabs(xs[l]);
    }
  }
  const float fit_rmin = qw ? -0.9f : rmin, fit_rdelta = qw ? 0.05f : 0.1f;
  const int fit_nstep = qw ? 36 : nstep;
#if defined(__AVX2__)
  static_assert(kSub == 8);
  fit_asymmetric8(32, nmax, x, w, L, scales, mins, fit_rmin, fit_rdelta, fit_nstep);
#else
  for (int j = 0; j < kSub; ++j)
    scales[j] = fit_asymmetric(32, nmax, x + 32 * j, w + 32 * j, L + 32 * j, &mins[j], aux, fit_rmin, fit_rdelta, fit_nstep);
#endif
  for (int j = 0; j < kSub; ++j) {
    if (scales[j] > max_scale) max_scale = scales[j];
    if (mins[j] > max_min) max_min = mins[j];
  }
  float d_block, m_block;
  if (qw) {
    d_block = fit_positive(kSub, 63, scales, Ls, sw);
    m_block = fit_positive(kSub, 63, mins, Lm, sw);
  } else {
    const float inv_scale = max_scale > 0 ? 63.0f / max_scale : 0.0f;
    const float inv_min = max_min > 0 ? 63.0f / max_min : 0.0f;
    for (int j = 0; j < kSub; ++j) {
      Ls[j] = std::min<uint8_t>(63, static_cast<uint8_t>(nearest_int(inv_scale * scales[j])));
      Lm[j] = std::min<uint8_t>(63, static_cast<uint8_t>(nearest_int(inv_min * mins[j])));
    }
    d_block = max_scale / 63.0f;
    m_block = max_min / 63.0f;
  }
  for (int j = 0; j < kSub; ++j) {
    const uint8_t ls = Ls[j], lm = Lm[j];
    if (j < 4) {
      packed[j] = ls;
      packed[j + 4] = lm;
    } else {
      packed[j + 4] = static_cast<uint8_t>((ls & 0x0f) | ((lm & 0x0f) << 4));
      packed[j - 4] |= static_cast<uint8_t>((ls >> 4) << 6);
      packed[j] |= static_cast<uint8_t>((lm >> 4) << 6);
    }
  }
  d_out = f32_to_f16(d_block);
  dmin_out = f32_to_f16(m_block);
  const float d_all = half_to_float(d_out), dmin_all = half_to_float(dmin_out);
  for (int j = 0; j < kSub; ++j) {
    uint8_t sc, m;
    unpack_scale_min(j, packed, sc, m);
    const float d = d_all * sc;
    if (d == 0) continue;  // keep the codes of the fit
    const float dm = dmin_all * m;
    for (int l = 0; l < 32; ++l)
      L[32 * j + l] = static_cast<uint8_t>(std::clamp(nearest_int((x[32 * j + l] + dm) / d), 0, nmax));
  }
}

// qw: the weights of the nb * 256 columns, or null.
void q4_k(const float* x, BlockQ4_K* y, size_t nb, const float* qw = nullptr) {
  for (size_t b = 0; b < nb; ++b, x += kQKK) {
    uint8_t L[kQKK];
    k_scales_and_codes(x, 15, -1.0f, 20, qw ? qw + b * kQKK : nullptr, y[b].d, y[b].dmin, y[b].scales, L);
    // 64 elements per 32 bytes: low nibbles the first 32, high nibbles the next 32.
    for (int c = 0; c < kQKK / 64; ++c)
      for (int l = 0; l < 32; ++l)
        y[b].qs[32 * c + l] = static_cast<uint8_t>(L[64 * c + l] | (L[64 * c + 32 + l] << 4));
  }
}

void q5_k(const float* x, BlockQ5_K* y, size_t nb, const float* qw = nullptr) {
  for (size_t b = 0; b < nb; ++b, x += kQKK) {
    uint8_t L[kQKK];
    k_scales_and_codes(x, 31, -0.5f, 15, qw ? qw + b * kQKK : nullptr, y[b].d, y[b].dmin, y[b].scales, L);
    // As Q4_K for the low 4 bits; the 5th bit of element 64c + l (+32) is bit 2c (2c + 1) of qh[l].
    std::memset(y[b].qh, 0, sizeof y[b].qh);
    for (int c = 0; c < kQKK / 64; ++c) {
      for (int l = 0; l < 32; ++l) {
        const uint8_t lo = L[64 * c + l], hi = L[64 * c + 32 + l];
        y[b].qs[32 * c + l] = static_cast<uint8_t>((lo & 0x0f) | ((hi & 0x0f) << 4));
        y[b].qh[l] |= static_cast<uint8_t>(((lo >> 4) << (2 * c)) | ((hi >> 4) << (2 * c + 1)));
      }
    }
  }
}

// qw: the weights of the nb * 256 columns (used as they are, as ggml's impl does), or null (x²).
void q6_k(const float* x, BlockQ6_K* y, size_t nb, const float* qw = nullptr) {
  constexpr int kSub = kQKK / 16;
  for (size_t b = 0; b < nb; ++b, x += kQKK) {
    int8_t L[kQKK];
    float scales[kSub];
    float max_scale = 0, max_abs = 0;
#if defined(__AVX2__)
    for (int j = 0; j < kSub; j += 8)  // the same fits, 8 sub-blocks at a time
      fit_symmetric8(16, 32, x + 16 * j, L + 16 * j, qw ? qw + b * kQKK + 16 * j : nullptr, scales + j);
#else
    for (int j = 0; j < kSub; ++j)
      scales[j] = fit_symmetric(16, 32, x + 16 * j, L + 16 * j, qw ? qw + b * kQKK + 16 * j : nullptr);
#endif
    for (int j = 0; j < kSub; ++j) {
      if (std::fabs(scales[j]) > max_abs) {
        max_abs = std::fabs(scales[j]);
        max_scale = scales[j];
      }
    }
    if (max_abs < kGroupEps) {
      std::memset(&y[b], 0, sizeof y[b]);
      continue;
    }
    const float iscale = -128.0f / max_scale;
    y[b].d = f32_to_f16(1 / iscale);
    for (int j = 0; j < kSub; ++j) y[b].scales[j] = static_cast<int8_t>(std::min(127, nearest_int(iscale * scales[j])));
    const float d_all = half_to_float(y[b].d);
    for (int j = 0; j < kSub; ++j) {
      const float d = d_all * y[b].scales[j];
      if (d == 0) continue;  // keep the codes of the fit
      for (int l = 0; l < 16; ++l)
        L[16 * j + l] = static_cast<int8_t>(std::clamp(nearest_int(x[16 * j + l] / d), -32, 31) + 32);
    }
    // Per 128 elements: ql holds low nibbles (elements l and l+64 in one byte; l+32 and l+96 in
    // the byte 32 later), qh the top two bits of l, l+32, l+64, l+96 at bits 0, 2, 4, 6.
    for (int c = 0; c < kQKK / 128; ++c) {
      const int8_t* q = L + 128 * c;
      uint8_t* ql = y[b].ql + 64 * c;
      uint8_t* qh = y[b].qh + 32 * c;
      for (int l = 0; l < 32; ++l) {
        ql[l] = static_cast<uint8_t>((q[l] & 0x0f) | ((q[l + 64] & 0x0f) << 4));
        ql[l + 32] = static_cast<uint8_t>((q[l + 32] & 0x0f) | ((q[l + 96] & 0x0f) << 4));
        qh[l] = static_cast<uint8_t>((q[l] >> 4) | ((q[l + 32] >> 4) << 2) | ((q[l + 64] >> 4) << 4) |
                                     ((q[l + 96] >> 4) << 6));
      }
    }
  }
}

// ============================== importance-weighted rows ==============================

// One row of n values of a 32-element type with column weights qw (ggml's
// quantize_row_q{4,5}_{0,1}_impl): each block's element weights are qw·sqrt(σ² + x²), σ² the
// row's mean x²; Q4_0/Q5_0 take the best weighted symmetric fit (d may come out negative),
// Q4_1/Q5_1 the best weighted asymmetric one (37 grids from -0.9 levels).
template <typename Block, int kNmax, bool kAsym>
void weighted_row32(const float* x, Block* y, size_t n, const float* qw) {
  float sum_x2 = 0;
  for (size_t j = 0; j < n; ++j) sum_x2 += x[j] * x[j];
  const float sigma2 = sum_x2 / static_cast<float>(n);
  size_t b = 0;
#if defined(__AVX2__)
  {  // the fits 8 blocks at a time (the same bits)
    for (; b + 8 <= n / kQK; b += 8) {
      float w[8 * kQK], d[8], mins[8];
      uint8_t q8[8 * kQK];
      for (int j = 0; j < 8 * kQK; ++j) w[j] = qw[kQK * b + j] * std::sqrt(sigma2 + x[kQK * b + j] * x[kQK * b + j]);
      if constexpr (kAsym) {
        fit_asymmetric8(kQK, kNmax, x + kQK * b, w, q8, d, mins, -0.9f, 0.05f, 36);
      } else {
        int8_t L[8 * kQK];
        fit_symmetric8(kQK, (kNmax + 1) / 2, x + kQK * b, L, w, d);
        for (int j = 0; j < 8 * kQK; ++j) q8[j] = static_cast<uint8_t>(L[j]);
      }
      for (size_t k = 0; k < 8; ++k) {
        const uint8_t* q = q8 + k * kQK;
        y[b + k].d = f32_to_f16(d[k]);
        if constexpr (kAsym) y[b + k].m = f32_to_f16(-mins[k]);
        if constexpr (kNmax == 15) {
          for (int j = 0; j < kQK / 2; ++j) y[b + k].qs[j] = static_cast<uint8_t>(q[j] | (q[j + kQK / 2] << 4));
        } else {
          pack_q5(q, y[b + k].qh, y[b + k].qs);
        }
      }
    }
  }
#endif
  for (; b < n / kQK; ++b) {
    const float* xb = x + kQK * b;
    const float* wb = qw + kQK * b;
    float w[kQK];
    for (int j = 0; j < kQK; ++j) w[j] = wb[j] * std::sqrt(sigma2 + xb[j] * xb[j]);
    uint8_t q[kQK];
    if constexpr (kAsym) {
      uint8_t aux[kQK];
      float min;
      const float d = fit_asymmetric(kQK, kNmax, xb, w, q, &min, aux, -0.9f, 0.05f, 36);
      y[b].d = f32_to_f16(d);
      y[b].m = f32_to_f16(-min);
    } else {
      int8_t L[kQK];
      const float d = fit_symmetric(kQK, (kNmax + 1) / 2, xb, L, w);
      y[b].d = f32_to_f16(d);
      for (int j = 0; j < kQK; ++j) q[j] = static_cast<uint8_t>(L[j]);
    }
    if constexpr (kNmax == 15) {
      for (int j = 0; j < kQK / 2; ++j) y[b].qs[j] = static_cast<uint8_t>(q[j] | (q[j + kQK / 2] << 4));
    } else {
      pack_q5(q, y[b].qh, y[b].qs);
    }
  }
}

constexpr GgmlType kSupported[] = {GgmlType::F32,  GgmlType::F16,  GgmlType::BF16, GgmlType::Q8_0,
                                   GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1,
                                   GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K};

}  // namespace

// ============================== public ==============================

uint16_t f32_to_f16(float f) {
  const uint32_t w = std::bit_cast<uint32_t>(f);
  const uint16_t sign = static_cast<uint16_t>((w >> 16) & 0x8000);
  const uint32_t a = w & 0x7fffffff;
  if (a > 0x7f800000u) return sign | 0x7e00;   // NaN: the canonical quiet NaN, payload dropped
  if (a >= 0x477ff000u) return sign | 0x7c00;  // at least 65520: rounds to infinity
  const uint32_t e = a >> 23;
  uint32_t h, rest, tie;
  if (e < 113) {  // below 2^-14: a multiple of 2^-24 (or zero)
    if (e < 102) return sign;  // below 2^-25: rounds to zero
    const uint32_t m = (a & 0x7fffff) | 0x800000;
    const uint32_t shift = 126 - e;  // 14..24
    h = m >> shift;
    rest = m & ((1u << shift) - 1);
    tie = 1u << (shift - 1);
  } else {
    h = ((e - 112) << 10) | ((a >> 13) & 0x3ff);
    rest = a & 0x1fff;
    tie = 0x1000;
  }
  if (rest > tie || (rest == tie && (h & 1))) ++h;  // a carry into the exponent is right too
  return static_cast<uint16_t>(sign | h);
}

uint16_t f32_to_bf16(float f) {
  const uint32_t u = std::bit_cast<uint32_t>(f);
  if ((u & 0x7fffffff) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);  // NaN: set quiet bit
  return static_cast<uint16_t>((u + 0x7fff + ((u >> 16) & 1)) >> 16);
}

bool can_quantize(GgmlType t) { return std::find(std::begin(kSupported), std::end(kSupported), t) != std::end(kSupported); }

std::string quantizable_types() {
  std::string s;
  for (GgmlType t : kSupported) {
    if (!s.empty()) s += ", ";
    s += type_name(t);
  }
  return s;
}

size_t row_bytes(GgmlType t, size_t n) {
  if (!can_quantize(t)) {
    const char* name = type_name(t);
    throw usage_error("cannot quantize to " + (name ? std::string(name) : "type " + std::to_string(uint32_t(t))) +
                      "; supported types: " + quantizable_types());
  }
  const TypeSize ts = type_size(t);
  if (n % ts.block_elems)
    throw usage_error(std::string(type_name(t)) + ": " + std::to_string(n) + " elements is not a multiple of the block size " +
                      std::to_string(ts.block_elems));
  return n / ts.block_elems * ts.block_bytes;
}

void quantize_row(GgmlType t, const float* x, void* dst, size_t n) {
  row_bytes(t, n);  // validates type and size
  const size_t nb = n / type_size(t).block_elems;
  switch (t) {
    case GgmlType::F32: std::memcpy(dst, x, n * sizeof(float)); return;
    case GgmlType::F16:
    case GgmlType::BF16: {
      auto* out = static_cast<uint8_t*>(dst);
      for (size_t i = 0; i < n; ++i) put_half(out + 2 * i, t == GgmlType::F16 ? f32_to_f16(x[i]) : f32_to_bf16(x[i]));
      return;
    }
    default: break;
  }
  // The block types are written to an aligned buffer of whole blocks, then copied: dst needs no
  // alignment. Chunks keep the buffer small.
  const size_t bb = type_size(t).block_bytes, be = type_size(t).block_elems;
  constexpr size_t kChunkBytes = 1 << 15;
  const size_t per_chunk = std::max<size_t>(1, kChunkBytes / bb);
  alignas(16) static thread_local uint8_t buf[kChunkBytes + 512];
  auto* out = static_cast<uint8_t*>(dst);
  for (size_t b0 = 0; b0 < nb; b0 += per_chunk) {
    const size_t k = std::min(per_chunk, nb - b0);
    const float* xs = x + b0 * be;
    switch (t) {
      case GgmlType::Q8_0: q8_0(xs, reinterpret_cast<BlockQ8_0*>(buf), k); break;
      case GgmlType::Q4_0: q4_0(xs, reinterpret_cast<BlockQ4_0*>(buf), k); break;
      case GgmlType::Q4_1: q4_1(xs, reinterpret_cast<BlockQ4_1*>(buf), k); break;
      case GgmlType::Q5_0: q5_0(xs, reinterpret_cast<BlockQ5_0*>(buf), k); break;
      case GgmlType::Q5_1: q5_1(xs, reinterpret_cast<BlockQ5_1*>(buf), k); break;
      case GgmlType::Q4_K: q4_k(xs, reinterpret_cast<BlockQ4_K*>(buf), k); break;
      case GgmlType::Q5_K: q5_k(xs, reinterpret_cast<BlockQ5_K*>(buf), k); break;
      case GgmlType::Q6_K: q6_k(xs, reinterpret_cast<BlockQ6_K*>(buf), k); break;
      default: break;
    }
    std::memcpy(out + b0 * bb, buf, k * bb);
  }
}


bool takes_importance(GgmlType t) {
  switch (t) {
    case GgmlType::Q4_0: case GgmlType::Q4_1: case GgmlType::Q5_0: case GgmlType::Q5_1:
    case GgmlType::Q4_K: case GgmlType::Q5_K: case GgmlType::Q6_K: return true;
    default: return false;
  }
}

void quantize_rows(GgmlType t, const float* x, void* dst, size_t nrows, size_t n_per_row, const float* importance) {
  const size_t rb = row_bytes(t, n_per_row);  // validates type and row length
  if (!importance || !takes_importance(t)) {
    quantize_row(t, x, dst, nrows * n_per_row);
    return;
  }
  // Whole rows into an aligned buffer of blocks, then copied: dst needs no alignment.
  static thread_local std::vector<uint8_t> buf;
  buf.resize(rb + 64);
  void* row = reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(buf.data()) + 63) & ~uintptr_t{63});
  auto* out = static_cast<uint8_t*>(dst);
  for (size_t r = 0; r < nrows; ++r, x += n_per_row, out += rb) {
    switch (t) {
      case GgmlType::Q4_0: weighted_row32<BlockQ4_0, 15, false>(x, static_cast<BlockQ4_0*>(row), n_per_row, importance); break;
      case GgmlType::Q5_0: weighted_row32<BlockQ5_0, 31, false>(x, static_cast<BlockQ5_0*>(row), n_per_row, importance); break;
      case GgmlType::Q4_1: weighted_row32<BlockQ4_1, 15, true>(x, static_cast<BlockQ4_1*>(row), n_per_row, importance); break;
      case GgmlType::Q5_1: weighted_row32<BlockQ5_1, 31, true>(x, static_cast<BlockQ5_1*>(row), n_per_row, importance); break;
      case GgmlType::Q4_K: q4_k(x, static_cast<BlockQ4_K*>(row), n_per_row / kQKK, importance); break;
      case GgmlType::Q5_K: q5_k(x, static_cast<BlockQ5_K*>(row), n_per_row / kQKK, importance); break;
      case GgmlType::Q6_K: q6_k(x, static_cast<BlockQ6_K*>(row), n_per_row / kQKK, importance); break;
      default: break;
    }
    std::memcpy(out, row, rb);
  }
}

}  // namespace loom::quant
