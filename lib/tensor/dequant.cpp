// Dequantization: a scalar reference per type and AVX2 paths that give the same bits.
//
// Bit-exactness with gguf.quants rests on the same element order within a block and the same
// float32 operations. The order of the multiplications cannot matter, and neither can fusing a
// multiply with the add after it (FMA, which -march=native lets the compiler do): every product
// here is exact in float32. A scale d is an f16 (11 significant bits) or, for Q8_K, any float32
// times integers only; the integer factors are at most 6-bit sub-block scales times 5-bit quants
// (Q4_K/Q5_K: 11 + 6 + 5 = 22 bits), 7-bit magnitudes (Q8_0, Q6_K's int8 scale times a quant of
// at most 32: 11 + 7 + 5 = 23), all within float32's 24 bits and far from overflow; Q8_K's d * q
// is a single rounding either way. So the only rounding is the final `+ m` / `- dmin * m`, done
// once, as numpy does. (Tested: the goldens, and the AVX2 path against the scalar one.)
#include "loom/tensor/dequant.h"

#include <bit>
#include <cstring>

#include <fmt/format.h>

#include "loom/core/error.h"

#if defined(__AVX2__) && defined(__F16C__)
#include <immintrin.h>
#define LOOM_DEQUANT_AVX2 1
#endif

namespace loom::tensor {

using namespace kernels;

namespace {

// ---------------------------------------------------------------------------------------------
// helpers

// Exact f16 -> f32 by bit manipulation (what numpy does: NaN payloads kept, signalling or not).
inline float f16_exact(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu, bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (man << 13);  // inf, NaN
  } else if (exp != 0) {
    bits = sign | ((exp + 112) << 23) | (man << 13);  // rebias 15 -> 127
  } else if (man == 0) {
    bits = sign;  // ±0
  } else {  // subnormal: man * 2^-24, normalized so that bit 10 is the implicit one
    int shift = std::countl_zero(man) - 21;
    man <<= shift;
    bits = sign | (static_cast<uint32_t>(113 - shift) << 23) | ((man & 0x3ffu) << 13);
  }
  return std::bit_cast<float>(bits);
}

inline float half(f16_bits h) {
#ifdef LOOM_DEQUANT_AVX2
  if ((h & 0x7c00u) == 0x7c00u && (h & 0x3ffu)) return f16_exact(h);  // F16C would quiet a NaN
  return _cvtsh_ss(h);
#else
  return f16_exact(h);
#endif
}

template <typename Block>
inline const Block* blocks(const void* src) {
  return static_cast<const Block*>(src);
}

// Q4_K / Q5_K: the 6-bit scale and min of sub-block j (0..7) from the 12 packed bytes.
inline void scale_min_k4(const uint8_t* s, int j, uint8_t& sc, uint8_t& m) {
  if (j < 4) {
    sc = s[j] & 63;
    m = s[j + 4] & 63;
  } else {
    sc = (s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4);
    m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
}

// ---------------------------------------------------------------------------------------------
// scalar reference

void f32_row(const void* src, float* y, size_t n) { std::memcpy(y, src, n * sizeof(float)); }

void f16_row_scalar(const void* src, float* y, size_t n) {
  const auto* h = static_cast<const uint8_t*>(src);
  for (size_t i = 0; i < n; ++i) {
    uint16_t v;
    std::memcpy(&v, h + 2 * i, 2);
    y[i] = f16_exact(v);
  }
}

void bf16_row_scalar(const void* src, float* y, size_t n) {
  const auto* h = static_cast<const uint8_t*>(src);
  for (size_t i = 0; i < n; ++i) {
    uint16_t v;
    std::memcpy(&v, h + 2 * i, 2);
    y[i] = std::bit_cast<float>(static_cast<uint32_t>(v) << 16);
  }
}

void q4_0_scalar(const void* src, float* y, size_t nb) {
  for (const BlockQ4_0* b = blocks<BlockQ4_0>(src); nb--; ++b, y += kQK) {
    float d = half(b->d);
    for (int j = 0; j < kQK / 2; ++j) {
      y[j] = d * static_cast<float>((b->qs[j] & 0x0f) - 8);
      y[j + kQK / 2] = d * static_cast<float>((b->qs[j] >> 4) - 8);
    }
  }
}

void q4_1_scalar(const void* src, float* y, size_t nb) {
  for (const BlockQ4_1* b = blocks<BlockQ4_1>(src); nb--; ++b, y += kQK) {
    float d = half(b->d), m = half(b->m);
    for (int j = 0; j < kQK / 2; ++j) {
      y[j] = d * static_cast<float>(b->qs[j] & 0x0f) + m;
      y[j + kQK / 2] = d * static_cast<float>(b->qs[j] >> 4) + m;
    }
  }
}

void q5_0_scalar(const void* src, float* y, size_t nb) {
  for (const BlockQ5_0* b = blocks<BlockQ5_0>(src); nb--; ++b, y += kQK) {
    float d = half(b->d);
    uint32_t qh;
    std::memcpy(&qh, b->qh, 4);
    for (int j = 0; j < kQK / 2; ++j) {
      int lo = (b->qs[j] & 0x0f) | (((qh >> j) & 1) << 4);
      int hi = (b->qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4);
      y[j] = d * static_cast<float>(lo - 16);
      y[j + kQK / 2] = d * static_cast<float>(hi - 16);
    }
  }
}

void q5_1_scalar(const void* src, float* y, size_t nb) {
  for (const BlockQ5_1* b = blocks<BlockQ5_1>(src); nb--; ++b, y += kQK) {
    float d = half(b->d), m = half(b->m);
    uint32_t qh;
    std::memcpy(&qh, b->qh, 4);
    for (int j = 0; j < kQK / 2; ++j) {
      int lo = (b->qs[j] & 0x0f) | (((qh >> j) & 1) << 4);
      int hi = (b->qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4);
      y[j] = d * static_cast<float>(lo) + m;
      y[j + kQK / 2] = d * static_cast<float>(hi) + m;
    }
  }
}

void q8_0_scalar(const void* src, float* y, size_t nb) {
  for (const BlockQ8_0* b = blocks<BlockQ8_0>(src); nb--; ++b, y += kQK) {
    float d = half(b->d);
    for (int j = 0; j < kQK; ++j) y[j] = d * static_cast<float>(b->qs[j]);
  }
}

// Q4_K: sub-block j (32 elements) takes the low nibbles (j even) or high nibbles (j odd) of
// qs[32 * (j / 2) ...].
void q4_k_scalar(const void* src, float* y, size_t nb) {
  for (const BlockQ4_K* b = blocks<BlockQ4_K>(src); nb--; ++b) {
    float d = half(b->d), dmin = half(b->dmin);
    for (int j = 0; j < 8; ++j, y += 32) {
      uint8_t sc, m;
      scale_min_k4(b->scales, j, sc, m);
      float ds = d * static_cast<float>(sc), dm = dmin * static_cast<float>(m);
      const uint8_t* q = b->qs + 32 * (j / 2);
      int shift = 4 * (j & 1);
      for (int l = 0; l < 32; ++l) y[l] = ds * static_cast<float>((q[l] >> shift) & 0x0f) - dm;
    }
  }
}

// Q5_K: as Q4_K, with bit j of qh[l] as the fifth bit of element l of sub-block j.
void q5_k_scalar(const void* src, float* y, size_t nb) {
  for (const BlockQ5_K* b = blocks<BlockQ5_K>(src); nb--; ++b) {
    float d = half(b->d), dmin = half(b->dmin);
    for (int j = 0; j < 8; ++j, y += 32) {
      uint8_t sc, m;
      scale_min_k4(b->scales, j, sc, m);
      float ds = d * static_cast<float>(sc), dm = dmin * static_cast<float>(m);
      const uint8_t* q = b->qs + 32 * (j / 2);
      int shift = 4 * (j & 1);
      for (int l = 0; l < 32; ++l) {
        int v = ((q[l] >> shift) & 0x0f) | (((b->qh[l] >> j) & 1) << 4);
        y[l] = ds * static_cast<float>(v) - dm;
      }
    }
  }
}

// Q6_K: element e = 128 h + r (h = 0, 1; r < 128): low 4 bits from ql[64 h + r % 64] (shifted by
// 4 * (r / 64)), high 2 bits from qh[32 h + r % 32] (shifted by 2 * (r / 32)); scale e / 16.
void q6_k_scalar(const void* src, float* y, size_t nb) {
  for (const BlockQ6_K* b = blocks<BlockQ6_K>(src); nb--; ++b) {
    float d = half(b->d);
    float ds[16];
    for (int s = 0; s < 16; ++s) ds[s] = d * static_cast<float>(b->scales[s]);
    for (int h = 0; h < 2; ++h)
      for (int k = 0; k < 4; ++k) {  // r = 32 k + l
        const uint8_t* ql = b->ql + 64 * h + 32 * (k & 1);
        const uint8_t* qh = b->qh + 32 * h;
        float* out = y + 128 * h + 32 * k;
        for (int l = 0; l < 32; ++l) {
          int lo = (ql[l] >> (4 * (k >> 1))) & 0x0f, hi = (qh[l] >> (2 * k)) & 0x03;
          out[l] = ds[8 * h + 2 * k + l / 16] * static_cast<float>((lo | (hi << 4)) - 32);
        }
      }
    y += kQKK;
  }
}

void q8_k_scalar(const void* src, float* y, size_t nb) {
  for (const uint8_t* p = static_cast<const uint8_t*>(src); nb--; p += sizeof(BlockQ8_K), y += kQKK) {
    float d;  // the block's float may be unaligned in a packed row
    std::memcpy(&d, p + offsetof(BlockQ8_K, d), 4);
    const auto* q = reinterpret_cast<const int8_t*>(p + offsetof(BlockQ8_K, qs));
    for (int j = 0; j < kQKK; ++j) y[j] = d * static_cast<float>(q[j]);
  }
}

// ---------------------------------------------------------------------------------------------
// AVX2: same operations, 8 lanes at a time

#ifdef LOOM_DEQUANT_AVX2

// y[0..8) = d * float(q) for 8 int32 lanes.
inline void mul8(float* y, __m256i q, __m256 d) { _mm256_storeu_ps(y, _mm256_mul_ps(d, _mm256_cvtepi32_ps(q))); }
// y[0..8) = d * float(q) + m
inline void mul_add8(float* y, __m256i q, __m256 d, __m256 m) {
  _mm256_storeu_ps(y, _mm256_add_ps(_mm256_mul_ps(d, _mm256_cvtepi32_ps(q)), m));
}
// y[0..8) = d * float(q) - m
inline void mul_sub8(float* y, __m256i q, __m256 d, __m256 m) {
  _mm256_storeu_ps(y, _mm256_sub_ps(_mm256_mul_ps(d, _mm256_cvtepi32_ps(q)), m));
}
// The 16 unsigned bytes of v as two vectors of 8 int32.
inline __m256i lo8_u8(__m128i v) { return _mm256_cvtepu8_epi32(v); }
inline __m256i hi8_u8(__m128i v) { return _mm256_cvtepu8_epi32(_mm_srli_si128(v, 8)); }

void f16_row_avx2(const void* src, float* y, size_t n) {
  const auto* h = static_cast<const uint8_t*>(src);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(h + 2 * i));
    __m256 f = _mm256_cvtph_ps(v);
    if (_mm256_movemask_ps(_mm256_cmp_ps(f, f, _CMP_UNORD_Q))) {
      f16_row_scalar(h + 2 * i, y + i, 8);  // NaN payloads, kept as they are
    } else {
      _mm256_storeu_ps(y + i, f);
    }
  }
  f16_row_scalar(h + 2 * i, y + i, n - i);
}

void bf16_row_avx2(const void* src, float* y, size_t n) {
  const auto* h = static_cast<const uint8_t*>(src);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(h + 2 * i)));
    _mm256_storeu_ps(y + i, _mm256_castsi256_ps(_mm256_slli_epi32(v, 16)));
  }
  bf16_row_scalar(h + 2 * i, y + i, n - i);
}

void q4_0_avx2(const void* src, float* y, size_t nb) {
  const __m128i mask = _mm_set1_epi8(0x0f);
  const __m256i eight = _mm256_set1_epi32(8);
  for (const BlockQ4_0* b = blocks<BlockQ4_0>(src); nb--; ++b, y += kQK) {
    __m256 d = _mm256_set1_ps(half(b->d));
    __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b->qs));
    __m128i lo = _mm_and_si128(q, mask), hi = _mm_and_si128(_mm_srli_epi16(q, 4), mask);
    mul8(y, _mm256_sub_epi32(lo8_u8(lo), eight), d);
    mul8(y + 8, _mm256_sub_epi32(hi8_u8(lo), eight), d);
    mul8(y + 16, _mm256_sub_epi32(lo8_u8(hi), eight), d);
    mul8(y + 24, _mm256_sub_epi32(hi8_u8(hi), eight), d);
  }
}

void q4_1_avx2(const void* src, float* y, size_t nb) {
  const __m128i mask = _mm_set1_epi8(0x0f);
  for (const BlockQ4_1* b = blocks<BlockQ4_1>(src); nb--; ++b, y += kQK) {
    __m256 d = _mm256_set1_ps(half(b->d)), m = _mm256_set1_ps(half(b->m));
    __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b->qs));
    __m128i lo = _mm_and_si128(q, mask), hi = _mm_and_si128(_mm_srli_epi16(q, 4), mask);
    mul_add8(y, lo8_u8(lo), d, m);
    mul_add8(y + 8, hi8_u8(lo), d, m);
    mul_add8(y + 16, lo8_u8(hi), d, m);
    mul_add8(y + 24, hi8_u8(hi), d, m);
  }
}

// The fifth bits of Q5_0/Q5_1 elements 8g..8g+7, as 16 or 0 in int32 lanes.
inline __m256i q5_high8(uint32_t qh, int g) {
  const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  __m256i bits = _mm256_srlv_epi32(_mm256_set1_epi32(static_cast<int>(qh >> (8 * g))), lanes);
  return _mm256_slli_epi32(_mm256_and_si256(bits, _mm256_set1_epi32(1)), 4);
}

void q5_0_avx2(const void* src, float* y, size_t nb) {
  const __m128i mask = _mm_set1_epi8(0x0f);
  const __m256i sixteen = _mm256_set1_epi32(16);
  for (const BlockQ5_0* b = blocks<BlockQ5_0>(src); nb--; ++b, y += kQK) {
    __m256 d = _mm256_set1_ps(half(b->d));
    uint32_t qh;
    std::memcpy(&qh, b->qh, 4);
    __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b->qs));
    __m128i lo = _mm_and_si128(q, mask), hi = _mm_and_si128(_mm_srli_epi16(q, 4), mask);
    __m256i v[4] = {lo8_u8(lo), hi8_u8(lo), lo8_u8(hi), hi8_u8(hi)};
    for (int g = 0; g < 4; ++g) mul8(y + 8 * g, _mm256_sub_epi32(_mm256_or_si256(v[g], q5_high8(qh, g)), sixteen), d);
  }
}

void q5_1_avx2(const void* src, float* y, size_t nb) {
  const __m128i mask = _mm_set1_epi8(0x0f);
  for (const BlockQ5_1* b = blocks<BlockQ5_1>(src); nb--; ++b, y += kQK) {
    __m256 d = _mm256_set1_ps(half(b->d)), m = _mm256_set1_ps(half(b->m));
    uint32_t qh;
    std::memcpy(&qh, b->qh, 4);
    __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b->qs));
    __m128i lo = _mm_and_si128(q, mask), hi = _mm_and_si128(_mm_srli_epi16(q, 4), mask);
    __m256i v[4] = {lo8_u8(lo), hi8_u8(lo), lo8_u8(hi), hi8_u8(hi)};
    for (int g = 0; g < 4; ++g) mul_add8(y + 8 * g, _mm256_or_si256(v[g], q5_high8(qh, g)), d, m);
  }
}

void q8_0_avx2(const void* src, float* y, size_t nb) {
  for (const BlockQ8_0* b = blocks<BlockQ8_0>(src); nb--; ++b, y += kQK) {
    __m256 d = _mm256_set1_ps(half(b->d));
    for (int g = 0; g < 4; ++g)
      mul8(y + 8 * g, _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(b->qs + 8 * g))), d);
  }
}

// 32 unsigned bytes (values < 128) -> y[0..32) = ds * q - dm
inline void k_sub32(float* y, __m256i q, __m256 ds, __m256 dm) {
  __m128i a = _mm256_castsi256_si128(q), c = _mm256_extracti128_si256(q, 1);
  mul_sub8(y, lo8_u8(a), ds, dm);
  mul_sub8(y + 8, hi8_u8(a), ds, dm);
  mul_sub8(y + 16, lo8_u8(c), ds, dm);
  mul_sub8(y + 24, hi8_u8(c), ds, dm);
}

void q4_k_avx2(const void* src, float* y, size_t nb) {
  const __m256i mask = _mm256_set1_epi8(0x0f);
  for (const BlockQ4_K* b = blocks<BlockQ4_K>(src); nb--; ++b) {
    float d = half(b->d), dmin = half(b->dmin);
    for (int c = 0; c < 4; ++c) {
      __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b->qs + 32 * c));
      for (int s = 0; s < 2; ++s, y += 32) {
        uint8_t sc, m;
        scale_min_k4(b->scales, 2 * c + s, sc, m);
        __m256i v = _mm256_and_si256(s ? _mm256_srli_epi16(q, 4) : q, mask);
        k_sub32(y, v, _mm256_set1_ps(d * static_cast<float>(sc)), _mm256_set1_ps(dmin * static_cast<float>(m)));
      }
    }
  }
}

void q5_k_avx2(const void* src, float* y, size_t nb) {
  const __m256i mask = _mm256_set1_epi8(0x0f), one = _mm256_set1_epi8(1);
  for (const BlockQ5_K* b = blocks<BlockQ5_K>(src); nb--; ++b) {
    float d = half(b->d), dmin = half(b->dmin);
    __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b->qh));
    for (int c = 0; c < 4; ++c) {
      __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b->qs + 32 * c));
      for (int s = 0; s < 2; ++s, y += 32) {
        int j = 2 * c + s;
        uint8_t sc, m;
        scale_min_k4(b->scales, j, sc, m);
        __m256i lo = _mm256_and_si256(s ? _mm256_srli_epi16(q, 4) : q, mask);
        __m256i hb = _mm256_and_si256(_mm256_srl_epi16(qh, _mm_cvtsi32_si128(j)), one);
        __m256i v = _mm256_or_si256(lo, _mm256_slli_epi16(hb, 4));
        k_sub32(y, v, _mm256_set1_ps(d * static_cast<float>(sc)), _mm256_set1_ps(dmin * static_cast<float>(m)));
      }
    }
  }
}

void q6_k_avx2(const void* src, float* y, size_t nb) {
  const __m256i m4 = _mm256_set1_epi8(0x0f), m2 = _mm256_set1_epi8(0x03), off = _mm256_set1_epi8(32);
  for (const BlockQ6_K* b = blocks<BlockQ6_K>(src); nb--; ++b) {
    float d = half(b->d);
    for (int h = 0; h < 2; ++h) {
      __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b->qh + 32 * h));
      for (int k = 0; k < 4; ++k, y += 32) {
        __m256i ql = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b->ql + 64 * h + 32 * (k & 1)));
        __m256i lo = _mm256_and_si256(_mm256_srl_epi16(ql, _mm_cvtsi32_si128(4 * (k >> 1))), m4);
        __m256i hi = _mm256_and_si256(_mm256_srl_epi16(qh, _mm_cvtsi32_si128(2 * k)), m2);
        __m256i q = _mm256_sub_epi8(_mm256_or_si256(lo, _mm256_slli_epi16(hi, 4)), off);  // int8 -32..31
        __m128i a = _mm256_castsi256_si128(q), c = _mm256_extracti128_si256(q, 1);
        int s = 8 * h + 2 * k;
        __m256 d0 = _mm256_set1_ps(d * static_cast<float>(b->scales[s]));
        __m256 d1 = _mm256_set1_ps(d * static_cast<float>(b->scales[s + 1]));
        mul8(y, _mm256_cvtepi8_epi32(a), d0);
        mul8(y + 8, _mm256_cvtepi8_epi32(_mm_srli_si128(a, 8)), d0);
        mul8(y + 16, _mm256_cvtepi8_epi32(c), d1);
        mul8(y + 24, _mm256_cvtepi8_epi32(_mm_srli_si128(c, 8)), d1);
      }
    }
  }
}

void q8_k_avx2(const void* src, float* y, size_t nb) {
  for (const uint8_t* p = static_cast<const uint8_t*>(src); nb--; p += sizeof(BlockQ8_K), y += kQKK) {
    float df;
    std::memcpy(&df, p + offsetof(BlockQ8_K, d), 4);
    __m256 d = _mm256_set1_ps(df);
    const uint8_t* q = p + offsetof(BlockQ8_K, qs);
    for (int g = 0; g < kQKK / 8; ++g)
      mul8(y + 8 * g, _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(q + 8 * g))), d);
  }
}

#endif  // LOOM_DEQUANT_AVX2

// ---------------------------------------------------------------------------------------------
// dispatch

using RowFn = void (*)(const void*, float*, size_t);  // (src, dst, elements or blocks)

struct Kernel {
  RowFn scalar = nullptr, simd = nullptr;
  bool per_element = false;  // fn takes a count of elements (F32, F16, BF16), else of blocks
};

Kernel kernel(GgmlType t) {
#ifdef LOOM_DEQUANT_AVX2
#define LOOM_PICK(s, v) Kernel{s, v}
#else
#define LOOM_PICK(s, v) Kernel{s, s}
#endif
  switch (t) {
    case GgmlType::F32: return {f32_row, f32_row, true};
    case GgmlType::F16: { Kernel k = LOOM_PICK(f16_row_scalar, f16_row_avx2); k.per_element = true; return k; }
    case GgmlType::BF16: { Kernel k = LOOM_PICK(bf16_row_scalar, bf16_row_avx2); k.per_element = true; return k; }
    case GgmlType::Q4_0: return LOOM_PICK(q4_0_scalar, q4_0_avx2);
    case GgmlType::Q4_1: return LOOM_PICK(q4_1_scalar, q4_1_avx2);
    case GgmlType::Q5_0: return LOOM_PICK(q5_0_scalar, q5_0_avx2);
    case GgmlType::Q5_1: return LOOM_PICK(q5_1_scalar, q5_1_avx2);
    case GgmlType::Q8_0: return LOOM_PICK(q8_0_scalar, q8_0_avx2);
    case GgmlType::Q4_K: return LOOM_PICK(q4_k_scalar, q4_k_avx2);
    case GgmlType::Q5_K: return LOOM_PICK(q5_k_scalar, q5_k_avx2);
    case GgmlType::Q6_K: return LOOM_PICK(q6_k_scalar, q6_k_avx2);
    case GgmlType::Q8_K: return LOOM_PICK(q8_k_scalar, q8_k_avx2);
    default: return {};
  }
#undef LOOM_PICK
}

void run(GgmlType t, const void* src, float* dst, size_t n, bool simd) {
  Kernel k = kernel(t);
  if (!k.scalar) {
    const char* name = type_name(t);
    throw input_error(fmt::format("cannot dequantize tensor type {} ({})", static_cast<uint32_t>(t), name ? name : "unknown"));
  }
  size_t per_block = type_size(t).block_elems;
  if (n % per_block)
    throw input_error(fmt::format("cannot dequantize {} elements of {}: not a whole number of blocks of {}", n, type_name(t), per_block));
  (simd ? k.simd : k.scalar)(src, dst, k.per_element ? n : n / per_block);
}

}  // namespace

bool can_dequantize(GgmlType t) { return kernel(t).scalar != nullptr; }

void dequantize_row(GgmlType t, const void* src, float* dst, size_t n) { run(t, src, dst, n, true); }
void dequantize_row_scalar(GgmlType t, const void* src, float* dst, size_t n) { run(t, src, dst, n, false); }

float f16_to_f32(uint16_t h) { return half(h); }
float bf16_to_f32(uint16_t h) { return std::bit_cast<float>(static_cast<uint32_t>(h) << 16); }

const char* dequant_path() {
#ifdef LOOM_DEQUANT_AVX2
  return "avx2";
#else
  return "scalar";
#endif
}

}  // namespace loom::tensor
