// Dequantization: bit-exact with the `gguf` package's dequantizers (goldens:
// tests/reference/gen_quant_goldens.py), whole real tensors by hash, the vector path equal to the
// scalar one, exact f16/bf16 widening of every bit pattern, and errors.
#include <gtest/gtest.h>

#include <array>
#include <bit>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "loom/core/error.h"
#include "loom/gguf/gguf.h"
#include "loom/io/jsonl.h"
#include "loom/tensor/dequant.h"

using namespace loom;
using kernels::GgmlType;
namespace fs = std::filesystem;

namespace {

const std::string kDir = std::string(LOOM_SOURCE_DIR) + "/tests/reference/golden/quant/";

std::string slurp(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

// manifest.json has one JSON object per line for each type and each hashed tensor.
std::vector<io::Record> manifest_entries(std::string_view key) {
  std::vector<io::Record> out;
  std::string text = slurp(kDir + "manifest.json");
  size_t at = 0;
  while (at < text.size()) {
    size_t end = text.find('\n', at);
    if (end == std::string::npos) end = text.size();
    std::string_view line(text.data() + at, end - at);
    at = end + 1;
    while (!line.empty() && line.front() == ' ') line.remove_prefix(1);
    if (!line.empty() && line.back() == ',') line.remove_suffix(1);
    if (line.size() < 2 || line.front() != '{' || line.back() != '}') continue;
    io::Record r = io::Record::parse(line);
    if (r.has(key)) out.push_back(std::move(r));
  }
  return out;
}

// SHA-256 (FIPS 180-4), enough to compare with hashlib's digests.
class Sha256 {
 public:
  void update(const void* data, size_t n) {
    const auto* p = static_cast<const uint8_t*>(data);
    len_ += n;
    while (n) {
      size_t k = std::min(n, size_t{64} - fill_);
      std::memcpy(buf_ + fill_, p, k);
      fill_ += k, p += k, n -= k;
      if (fill_ == 64) block(buf_), fill_ = 0;
    }
  }
  std::string hex() {
    uint64_t bits = len_ * 8;
    uint8_t pad = 0x80, zero = 0;
    update(&pad, 1);
    while (fill_ != 56) update(&zero, 1);
    uint8_t l[8];
    for (int i = 0; i < 8; ++i) l[i] = static_cast<uint8_t>(bits >> (56 - 8 * i));
    update(l, 8);
    std::string s;
    for (uint32_t v : h_) s += fmt_hex(v);
    return s;
  }

 private:
  static std::string fmt_hex(uint32_t v) {
    static const char* d = "0123456789abcdef";
    std::string s(8, '0');
    for (int i = 7; i >= 0; --i, v >>= 4) s[i] = d[v & 15];
    return s;
  }
  void block(const uint8_t* p) {
    static const uint32_t k[64] = {
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01,
        0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc,
        0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
        0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08,
        0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
        0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};
    uint32_t w[64];
    for (int i = 0; i < 16; ++i) w[i] = uint32_t(p[4 * i]) << 24 | uint32_t(p[4 * i + 1]) << 16 | uint32_t(p[4 * i + 2]) << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; ++i) {
      uint32_t s0 = std::rotr(w[i - 15], 7) ^ std::rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
      uint32_t s1 = std::rotr(w[i - 2], 17) ^ std::rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
      w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h_[0], b = h_[1], c = h_[2], d = h_[3], e = h_[4], f = h_[5], g = h_[6], h = h_[7];
    for (int i = 0; i < 64; ++i) {
      uint32_t t1 = h + (std::rotr(e, 6) ^ std::rotr(e, 11) ^ std::rotr(e, 25)) + ((e & f) ^ (~e & g)) + k[i] + w[i];
      uint32_t t2 = (std::rotr(a, 2) ^ std::rotr(a, 13) ^ std::rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
      h = g, g = f, f = e, e = d + t1, d = c, c = b, b = a, a = t1 + t2;
    }
    uint32_t v[8] = {a, b, c, d, e, f, g, h};
    for (int i = 0; i < 8; ++i) h_[i] += v[i];
  }
  uint32_t h_[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  uint8_t buf_[64];
  size_t fill_ = 0;
  uint64_t len_ = 0;
};

// Index of the first float whose bits differ, or -1.
long first_difference(const float* a, const float* b, size_t n) {
  for (size_t i = 0; i < n; ++i)
    if (std::bit_cast<uint32_t>(a[i]) != std::bit_cast<uint32_t>(b[i])) return static_cast<long>(i);
  return -1;
}

// The plain definition of IEEE binary16: (-1)^s * 2^(e-15) * 1.m, subnormals 2^-14 * 0.m.
uint32_t f16_reference_bits(uint16_t h) {
  int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
  if (e == 31) return (uint32_t(s) << 31) | 0x7f800000u | (uint32_t(m) << 13);  // inf; NaN, payload kept
  double v = e == 0 ? std::ldexp(m, -24) : std::ldexp(1024 + m, e - 25);
  return std::bit_cast<uint32_t>(static_cast<float>(s ? -v : v));
}

}  // namespace

TEST(Dequant, GoldensAreBitExact) {
  auto types = manifest_entries("block_bytes");
  ASSERT_GE(types.size(), 12u) << "tests/reference/golden/quant/manifest.json";
  for (const io::Record& t : types) {
    std::string name = t.get_string("type").value();
    SCOPED_TRACE(name);
    auto type = static_cast<GgmlType>(t.get_int("id").value());
    ASSERT_STREQ(kernels::type_name(type), name.c_str());
    size_t blocks = t.get_int("blocks").value(), elems = t.get_int("block_elems").value(), bytes = t.get_int("block_bytes").value();
    ASSERT_EQ(kernels::type_size(type).block_elems, elems);
    ASSERT_EQ(kernels::type_size(type).block_bytes, bytes);
    std::string data = slurp(kDir + t.get_string("file").value());
    size_t n = blocks * elems;
    ASSERT_EQ(data.size(), blocks * bytes + n * 4);
    std::vector<float> want(n), got(n), scalar(n);
    std::memcpy(want.data(), data.data() + blocks * bytes, n * 4);
    tensor::dequantize_row(type, data.data(), got.data(), n);
    tensor::dequantize_row_scalar(type, data.data(), scalar.data(), n);
    long d = first_difference(got.data(), want.data(), n);
    EXPECT_EQ(d, -1) << "element " << d << " (block " << d / long(elems) << "): got " << (d >= 0 ? got[d] : 0.f) << " want "
                     << (d >= 0 ? want[d] : 0.f) << " [" << tensor::dequant_path() << "]";
    d = first_difference(scalar.data(), want.data(), n);
    EXPECT_EQ(d, -1) << "scalar path, element " << d;
    // block by block from an unaligned address gives the same (rows are packed, blocks unaligned)
    std::string shifted(1, 'x');
    shifted.append(data, 0, blocks * bytes);
    std::vector<float> one(elems);
    for (size_t b = 0; b < blocks; b += 7) {
      tensor::dequantize_row(type, shifted.data() + 1 + b * bytes, one.data(), elems);
      ASSERT_EQ(first_difference(one.data(), want.data() + b * elems, elems), -1) << "block " << b << " alone";
    }
  }
}

TEST(Dequant, WholeTensorsOfTheDefaultModelsMatchTheirHashes) {
  const char* env = std::getenv("LOOM_MODELS");
  fs::path root = env && *env ? fs::path(env) : fs::path(std::getenv("HOME")) / ".cache/loom/models";
  int checked = 0;
  std::string missing;
  for (const io::Record& e : manifest_entries("sha256")) {
    std::string model = e.get_string("model").value(), name = e.get_string("tensor").value();
    fs::path p = root / (model + ".gguf");
    if (!fs::exists(p)) {
      missing += ' ';
      missing += p.string();
      continue;
    }
    SCOPED_TRACE(model + " " + name);
    gguf::File f = gguf::File::open(p.string());
    const gguf::TensorInfo* t = f.find_tensor(name);
    ASSERT_NE(t, nullptr);
    EXPECT_STREQ(kernels::type_name(static_cast<GgmlType>(t->ggml_type)), e.get_string("type").value().c_str());
    std::string_view bytes = f.tensor_data(*t);
    std::vector<float> out(t->n_elements());
    ASSERT_EQ(out.size(), static_cast<size_t>(e.get_int("elements").value()));
    // row by row, as the engine will
    size_t row = t->ne[0], row_bytes = bytes.size() / (out.size() / row);
    for (size_t r = 0; r < out.size() / row; ++r)
      tensor::dequantize_row(static_cast<GgmlType>(t->ggml_type), bytes.data() + r * row_bytes, out.data() + r * row, row);
    Sha256 h;
    h.update(out.data(), out.size() * 4);
    EXPECT_EQ(h.hex(), e.get_string("sha256").value());
    ++checked;
  }
  if (!checked) GTEST_SKIP() << "model files absent:" << missing << " (run scripts/fetch-models)";
  if (!missing.empty()) std::printf("note: skipped tensors of absent models:%s\n", missing.c_str());
}

TEST(Dequant, Sha256KnownAnswers) {
  Sha256 a;
  EXPECT_EQ(a.hex(), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  Sha256 b;
  std::string s(1000, 'a');
  b.update(s.data(), s.size());
  EXPECT_EQ(b.hex(), "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3");
}

// NaN: numpy keeps an f16 NaN's payload (a signalling NaN stays signalling: 0x7c01 ->
// 0x7f802000); so does loom (the F16C instruction would quiet it, so NaNs take the bit path).
TEST(Dequant, EveryF16AndBf16BitPatternWidensExactly) {
  std::vector<uint16_t> all(65536);
  for (uint32_t i = 0; i < 65536; ++i) all[i] = static_cast<uint16_t>(i);
  std::vector<float> row(65536), scalar(65536);
  for (GgmlType t : {GgmlType::F16, GgmlType::BF16}) {
    tensor::dequantize_row(t, all.data(), row.data(), all.size());
    tensor::dequantize_row_scalar(t, all.data(), scalar.data(), all.size());
    for (uint32_t i = 0; i < 65536; ++i) {
      uint32_t want = t == GgmlType::F16 ? f16_reference_bits(uint16_t(i)) : i << 16;
      float one = t == GgmlType::F16 ? tensor::f16_to_f32(uint16_t(i)) : tensor::bf16_to_f32(uint16_t(i));
      ASSERT_EQ(std::bit_cast<uint32_t>(row[i]), want) << kernels::type_name(t) << " " << std::hex << i;
      ASSERT_EQ(std::bit_cast<uint32_t>(scalar[i]), want) << kernels::type_name(t) << " " << std::hex << i;
      ASSERT_EQ(std::bit_cast<uint32_t>(one), want) << kernels::type_name(t) << " " << std::hex << i;
    }
  }
  EXPECT_EQ(std::bit_cast<uint32_t>(tensor::f16_to_f32(0x7c01)), 0x7f802000u);
  EXPECT_EQ(tensor::f16_to_f32(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(tensor::f16_to_f32(0x7bff), 65504.0f);
  // odd lengths: the vector body and the scalar tail agree
  for (size_t n : {1, 7, 9, 15, 17}) {
    std::vector<float> a(n);
    tensor::dequantize_row(GgmlType::F16, all.data() + 0x3c00, a.data(), n);
    for (size_t i = 0; i < n; ++i) EXPECT_EQ(std::bit_cast<uint32_t>(a[i]), f16_reference_bits(uint16_t(0x3c00 + i)));
  }
}

// Random blocks of every type (any bytes, scales forced finite): the vector path gives the
// scalar path's bits. Long rows, so every vector loop runs many times.
TEST(Dequant, SimdPathEqualsScalarPath) {
  std::mt19937_64 rng(7);
  for (GgmlType t : {GgmlType::F32, GgmlType::F16, GgmlType::BF16, GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1,
                     GgmlType::Q8_0, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K, GgmlType::Q8_K}) {
    SCOPED_TRACE(kernels::type_name(t));
    ASSERT_TRUE(tensor::can_dequantize(t));
    auto ts = kernels::type_size(t);
    size_t blocks = 4096 / ts.block_elems * 8 + 3, n = blocks * ts.block_elems;
    std::string bytes(blocks * ts.block_bytes, '\0');
    for (char& c : bytes) c = static_cast<char>(rng());
    for (size_t b = 0; b < blocks && ts.block_elems > 1; ++b) {  // finite f16 scales: exponent < 31
      char* p = bytes.data() + b * ts.block_bytes;
      auto tame = [&](size_t off) { p[off + 1] = static_cast<char>(p[off + 1] & 0x3b); };
      switch (t) {
        case GgmlType::Q4_0: case GgmlType::Q5_0: case GgmlType::Q8_0: tame(0); break;
        case GgmlType::Q4_1: case GgmlType::Q5_1: case GgmlType::Q4_K: case GgmlType::Q5_K: tame(0), tame(2); break;
        case GgmlType::Q6_K: tame(208); break;
        case GgmlType::Q8_K: { float d = 0.01f; std::memcpy(p, &d, 4); break; }
        default: break;
      }
    }
    std::vector<float> a(n), b(n);
    tensor::dequantize_row(t, bytes.data(), a.data(), n);
    tensor::dequantize_row_scalar(t, bytes.data(), b.data(), n);
    long d = first_difference(a.data(), b.data(), n);
    EXPECT_EQ(d, -1) << "element " << d << ": " << (d >= 0 ? a[d] : 0.f) << " vs " << (d >= 0 ? b[d] : 0.f);
  }
  std::printf("dequant path: %s\n", tensor::dequant_path());
}

// Why operation order and FMA cannot change the bits (dequant.cpp): an f16 scale times any
// integer of magnitude up to 128 * 32 (scale times quant, the largest product of any type) is
// exact in float32, so (d * sc) * q == d * (sc * q) == the real product.
TEST(Dequant, ScaleProductsAreExactInFloat32) {
  size_t inexact = 0;
  for (uint32_t h = 0; h < 0x7c00; ++h) {
    float d = tensor::f16_to_f32(static_cast<uint16_t>(h));
    for (int k = 0; k <= 128 * 32; ++k) inexact += static_cast<double>(d * static_cast<float>(k)) != static_cast<double>(d) * k;
  }
  EXPECT_EQ(inexact, 0u);
}

TEST(Dequant, ErrorsAreClear) {
  float out[64];
  char in[1024] = {};
  auto msg = [&](GgmlType t, size_t n) {
    try {
      tensor::dequantize_row(t, in, out, n);
    } catch (const Error& e) {
      EXPECT_EQ(e.exit_status(), 2);
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  EXPECT_NE(msg(GgmlType::Q4_K, 32).find("32 elements of Q4_K: not a whole number of blocks of 256"), std::string::npos);
  EXPECT_NE(msg(GgmlType::Q4_0, 33).find("not a whole number of blocks of 32"), std::string::npos);
  EXPECT_NE(msg(GgmlType::Q2_K, 256).find("cannot dequantize tensor type 10 (Q2_K)"), std::string::npos);
  EXPECT_NE(msg(static_cast<GgmlType>(99), 1).find("type 99 (unknown)"), std::string::npos);
  EXPECT_NE(msg(GgmlType::Q8_1, 32).find("cannot dequantize"), std::string::npos);
  EXPECT_FALSE(tensor::can_dequantize(GgmlType::Q2_K));
  EXPECT_EQ(msg(GgmlType::Q4_0, 0), "accepted");  // nothing to do
}
