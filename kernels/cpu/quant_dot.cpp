// Dot products, mat-vec and mat-mat over GGUF weight types (see quant_dot.h for the scheme).
//
// Layout of this file:
//   1. float helpers: fused multiply-add, the fixed lane reductions, f16/bf16 conversions
//   2. activation quantization (Q8_0, Q8_1, Q8_K), matching llama.cpp's x86 build
//   3. scalar dot products, one per weight type: the reference every other path must equal
//   4. AVX2 paths: weight blocks are unpacked to int8 (in registers for mat-vec, into a row
//      buffer for mat-mat) and multiplied with int8 activations; the float epilogue performs the
//      same operations, lane for lane, as the scalar code
//   5. public entry points: dispatch, threading, matvec, matmul
//
// Lanes. The 32-element block types form 8 int32 lane sums per block (lane i: elements
// 4i..4i+3) and add d_w*d_x times each into float lane i with one fma, as ggml's AVX2 vec_dot.
// The K types group their integer sums as llama.cpp's kernel for the order asked does (KSums,
// k_step: vec_dot lanes, repacked gemv/gemm, tiled). Float weight types use 32 lanes, element i
// in lane i % 32 (AVX2: 4 vectors of 8; AVX-512: 2 of 16). Lanes are summed by reduce8/reduce32.
#include "kernels/cpu/quant_dot.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#if defined(__AVX2__) && defined(__F16C__)
#include <immintrin.h>
#define LOOM_QD_AVX2 1
#else
#define LOOM_QD_AVX2 0
#endif

namespace loom::kernels {
namespace {

// ============================== 1. float helpers ==============================

// The one multiply-add every path uses: fused where the SIMD code fuses, plain otherwise
// (loom builds with -std=c++20, where GCC does not contract a*b+c on its own).
inline float fmadd(float a, float b, float c) {
#if defined(__FMA__)
  return std::fma(a, b, c);
#else
  return a * b + c;
#endif
}

inline float reduce8(const float* a) {
  return ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]));
}

inline float reduce32(const float* in) {
  float a[32];
  std::memcpy(a, in, sizeof a);
  for (int s = 16; s >= 1; s /= 2)
    for (int i = 0; i < s; ++i) a[i] += a[i + s];
  return a[0];
}

inline uint32_t f32_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float bits_f32(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

inline float fp16(f16_bits h) { return f16_to_f32(h); }

[[noreturn]] void bad(const std::string& what) { throw std::invalid_argument("loom kernels: " + what); }

size_t block_elems(GgmlType t) { return type_size(t).block_elems; }

void check_shape(GgmlType wtype, size_t n, const char* fn) {
  if (!supports_weight_type(wtype)) {
    const char* name = type_name(wtype);
    bad(std::string(fn) + ": unsupported weight type " +
        (name ? name : std::to_string(static_cast<uint32_t>(wtype))));
  }
  const size_t be = block_elems(wtype);
  if (n % be != 0)
    bad(std::string(fn) + ": " + std::to_string(n) + " values is not a multiple of the " +
        type_name(wtype) + " block (" + std::to_string(be) + ")");
}

// ============================== 2. activation quantization ==============================

// Round half to even, as _mm256_round_ps(_MM_ROUND_NEAREST) and ggml's nearest_int do.
inline int round_even(float v) { return static_cast<int>(std::nearbyint(v)); }
inline int8_t sat8(int v) { return static_cast<int8_t>(std::clamp(v, -128, 127)); }

// Shared by Q8_0 and Q8_1: d and the 32 quants of one block; returns sum of quants.
int quantize_block32(const float* x, float& d, int8_t* q) {
  float amax = 0.0f;
  for (int j = 0; j < kQK; ++j) amax = std::max(amax, std::fabs(x[j]));
  d = amax / 127.0f;
  const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
  int sum = 0;
  for (int j = 0; j < kQK; ++j) {
    const int v = round_even(x[j] * id);
    sum += v;
    q[j] = sat8(v);
  }
  return sum;
}

// ============================== 3. scalar dot products ==============================

inline uint32_t load_qh(const uint8_t* qh) {
  return uint32_t(qh[0]) | uint32_t(qh[1]) << 8 | uint32_t(qh[2]) << 16 | uint32_t(qh[3]) << 24;
}

// A block's 32 weights as int8 in element order (Q4_1/Q5_1: their unsigned 0..31 values).
void unpack32(const BlockQ4_0& w, int8_t* q) {
  for (int j = 0; j < 16; ++j) {
    q[j] = static_cast<int8_t>((w.qs[j] & 15) - 8);
    q[j + 16] = static_cast<int8_t>((w.qs[j] >> 4) - 8);
  }
}
void unpack32(const BlockQ4_1& w, int8_t* q) {
  for (int j = 0; j < 16; ++j) {
    q[j] = static_cast<int8_t>(w.qs[j] & 15);
    q[j + 16] = static_cast<int8_t>(w.qs[j] >> 4);
  }
}
void unpack32(const BlockQ5_0& w, int8_t* q) {
  const uint32_t qh = load_qh(w.qh);
  for (int j = 0; j < 16; ++j) {
    q[j] = static_cast<int8_t>(((w.qs[j] & 15) | ((qh >> j) & 1) << 4) - 16);
    q[j + 16] = static_cast<int8_t>(((w.qs[j] >> 4) | ((qh >> (j + 16)) & 1) << 4) - 16);
  }
}
void unpack32(const BlockQ5_1& w, int8_t* q) {
  const uint32_t qh = load_qh(w.qh);
  for (int j = 0; j < 16; ++j) {
    q[j] = static_cast<int8_t>((w.qs[j] & 15) | ((qh >> j) & 1) << 4);
    q[j + 16] = static_cast<int8_t>((w.qs[j] >> 4) | ((qh >> (j + 16)) & 1) << 4);
  }
}
void unpack32(const BlockQ8_0& w, int8_t* q) { std::memcpy(q, w.qs, 32); }

// The 32-element types in llama.cpp's x86 (AVX2) order, so that loom's sums round as llama.cpp's
// do: lane i (0..7) of every block is the integer sum of elements 4i..4i+3; each block adds
// d_w*d_x times it into float lane i with one fma; the lanes are summed as hsum_float_8
// (reduce8). Q4_1/Q5_1 add m_w*s_x into one scalar, fused (ggml's C is built with contraction).
template <typename WB, typename AB>
float dot32_ggml(size_t nb, const WB* w, const AB* a) {
  constexpr bool kMin = std::is_same_v<WB, BlockQ4_1> || std::is_same_v<WB, BlockQ5_1>;
  float summs = 0;
  float acc[8] = {};
  int8_t q[32];
  for (size_t b = 0; b < nb; ++b) {
    unpack32(w[b], q);
    const float dd = fp16(w[b].d) * fp16(a[b].d);
    for (int i = 0; i < 8; ++i) {
      int p = 0;
      for (int k = 4 * i; k < 4 * i + 4; ++k) p += q[k] * a[b].qs[k];
      acc[i] = fmadd(dd, static_cast<float>(p), acc[i]);
    }
    if constexpr (kMin) summs = fmadd(fp16(w[b].m), fp16(a[b].s), summs);
  }
  return reduce8(acc) + summs;
}

// Q4_0 in the order of llama.cpp's repacked copy (q4_0_8x8_q8_0 gemv/gemm on x86): one float
// running sum, block after block, of the block's exact integer dot times d_w * d_x, fused.
float dot_q4_0_repacked(size_t nb, const void* wv, const void* av) {
  const BlockQ4_0* w = static_cast<const BlockQ4_0*>(wv);
  const BlockQ8_0* a = static_cast<const BlockQ8_0*>(av);
  float acc = 0;
  int8_t q[32];
  for (size_t b = 0; b < nb; ++b) {
    unpack32(w[b], q);
    int32_t isum = 0;
    for (int k = 0; k < 32; ++k) isum += q[k] * a[b].qs[k];
    acc = fmadd(static_cast<float>(isum), fp16(w[b].d) * fp16(a[b].d), acc);
  }
  return acc;
}

template <class WB, class AB>
float dot32_scalar(size_t nb, const void* wv, const void* av) {
  // llama.cpp's x86 order (see dot32_ggml)
  return dot32_ggml<WB, AB>(nb, static_cast<const WB*>(wv), static_cast<const AB*>(av));
}

// The 6-bit scale and min of sub-block j (0..7) of a Q4_K/Q5_K super-block.
inline void k_scale_min(const uint8_t* s, int j, int& sc, int& mn) {
  if (j < 4) {
    sc = s[j] & 63;
    mn = s[j + 4] & 63;
  } else {
    sc = (s[j + 4] & 15) | ((s[j - 4] >> 6) << 4);
    mn = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
}

// The K types' weights of element e (0..255) of a super-block: Q4_K/Q5_K unsigned 0..15/0..31 in
// sub-block e/32; Q6_K unsigned 0..63 (the -32 offset is taken off through the bsums).
inline int kq(const BlockQ4_K& w, int e) { return (w.qs[32 * (e / 64) + e % 32] >> (4 * ((e / 32) % 2))) & 15; }
inline int kq(const BlockQ5_K& w, int e) {
  return ((w.qs[32 * (e / 64) + e % 32] >> (4 * ((e / 32) % 2))) & 15) | ((w.qh[e % 32] >> (e / 32)) & 1) << 4;
}
inline int kq(const BlockQ6_K& w, int e) {
  const int h = e / 128, m = (e % 128) / 32, l = e % 32;  // half, 32-chunk, position
  const int lo = (w.ql[64 * h + 32 * (m % 2) + l] >> (4 * (m / 2))) & 15;
  return lo | ((w.qh[32 * h + l] >> (2 * m)) & 3) << 4;
}

// The integer sums of one K super-block against its Q8_K block, grouped as llama.cpp's x86
// kernels group them before converting to float:
//   lane[k]  its AVX2 vec_dot: the products of elements 4k..4k+3 of every 32, times their scale
//            (Q6_K: minus 32 * scale * bsum over elements 32k..32k+31, its offset term)
//   pair[s]  Q4_K/Q5_K, its repacked gemm: scale * dot of sub-blocks 2s and 2s+1
//   mins[s]  Q4_K/Q5_K: min * activation sum of sub-blocks 2s and 2s+1
struct KSums {
  int lane[8] = {}, pair[4] = {}, mins[4] = {};
};

template <class WB>
KSums ksums(const WB& w, const BlockQ8_K& a) {
  KSums s;
  if constexpr (std::is_same_v<WB, BlockQ6_K>) {
    for (int e = 0; e < kQKK; ++e) s.lane[(e % 32) / 4] += w.scales[e / 16] * kq(w, e) * a.qs[e];
    for (int k = 0; k < 8; ++k) s.lane[k] -= 32 * (a.bsums[2 * k] * w.scales[2 * k] + a.bsums[2 * k + 1] * w.scales[2 * k + 1]);
  } else {
    for (int j = 0; j < 8; ++j) {
      int sc, mn;
      k_scale_min(w.scales, j, sc, mn);
      for (int i = 0; i < 32; ++i) {
        const int p = sc * kq(w, 32 * j + i) * a.qs[32 * j + i];
        s.lane[i / 4] += p;
        s.pair[j / 2] += p;
      }
      s.mins[j / 2] += mn * (a.bsums[2 * j] + a.bsums[2 * j + 1]);
    }
  }
  return s;
}

inline float kdmin(const BlockQ4_K& w) { return fp16(w.dmin); }
inline float kdmin(const BlockQ5_K& w) { return fp16(w.dmin); }
inline float kdmin(const BlockQ6_K&) { return 0.0f; }

// The float state of one K-type output and the step each order takes per super-block; scalar
// and SIMD code both go through it. wd, wdmin: the weight block's d and dmin; ad: Q8_K's d.
struct KFloat {
  float acc[8] = {}, accm[4] = {};  // vec_dot lanes
  float summs = 0;                  // Q5_K's vec_dot: its mins, one scalar
  float racc = 0, raccm = 0;        // repacked Q4_K; tiled: racc
};

template <class WB>
inline void k_step(KOrder order, float wd, float wdmin, float ad, const KSums& s, KFloat& f) {
  if (order == KOrder::VecDot) {
    const float d = ad * wd;
    for (int k = 0; k < 8; ++k) f.acc[k] = fmadd(d, static_cast<float>(s.lane[k]), f.acc[k]);
    if constexpr (std::is_same_v<WB, BlockQ4_K>) {
      const float dmin = -ad * wdmin;
      for (int k = 0; k < 4; ++k) f.accm[k] = fmadd(dmin, static_cast<float>(s.mins[k]), f.accm[k]);
    } else if constexpr (std::is_same_v<WB, BlockQ5_K>) {
      const float dmin = -ad * wdmin;
      f.summs = fmadd(dmin, static_cast<float>((s.mins[0] + s.mins[1]) + (s.mins[2] + s.mins[3])), f.summs);
    }
    return;
  }
  if (order == KOrder::Tiled) {  // the whole sums, d_w applied, then d_x by fma into one sum
    int isum = 0;
    for (int k = 0; k < 8; ++k) isum += s.lane[k];
    float res = wd * static_cast<float>(isum);
    if constexpr (!std::is_same_v<WB, BlockQ6_K>)
      res = fmadd(-wdmin, static_cast<float>(s.mins[0] + s.mins[1] + s.mins[2] + s.mins[3]), res);
    f.racc = fmadd(res, ad, f.racc);
    return;
  }
  // repacked Q4_K: gemv converts the super-block's whole sums, gemm each pair of sub-blocks'
  const float d = wd * ad, dmin = wdmin * ad;
  if (order == KOrder::RepackGemv) {
    int isum = 0;
    for (int k = 0; k < 8; ++k) isum += s.lane[k];
    f.racc = fmadd(static_cast<float>(isum), d, f.racc);
    f.raccm = fmadd(static_cast<float>(s.mins[0] + s.mins[1] + s.mins[2] + s.mins[3]), dmin, f.raccm);
  } else {
    for (int p = 0; p < 4; ++p) {
      f.racc = fmadd(static_cast<float>(s.pair[p]), d, f.racc);
      f.raccm = fmadd(static_cast<float>(s.mins[p]), dmin, f.raccm);
    }
  }
}

template <class WB>
inline float k_finish(KOrder order, const KFloat& f) {
  if (order == KOrder::Tiled) return f.racc;
  if (order != KOrder::VecDot) return f.racc - f.raccm;
  if constexpr (std::is_same_v<WB, BlockQ4_K>) return reduce8(f.acc) + ((f.accm[0] + f.accm[2]) + (f.accm[1] + f.accm[3]));
  if constexpr (std::is_same_v<WB, BlockQ5_K>) return reduce8(f.acc) + f.summs;
  return reduce8(f.acc);
}

// The repacked orders exist for Q4_K only; another K type takes vec_dot's instead.
inline KOrder k_order(GgmlType t, KOrder order) {
  return t == GgmlType::Q4_K || order == KOrder::Tiled ? order : KOrder::VecDot;
}

template <class WB>
float dotK_scalar(size_t nb, const void* wv, const void* av, KOrder order) {
  const WB* w = static_cast<const WB*>(wv);
  const BlockQ8_K* a = static_cast<const BlockQ8_K*>(av);
  KFloat f;
  for (size_t b = 0; b < nb; ++b) k_step<WB>(order, fp16(w[b].d), kdmin(w[b]), a[b].d, ksums(w[b], a[b]), f);
  return k_finish<WB>(order, f);
}

struct LoadF32 {
  static float at(const void* p, size_t i) { return static_cast<const float*>(p)[i]; }
};
struct LoadF16 {
  static float at(const void* p, size_t i) { return f16_to_f32(static_cast<const f16_bits*>(p)[i]); }
};
struct LoadBF16 {
  static float at(const void* p, size_t i) { return bf16_to_f32(static_cast<const bf16_bits*>(p)[i]); }
};

// Float dot, element i in lane i % 32, from element `from` on (lanes carried in acc).
template <class L>
float float_dot_tail(size_t from, size_t n, const void* w, const void* a, float* acc) {
  for (size_t i = from; i < n; ++i) acc[i % 32] = fmadd(L::at(w, i), L::at(a, i), acc[i % 32]);
  return reduce32(acc);
}

float dot_scalar_impl(GgmlType t, size_t n, const void* w, const void* a, KOrder order = KOrder::VecDot) {
  const size_t nb = n / block_elems(t);
  float acc[32] = {};
  switch (t) {
    case GgmlType::F32: return float_dot_tail<LoadF32>(0, n, w, a, acc);
    case GgmlType::F16: return float_dot_tail<LoadF16>(0, n, w, a, acc);
    case GgmlType::BF16: return float_dot_tail<LoadBF16>(0, n, w, a, acc);
    case GgmlType::Q4_0:
      return order == KOrder::RepackGemv ? dot_q4_0_repacked(nb, w, a) : dot32_scalar<BlockQ4_0, BlockQ8_0>(nb, w, a);
    case GgmlType::Q4_1: return dot32_scalar<BlockQ4_1, BlockQ8_1>(nb, w, a);
    case GgmlType::Q5_0: return dot32_scalar<BlockQ5_0, BlockQ8_0>(nb, w, a);
    case GgmlType::Q5_1: return dot32_scalar<BlockQ5_1, BlockQ8_1>(nb, w, a);
    case GgmlType::Q8_0: return dot32_scalar<BlockQ8_0, BlockQ8_0>(nb, w, a);
    case GgmlType::Q4_K: return dotK_scalar<BlockQ4_K>(nb, w, a, order);
    case GgmlType::Q5_K: return dotK_scalar<BlockQ5_K>(nb, w, a, k_order(GgmlType::Q5_K, order));
    case GgmlType::Q6_K: return dotK_scalar<BlockQ6_K>(nb, w, a, k_order(GgmlType::Q6_K, order));
    default: bad("vec_dot: unsupported weight type");
  }
}

[[maybe_unused]] bool is_float_type(GgmlType t) { return t == GgmlType::F32 || t == GgmlType::F16 || t == GgmlType::BF16; }
[[maybe_unused]] bool is_k_type(GgmlType t) { return t == GgmlType::Q4_K || t == GgmlType::Q5_K || t == GgmlType::Q6_K; }

// ============================== 4. AVX2 paths ==============================
#if LOOM_QD_AVX2

inline __m256 vfmadd(__m256 a, __m256 b, __m256 c) {
#if defined(__FMA__)
  return _mm256_fmadd_ps(a, b, c);
#else
  return _mm256_add_ps(_mm256_mul_ps(a, b), c);
#endif
}

// 8 int32 partial sums of the 32 products w[i]*a[i] (signed int8 both; |w| may be 128).
inline __m256i dot_i8(__m256i w, __m256i a) {
  const __m256i aw = _mm256_sign_epi8(w, w);
  const __m256i sa = _mm256_sign_epi8(a, w);
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
  return _mm256_dpbusd_epi32(_mm256_setzero_si256(), aw, sa);
#elif defined(__AVXVNNI__)
  return _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), aw, sa);
#else
  return _mm256_madd_epi16(_mm256_maddubs_epi16(aw, sa), _mm256_set1_epi16(1));
#endif
}

inline int hsum_i32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 1));
  return _mm_cvtsi128_si32(s);
}

// 32 nibbles of 16 bytes: low nibbles -> elements 0..15, high -> 16..31.
inline __m256i nibbles32(const uint8_t* qs) {
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  const __m128i m = _mm_set1_epi8(15);
  return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(v, 4), m), _mm_and_si128(v, m));
}

// Bit i of the 32-bit little-endian qh -> byte i is 0x10 if set, else 0.
inline __m256i fifth_bits(const uint8_t* qh) {
  uint32_t x;
  std::memcpy(&x, qh, 4);
  const __m256i spread = _mm256_shuffle_epi8(
      _mm256_set1_epi32(static_cast<int>(x)),
      _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0));
  const __m256i bit = _mm256_set1_epi64x(static_cast<long long>(0x8040201008040201ULL));
  const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit);
  return _mm256_and_si256(set, _mm256_set1_epi8(0x10));
}

// ---- 32-element block types: one weight block as 32 signed int8 quants ----
inline __m256i unpack(const BlockQ4_0& b) { return _mm256_sub_epi8(nibbles32(b.qs), _mm256_set1_epi8(8)); }
inline __m256i unpack(const BlockQ4_1& b) { return nibbles32(b.qs); }
inline __m256i unpack(const BlockQ5_0& b) {
  return _mm256_sub_epi8(_mm256_or_si256(nibbles32(b.qs), fifth_bits(b.qh)), _mm256_set1_epi8(16));
}
inline __m256i unpack(const BlockQ5_1& b) { return _mm256_or_si256(nibbles32(b.qs), fifth_bits(b.qh)); }
inline __m256i unpack(const BlockQ8_0& b) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qs)); }

template <class WB>
constexpr bool has_min() {
  return std::is_same_v<WB, BlockQ4_1> || std::is_same_v<WB, BlockQ5_1>;
}
// f16 -> f32 in one instruction (exact, like fp16()).
inline float h2f(f16_bits h) { return _cvtsh_ss(h); }

template <class WB>
inline float wmin(const WB& b) {
  if constexpr (has_min<WB>()) return h2f(b.m);
  else return 0.0f;
}

// The 8 int32 lane sums (lane i: elements 4i..4i+3) of one unpacked weight block with 32
// activation quants. Signed weights go through |w| and sign(a, w) (wabs = |w|); Q4_1/Q5_1
// weights (0..31) are unsigned already.
template <class WB>
inline __m256i lane_isums(__m256i wq, __m256i wabs, __m256i a) {
  __m256i u = wq;
  if constexpr (!has_min<WB>()) {
    u = wabs;
    a = _mm256_sign_epi8(a, wq);
  }
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
  return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, a);
#elif defined(__AVXVNNI__)
  return _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), u, a);
#else
  return _mm256_madd_epi16(_mm256_maddubs_epi16(u, a), _mm256_set1_epi16(1));
#endif
}

// hsum_float_8's tree: ((a0+a4)+(a2+a6)) + ((a1+a5)+(a3+a7)), the same as reduce8.
inline float hsum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

struct alignas(32) Quants32 {
  __m256i v;
};
// Each block's d broadcast, for the tiles' d_w*d_x: a product with a vector in memory (written
// as a product of two broadcasts, the compiler makes it a scalar product and a broadcast: one
// instruction more per row, token and block).
struct alignas(32) Scale8 {
  __m256 v;
};

// Tokens per mat-mat tile (rows: 2): the 2 x T accumulators and the operands in registers.
#if defined(__AVX512F__)
constexpr int kTileTokens = 6;  // 32 vector registers
#else
constexpr int kTileTokens = 4;  // 16 (at 6, four accumulators went to the stack)
#endif

// A prepared 32-element-type activation row: its quants and scales in the tiles' forms (and Q8_1's s).
struct Act32 {
  const uint8_t* raw;  // the activation row, ggml blocks
  size_t stride;       // bytes per block (34 for Q8_0, 36 for Q8_1)
  const float* s;
  const Quants32* q32;  // each block's quants, aligned (with VNNI and signed weight types: plus 128)
  const Scale8* d8;     // each block's d, broadcast
  float d(size_t b) const { return _mm256_cvtss_f32(d8[b].v); }
  const int8_t* qs(size_t b) const { return reinterpret_cast<const int8_t*>(raw + b * stride + (stride - 32)); }
};

#if (defined(__AVX512VNNI__) && defined(__AVX512VL__)) || defined(__AVXVNNI__)
#define LOOM_QD_VNNI 1
// src + the 8 lane sums of 4 products u*s (u unsigned, s signed), without saturation.
inline __m256i dpbusd(__m256i src, __m256i u, __m256i s) {
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
  return _mm256_dpbusd_epi32(src, u, s);
#else
  return _mm256_dpbusd_avx_epi32(src, u, s);
#endif
}
#else
#define LOOM_QD_VNNI 0
#endif

// One weight block as the tile kernel takes it: the quants (wq), the second operand the
// integer step needs (wa: |w| for the sign trick, or -128*sum(w) per lane with VNNI's offset
// form; wq again for Q4_1/Q5_1), d and m as floats.
struct alignas(32) Block32 {
  __m256i wq, wa;
  float dw, mw;
};

// With VNNI, signed weights w take the activations as a+128 (unsigned) and start each lane from
// -128*sum(w): the same integers as sum(a*w) in one instruction per product.
template <class WB>
constexpr bool kOffset32 = LOOM_QD_VNNI && !has_min<WB>();

template <class WB>
inline void unpack_block(const WB& blk, Block32& u) {
  u.wq = unpack(blk);
#if LOOM_QD_VNNI
  if constexpr (kOffset32<WB>)
    u.wa = _mm256_sub_epi32(_mm256_setzero_si256(), dpbusd(_mm256_setzero_si256(), _mm256_set1_epi8(-128), u.wq));
  else
#endif
    u.wa = has_min<WB>() ? u.wq : _mm256_sign_epi8(u.wq, u.wq);
  u.dw = h2f(blk.d);
  u.mw = wmin(blk);
}

// Weight sources for tile32: blocks unpacked as they are read (mat-vec, which reads each once),
// or taken from rows unpacked once beforehand (mat-mat, which reads each once per token tile).
// A mat-vec's rows each stream from their own pointer: reading neighbouring rows block by block
// in step is far slower than one row after another (the hardware prefetcher loses the streams;
// 2.7x on a Zen 4 for Q8_0), while rows from two distant places of the matrix stream well.
template <class WB, int R>
struct RowPtrs {
  const WB* w[R];
  void get(int r, size_t b, Block32& u) const { unpack_block(w[r][b], u); }
};
struct UnpackedRows {
  const Block32* u;
  size_t nb;
  void get(int r, size_t b, Block32& out) const { out = u[r * nb + b]; }
};

// An R x T tile of outputs (R weight rows, T tokens), each computed exactly as dot32_ggml: per
// block, the lane sums times d_w*d_x accumulated with one fma per lane; Q4_1/Q5_1 add m_w*s_x
// into a scalar with one fma; hsum8 at the end.
// sT (Q4_1/Q5_1 with T > 1): the tokens' s values block-major, sT[b * ldS + t] for the tile's
// tokens t = 0..T-1 (8 readable), so that m_w*s_x runs on T tokens at once.
template <class WB, int R, int T, class Src>
inline void tile32(const Src& src, size_t nb, const Act32* act, float* const* out, const float* sT = nullptr,
                   size_t ldS = 0) {
  constexpr bool kMin = has_min<WB>();
  [[maybe_unused]] constexpr bool kOffset = kOffset32<WB>;
  constexpr bool kVecMin = kMin && T > 1;  // the m*s terms of T tokens in one vector
  __m256 acc[R][T], vsumm[R];
  float summs[R][T];
  for (int r = 0; r < R; ++r) {
    vsumm[r] = _mm256_setzero_ps();
    for (int t = 0; t < T; ++t) {
      acc[r][t] = _mm256_setzero_ps();
      summs[r][t] = 0.0f;
    }
  }
  for (size_t b = 0; b < nb; ++b) {
    Block32 u[R];
    __m256 dw[R];
    for (int r = 0; r < R; ++r) {
      src.get(r, b, u[r]);
      dw[r] = _mm256_set1_ps(u[r].dw);
      if constexpr (kVecMin) vsumm[r] = _mm256_fmadd_ps(_mm256_set1_ps(u[r].mw), _mm256_loadu_ps(sT + b * ldS), vsumm[r]);
    }
    for (int t = 0; t < T; ++t) {
      const __m256i a = _mm256_load_si256(&act[t].q32[b].v);
      const __m256 dx = act[t].d8[b].v;
      for (int r = 0; r < R; ++r) {
        __m256i isum;
#if LOOM_QD_VNNI
        if constexpr (kOffset)
          isum = dpbusd(u[r].wa, a, u[r].wq);
        else
#endif
          isum = lane_isums<WB>(u[r].wq, u[r].wa, a);
        acc[r][t] = _mm256_fmadd_ps(_mm256_mul_ps(dw[r], dx), _mm256_cvtepi32_ps(isum), acc[r][t]);
        if constexpr (kMin && !kVecMin) summs[r][t] = fmadd(u[r].mw, act[t].s[b], summs[r][t]);
      }
    }
  }
  for (int r = 0; r < R; ++r) {
    if constexpr (kVecMin) {
      alignas(32) float v[8];
      _mm256_store_ps(v, vsumm[r]);
      for (int t = 0; t < T; ++t) summs[r][t] = v[t];
    }
    for (int t = 0; t < T; ++t) out[t][r] = hsum8(acc[r][t]) + summs[r][t];
  }
}

// ---- K types: a super-block unpacked to 256 int8 quants and its scales as vectors ----
// Everything is written with whole-vector stores, so reading it back at once does not stall.
struct alignas(32) KUnpacked {
  int8_t q[256];
  __m256i scales;  // int16 pairs: dword k = (scale of quants 32k..32k+15, of 32k+16..32k+31)
  __m256i mins;    // int16: min of sub-block j at 2j and 2j+1 (lines up with Q8_K's bsums)
  float d, dmin;
  __m256i sc[8];   // after spread_scales (mat-mat, which reuses them per token): quants 32k..32k+31's scales
};

// Scale vector for quants 32k..32k+31: dword k of u.scales broadcast, then its first int16 spread
// over the low 8 lanes (first 16 quants) and its second over the high 8.
inline __m256i scale_vector(const KUnpacked& u, int k) {
  const __m256i spread = _mm256_setr_epi8(0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1,  //
                                          2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3);
  return _mm256_shuffle_epi8(_mm256_permutevar8x32_epi32(u.scales, _mm256_set1_epi32(k)), spread);
}
inline void spread_scales(KUnpacked& u) {
  for (int k = 0; k < 8; ++k) u.sc[k] = scale_vector(u, k);
}

// Q4_K/Q5_K: the eight 6-bit scales and mins of the 12 packed bytes, with 32-bit integer ops.
inline void k_scales(const uint8_t* s12, KUnpacked& u) {
  uint32_t a, b, c;
  std::memcpy(&a, s12, 4);
  std::memcpy(&b, s12 + 4, 4);
  std::memcpy(&c, s12 + 8, 4);
  const uint32_t sc_lo = a & 0x3f3f3f3fu, mn_lo = b & 0x3f3f3f3fu;
  const uint32_t sc_hi = (c & 0x0f0f0f0fu) | ((a >> 2) & 0x30303030u);
  const uint32_t mn_hi = ((c >> 4) & 0x0f0f0f0fu) | ((b >> 2) & 0x30303030u);
  const __m128i sc = _mm_cvtepu8_epi16(_mm_cvtsi64_si128(static_cast<long long>(uint64_t(sc_hi) << 32 | sc_lo)));
  const __m128i mn = _mm_cvtepu8_epi16(_mm_cvtsi64_si128(static_cast<long long>(uint64_t(mn_hi) << 32 | mn_lo)));
  u.scales = _mm256_set_m128i(_mm_unpackhi_epi16(sc, sc), _mm_unpacklo_epi16(sc, sc));
  u.mins = _mm256_set_m128i(_mm_unpackhi_epi16(mn, mn), _mm_unpacklo_epi16(mn, mn));
}

inline void unpackK(const BlockQ4_K& b, KUnpacked& u) {
  const __m256i m4 = _mm256_set1_epi8(15);
  for (int c = 0; c < 4; ++c) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qs + 32 * c));
    _mm256_store_si256(reinterpret_cast<__m256i*>(u.q + 64 * c), _mm256_and_si256(v, m4));
    _mm256_store_si256(reinterpret_cast<__m256i*>(u.q + 64 * c + 32), _mm256_and_si256(_mm256_srli_epi16(v, 4), m4));
  }
  k_scales(b.scales, u);
  u.d = h2f(b.d);
  u.dmin = h2f(b.dmin);
}

inline void unpackK(const BlockQ5_K& b, KUnpacked& u) {
  const __m256i m4 = _mm256_set1_epi8(15), one = _mm256_set1_epi8(1);
  __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qh));
  for (int c = 0; c < 4; ++c) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qs + 32 * c));
    const __m256i hlo = _mm256_slli_epi16(_mm256_and_si256(h, one), 4);
    const __m256i hhi = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 1), one), 4);
    h = _mm256_srli_epi16(h, 2);
    _mm256_store_si256(reinterpret_cast<__m256i*>(u.q + 64 * c), _mm256_or_si256(_mm256_and_si256(v, m4), hlo));
    _mm256_store_si256(reinterpret_cast<__m256i*>(u.q + 64 * c + 32),
                       _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(v, 4), m4), hhi));
  }
  k_scales(b.scales, u);
  u.d = h2f(b.d);
  u.dmin = h2f(b.dmin);
}

inline void unpackK(const BlockQ6_K& b, KUnpacked& u) {
  const __m256i m4 = _mm256_set1_epi8(15), m2 = _mm256_set1_epi8(3);
  for (int h = 0; h < 2; ++h) {
    const __m256i l0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.ql + 64 * h));
    const __m256i l1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.ql + 64 * h + 32));
    const __m256i hb = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qh + 32 * h));
    auto high = [&](int shift) {
      return _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, shift), m2), 4);
    };
    const __m256i q0 = _mm256_or_si256(_mm256_and_si256(l0, m4), high(0));
    const __m256i q1 = _mm256_or_si256(_mm256_and_si256(l1, m4), high(2));
    const __m256i q2 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4), high(4));
    const __m256i q3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4), high(6));
    int8_t* out = u.q + 128 * h;  // unsigned 0..63: the offset of 32 is taken off through the bsums
    _mm256_store_si256(reinterpret_cast<__m256i*>(out), q0);
    _mm256_store_si256(reinterpret_cast<__m256i*>(out + 32), q1);
    _mm256_store_si256(reinterpret_cast<__m256i*>(out + 64), q2);
    _mm256_store_si256(reinterpret_cast<__m256i*>(out + 96), q3);
  }
  u.scales = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b.scales)));
  u.mins = _mm256_setzero_si256();
  u.d = h2f(b.d);
  u.dmin = 0.0f;
}

// ksums() of one unpacked super-block, in vectors: the vec_dot lanes (lane), and for Q4_K/Q5_K
// the pairs (pair, when asked) and mins. The quants are unsigned (0..15, 0..31, 0..63), so
// maddubs takes them as they are; no pair sum of two products can reach the int16 limit.
// kSpread: w.sc holds the scale vectors (spread_scales).
template <class WB, bool kSpread = false>
inline void ksums_simd(const KUnpacked& w, const BlockQ8_K& a, bool want_pairs, __m256i& lane, __m128i& pair, __m128i& mins) {
  __m256i v[8];
  for (int k = 0; k < 8; ++k) {
    const __m256i wq = _mm256_load_si256(reinterpret_cast<const __m256i*>(w.q + 32 * k));
    const __m256i aq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.qs + 32 * k));
    v[k] = _mm256_madd_epi16(_mm256_maddubs_epi16(wq, aq), kSpread ? w.sc[k] : scale_vector(w, k));
  }
  const __m256i w01 = _mm256_add_epi32(v[0], v[1]), w23 = _mm256_add_epi32(v[2], v[3]);
  const __m256i w45 = _mm256_add_epi32(v[4], v[5]), w67 = _mm256_add_epi32(v[6], v[7]);
  lane = _mm256_add_epi32(_mm256_add_epi32(w01, w23), _mm256_add_epi32(w45, w67));
  const __m256i bs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.bsums));
  if constexpr (std::is_same_v<WB, BlockQ6_K>) {
    lane = _mm256_sub_epi32(lane, _mm256_slli_epi32(_mm256_madd_epi16(bs, w.scales), 5));
  } else {
    const __m256i m8 = _mm256_madd_epi16(bs, w.mins);  // lane j: min_j * sum of sub-block j
    mins = _mm_hadd_epi32(_mm256_castsi256_si128(m8), _mm256_extracti128_si256(m8, 1));
    if (want_pairs) {  // the four pair sums: two horizontal adds and the halves folded
      const __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(w01, w23), _mm256_hadd_epi32(w45, w67));
      pair = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
    }
  }
}

// KFloat with the vec_dot lanes in vectors; the same operations as k_step/k_finish.
struct KFloatV {
  __m256 acc = _mm256_setzero_ps();
  __m128 accm = _mm_setzero_ps();
  float summs = 0, racc = 0, raccm = 0;
};

template <class WB, bool kSpread = false>
inline void k_step_simd(KOrder order, float wd, float wdmin, float ad, const KUnpacked& w, const BlockQ8_K& a, KFloatV& f) {
  __m256i lane;
  __m128i pair = _mm_setzero_si128(), mins = _mm_setzero_si128();
  ksums_simd<WB, kSpread>(w, a, order == KOrder::RepackGemm, lane, pair, mins);
  if (order == KOrder::VecDot) {
    f.acc = vfmadd(_mm256_set1_ps(ad * wd), _mm256_cvtepi32_ps(lane), f.acc);
    if constexpr (std::is_same_v<WB, BlockQ4_K>) {
#if defined(__FMA__)
      f.accm = _mm_fmadd_ps(_mm_set1_ps(-ad * wdmin), _mm_cvtepi32_ps(mins), f.accm);
#else
      f.accm = _mm_add_ps(_mm_mul_ps(_mm_set1_ps(-ad * wdmin), _mm_cvtepi32_ps(mins)), f.accm);
#endif
    } else if constexpr (std::is_same_v<WB, BlockQ5_K>) {
      alignas(16) int m[4];
      _mm_store_si128(reinterpret_cast<__m128i*>(m), mins);
      f.summs = fmadd(-ad * wdmin, static_cast<float>((m[0] + m[1]) + (m[2] + m[3])), f.summs);
    }
    return;
  }
  alignas(16) int m[4];
  _mm_store_si128(reinterpret_cast<__m128i*>(m), mins);
  if (order == KOrder::Tiled) {
    float res = wd * static_cast<float>(hsum_i32(lane));
    if constexpr (!std::is_same_v<WB, BlockQ6_K>) res = fmadd(-wdmin, static_cast<float>(m[0] + m[1] + m[2] + m[3]), res);
    f.racc = fmadd(res, ad, f.racc);
    return;
  }
  const float d = wd * ad, dmin = wdmin * ad;
  if (order == KOrder::RepackGemv) {
    f.racc = fmadd(static_cast<float>(hsum_i32(lane)), d, f.racc);
    f.raccm = fmadd(static_cast<float>(m[0] + m[1] + m[2] + m[3]), dmin, f.raccm);
  } else {
    alignas(16) int p[4];
    _mm_store_si128(reinterpret_cast<__m128i*>(p), pair);
    for (int s = 0; s < 4; ++s) {
      f.racc = fmadd(static_cast<float>(p[s]), d, f.racc);
      f.raccm = fmadd(static_cast<float>(m[s]), dmin, f.raccm);
    }
  }
}

template <class WB>
inline float k_finish_simd(KOrder order, const KFloatV& f) {
  if (order == KOrder::Tiled) return f.racc;
  if (order != KOrder::VecDot) return f.racc - f.raccm;
  const float lanes = hsum8(f.acc);
  if constexpr (std::is_same_v<WB, BlockQ4_K>) {
    __m128 m = _mm_add_ps(f.accm, _mm_movehl_ps(f.accm, f.accm));
    m = _mm_add_ss(m, _mm_movehdup_ps(m));
    return lanes + _mm_cvtss_f32(m);
  }
  if constexpr (std::is_same_v<WB, BlockQ5_K>) return lanes + f.summs;
  return lanes;
}

// Raw weight row · Q8_K activations (matvec, vec_dot).
template <class WB>
float dotK_raw(const WB* w, size_t nb, const BlockQ8_K* a, KOrder order) {
  KFloatV f;
  KUnpacked u;
  for (size_t b = 0; b < nb; ++b) {
    unpackK(w[b], u);
    k_step_simd<WB>(order, u.d, u.dmin, a[b].d, u, a[b], f);
  }
  return k_finish_simd<WB>(order, f);
}

// Unpacked weight row · Q8_K activations (matmul).
template <class WB>
float dotK_unpacked(const KUnpacked* w, size_t nb, const BlockQ8_K* a, KOrder order) {
  KFloatV f;
  for (size_t b = 0; b < nb; ++b) k_step_simd<WB, true>(order, w[b].d, w[b].dmin, a[b].d, w[b], a[b], f);
  return k_finish_simd<WB>(order, f);
}

// ---- float types ----
#if defined(__AVX512F__)
// GCC 12's AVX-512 headers trip -Wmaybe-uninitialized on their own "undefined" vectors.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
struct VF32 {
  static __m512 at(const void* p, size_t i) { return _mm512_loadu_ps(static_cast<const float*>(p) + i); }
};
struct VF16 {
  static __m512 at(const void* p, size_t i) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const f16_bits*>(p) + i)));
  }
};
struct VBF16 {
  static __m512 at(const void* p, size_t i) {
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const bf16_bits*>(p) + i));
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
};
template <class V, class L>
float float_dot_simd(size_t n, const void* w, const void* a) {
  __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    a0 = _mm512_fmadd_ps(V::at(w, i), V::at(a, i), a0);
    a1 = _mm512_fmadd_ps(V::at(w, i + 16), V::at(a, i + 16), a1);
  }
  alignas(64) float acc[32];
  _mm512_store_ps(acc, a0);
  _mm512_store_ps(acc + 16, a1);
  return float_dot_tail<L>(i, n, w, a, acc);
}
#pragma GCC diagnostic pop
#else
struct VF32 {
  static __m256 at(const void* p, size_t i) { return _mm256_loadu_ps(static_cast<const float*>(p) + i); }
};
struct VF16 {
  static __m256 at(const void* p, size_t i) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const f16_bits*>(p) + i)));
  }
};
struct VBF16 {
  static __m256 at(const void* p, size_t i) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const bf16_bits*>(p) + i));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
};
template <class V, class L>
float float_dot_simd(size_t n, const void* w, const void* a) {
  __m256 acc4[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
  size_t i = 0;
  for (; i + 32 <= n; i += 32)
    for (int k = 0; k < 4; ++k) acc4[k] = vfmadd(V::at(w, i + 8 * k), V::at(a, i + 8 * k), acc4[k]);
  alignas(32) float acc[32];
  for (int k = 0; k < 4; ++k) _mm256_store_ps(acc + 8 * k, acc4[k]);
  return float_dot_tail<L>(i, n, w, a, acc);
}
#endif

#endif  // LOOM_QD_AVX2

// ============================== 5. dispatch, threading ==============================

// Activations prepared once for a row (or rows) of x, in the form the row kernels read.
struct PreparedActs {
  GgmlType wtype;
  size_t cols = 0;
  size_t row_stride = 0;  // bytes between prepared rows in `data`
  std::vector<uint8_t> raw;  // activation_type rows (ggml layout)
#if LOOM_QD_AVX2
  std::vector<float> s;  // Q8_1: each block's s as a float, nb per row
  // each block's quants in a vector of their own, nb per row: aligned loads that never straddle
  // two cache lines (the 34- and 36-byte blocks of the raw rows do); with VNNI, signed weight
  // types take them plus 128
  std::vector<Quants32> q32;
  std::vector<Scale8> d8;
  std::vector<float> sT;    // Q8_1, several rows: s block-major, sT[b * n_rows + t] (+8 padding)
  size_t nb = 0, n_rows = 0;
  Act32 act32(size_t t) const {
    const size_t stride = activation_type(wtype) == GgmlType::Q8_1 ? sizeof(BlockQ8_1) : sizeof(BlockQ8_0);
    return {raw.data() + t * row_stride, stride, s.empty() ? nullptr : s.data() + t * nb,
            q32.data() + t * nb, d8.data() + t * nb};
  }
#endif
  const void* row(size_t t) const { return raw.data() + t * row_stride; }
};

void parallel_rows(size_t rows, const ThreadHint& th, const std::function<void(size_t, size_t)>& body);

// orders (may be null): each row's KOrder; rows for llama.cpp's repacked gemm get their Q8_K
// blocks as its quantize_mat_q8_K makes them (see quantize_row_q8_K). th (may be null): threads
// to quantize the rows of a mat-mat with.
void prepare(GgmlType wtype, size_t cols, const float* X, const void* act, size_t n_rows, PreparedActs& p,
             const KOrder* orders = nullptr, const ThreadHint* th = nullptr) {
  p.wtype = wtype;
  p.cols = cols;
  p.row_stride = activation_row_bytes(wtype, cols);
  p.raw.resize(p.row_stride * n_rows);
  if (act) std::memcpy(p.raw.data(), act, p.row_stride * n_rows);
#if LOOM_QD_AVX2
  const bool k32 = !is_float_type(wtype) && !is_k_type(wtype);
  const bool q81 = activation_type(wtype) == GgmlType::Q8_1;
  const __m256i offset = _mm256_set1_epi8(LOOM_QD_VNNI && !q81 ? -128 : 0);  // the signed weight types' VNNI form
  if (k32) {
    p.nb = cols / kQK;
    p.s.resize(q81 ? p.nb * n_rows : 0);
    p.q32.resize(p.nb * n_rows);
    p.d8.resize(p.nb * n_rows);
    p.n_rows = n_rows;
    p.sT.assign(q81 && n_rows > 1 ? p.nb * n_rows + 8 : 0, 0.0f);
  }
#endif
  auto rows = [&](size_t t0, size_t t1) {
    for (size_t t = t0; t < t1; ++t) {
      if (X) {
        if (orders && orders[t] == KOrder::RepackGemm)
          quantize_row_q8_K(X + t * cols, p.raw.data() + t * p.row_stride, cols, Q8KMax::PositiveFirst);
        else
          quantize_activations(wtype, X + t * cols, p.raw.data() + t * p.row_stride, cols);
      }
#if LOOM_QD_AVX2
      if (!k32) continue;
      for (size_t b = 0; b < p.nb; ++b) {
        if (q81) {
          const BlockQ8_1& B = static_cast<const BlockQ8_1*>(p.row(t))[b];
          p.d8[t * p.nb + b].v = _mm256_set1_ps(h2f(B.d));
          p.s[t * p.nb + b] = h2f(B.s);
          if (!p.sT.empty()) p.sT[b * n_rows + t] = p.s[t * p.nb + b];
          p.q32[t * p.nb + b].v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(B.qs));
        } else {
          const BlockQ8_0& B = static_cast<const BlockQ8_0*>(p.row(t))[b];
          p.d8[t * p.nb + b].v = _mm256_set1_ps(h2f(B.d));
          p.q32[t * p.nb + b].v = _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(B.qs)), offset);
        }
      }
#endif
    }
  };
  if (th && n_rows >= 16)
    parallel_rows(n_rows, *th, rows);
  else
    rows(0, n_rows);
}

#if LOOM_QD_AVX2
template <class WB>
float dot32_row(const void* w, size_t nb, const PreparedActs& p, size_t t) {
  const Act32 a = p.act32(t);
  float y;
  float* out[1] = {&y};
  tile32<WB, 1, 1>(RowPtrs<WB, 1>{{static_cast<const WB*>(w)}}, nb, &a, out);
  return y;
}

// Rows [r0, r1) of W (32-element type) times tokens [0, n_tokens): R rows at a time, T tokens at a
// time, the row tile's blocks unpacked once per token tile. Y[t * ldy + r].
template <class WB>
void matmul32(const void* W, size_t cols, const PreparedActs& p, size_t n_tokens, size_t ldy, float* Y, size_t r0,
              size_t r1) {
  const size_t nb = cols / kQK;
  const WB* w = static_cast<const WB*>(W);
  auto acts = [&](size_t t, size_t count, Act32* a, float** out, size_t r) {
    for (size_t k = 0; k < count; ++k) {
      a[k] = p.act32(t + k);
      out[k] = Y + (t + k) * ldy + r;
    }
  };
  size_t r = r0;
  if (n_tokens == 1) {  // mat-vec: row i of each half of the range at once (two streams)
    Act32 a[1] = {p.act32(0)};
    float* y = Y + r;
    const size_t half = (r1 - r0) / 2;
    for (size_t i = 0; i < half; ++i) {
      float two[2];
      float* out[1] = {two};
      tile32<WB, 2, 1>(RowPtrs<WB, 2>{{w + (r0 + i) * nb, w + (r0 + half + i) * nb}}, nb, a, out);
      y[i] = two[0];
      y[half + i] = two[1];
    }
    if ((r1 - r0) % 2) {
      float* out[1] = {Y + r1 - 1};
      tile32<WB, 1, 1>(RowPtrs<WB, 1>{{w + (r1 - 1) * nb}}, nb, a, out);
    }
    return;
  }
  // mat-mat: R rows unpacked once, then T tokens at a time against them
  constexpr int R = 2, T = kTileTokens;
  thread_local std::vector<Block32> buf;
  buf.resize(R * nb);
  auto rows_of = [&]<int RR>(size_t r) {
    for (int i = 0; i < RR; ++i)
      for (size_t b = 0; b < nb; ++b) unpack_block(w[(r + i) * nb + b], buf[i * nb + b]);
    const UnpackedRows src{buf.data(), nb};
    Act32 a[T];
    float* out[T];
    size_t t = 0;
    for (; t + T <= n_tokens; t += T) {
      acts(t, T, a, out, r);
      tile32<WB, RR, T>(src, nb, a, out, p.sT.empty() ? nullptr : p.sT.data() + t, p.n_rows);
    }
    const size_t left = n_tokens - t;  // the last tokens as one narrower tile
    if (left == 0) return;
    acts(t, left, a, out, r);
    const float* sT = p.sT.empty() ? nullptr : p.sT.data() + t;
    [&]<int... K>(std::integer_sequence<int, K...>) {
      ((left == K + 1 ? tile32<WB, RR, K + 1>(src, nb, a, out, sT, p.n_rows) : void()), ...);
    }(std::make_integer_sequence<int, T - 1>{});
  };
  for (; r + R <= r1; r += R) rows_of.template operator()<R>(r);
  for (; r < r1; ++r) rows_of.template operator()<1>(r);
}
#endif

// Dot of weight row `w` (raw) with prepared activation row t (`order`: Q4_K only).
float row_dot(GgmlType t, size_t n, const void* w, const PreparedActs& p, size_t row, KOrder order = KOrder::VecDot) {
#if LOOM_QD_AVX2
  const size_t nb = n / block_elems(t);
  const void* a = p.row(row);
  switch (t) {
    case GgmlType::F32: return float_dot_simd<VF32, LoadF32>(n, w, a);
    case GgmlType::F16: return float_dot_simd<VF16, LoadF16>(n, w, a);
    case GgmlType::BF16: return float_dot_simd<VBF16, LoadBF16>(n, w, a);
    case GgmlType::Q4_0:
      return order == KOrder::RepackGemv ? dot_q4_0_repacked(nb, w, a) : dot32_row<BlockQ4_0>(w, nb, p, row);
    case GgmlType::Q4_1: return dot32_row<BlockQ4_1>(w, nb, p, row);
    case GgmlType::Q5_0: return dot32_row<BlockQ5_0>(w, nb, p, row);
    case GgmlType::Q5_1: return dot32_row<BlockQ5_1>(w, nb, p, row);
    case GgmlType::Q8_0: return dot32_row<BlockQ8_0>(w, nb, p, row);
    case GgmlType::Q4_K: return dotK_raw(static_cast<const BlockQ4_K*>(w), nb, static_cast<const BlockQ8_K*>(a), order);
    case GgmlType::Q5_K: return dotK_raw(static_cast<const BlockQ5_K*>(w), nb, static_cast<const BlockQ8_K*>(a), k_order(t, order));
    case GgmlType::Q6_K: return dotK_raw(static_cast<const BlockQ6_K*>(w), nb, static_cast<const BlockQ8_K*>(a), k_order(t, order));
    default: bad("unsupported weight type");
  }
#else
  return dot_scalar_impl(t, n, w, p.row(row), order);
#endif
}

size_t row_bytes(GgmlType t, size_t cols) {
  const TypeSize ts = type_size(t);
  return cols / ts.block_elems * ts.block_bytes;
}

// Split [0, rows) into contiguous chunks, one per task, and run body(begin, end) on each.
void parallel_rows(size_t rows, const ThreadHint& th, const std::function<void(size_t, size_t)>& body) {
  size_t nt = static_cast<size_t>(std::max(1, th.threads));
  nt = std::max<size_t>(1, std::min(nt, rows));
  auto task = [&](size_t i) { body(rows * i / nt, rows * (i + 1) / nt); };
  if (nt == 1) {
    body(0, rows);
  } else if (th.run) {
    // a pool hands tasks out as threads come free: a few chunks per thread keep one that is late
    // or descheduled from holding the others up
    const size_t nc = std::max(nt, std::min(4 * nt, rows / 64));
    th.run(nc, [&](size_t i) { body(rows * i / nc, rows * (i + 1) / nc); });
  } else {
    std::vector<std::thread> pool;
    pool.reserve(nt - 1);
    for (size_t i = 1; i < nt; ++i) pool.emplace_back(task, i);
    task(0);
    for (auto& t : pool) t.join();
  }
}

// The 32-element types' tiled kernel for rows [r0, r1); false for other types.
bool matmul32_rows(GgmlType wtype, const void* W, size_t cols, const PreparedActs& p, size_t n_tokens, size_t ldy,
                   float* Y, size_t r0, size_t r1) {
#if LOOM_QD_AVX2
  switch (wtype) {
    case GgmlType::Q4_0: matmul32<BlockQ4_0>(W, cols, p, n_tokens, ldy, Y, r0, r1); return true;
    case GgmlType::Q4_1: matmul32<BlockQ4_1>(W, cols, p, n_tokens, ldy, Y, r0, r1); return true;
    case GgmlType::Q5_0: matmul32<BlockQ5_0>(W, cols, p, n_tokens, ldy, Y, r0, r1); return true;
    case GgmlType::Q5_1: matmul32<BlockQ5_1>(W, cols, p, n_tokens, ldy, Y, r0, r1); return true;
    case GgmlType::Q8_0: matmul32<BlockQ8_0>(W, cols, p, n_tokens, ldy, Y, r0, r1); return true;
    default: return false;
  }
#else
  (void)wtype, (void)W, (void)cols, (void)p, (void)n_tokens, (void)ldy, (void)Y, (void)r0, (void)r1;
  return false;
#endif
}

#if LOOM_QD_AVX2
void matmul_q4_0_repacked(const void* W, size_t cols, const PreparedActs& p, size_t n_tokens, size_t ldy, float* Y,
                          size_t r0, size_t r1);
void matvec_q4_0_repacked(const void* W, size_t cols, const PreparedActs& p, float* y, size_t r0, size_t r1);
#endif

// Whether llama.cpp computes this matrix from its repacked Q4_0 copy (x86 with AVX2: Q4_0 matrices
// of a multiple of 8 rows), whose order matmul_q4_0_repacked follows.
// (The scalar build takes the same order through row_dot and KOrder::RepackGemv.)
bool repacked_q4_0(GgmlType wtype, size_t rows) {
#if LOOM_QD_AVX2
  return wtype == GgmlType::Q4_0 && repacked(wtype, rows);
#else
  (void)wtype, (void)rows;
  return false;
#endif
}

// rows x n_tokens of repacked Q4_0, in tiles of 8 rows shared out among the threads.
void matmul_q4_0_tiles(const void* W, size_t rows, size_t cols, const PreparedActs& p, size_t n_tokens, float* Y,
                       const ThreadHint& th) {
#if LOOM_QD_AVX2
  if (n_tokens == 1)
    parallel_rows(rows, th, [&](size_t r0, size_t r1) { matvec_q4_0_repacked(W, cols, p, Y, r0, r1); });
  else
    parallel_rows(rows / 8, th, [&](size_t t0, size_t t1) { matmul_q4_0_repacked(W, cols, p, n_tokens, rows, Y, 8 * t0, 8 * t1); });
#else
  (void)W, (void)rows, (void)cols, (void)p, (void)n_tokens, (void)Y, (void)th;
#endif
}

void matvec_prepared(GgmlType wtype, const void* W, size_t rows, size_t cols, const PreparedActs& p,
                     float* y, const ThreadHint& th) {
  if (repacked_q4_0(wtype, rows)) return matmul_q4_0_tiles(W, rows, cols, p, 1, y, th);
  const size_t rb = row_bytes(wtype, cols);
  const uint8_t* w = static_cast<const uint8_t*>(W);
  const KOrder order = repacked(wtype, rows) ? KOrder::RepackGemv : KOrder::VecDot;
  parallel_rows(rows, th, [&](size_t r0, size_t r1) {
    if (matmul32_rows(wtype, W, cols, p, 1, rows, y, r0, r1)) return;
    for (size_t r = r0; r < r1; ++r) y[r] = row_dot(wtype, cols, w + r * rb, p, 0, order);
  });
}

}  // namespace

// ============================== public: conversions ==============================

float f16_to_f32(f16_bits h) {
  const uint32_t sign = uint32_t(h & 0x8000) << 16;
  const uint32_t e = (h >> 10) & 31, m = h & 0x3ff;
  if (e == 0) {
    const float v = static_cast<float>(m) * 0x1p-24f;  // zero or subnormal: exact
    return sign ? -v : v;
  }
  if (e == 31) return bits_f32(sign | 0x7f800000u | (m << 13));
  return bits_f32(sign | ((e + 112) << 23) | (m << 13));
}

f16_bits f32_to_f16(float f) {
  const uint32_t x = f32_bits(f);
  const uint32_t sign = (x >> 16) & 0x8000;
  const uint32_t ax = x & 0x7fffffff;
  if (ax > 0x7f800000u) return static_cast<f16_bits>(sign | 0x7e00 | ((ax >> 13) & 0x3ff));  // NaN, quiet
  if (ax >= 0x477ff000u) return static_cast<f16_bits>(sign | 0x7c00);  // rounds to infinity
  if (ax < 0x38800000u) {  // below the smallest normal half: a multiple of 2^-24
    const float scaled = bits_f32(ax) * 0x1p24f;  // exact
    return static_cast<f16_bits>(sign | static_cast<uint32_t>(std::nearbyint(scaled)));
  }
  uint32_t h = (((ax >> 23) - 112) << 10) | ((ax >> 13) & 0x3ff);
  const uint32_t rest = ax & 0x1fff;
  if (rest > 0x1000 || (rest == 0x1000 && (h & 1))) ++h;
  return static_cast<f16_bits>(sign | h);
}

float bf16_to_f32(bf16_bits h) { return bits_f32(uint32_t(h) << 16); }

bf16_bits f32_to_bf16(float f) {
  const uint32_t u = f32_bits(f);
  if ((u & 0x7fffffff) > 0x7f800000u) return static_cast<bf16_bits>((u >> 16) | 64);  // NaN, quiet
  return static_cast<bf16_bits>((u + (0x7fff + ((u >> 16) & 1))) >> 16);
}

// ============================== public: activation quantization ==============================

void quantize_row_q8_0(const float* x, void* dst, size_t n) {
  if (n % kQK) bad("quantize_row_q8_0: n not a multiple of 32");
  BlockQ8_0* y = static_cast<BlockQ8_0*>(dst);
  for (size_t b = 0; b < n / kQK; ++b) {
    float d;
    quantize_block32(x + b * kQK, d, y[b].qs);
    y[b].d = f32_to_f16(d);
  }
}

void quantize_row_q8_1(const float* x, void* dst, size_t n) {
  if (n % kQK) bad("quantize_row_q8_1: n not a multiple of 32");
  BlockQ8_1* y = static_cast<BlockQ8_1*>(dst);
  for (size_t b = 0; b < n / kQK; ++b) {
    float d;
    const int sum = quantize_block32(x + b * kQK, d, y[b].qs);
    y[b].d = f32_to_f16(d);
    y[b].s = f32_to_f16(d * static_cast<float>(sum));
  }
}

void quantize_row_q8_K(const float* x, void* dst, size_t n, Q8KMax rule) {
  if (n % kQKK) bad("quantize_row_q8_K: n not a multiple of 256");
  BlockQ8_K* y = static_cast<BlockQ8_K*>(dst);
  for (size_t b = 0; b < n / kQKK; ++b, x += kQKK) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < kQKK; ++j) {
      const float ax = std::fabs(x[j]);
      if (ax > amax) {
        amax = ax;
        max = x[j];
      }
    }
    if (rule == Q8KMax::PositiveFirst && max < 0.0f)  // +amax present too: it wins
      for (int j = 0; j < kQKK; ++j)
        if (x[j] == amax) max = amax;
    BlockQ8_K& B = y[b];
    if (amax == 0.0f) {
      std::memset(&B, 0, sizeof B);
      continue;
    }
    const float iscale = -127.0f / max;
    for (int j = 0; j < kQKK; ++j) B.qs[j] = static_cast<int8_t>(std::min(127, round_even(iscale * x[j])));
    for (int j = 0; j < kQKK / 16; ++j) {
      int s = 0;
      for (int i = 0; i < 16; ++i) s += B.qs[16 * j + i];
      B.bsums[j] = static_cast<int16_t>(s);
    }
    B.d = 1.0f / iscale;
  }
}

bool repacked(GgmlType wtype, size_t rows) {
  return (wtype == GgmlType::Q4_K || wtype == GgmlType::Q4_0) && rows % 8 == 0;
}

bool supports_weight_type(GgmlType t) {
  switch (t) {
    case GgmlType::F32: case GgmlType::F16: case GgmlType::BF16:
    case GgmlType::Q4_0: case GgmlType::Q4_1: case GgmlType::Q5_0: case GgmlType::Q5_1: case GgmlType::Q8_0:
    case GgmlType::Q4_K: case GgmlType::Q5_K: case GgmlType::Q6_K:
      return true;
    default:
      return false;
  }
}

GgmlType activation_type(GgmlType t) {
  switch (t) {
    case GgmlType::F32: case GgmlType::F16: case GgmlType::BF16: return t;
    case GgmlType::Q4_0: case GgmlType::Q5_0: case GgmlType::Q8_0: return GgmlType::Q8_0;
    case GgmlType::Q4_1: case GgmlType::Q5_1: return GgmlType::Q8_1;
    case GgmlType::Q4_K: case GgmlType::Q5_K: case GgmlType::Q6_K: return GgmlType::Q8_K;
    default: check_shape(t, 0, "activation_type"); return t;  // throws
  }
}

size_t activation_row_bytes(GgmlType wtype, size_t n) {
  check_shape(wtype, n, "activation_row_bytes");
  const TypeSize ts = type_size(activation_type(wtype));
  return n / ts.block_elems * ts.block_bytes;
}

void quantize_activations(GgmlType wtype, const float* x, void* dst, size_t n) {
  check_shape(wtype, n, "quantize_activations");
  switch (activation_type(wtype)) {
    case GgmlType::F32: std::memcpy(dst, x, n * sizeof(float)); return;
    case GgmlType::F16: {
      f16_bits* h = static_cast<f16_bits*>(dst);
      for (size_t i = 0; i < n; ++i) h[i] = f32_to_f16(x[i]);
      return;
    }
    case GgmlType::BF16: {
      bf16_bits* h = static_cast<bf16_bits*>(dst);
      for (size_t i = 0; i < n; ++i) h[i] = f32_to_bf16(x[i]);
      return;
    }
    case GgmlType::Q8_0: quantize_row_q8_0(x, dst, n); return;
    case GgmlType::Q8_1: quantize_row_q8_1(x, dst, n); return;
    case GgmlType::Q8_K: quantize_row_q8_K(x, dst, n); return;
    default: bad("quantize_activations: no activation type");
  }
}

// ============================== public: dot, matvec, matmul ==============================

float vec_dot_scalar(GgmlType wtype, size_t n, const void* w_row, const void* act, KOrder order) {
  check_shape(wtype, n, "vec_dot_scalar");
  return dot_scalar_impl(wtype, n, w_row, act, order);
}

float vec_dot(GgmlType wtype, size_t n, const void* w_row, const void* act, KOrder order) {
  check_shape(wtype, n, "vec_dot");
#if LOOM_QD_AVX2
  if (!is_float_type(wtype) && !is_k_type(wtype)) {
    thread_local PreparedActs p;
    prepare(wtype, n, nullptr, act, 1, p);
    return row_dot(wtype, n, w_row, p, 0, order);
  }
  switch (wtype) {  // float and K types read the ggml layout directly: no copy
    case GgmlType::F32: return float_dot_simd<VF32, LoadF32>(n, w_row, act);
    case GgmlType::F16: return float_dot_simd<VF16, LoadF16>(n, w_row, act);
    case GgmlType::BF16: return float_dot_simd<VBF16, LoadBF16>(n, w_row, act);
    case GgmlType::Q4_K: return dotK_raw(static_cast<const BlockQ4_K*>(w_row), n / kQKK, static_cast<const BlockQ8_K*>(act), order);
    case GgmlType::Q5_K: return dotK_raw(static_cast<const BlockQ5_K*>(w_row), n / kQKK, static_cast<const BlockQ8_K*>(act), k_order(wtype, order));
    case GgmlType::Q6_K: return dotK_raw(static_cast<const BlockQ6_K*>(w_row), n / kQKK, static_cast<const BlockQ8_K*>(act), k_order(wtype, order));
    default: break;
  }
#endif
  return dot_scalar_impl(wtype, n, w_row, act, order);
}

namespace {

// ---- F32 weights in llama.cpp's orders (LoRA adapters' A and B, F32 model files) ----
// ggml_vec_dot_f32 (one token, or a shape tinyBLAS declines): 4 accumulators of 8 lanes over
// 32-element steps, combined (a0+a2)+(a1+a3) and the lanes ((l0+l4)+(l1+l5))+((l2+l6)+(l3+l7)),
// then the elements past the last step added one by one: as GCC compiles ggml's leftover loop
// (-O3, FMA), the products of whole groups of 4 rounded and added, the last n % 4 fused.
float f32_dot_vecdot(const float* w, const float* x, size_t n) {
  const size_t np = n & ~size_t{31};
  float a[4][8] = {};
  for (size_t i = 0; i < np; i += 32)
    for (size_t c = 0; c < 4; ++c)
      for (size_t l = 0; l < 8; ++l) a[c][l] = fmadd(w[i + 8 * c + l], x[i + 8 * c + l], a[c][l]);
  float r[8];
  for (size_t l = 0; l < 8; ++l) r[l] = (a[0][l] + a[2][l]) + (a[1][l] + a[3][l]);
  float sum = ((r[0] + r[4]) + (r[1] + r[5])) + ((r[2] + r[6]) + (r[3] + r[7]));
  const size_t nq = np + ((n - np) & ~size_t{3});
  for (size_t i = np; i < nq; ++i) {
    const float p = w[i] * x[i];
    sum += p;
  }
  for (size_t i = nq; i < n; ++i) sum = fmadd(w[i], x[i], sum);
  return sum;
}

// tinyBLAS (a batch of 2+ tokens, cols % 8 == 0, rows % 4 == 0): one 8-lane accumulator over the
// whole row, fused, the lanes summed ((l0+l4)+(l2+l6))+((l1+l5)+(l3+l7)).
float f32_dot_tiny(const float* w, const float* x, size_t n) {
  float a[8] = {};
  for (size_t i = 0; i < n; i += 8)
    for (size_t l = 0; l < 8; ++l) a[l] = fmadd(w[i + l], x[i + l], a[l]);
  return reduce8(a);
}

void matmul_f32_llama(const float* W, size_t rows, size_t cols, const float* X, size_t n_tokens, float* Y,
                      const ThreadHint& threads, const TokenBatches* batches) {
  parallel_rows(rows, threads, [&](size_t r0, size_t r1) {
    for (size_t t = 0; t < n_tokens; ++t) {
      const uint32_t len = batches ? batches->len[t] : static_cast<uint32_t>(n_tokens);
      const bool tiny = len >= 2 && cols % 8 == 0 && rows % 4 == 0;
      const float* x = X + t * cols;
      for (size_t r = r0; r < r1; ++r)
        Y[t * rows + r] = tiny ? f32_dot_tiny(W + r * cols, x, cols) : f32_dot_vecdot(W + r * cols, x, cols);
    }
  });
}

}  // namespace

void matvec(GgmlType wtype, const void* W, size_t rows, size_t cols, const float* x, float* y,
            const ThreadHint& threads) {
  check_shape(wtype, cols, "matvec");
  if (wtype == GgmlType::F32) return matmul_f32_llama(static_cast<const float*>(W), rows, cols, x, 1, y, threads, nullptr);
  thread_local PreparedActs kept;
  PreparedActs& p = kept;
  prepare(wtype, cols, x, nullptr, 1, p);
  matvec_prepared(wtype, W, rows, cols, p, y, threads);
}

void matvec_act(GgmlType wtype, const void* W, size_t rows, size_t cols, const void* act, float* y,
                const ThreadHint& threads) {
  check_shape(wtype, cols, "matvec_act");
  thread_local PreparedActs kept;
  PreparedActs& p = kept;
  prepare(wtype, cols, nullptr, act, 1, p);
  matvec_prepared(wtype, W, rows, cols, p, y, threads);
}

namespace {

// Rows are taken kRowTile at a time: each is unpacked once, then dotted with every token, so the
// unpacked tile stays in L1/L2 while the activations stream past it.
constexpr size_t kRowTile = 8;

#if LOOM_QD_AVX2
// Lane i of the result: the sum of v[i]'s 8 lanes.
inline __m256i hsum8x8_i32(const __m256i* v) {
  const __m256i b0 = _mm256_hadd_epi32(_mm256_hadd_epi32(v[0], v[1]), _mm256_hadd_epi32(v[2], v[3]));
  const __m256i b1 = _mm256_hadd_epi32(_mm256_hadd_epi32(v[4], v[5]), _mm256_hadd_epi32(v[6], v[7]));
  return _mm256_add_epi32(_mm256_permute2x128_si256(b0, b1, 0x20), _mm256_permute2x128_si256(b0, b1, 0x31));
}

// 8 rows of 4 ints -> 4 vectors, c[s] lane i = r[i][s].
inline void transpose8x4_i32(const __m128i* r, __m256i* c) {
  const __m256i r04 = _mm256_set_m128i(r[4], r[0]), r15 = _mm256_set_m128i(r[5], r[1]);
  const __m256i r26 = _mm256_set_m128i(r[6], r[2]), r37 = _mm256_set_m128i(r[7], r[3]);
  const __m256i t0 = _mm256_unpacklo_epi32(r04, r15), t1 = _mm256_unpacklo_epi32(r26, r37);
  const __m256i t2 = _mm256_unpackhi_epi32(r04, r15), t3 = _mm256_unpackhi_epi32(r26, r37);
  c[0] = _mm256_unpacklo_epi64(t0, t1);
  c[1] = _mm256_unpackhi_epi64(t0, t1);
  c[2] = _mm256_unpacklo_epi64(t2, t3);
  c[3] = _mm256_unpackhi_epi64(t2, t3);
}

// 8 consecutive unpacked rows (tile + i*nb) against one token, in the repacked gemm's or the
// tiled order: the float steps of k_step_simd, lane i doing row i's, so 8 rows share each one.
template <class WB>
void rows8_k(const KUnpacked* tile, const float* d8, const float* dmin8, size_t nb, const BlockQ8_K* a, KOrder order,
             float* out) {
  constexpr bool kMin = !std::is_same_v<WB, BlockQ6_K>;
  const bool gemm = order == KOrder::RepackGemm;
  __m256 racc = _mm256_setzero_ps(), raccm = _mm256_setzero_ps();
  for (size_t b = 0; b < nb; ++b) {
    __m256i lane[8];
    __m128i pair[8], mins[8];
    for (int i = 0; i < 8; ++i) {
      pair[i] = mins[i] = _mm_setzero_si128();
      ksums_simd<WB, true>(tile[i * nb + b], a[b], gemm, lane[i], pair[i], mins[i]);
    }
    const __m256 wd = _mm256_loadu_ps(d8 + 8 * b), wdmin = _mm256_loadu_ps(dmin8 + 8 * b);
    const __m256 ad = _mm256_set1_ps(a[b].d);
    __m256i m[4];
    if constexpr (kMin) transpose8x4_i32(mins, m);
    if (gemm) {
      __m256i pc[4];
      transpose8x4_i32(pair, pc);
      const __m256 d = _mm256_mul_ps(wd, ad), dmin = _mm256_mul_ps(wdmin, ad);
      for (int q = 0; q < 4; ++q) {
        racc = vfmadd(_mm256_cvtepi32_ps(pc[q]), d, racc);
        raccm = vfmadd(_mm256_cvtepi32_ps(m[q]), dmin, raccm);
      }
    } else {  // tiled
      __m256 res = _mm256_mul_ps(wd, _mm256_cvtepi32_ps(hsum8x8_i32(lane)));
      if constexpr (kMin) {
        const __m256i imin = _mm256_add_epi32(_mm256_add_epi32(m[0], m[1]), _mm256_add_epi32(m[2], m[3]));
#if defined(__FMA__)
        res = _mm256_fnmadd_ps(wdmin, _mm256_cvtepi32_ps(imin), res);
#else
        res = _mm256_sub_ps(res, _mm256_mul_ps(wdmin, _mm256_cvtepi32_ps(imin)));
#endif
      }
      racc = vfmadd(res, ad, racc);
    }
  }
  _mm256_storeu_ps(out, gemm ? _mm256_sub_ps(racc, raccm) : racc);
}

// One row of Q4_0 in the repacked order (below): a running fma over the blocks of each block's
// exact integer dot times d_w*d_x.
float dot_q4_0_repacked_simd(const BlockQ4_0* w, size_t nb, const Act32& a) {
  float acc = 0;
  for (size_t b = 0; b < nb; ++b) {
    const __m256i aq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.qs(b)));
    acc = fmadd(static_cast<float>(hsum_i32(dot_i8(unpack(w[b]), aq))), h2f(w[b].d) * a.d(b), acc);
  }
  return acc;
}

// Q4_0 as llama.cpp computes it on x86 from its repacked copy (q4_0_8x8_q8_0 gemv and gemm, used
// for matrices whose row count is a multiple of 8): each output is a running float sum over the
// blocks, block after block, of the exact integer dot of the block's 32 products times
// (weight d * activation d), by fused multiply-add. Rows [r0, r1) against tokens [0, n_tokens),
// Y[t * ldy + r]; 8 rows at a time (lane i: row i), the rest one by one in the same order.
void matmul_q4_0_repacked(const void* W, size_t cols, const PreparedActs& p, size_t n_tokens, size_t ldy, float* Y,
                          size_t r0, size_t r1) {
  const size_t nb = cols / kQK;
  const BlockQ4_0* w = static_cast<const BlockQ4_0*>(W);
  const __m256i ones = _mm256_set1_epi16(1);
  // the 8 lane sums of the products of a block's signed weights wq with the activations
  auto dot8 = [&](__m256i wq, const int8_t* aq) {
    const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(aq));
    return _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_sign_epi8(wq, wq), _mm256_sign_epi8(a, wq)), ones);
  };
  struct alignas(32) Q32 {
    __m256i v;
  };
  thread_local std::vector<Q32> wq;    // [i * nb + b]: row i's block b, signed
  thread_local std::vector<float> d8;  // [b * 8 + i]
  wq.resize(8 * nb);
  d8.resize(8 * nb);
  size_t r = r0;
  for (; r + 8 <= r1; r += 8) {
    for (size_t i = 0; i < 8; ++i)
      for (size_t b = 0; b < nb; ++b) {
        wq[i * nb + b].v = unpack(w[(r + i) * nb + b]);
        d8[b * 8 + i] = h2f(w[(r + i) * nb + b].d);
      }
    for (size_t t = 0; t < n_tokens; ++t) {
      const Act32 a = p.act32(t);
      __m256 acc = _mm256_setzero_ps();
      for (size_t b = 0; b < nb; ++b) {
        __m256i lane[8];
        for (size_t i = 0; i < 8; ++i) lane[i] = dot8(wq[i * nb + b].v, a.qs(b));
        const __m256 d = _mm256_mul_ps(_mm256_loadu_ps(&d8[b * 8]), a.d8[b].v);
        acc = vfmadd(_mm256_cvtepi32_ps(hsum8x8_i32(lane)), d, acc);
      }
      float out[8];
      _mm256_storeu_ps(out, acc);
      for (size_t i = 0; i < 8; ++i) Y[t * ldy + r + i] = out[i];
    }
  }
  for (; r < r1; ++r)
    for (size_t t = 0; t < n_tokens; ++t) Y[t * ldy + r] = dot_q4_0_repacked_simd(w + r * nb, nb, p.act32(t));
}

// Repacked-order Q4_0 mat-vec of rows [r0, r1): one row at a time would leave the fma chain's
// latency exposed, 8 neighbouring rows in step lose the prefetcher (see RowPtrs), so row i of each
// half of the range goes with its partner.
void matvec_q4_0_repacked(const void* W, size_t cols, const PreparedActs& p, float* y, size_t r0, size_t r1) {
  const size_t nb = cols / kQK;
  const BlockQ4_0* w = static_cast<const BlockQ4_0*>(W);
  const Act32 a = p.act32(0);
  const size_t half = (r1 - r0) / 2;
  for (size_t i = 0; i < half; ++i) {
    const BlockQ4_0* w0 = w + (r0 + i) * nb;
    const BlockQ4_0* w1 = w + (r0 + half + i) * nb;
    float acc0 = 0, acc1 = 0;
    for (size_t b = 0; b < nb; ++b) {
      const __m256i aq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.qs(b)));
      acc0 = fmadd(static_cast<float>(hsum_i32(dot_i8(unpack(w0[b]), aq))), h2f(w0[b].d) * a.d(b), acc0);
      acc1 = fmadd(static_cast<float>(hsum_i32(dot_i8(unpack(w1[b]), aq))), h2f(w1[b].d) * a.d(b), acc1);
    }
    y[r0 + i] = acc0;
    y[r0 + half + i] = acc1;
  }
  if ((r1 - r0) % 2) y[r1 - 1] = dot_q4_0_repacked_simd(w + (r1 - 1) * nb, nb, a);
}

template <class WB>
void matmulK(const void* W, size_t cols, const PreparedActs& p, size_t n_tokens, size_t rows, float* Y,
             size_t r0, size_t r1, const KOrder* orders) {
  const size_t nb = cols / kQKK;
  const WB* w = static_cast<const WB*>(W);
  std::vector<KUnpacked> tile(kRowTile * nb);
  std::vector<float> d8(kRowTile * nb), dmin8(kRowTile * nb);  // [b * 8 + i]
  static_assert(kRowTile == 8);
  for (size_t rt = r0; rt < r1; rt += kRowTile) {
    const size_t nr = std::min(kRowTile, r1 - rt);
    for (size_t i = 0; i < nr; ++i)
      for (size_t b = 0; b < nb; ++b) {
        unpackK(w[(rt + i) * nb + b], tile[i * nb + b]);
        spread_scales(tile[i * nb + b]);
        d8[b * 8 + i] = tile[i * nb + b].d;
        dmin8[b * 8 + i] = tile[i * nb + b].dmin;
      }
    for (size_t t = 0; t < n_tokens; ++t) {
      const BlockQ8_K* a = static_cast<const BlockQ8_K*>(p.row(t));
      if (nr == 8 && (orders[t] == KOrder::Tiled || (orders[t] == KOrder::RepackGemm && std::is_same_v<WB, BlockQ4_K>))) {
        rows8_k<WB>(tile.data(), d8.data(), dmin8.data(), nb, a, orders[t], Y + t * rows + rt);
        continue;
      }
      for (size_t i = 0; i < nr; ++i) Y[t * rows + rt + i] = dotK_unpacked<WB>(tile.data() + i * nb, nb, a, orders[t]);
    }
  }
}
#endif

// Float types (and the scalar build): the matvec row kernel, tiled the same way.
void matmul_generic(GgmlType wtype, const void* W, size_t cols, const PreparedActs& p, size_t n_tokens,
                    size_t rows, float* Y, size_t r0, size_t r1, const KOrder* orders) {
  const size_t rb = row_bytes(wtype, cols);
  const uint8_t* w = static_cast<const uint8_t*>(W);
  for (size_t rt = r0; rt < r1; rt += kRowTile) {
    const size_t nr = std::min(kRowTile, r1 - rt);
    for (size_t t = 0; t < n_tokens; ++t)
      for (size_t i = 0; i < nr; ++i) Y[t * rows + rt + i] = row_dot(wtype, cols, w + (rt + i) * rb, p, t, orders[t]);
  }
}

}  // namespace

KOrder llama_order(GgmlType wtype, size_t rows, uint32_t pos, uint32_t len) {
  if (repacked(wtype, rows)) {
    if (wtype == GgmlType::Q4_0) return KOrder::RepackGemv;  // its gemm sums as its gemv
    return pos < len - len % 4 ? KOrder::RepackGemm : KOrder::RepackGemv;
  }
  if (is_k_type(wtype) && len >= 8) return KOrder::Tiled;
  return KOrder::VecDot;
}

void matmul(GgmlType wtype, const void* W, size_t rows, size_t cols, const float* X, size_t n_tokens, float* Y,
            const ThreadHint& threads, const TokenBatches* batches) {
  check_shape(wtype, cols, "matmul");
  if (n_tokens == 0 || rows == 0) return;
  if (wtype == GgmlType::F32) return matmul_f32_llama(static_cast<const float*>(W), rows, cols, X, n_tokens, Y, threads, batches);
  // each token's order (which also decides how its activations are quantized)
  std::vector<KOrder> orders(n_tokens, KOrder::VecDot);
  if (is_k_type(wtype) || wtype == GgmlType::Q4_0)
    for (size_t t = 0; t < n_tokens; ++t) {
      const uint32_t pos = batches ? batches->pos[t] : static_cast<uint32_t>(t);
      const uint32_t len = batches ? batches->len[t] : static_cast<uint32_t>(n_tokens);
      orders[t] = llama_order(wtype, rows, pos, len);
    }
  thread_local PreparedActs kept;  // its buffers kept from one call to the next
  PreparedActs& p = kept;           // (the lambdas below run on other threads: not thread_local there)
  prepare(wtype, cols, X, nullptr, n_tokens, p, orders.data(), &threads);
  if (repacked_q4_0(wtype, rows)) return matmul_q4_0_tiles(W, rows, cols, p, n_tokens, Y, threads);
  parallel_rows(rows, threads, [&](size_t r0, size_t r1) {
#if LOOM_QD_AVX2
    switch (wtype) {
      case GgmlType::Q4_K: return matmulK<BlockQ4_K>(W, cols, p, n_tokens, rows, Y, r0, r1, orders.data());
      case GgmlType::Q5_K: return matmulK<BlockQ5_K>(W, cols, p, n_tokens, rows, Y, r0, r1, orders.data());
      case GgmlType::Q6_K: return matmulK<BlockQ6_K>(W, cols, p, n_tokens, rows, Y, r0, r1, orders.data());
      default: break;
    }
#endif
    if (matmul32_rows(wtype, W, cols, p, n_tokens, rows, Y, r0, r1)) return;
    matmul_generic(wtype, W, cols, p, n_tokens, rows, Y, r0, r1, orders.data());
  });
}

}  // namespace loom::kernels
