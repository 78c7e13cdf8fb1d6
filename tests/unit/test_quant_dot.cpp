// Quantized dot products, mat-vec and mat-mat (kernels/cpu/quant_dot.h).
//
//   - activation quantization follows llama.cpp's x86 rules (127/amax, round half to even; Q8_K's
//     signed max and -127/max), checked on hand-made blocks with ties;
//   - f16/bf16 conversions against F16C (where compiled) and exhaustively for widening;
//   - for every weight type and float order (KOrder): vec_dot (SIMD) == vec_dot_scalar exactly —
//     both perform the same float operations by design, so no tolerance is needed; vec_dot against
//     a plain double-precision reference built from this file's own dequantizer; matvec and matmul
//     == vec_dot per row in the order llama.cpp takes for the token's place in its batch
//     (llama_order: repacked Q4_K gemm/gemv, tiled K types from 8 tokens), for 1, 2 and 3 threads
//     and through a caller-supplied parallel-for; the orders themselves are held to llama.cpp's
//     logits by the decoder's parity tests (test_decoder.cpp);
//   - n not a multiple of the block throws std::invalid_argument;
//   - a speed report (printed, not asserted) for a SmolLM2-sized Q4_1 matrix.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <stdexcept>
#include <vector>

#include "kernels/cpu/cpu_features.h"
#include "kernels/cpu/quant_dot.h"

#if defined(__F16C__)
#include <immintrin.h>
#endif

using namespace loom::kernels;

namespace {

// ---------------------------------------------------------------- plain reference helpers

double ref_half(uint16_t h) {  // independent of the library's f16_to_f32
  const int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
  double v;
  if (e == 0) v = std::ldexp(m, -24);
  else if (e == 31) v = m ? NAN : INFINITY;
  else v = std::ldexp(1024 + m, e - 25);
  return s ? -v : v;
}

uint16_t half_of(float f) { return f32_to_f16(f); }

// Dequantize one row of `n` values of type t (the plain formulas of ggml's format).
std::vector<double> dequant(GgmlType t, const void* row, size_t n) {
  std::vector<double> y(n);
  const auto* p = static_cast<const uint8_t*>(row);
  auto qh32 = [](const uint8_t* q) { return uint32_t(q[0]) | uint32_t(q[1]) << 8 | uint32_t(q[2]) << 16 | uint32_t(q[3]) << 24; };
  auto scale_min = [](const uint8_t* s, int j, int& sc, int& mn) {
    if (j < 4) {
      sc = s[j] & 63;
      mn = s[j + 4] & 63;
    } else {
      sc = (s[j + 4] & 15) | ((s[j - 4] >> 6) << 4);
      mn = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
  };
  switch (t) {
    case GgmlType::F32:
      for (size_t i = 0; i < n; ++i) y[i] = reinterpret_cast<const float*>(p)[i];
      break;
    case GgmlType::F16:
      for (size_t i = 0; i < n; ++i) y[i] = ref_half(reinterpret_cast<const uint16_t*>(p)[i]);
      break;
    case GgmlType::BF16:
      for (size_t i = 0; i < n; ++i) {
        uint32_t u = uint32_t(reinterpret_cast<const uint16_t*>(p)[i]) << 16;
        float f;
        std::memcpy(&f, &u, 4);
        y[i] = f;
      }
      break;
    case GgmlType::Q4_0:
    case GgmlType::Q4_1:
    case GgmlType::Q5_0:
    case GgmlType::Q5_1:
      for (size_t b = 0; b < n / 32; ++b) {
        double d = 0, m = 0;
        const uint8_t *qs, *qh = nullptr;
        int off = 0;
        if (t == GgmlType::Q4_0) { auto* B = reinterpret_cast<const BlockQ4_0*>(p) + b; d = ref_half(B->d); qs = B->qs; off = 8; }
        else if (t == GgmlType::Q4_1) { auto* B = reinterpret_cast<const BlockQ4_1*>(p) + b; d = ref_half(B->d); m = ref_half(B->m); qs = B->qs; }
        else if (t == GgmlType::Q5_0) { auto* B = reinterpret_cast<const BlockQ5_0*>(p) + b; d = ref_half(B->d); qs = B->qs; qh = B->qh; off = 16; }
        else { auto* B = reinterpret_cast<const BlockQ5_1*>(p) + b; d = ref_half(B->d); m = ref_half(B->m); qs = B->qs; qh = B->qh; }
        const uint32_t h = qh ? qh32(qh) : 0;
        for (int j = 0; j < 16; ++j) {
          const int lo = (qs[j] & 15) | (qh ? int((h >> j) & 1) << 4 : 0);
          const int hi = (qs[j] >> 4) | (qh ? int((h >> (j + 16)) & 1) << 4 : 0);
          y[b * 32 + j] = d * (lo - off) + m;
          y[b * 32 + j + 16] = d * (hi - off) + m;
        }
      }
      break;
    case GgmlType::Q8_0:
      for (size_t b = 0; b < n / 32; ++b) {
        auto* B = reinterpret_cast<const BlockQ8_0*>(p) + b;
        for (int j = 0; j < 32; ++j) y[b * 32 + j] = ref_half(B->d) * B->qs[j];
      }
      break;
    case GgmlType::Q4_K:
    case GgmlType::Q5_K:
      for (size_t b = 0; b < n / 256; ++b) {
        const uint8_t *sc12, *qs, *qh = nullptr;
        double d, dmin;
        if (t == GgmlType::Q4_K) { auto* B = reinterpret_cast<const BlockQ4_K*>(p) + b; d = ref_half(B->d); dmin = ref_half(B->dmin); sc12 = B->scales; qs = B->qs; }
        else { auto* B = reinterpret_cast<const BlockQ5_K*>(p) + b; d = ref_half(B->d); dmin = ref_half(B->dmin); sc12 = B->scales; qs = B->qs; qh = B->qh; }
        for (int j = 0; j < 8; ++j) {  // sub-block j: 32 values
          int sc, mn;
          scale_min(sc12, j, sc, mn);
          for (int i = 0; i < 32; ++i) {
            int q = (qs[32 * (j / 2) + i] >> (4 * (j % 2))) & 15;
            if (qh) q |= ((qh[i] >> j) & 1) << 4;
            y[b * 256 + 32 * j + i] = d * sc * q - dmin * mn;
          }
        }
      }
      break;
    case GgmlType::Q6_K:
      for (size_t b = 0; b < n / 256; ++b) {
        auto* B = reinterpret_cast<const BlockQ6_K*>(p) + b;
        const double d = ref_half(B->d);
        for (int e = 0; e < 256; ++e) {  // element e: half h, position within half
          const int h = e / 128, r = e % 128, quarter = r / 32, l = r % 32;
          const uint8_t ql = B->ql[64 * h + l + 32 * (quarter % 2)];
          const int lo = quarter < 2 ? (ql & 15) : (ql >> 4);
          const int hi = (B->qh[32 * h + l] >> (2 * quarter)) & 3;
          y[b * 256 + e] = d * B->scales[e / 16] * ((lo | hi << 4) - 32);
        }
      }
      break;
    default:
      ADD_FAILURE() << "no reference for type";
  }
  return y;
}

// ---------------------------------------------------------------- random data

const GgmlType kAllTypes[] = {GgmlType::F32,  GgmlType::F16,  GgmlType::BF16, GgmlType::Q4_0,
                              GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q8_0,
                              GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K};

size_t row_bytes(GgmlType t, size_t n) {
  const TypeSize ts = type_size(t);
  return n / ts.block_elems * ts.block_bytes;
}

// Random valid weight rows: random quant bytes, finite f16 scales of sane size.
std::vector<uint8_t> random_weights(GgmlType t, size_t rows, size_t cols, std::mt19937& rng) {
  std::vector<uint8_t> w(rows * row_bytes(t, cols));
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (auto& b : w) b = static_cast<uint8_t>(byte(rng));
  auto put = [](void* at, uint16_t h) { std::memcpy(at, &h, 2); };
  const size_t be = type_size(t).block_elems, bb = type_size(t).block_bytes;
  const size_t nblocks = rows * cols / be;
  for (size_t i = 0; i < nblocks; ++i) {
    uint8_t* B = w.data() + i * bb;
    switch (t) {
      case GgmlType::F32:
        for (size_t k = 0; k < 1; ++k) { float f = u(rng); std::memcpy(B, &f, 4); }
        break;
      case GgmlType::F16: put(B, half_of(u(rng))); break;
      case GgmlType::BF16: put(B, f32_to_bf16(u(rng))); break;
      case GgmlType::Q4_0: case GgmlType::Q5_0: case GgmlType::Q8_0:
        put(B, half_of(0.001f + 0.05f * std::fabs(u(rng))));
        break;
      case GgmlType::Q4_1: case GgmlType::Q5_1:
        put(B, half_of(0.001f + 0.05f * std::fabs(u(rng))));
        put(B + 2, half_of(0.2f * u(rng)));
        break;
      case GgmlType::Q4_K: case GgmlType::Q5_K:
        put(B, half_of(0.0005f + 0.002f * std::fabs(u(rng))));
        put(B + 2, half_of(0.0005f + 0.002f * std::fabs(u(rng))));
        break;
      case GgmlType::Q6_K:
        put(B + offsetof(BlockQ6_K, d), half_of(0.0002f + 0.001f * std::fabs(u(rng))));
        break;
      default: break;
    }
  }
  return w;
}

std::vector<float> random_floats(size_t n, std::mt19937& rng, float scale = 1.0f) {
  std::normal_distribution<float> g(0.0f, scale);
  std::vector<float> x(n);
  for (auto& v : x) v = g(rng);
  if (n > 7) x[7] = 0.0f;  // a zero among them
  return x;
}

// The activation row, dequantized with ggml's formulas, and (for Q8_1) each block's s.
struct DeqAct {
  std::vector<double> v;
  std::vector<double> s;  // Q8_1 only
};
DeqAct dequant_act(GgmlType wtype, const std::vector<uint8_t>& a, size_t n) {
  DeqAct r;
  r.v.resize(n);
  switch (activation_type(wtype)) {
    case GgmlType::F32: case GgmlType::F16: case GgmlType::BF16:
      r.v = dequant(activation_type(wtype), a.data(), n);
      break;
    case GgmlType::Q8_0:
      r.v = dequant(GgmlType::Q8_0, a.data(), n);
      break;
    case GgmlType::Q8_1:
      for (size_t b = 0; b < n / 32; ++b) {
        auto* B = reinterpret_cast<const BlockQ8_1*>(a.data()) + b;
        for (int j = 0; j < 32; ++j) r.v[b * 32 + j] = ref_half(B->d) * B->qs[j];
        r.s.push_back(ref_half(B->s));
      }
      break;
    case GgmlType::Q8_K:
      for (size_t b = 0; b < n / 256; ++b) {
        auto* B = reinterpret_cast<const BlockQ8_K*>(a.data()) + b;
        for (int j = 0; j < 256; ++j) r.v[b * 256 + j] = double(B->d) * B->qs[j];
      }
      break;
    default: ADD_FAILURE();
  }
  return r;
}

// Reference dot in double. For Q4_1/Q5_1 ggml's dot uses the block's stored s = f16(d*sum q) for
// the min term (m * sum of activations); the reference does the same, so it states the format's
// arithmetic, not an approximation of it.
struct RefDot {
  double value, magnitude;  // magnitude: sum of |terms|, the scale of rounding error
};
RefDot ref_dot(GgmlType t, const void* wrow, const DeqAct& a, size_t n) {
  const std::vector<double> w = dequant(t, wrow, n);
  RefDot r{0, 0};
  const bool with_min = t == GgmlType::Q4_1 || t == GgmlType::Q5_1;
  for (size_t i = 0; i < n; ++i) {
    double wi = w[i];
    if (with_min) {
      const auto* p = static_cast<const uint8_t*>(wrow) + (i / 32) * type_size(t).block_bytes;
      uint16_t m;
      std::memcpy(&m, p + 2, 2);
      wi -= ref_half(m);
      if (i % 32 == 0) {
        r.value += ref_half(m) * a.s[i / 32];
        r.magnitude += std::fabs(ref_half(m) * a.s[i / 32]);
      }
    }
    r.value += wi * a.v[i];
    r.magnitude += std::fabs(wi * a.v[i]);
  }
  return r;
}

std::vector<uint8_t> acts(GgmlType t, const float* x, size_t n) {
  std::vector<uint8_t> a(activation_row_bytes(t, n));
  quantize_activations(t, x, a.data(), n);
  return a;
}

std::vector<size_t> test_widths(GgmlType t) {
  const size_t be = type_size(t).block_elems;
  if (be == 1) return {1, 7, 31, 32, 33, 100, 576, 1536};
  if (be == 32) return {32, 64, 32 * 7, 32 * 8, 32 * 13, 576, 1536};
  return {256, 512, 256 * 9, 2048};
}

}  // namespace

// ---------------------------------------------------------------- conversions

TEST(QuantDotConvert, HalfWideningIsExactForEveryPattern) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = f16_to_f32(static_cast<uint16_t>(h));
    const double r = ref_half(static_cast<uint16_t>(h));
    if (std::isnan(r)) {
      EXPECT_TRUE(std::isnan(f)) << h;
      continue;
    }
    ASSERT_EQ(static_cast<double>(f), r) << h;
#if defined(__F16C__)
    ASSERT_EQ(f, _cvtsh_ss(static_cast<unsigned short>(h))) << h;
#endif
  }
}

TEST(QuantDotConvert, HalfNarrowingRoundsToNearestEven) {
  EXPECT_EQ(f32_to_f16(1.0f), 0x3c00);
  EXPECT_EQ(f32_to_f16(-2.0f), 0xc000);
  EXPECT_EQ(f32_to_f16(65504.0f), 0x7bff);
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7c00);  // the tie above the largest half goes to infinity
  EXPECT_EQ(f32_to_f16(65519.99f), 0x7bff);
  EXPECT_EQ(f32_to_f16(1.0f + 0x1p-11f), 0x3c00);             // tie, even stays
  EXPECT_EQ(f32_to_f16(1.0f + 3 * 0x1p-11f), 0x3c02);         // tie, odd rounds up
  EXPECT_EQ(f32_to_f16(0x1p-24f), 0x0001);                    // smallest subnormal
  EXPECT_EQ(f32_to_f16(0x1p-25f), 0x0000);                    // tie to even (zero)
  EXPECT_EQ(f32_to_f16(3 * 0x1p-25f), 0x0002);
  EXPECT_EQ(f32_to_f16(-0.0f), 0x8000);
#if defined(__F16C__)
  std::mt19937 rng(1);
  std::uniform_int_distribution<uint32_t> bits;
  for (int i = 0; i < 2000000; ++i) {
    uint32_t u = bits(rng);
    if (i % 2) u = (u & 0x8fffffffu) | 0x30000000u;  // half the draws in the f16 range
    float f;
    std::memcpy(&f, &u, 4);
    if (std::isnan(f)) continue;
    ASSERT_EQ(f32_to_f16(f), _cvtss_sh(f, 0)) << std::hex << u;
  }
#endif
}

TEST(QuantDotConvert, Bf16NarrowingRoundsToNearestEven) {
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
  float f;
  uint32_t u = 0x3f808000u;  // tie, even (0x3f80) stays
  std::memcpy(&f, &u, 4);
  EXPECT_EQ(f32_to_bf16(f), 0x3f80);
  u = 0x3f818000u;  // tie, odd rounds up
  std::memcpy(&f, &u, 4);
  EXPECT_EQ(f32_to_bf16(f), 0x3f82);
  EXPECT_EQ(bf16_to_f32(0x3f80), 1.0f);
}

// ---------------------------------------------------------------- activation quantization

TEST(QuantDotActivations, Q8_0MatchesLlamaCppX86Rounding) {
  // amax = 127, so the multiplier 127/amax is exactly 1 and x*id is x: ties are visible.
  float x[32] = {};
  x[0] = 127.0f;
  x[1] = 2.5f;   // half-even: 2 (llama.cpp's portable roundf would give 3)
  x[2] = 3.5f;   // 4
  x[3] = -2.5f;  // -2
  x[4] = 0.49f;
  x[5] = -126.5f;  // -126
  BlockQ8_0 b;
  quantize_row_q8_0(x, &b, 32);
  EXPECT_EQ(b.d, f32_to_f16(1.0f));
  EXPECT_EQ(b.qs[0], 127);
  EXPECT_EQ(b.qs[1], 2);
  EXPECT_EQ(b.qs[2], 4);
  EXPECT_EQ(b.qs[3], -2);
  EXPECT_EQ(b.qs[4], 0);
  EXPECT_EQ(b.qs[5], -126);

  // The multiplier is 127/amax, not 1/f32(amax/127); check a generic block value by value.
  std::mt19937 rng(5);
  const std::vector<float> v = random_floats(64, rng, 3.0f);
  BlockQ8_0 q[2];
  quantize_row_q8_0(v.data(), q, 64);
  for (int blk = 0; blk < 2; ++blk) {
    float amax = 0;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(v[32 * blk + j]));
    EXPECT_EQ(q[blk].d, f32_to_f16(amax / 127.0f));
    const float id = 127.0f / amax;
    for (int j = 0; j < 32; ++j) EXPECT_EQ(q[blk].qs[j], static_cast<int>(std::nearbyint(v[32 * blk + j] * id)));
  }

  // An all-zero block: d = 0, quants 0.
  float z[32] = {};
  quantize_row_q8_0(z, q, 32);
  EXPECT_EQ(q[0].d, 0);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(q[0].qs[j], 0);
}

TEST(QuantDotActivations, Q8_1CarriesScaledSumOfQuants) {
  std::mt19937 rng(6);
  const std::vector<float> v = random_floats(96, rng);
  BlockQ8_1 q[3];
  quantize_row_q8_1(v.data(), q, 96);
  BlockQ8_0 r[3];
  quantize_row_q8_0(v.data(), r, 96);
  for (int b = 0; b < 3; ++b) {
    EXPECT_EQ(q[b].d, r[b].d);
    int sum = 0;
    for (int j = 0; j < 32; ++j) {
      EXPECT_EQ(q[b].qs[j], r[b].qs[j]);
      sum += q[b].qs[j];
    }
    float amax = 0;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(v[32 * b + j]));
    EXPECT_EQ(q[b].s, f32_to_f16(amax / 127.0f * static_cast<float>(sum)));  // f32 d, not the f16 one
  }
}

TEST(QuantDotActivations, Q8_KUsesSignedMaxAndHalfEven) {
  float x[256] = {};
  x[10] = -127.0f;  // the largest |x| is negative: iscale = -127/max = 1, d = 1
  x[11] = 2.5f;
  x[12] = -3.5f;
  x[13] = 127.0f;  // same |x|, later: the first one decides
  BlockQ8_K b;
  quantize_row_q8_K(x, &b, 256);
  EXPECT_EQ(b.d, 1.0f);
  EXPECT_EQ(b.qs[10], -127);
  EXPECT_EQ(b.qs[11], 2);
  EXPECT_EQ(b.qs[12], -4);
  EXPECT_EQ(b.qs[13], 127);
  EXPECT_EQ(b.bsums[0], -127 + 2 - 4 + 127);
  for (int j = 1; j < 16; ++j) EXPECT_EQ(b.bsums[j], 0);

  x[10] = 127.0f;  // now positive: iscale = -1, d = -1, quants negated
  x[13] = 0.0f;
  quantize_row_q8_K(x, &b, 256);
  EXPECT_EQ(b.d, -1.0f);
  EXPECT_EQ(b.qs[10], -127);
  EXPECT_EQ(b.qs[11], -2);
  EXPECT_EQ(b.qs[12], 4);

  // +127 and -127 both present, -127 first: the repacked gemm's rule takes the positive one
  x[10] = -127.0f;
  x[13] = 127.0f;
  quantize_row_q8_K(x, &b, 256, Q8KMax::PositiveFirst);
  EXPECT_EQ(b.d, -1.0f);
  EXPECT_EQ(b.qs[10], 127);
  EXPECT_EQ(b.qs[13], -127);
  quantize_row_q8_K(x, &b, 256, Q8KMax::First);
  EXPECT_EQ(b.d, 1.0f);

  float z[256] = {};
  quantize_row_q8_K(z, &b, 256);
  EXPECT_EQ(b.d, 0.0f);
  for (int j = 0; j < 16; ++j) EXPECT_EQ(b.bsums[j], 0);
}

TEST(QuantDotActivations, PairsAndSizes) {
  EXPECT_EQ(activation_type(GgmlType::Q4_0), GgmlType::Q8_0);
  EXPECT_EQ(activation_type(GgmlType::Q4_1), GgmlType::Q8_1);
  EXPECT_EQ(activation_type(GgmlType::Q5_0), GgmlType::Q8_0);
  EXPECT_EQ(activation_type(GgmlType::Q5_1), GgmlType::Q8_1);
  EXPECT_EQ(activation_type(GgmlType::Q8_0), GgmlType::Q8_0);
  EXPECT_EQ(activation_type(GgmlType::Q4_K), GgmlType::Q8_K);
  EXPECT_EQ(activation_type(GgmlType::Q5_K), GgmlType::Q8_K);
  EXPECT_EQ(activation_type(GgmlType::Q6_K), GgmlType::Q8_K);
  EXPECT_EQ(activation_type(GgmlType::F16), GgmlType::F16);
  EXPECT_EQ(activation_type(GgmlType::BF16), GgmlType::BF16);
  EXPECT_EQ(activation_type(GgmlType::F32), GgmlType::F32);
  EXPECT_EQ(activation_row_bytes(GgmlType::Q4_1, 64), 2 * sizeof(BlockQ8_1));
  EXPECT_EQ(activation_row_bytes(GgmlType::Q6_K, 512), 2 * sizeof(BlockQ8_K));
  EXPECT_EQ(activation_row_bytes(GgmlType::F16, 5), 10u);
  EXPECT_FALSE(supports_weight_type(GgmlType::Q2_K));
  EXPECT_THROW(activation_type(GgmlType::Q3_K), std::invalid_argument);
}

// ---------------------------------------------------------------- dot products

class QuantDotType : public ::testing::TestWithParam<GgmlType> {};

TEST_P(QuantDotType, SimdEqualsScalarExactly) {
  const GgmlType t = GetParam();
  std::mt19937 rng(100 + static_cast<int>(t));
  for (size_t n : test_widths(t)) {
    for (int rep = 0; rep < 20; ++rep) {
      const auto w = random_weights(t, 1, n, rng);
      const auto x = random_floats(n, rng, rep % 2 ? 1.0f : 30.0f);
      const auto a = acts(t, x.data(), n);
      for (KOrder o : {KOrder::VecDot, KOrder::RepackGemv, KOrder::RepackGemm, KOrder::Tiled}) {
        const float simd = vec_dot(t, n, w.data(), a.data(), o);
        const float scalar = vec_dot_scalar(t, n, w.data(), a.data(), o);
        ASSERT_EQ(simd, scalar) << type_name(t) << " n=" << n << " rep=" << rep << " order " << int(o) << " ("
                                << simd_compiled() << ")";
      }
    }
  }
}

TEST_P(QuantDotType, MatchesDoublePrecisionReference) {
  // The kernel's integer sums are exact; what remains is float rounding of a few products and
  // of the lane sums: relative to the sum of |terms| it stays far below 1e-5.
  const GgmlType t = GetParam();
  std::mt19937 rng(200 + static_cast<int>(t));
  double worst = 0;
  for (size_t n : test_widths(t)) {
    for (int rep = 0; rep < 10; ++rep) {
      const auto w = random_weights(t, 1, n, rng);
      const auto x = random_floats(n, rng);
      const auto a = acts(t, x.data(), n);
      const RefDot r = ref_dot(t, w.data(), dequant_act(t, a, n), n);
      double err = 0;
      for (KOrder o : {KOrder::VecDot, KOrder::RepackGemv, KOrder::RepackGemm, KOrder::Tiled})
        err = std::max(err, std::fabs(vec_dot(t, n, w.data(), a.data(), o) - r.value) / (r.magnitude + 1e-30));
      const float got = vec_dot(t, n, w.data(), a.data());
      worst = std::max(worst, err);
      ASSERT_LE(err, 1e-5) << type_name(t) << " n=" << n << " got " << got << " want " << r.value;
    }
  }
  RecordProperty("worst_relative_error", std::to_string(worst));
}

TEST_P(QuantDotType, QuantizedDotTracksFloatDot) {
  // Sanity on the scheme as a whole: against the exact dot of the dequantized weights with the
  // unquantized x, the error is what 8-bit activations cost (< 1% of the sum of |terms|).
  const GgmlType t = GetParam();
  std::mt19937 rng(300 + static_cast<int>(t));
  const size_t n = type_size(t).block_elems == 256 ? 2048 : 1536;
  for (int rep = 0; rep < 5; ++rep) {
    const auto w = random_weights(t, 1, n, rng);
    const auto x = random_floats(n, rng);
    const auto wd = dequant(t, w.data(), n);
    double exact = 0, mag = 0;
    for (size_t i = 0; i < n; ++i) {
      exact += wd[i] * x[i];
      mag += std::fabs(wd[i] * x[i]);
    }
    const float got = vec_dot(t, n, w.data(), acts(t, x.data(), n).data());
    EXPECT_LE(std::fabs(got - exact), 0.01 * mag) << type_name(t);
  }
}

// rows: 37 (no type is repacked), 40 (Q4_K is: llama.cpp's repacked gemv/gemm orders)
class QuantDotMatrix : public ::testing::TestWithParam<std::tuple<GgmlType, size_t>> {};

TEST_P(QuantDotMatrix, MatvecAndMatmulEqualVecDotPerRow) {
  const auto [t, rows] = GetParam();
  if (t == GgmlType::F32) GTEST_SKIP() << "F32 matrices take llama.cpp's own orders (QuantDot.F32MatmulOrdersAreLlamaCpps)";
  std::mt19937 rng(400 + static_cast<int>(t) + static_cast<int>(rows));
  const size_t cols = type_size(t).block_elems == 256 ? 256 * 3 : (type_size(t).block_elems == 32 ? 32 * 11 : 101);
  const size_t n_tokens = 13;
  const auto W = random_weights(t, rows, cols, rng);
  const auto X = random_floats(n_tokens * cols, rng);
  const size_t rb = row_bytes(t, cols);
  EXPECT_EQ(repacked(t, rows), (t == GgmlType::Q4_K || t == GgmlType::Q4_0) && rows == 40);

  // token tok of a batch of len, as llama.cpp computes it (its activations by the gemm's rule
  // where that takes it)
  auto want_at = [&](size_t tok, uint32_t pos, uint32_t len, size_t r) {
    const KOrder o = llama_order(t, rows, pos, len);
    std::vector<uint8_t> a(activation_row_bytes(t, cols));
    if (o == KOrder::RepackGemm)
      quantize_row_q8_K(X.data() + tok * cols, a.data(), cols, Q8KMax::PositiveFirst);
    else
      quantize_activations(t, X.data() + tok * cols, a.data(), cols);
    return vec_dot(t, cols, W.data() + r * rb, a.data(), o);
  };
  std::vector<float> want(n_tokens * rows);  // each token alone: matvec
  for (size_t tok = 0; tok < n_tokens; ++tok)
    for (size_t r = 0; r < rows; ++r) want[tok * rows + r] = want_at(tok, 0, 1, r);

  // A caller's parallel-for: runs the tasks in reverse order on the calling thread.
  ThreadHint pool;
  pool.threads = 4;
  pool.run = [](size_t n, const std::function<void(size_t)>& task) {
    for (size_t i = n; i-- > 0;) task(i);
  };
  std::vector<ThreadHint> hints(3);
  for (int i = 0; i < 3; ++i) hints[i].threads = i + 1;
  hints.push_back(pool);

  for (const ThreadHint& th : hints) {
    for (size_t tok = 0; tok < n_tokens; ++tok) {
      std::vector<float> y(rows, -1.0f);
      matvec(t, W.data(), rows, cols, X.data() + tok * cols, y.data(), th);
      for (size_t r = 0; r < rows; ++r) ASSERT_EQ(y[r], want[tok * rows + r]) << type_name(t) << " matvec r=" << r;
      const auto a = acts(t, X.data() + tok * cols, cols);
      matvec_act(t, W.data(), rows, cols, a.data(), y.data(), th);
      for (size_t r = 0; r < rows; ++r) ASSERT_EQ(y[r], want[tok * rows + r]) << type_name(t) << " matvec_act";
    }
    for (size_t nt : {size_t(1), size_t(5), size_t(8), n_tokens}) {  // one batch of nt
      std::vector<float> Y(nt * rows, -1.0f);
      matmul(t, W.data(), rows, cols, X.data(), nt, Y.data(), th);
      for (size_t tok = 0; tok < nt; ++tok)
        for (size_t r = 0; r < rows; ++r)
          ASSERT_EQ(Y[tok * rows + r], want_at(tok, static_cast<uint32_t>(tok), static_cast<uint32_t>(nt), r))
              << type_name(t) << " matmul tok=" << tok << " r=" << r << " nt=" << nt;
    }
    // the 13 tokens as batches of 9, 3 and 1 (interleaved): each as in its own batch
    const std::vector<uint32_t> seq = {0, 1, 0, 0, 2, 0, 1, 0, 0, 0, 1, 0, 0};
    std::vector<uint32_t> pos(n_tokens), len(n_tokens), count(3, 0), seen(3, 0);
    for (uint32_t s : seq) ++count[s];
    for (size_t tok = 0; tok < n_tokens; ++tok) {
      pos[tok] = seen[seq[tok]]++;
      len[tok] = count[seq[tok]];
    }
    const TokenBatches tb{pos.data(), len.data()};
    std::vector<float> Y(n_tokens * rows, -1.0f);
    matmul(t, W.data(), rows, cols, X.data(), n_tokens, Y.data(), th, &tb);
    for (size_t tok = 0; tok < n_tokens; ++tok)
      for (size_t r = 0; r < rows; ++r)
        ASSERT_EQ(Y[tok * rows + r], want_at(tok, pos[tok], len[tok], r)) << type_name(t) << " batches tok=" << tok;
  }
}

INSTANTIATE_TEST_SUITE_P(AllTypes, QuantDotMatrix,
                         ::testing::Combine(::testing::ValuesIn(kAllTypes), ::testing::Values(size_t{37}, size_t{40})),
                         [](const auto& info) {
                           return std::string(type_name(std::get<0>(info.param))) + "_rows" + std::to_string(std::get<1>(info.param));
                         });

TEST(QuantDot, LlamaCppOrderPerBatch) {
  // Q4_K with 8k rows: gemm for the first n - n%4 tokens of a batch, gemv for the rest
  EXPECT_EQ(llama_order(GgmlType::Q4_K, 640, 0, 3), KOrder::RepackGemv);
  EXPECT_EQ(llama_order(GgmlType::Q4_K, 640, 3, 4), KOrder::RepackGemm);
  EXPECT_EQ(llama_order(GgmlType::Q4_K, 640, 7, 9), KOrder::RepackGemm);
  EXPECT_EQ(llama_order(GgmlType::Q4_K, 640, 8, 9), KOrder::RepackGemv);
  // other K types (and Q4_K that is not repacked): tiled from 8 tokens
  for (GgmlType k : {GgmlType::Q5_K, GgmlType::Q6_K}) {
    EXPECT_EQ(llama_order(k, 640, 0, 7), KOrder::VecDot);
    EXPECT_EQ(llama_order(k, 640, 0, 8), KOrder::Tiled);
  }
  EXPECT_EQ(llama_order(GgmlType::Q4_K, 37, 0, 8), KOrder::Tiled);
  EXPECT_EQ(llama_order(GgmlType::Q4_1, 640, 0, 64), KOrder::VecDot);
  // Q4_0 with 8k rows: repacked, one order (its gemm sums as its gemv) for every token
  for (uint32_t pos : {0u, 3u, 8u}) EXPECT_EQ(llama_order(GgmlType::Q4_0, 640, pos, 9), KOrder::RepackGemv);
  EXPECT_EQ(llama_order(GgmlType::Q4_0, 37, 0, 9), KOrder::VecDot);
}

TEST(QuantDot, RepackedQ4_0IsOneRunningSumOfBlockDots) {
  // The repacked order by hand: acc = fma(float(integer dot of block b), d_w * d_x, acc).
  std::mt19937 rng(77);
  const size_t n = 32 * 9;
  const auto w = random_weights(GgmlType::Q4_0, 1, n, rng);
  const auto x = random_floats(n, rng);
  const auto a = acts(GgmlType::Q4_0, x.data(), n);
  const auto* wb = reinterpret_cast<const loom::kernels::BlockQ4_0*>(w.data());
  const auto* ab = reinterpret_cast<const loom::kernels::BlockQ8_0*>(a.data());
  float acc = 0;
  for (size_t b = 0; b < n / 32; ++b) {
    int32_t isum = 0;
    for (int k = 0; k < 16; ++k) {  // element k: low nibble of qs[k]; element k + 16: its high nibble
      isum += ((wb[b].qs[k] & 15) - 8) * ab[b].qs[k];
      isum += ((wb[b].qs[k] >> 4) - 8) * ab[b].qs[k + 16];
    }
    acc = std::fma(static_cast<float>(isum), f16_to_f32(wb[b].d) * f16_to_f32(ab[b].d), acc);
  }
  EXPECT_EQ(vec_dot_scalar(GgmlType::Q4_0, n, w.data(), a.data(), KOrder::RepackGemv), acc);
  EXPECT_EQ(vec_dot(GgmlType::Q4_0, n, w.data(), a.data(), KOrder::RepackGemv), acc);
}

TEST_P(QuantDotType, RejectsPartialBlocks) {
  const GgmlType t = GetParam();
  const size_t be = type_size(t).block_elems;
  if (be == 1) GTEST_SKIP() << "every n is whole for a float type";
  std::vector<uint8_t> buf(4096);
  std::vector<float> x(4096, 1.0f), y(4);
  EXPECT_THROW(vec_dot(t, be + 1, buf.data(), buf.data()), std::invalid_argument);
  EXPECT_THROW(vec_dot_scalar(t, be / 2, buf.data(), buf.data()), std::invalid_argument);
  EXPECT_THROW(activation_row_bytes(t, be - 1), std::invalid_argument);
  EXPECT_THROW(quantize_activations(t, x.data(), buf.data(), be + 3), std::invalid_argument);
  EXPECT_THROW(matvec(t, buf.data(), 1, be + 16, x.data(), y.data()), std::invalid_argument);
  EXPECT_THROW(matmul(t, buf.data(), 1, be + 16, x.data(), 1, y.data()), std::invalid_argument);
}

INSTANTIATE_TEST_SUITE_P(AllTypes, QuantDotType, ::testing::ValuesIn(kAllTypes),
                         [](const ::testing::TestParamInfo<GgmlType>& i) { return std::string(type_name(i.param)); });

TEST(QuantDot, RejectsUnsupportedTypes) {
  std::vector<uint8_t> buf(1024);
  EXPECT_THROW(vec_dot(GgmlType::Q2_K, 256, buf.data(), buf.data()), std::invalid_argument);
  EXPECT_THROW(vec_dot(GgmlType::Q8_K, 256, buf.data(), buf.data()), std::invalid_argument);
  EXPECT_THROW(quantize_row_q8_0(nullptr, buf.data(), 33), std::invalid_argument);
  EXPECT_THROW(quantize_row_q8_K(nullptr, buf.data(), 128), std::invalid_argument);
}

// ---------------------------------------------------------------- speed (report only)

namespace {
// Fastest of several short timed batches: the machine is shared, the minimum is the kernel.
double seconds_per_call(const std::function<void()>& f, double budget) {
  f();  // warm up
  double best = 1e30, total = 0;
  while (total < budget) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < 5; ++i) f();
    const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::min(best, el / 5);
    total += el;
  }
  return best;
}
}  // namespace

TEST(QuantDotSpeed, Report) {
  std::printf("simd compiled: %s\n", simd_compiled().c_str());
  struct Case {
    GgmlType t;
    size_t rows, cols;
  } cases[] = {{GgmlType::Q4_1, 576, 1536}, {GgmlType::Q4_1, 1536, 576}, {GgmlType::Q8_0, 576, 1536},
               {GgmlType::Q4_K, 640, 2048}, {GgmlType::Q6_K, 640, 2048}, {GgmlType::F16, 576, 1536},
               {GgmlType::Q5_0, 2048, 640}, {GgmlType::Q4_K, 640, 1024}};
  std::mt19937 rng(9);
  for (const Case& c : cases) {
    const auto W = random_weights(c.t, c.rows, c.cols, rng);
    const size_t nt = 32;
    const auto X = random_floats(nt * c.cols, rng);
    std::vector<float> Y(nt * c.rows);
    const double mv = seconds_per_call([&] { matvec(c.t, W.data(), c.rows, c.cols, X.data(), Y.data()); }, 0.15);
    const double mm = seconds_per_call([&] { matmul(c.t, W.data(), c.rows, c.cols, X.data(), nt, Y.data()); }, 0.15) / nt;
    const double flop = 2.0 * c.rows * c.cols;
    std::printf("%-5s %5zux%-5zu 1 thread: matvec %7.1f us  %6.2f Mrows/s  %6.1f GFLOP/s | matmul(%zu tok) %7.1f us/token  %6.1f GFLOP/s  x%.2f\n",
                type_name(c.t), c.rows, c.cols, mv * 1e6, c.rows / mv / 1e6, flop / mv / 1e9, nt, mm * 1e6,
                flop / mm / 1e9, mv / mm);
  }
}

// F32 matrices (LoRA adapters, F32 files) as llama.cpp multiplies them: one token, or a shape
// tinyBLAS declines, in ggml_vec_dot_f32's order (4 x 8 lanes over 32-element steps, the rest
// added one by one: rounded products for whole groups of 4, the last n % 4 fused, as GCC compiles
// ggml's loop); a batch of 2+ tokens with cols % 8 == 0 and rows % 4 == 0 in
// tinyBLAS's (one 8-lane accumulator, then the lanes). Bit-equal to these formulas.
TEST(QuantDot, F32MatmulOrdersAreLlamaCpps) {
  auto vecdot = [](const float* w, const float* x, size_t n) {
    const size_t np = n / 32 * 32;
    float a[4][8] = {};
    for (size_t i = 0; i < np; i += 32)
      for (size_t c = 0; c < 4; ++c)
        for (size_t l = 0; l < 8; ++l) a[c][l] = std::fma(w[i + 8 * c + l], x[i + 8 * c + l], a[c][l]);
    float r[8];
    for (size_t l = 0; l < 8; ++l) r[l] = (a[0][l] + a[2][l]) + (a[1][l] + a[3][l]);
    float sum = ((r[0] + r[4]) + (r[1] + r[5])) + ((r[2] + r[6]) + (r[3] + r[7]));
    const size_t nq = np + (n - np) / 4 * 4;
    for (size_t i = np; i < nq; ++i) {
      const float p = w[i] * x[i];
      sum += p;
    }
    for (size_t i = nq; i < n; ++i) sum = std::fma(w[i], x[i], sum);
    return sum;
  };
  auto tiny = [](const float* w, const float* x, size_t n) {
    float a[8] = {};
    for (size_t i = 0; i < n; i += 8)
      for (size_t l = 0; l < 8; ++l) a[l] = std::fma(w[i + l], x[i + l], a[l]);
    return ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]));
  };
  std::mt19937 rng(77);
  for (size_t rows : {4, 6, 8}) {
    for (size_t cols : {4, 7, 8, 12, 40, 45, 576}) {
      const auto Wb = random_floats(rows * cols, rng), X = random_floats(3 * cols, rng);
      const float* W = Wb.data();
      std::vector<float> y1(rows), y3(3 * rows);
      matvec(GgmlType::F32, W, rows, cols, X.data(), y1.data(), {});
      matmul(GgmlType::F32, W, rows, cols, X.data(), 3, y3.data(), {});
      const bool tinyblas = cols % 8 == 0 && rows % 4 == 0;
      for (size_t r = 0; r < rows; ++r) {
        EXPECT_EQ(y1[r], vecdot(W + r * cols, X.data(), cols)) << rows << "x" << cols;
        for (size_t t = 0; t < 3; ++t)
          EXPECT_EQ(y3[t * rows + r], tinyblas ? tiny(W + r * cols, X.data() + t * cols, cols) : vecdot(W + r * cols, X.data() + t * cols, cols))
              << rows << "x" << cols << " token " << t;
      }
    }
  }
}
