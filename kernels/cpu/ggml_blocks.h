// Tensor element types of GGUF files (ggml's numbering) and the byte layout of their quantized
// blocks. These layouts are a file format: they must match ggml's exactly, byte for byte.
//
//   type    id  block  bytes  layout
//   F32      0      1      4
//   F16      1      1      2  IEEE half
//   Q4_0     2     32     18  d (f16), 16 bytes of 4-bit quants: x = d * (q - 8)
//   Q4_1     3     32     20  d, m (f16), 16 bytes: x = d * q + m
//   Q5_0     6     32     22  d, qh[4] (5th bits), qs[16]: x = d * (q - 16)
//   Q5_1     7     32     24  d, m, qh[4], qs[16]: x = d * q + m
//   Q8_0     8     32     34  d, 32 int8: x = d * q
//   Q8_1     9     32     36  d, s = d * sum(q) (f16), 32 int8 (activations only)
//   Q4_K    12    256    144  d, dmin (f16), scales[12] (8 six-bit scale/min pairs), qs[128]
//   Q5_K    13    256    176  d, dmin, scales[12], qh[32], qs[128]
//   Q6_K    14    256    210  ql[128], qh[64], scales[16] (int8), d (f16)
//   Q8_K    15    256    292  d (f32), qs[256] int8, bsums[16] int16 (activations only)
//   BF16    30      1      2  bfloat16
#pragma once
#include <cstddef>
#include <cstdint>

namespace loom::kernels {

enum class GgmlType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  BF16 = 30,
};

constexpr int kQK = 32;    // elements per block of the 32-element types
constexpr int kQKK = 256;  // elements per super-block of the K types
constexpr int kKScaleBytes = 12;

using f16_bits = uint16_t;  // IEEE half, as stored
using bf16_bits = uint16_t;

struct BlockQ4_0 {
  f16_bits d;
  uint8_t qs[kQK / 2];
};
struct BlockQ4_1 {
  f16_bits d, m;
  uint8_t qs[kQK / 2];
};
struct BlockQ5_0 {
  f16_bits d;
  uint8_t qh[4];
  uint8_t qs[kQK / 2];
};
struct BlockQ5_1 {
  f16_bits d, m;
  uint8_t qh[4];
  uint8_t qs[kQK / 2];
};
struct BlockQ8_0 {
  f16_bits d;
  int8_t qs[kQK];
};
struct BlockQ8_1 {
  f16_bits d, s;
  int8_t qs[kQK];
};
struct BlockQ4_K {
  f16_bits d, dmin;
  uint8_t scales[kKScaleBytes];
  uint8_t qs[kQKK / 2];
};
struct BlockQ5_K {
  f16_bits d, dmin;
  uint8_t scales[kKScaleBytes];
  uint8_t qh[kQKK / 8];
  uint8_t qs[kQKK / 2];
};
struct BlockQ6_K {
  uint8_t ql[kQKK / 2];
  uint8_t qh[kQKK / 4];
  int8_t scales[kQKK / 16];
  f16_bits d;
};
struct BlockQ8_K {
  float d;
  int8_t qs[kQKK];
  int16_t bsums[kQKK / 16];
};

static_assert(sizeof(BlockQ4_0) == 18 && sizeof(BlockQ4_1) == 20 && sizeof(BlockQ5_0) == 22 && sizeof(BlockQ5_1) == 24);
static_assert(sizeof(BlockQ8_0) == 34 && sizeof(BlockQ8_1) == 36);
static_assert(sizeof(BlockQ4_K) == 144 && sizeof(BlockQ5_K) == 176 && sizeof(BlockQ6_K) == 210 && sizeof(BlockQ8_K) == 292);

// Elements per block and bytes per block of a type; {0, 0} for a type loom does not handle.
struct TypeSize {
  size_t block_elems, block_bytes;
};
constexpr TypeSize type_size(GgmlType t) {
  switch (t) {
    case GgmlType::F32: return {1, 4};
    case GgmlType::F16: return {1, 2};
    case GgmlType::BF16: return {1, 2};
    case GgmlType::Q4_0: return {kQK, sizeof(BlockQ4_0)};
    case GgmlType::Q4_1: return {kQK, sizeof(BlockQ4_1)};
    case GgmlType::Q5_0: return {kQK, sizeof(BlockQ5_0)};
    case GgmlType::Q5_1: return {kQK, sizeof(BlockQ5_1)};
    case GgmlType::Q8_0: return {kQK, sizeof(BlockQ8_0)};
    case GgmlType::Q8_1: return {kQK, sizeof(BlockQ8_1)};
    case GgmlType::Q4_K: return {kQKK, sizeof(BlockQ4_K)};
    case GgmlType::Q5_K: return {kQKK, sizeof(BlockQ5_K)};
    case GgmlType::Q6_K: return {kQKK, sizeof(BlockQ6_K)};
    case GgmlType::Q8_K: return {kQKK, sizeof(BlockQ8_K)};
    default: return {0, 0};
  }
}

// ggml's name of a type ("Q4_K"), or nullptr for an id not listed in GgmlType.
constexpr const char* type_name(GgmlType t) {
  switch (t) {
    case GgmlType::F32: return "F32";
    case GgmlType::F16: return "F16";
    case GgmlType::Q4_0: return "Q4_0";
    case GgmlType::Q4_1: return "Q4_1";
    case GgmlType::Q5_0: return "Q5_0";
    case GgmlType::Q5_1: return "Q5_1";
    case GgmlType::Q8_0: return "Q8_0";
    case GgmlType::Q8_1: return "Q8_1";
    case GgmlType::Q2_K: return "Q2_K";
    case GgmlType::Q3_K: return "Q3_K";
    case GgmlType::Q4_K: return "Q4_K";
    case GgmlType::Q5_K: return "Q5_K";
    case GgmlType::Q6_K: return "Q6_K";
    case GgmlType::Q8_K: return "Q8_K";
    case GgmlType::BF16: return "BF16";
  }
  return nullptr;
}

}  // namespace loom::kernels
