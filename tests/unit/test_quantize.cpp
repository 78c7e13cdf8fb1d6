// Quantization (lib/quant/quantize.h): byte-identical to llama.cpp's ggml_quantize_chunk without
// an importance matrix (goldens: tests/reference/gen_quant_row_goldens.py), round trips within
// each type's error bound, errors for unsupported types and partial blocks, and non-finite input.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "loom/core/error.h"
#include "loom/quant/quantize.h"
#include "loom/tensor/dequant.h"

using namespace loom;
using kernels::GgmlType;

namespace {

const std::string kDir = std::string(LOOM_SOURCE_DIR) + "/tests/reference/golden/quant_rows/";
constexpr size_t kRow = 256;  // manifest.json's n_per_row

std::string slurp(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

std::vector<float> floats(const std::string& file) {
  const std::string b = slurp(kDir + file);
  std::vector<float> v(b.size() / 4);
  std::memcpy(v.data(), b.data(), v.size() * 4);
  return v;
}

// Row names from manifest.json ("rows" then "special_rows"), for failure messages.
std::vector<std::string> row_names() {
  const std::string m = slurp(kDir + "manifest.json");
  std::vector<std::string> names;
  for (const char* key : {"\"rows\"", "\"special_rows\""}) {
    size_t at = m.find(key);
    if (at == std::string::npos) continue;
    const size_t end = m.find(']', at);
    for (at = m.find('"', m.find('[', at)); at < end; at = m.find('"', at)) {
      const size_t close = m.find('"', at + 1);
      names.push_back(m.substr(at + 1, close - at - 1));
      at = close + 1;
    }
  }
  return names;
}

struct Golden {
  const char* name;
  GgmlType type;
  bool with_specials;
};
const Golden kGoldens[] = {
    {"F16", GgmlType::F16, true},    {"BF16", GgmlType::BF16, true},  {"Q8_0", GgmlType::Q8_0, false},
    {"Q4_0", GgmlType::Q4_0, false}, {"Q4_1", GgmlType::Q4_1, false}, {"Q5_0", GgmlType::Q5_0, false},
    {"Q5_1", GgmlType::Q5_1, false}, {"Q4_K", GgmlType::Q4_K, false}, {"Q5_K", GgmlType::Q5_K, false},
    {"Q6_K", GgmlType::Q6_K, false},
};

class QuantGolden : public ::testing::TestWithParam<Golden> {};

TEST_P(QuantGolden, BytesEqualLlamaCpp) {
  const Golden g = GetParam();
  std::vector<float> x = floats("inputs.f32");
  if (g.with_specials) {
    const std::vector<float> s = floats("specials.f32");
    x.insert(x.end(), s.begin(), s.end());
  }
  const std::string want = slurp(kDir + g.name + std::string(".bin"));
  const std::vector<std::string> names = row_names();
  ASSERT_GE(x.size(), 40 * kRow) << "missing inputs in " << kDir;
  ASSERT_EQ(x.size() % kRow, 0u);
  const size_t rows = x.size() / kRow, rb = quant::row_bytes(g.type, kRow);
  ASSERT_EQ(want.size(), rows * rb) << g.name;
  ASSERT_GE(names.size(), rows);
  std::string got(want.size(), '\0');
  quant::quantize_row(g.type, x.data(), got.data(), x.size());
  size_t bad_rows = 0;
  for (size_t r = 0; r < rows; ++r) {
    for (size_t i = 0; i < rb; ++i) {
      if (got[r * rb + i] != want[r * rb + i]) {
        if (++bad_rows <= 5)
          ADD_FAILURE() << g.name << " row " << r << " (" << names[r] << "): first difference at byte " << i << " of "
                        << rb << ": " << int(uint8_t(got[r * rb + i])) << " vs llama.cpp "
                        << int(uint8_t(want[r * rb + i]));
        break;
      }
    }
  }
  EXPECT_EQ(bad_rows, 0u) << g.name << ": rows differing from llama.cpp, of " << rows;
  // Row by row gives the same bytes as all at once.
  std::string one(rb, '\0');
  quant::quantize_row(g.type, x.data() + 3 * kRow, one.data(), kRow);
  EXPECT_EQ(one, got.substr(3 * rb, rb));
}

INSTANTIATE_TEST_SUITE_P(Types, QuantGolden, ::testing::ValuesIn(kGoldens),
                         [](const auto& info) { return std::string(info.param.name); });

// Importance-weighted quantization (llama-quantize --imatrix): bytes of ggml_quantize_chunk with
// quant_weights, for three column-weight vectors over 256-wide rows and one over 1024-wide rows
// (the 32-element types weigh each block by the whole row's mean square).
class QuantImportanceGolden : public ::testing::TestWithParam<Golden> {};

TEST_P(QuantImportanceGolden, BytesEqualLlamaCpp) {
  const Golden g = GetParam();
  ASSERT_TRUE(quant::takes_importance(g.type));
  const std::vector<float> x = floats("inputs.f32");
  const std::vector<float> w = floats("importance.f32");
  constexpr size_t kLong = 1024, kShort = 3;  // manifest.json's importance section
  ASSERT_EQ(w.size(), kShort * kRow + kLong);
  const std::vector<std::string> names = row_names();
  auto check = [&](const std::string& file, size_t n_per_row, size_t rows, const float* weights) {
    const std::string want = slurp(kDir + g.name + file);
    const size_t rb = quant::row_bytes(g.type, n_per_row);
    ASSERT_EQ(want.size(), rows * rb) << g.name << file;
    std::string got(want.size(), '\0');
    quant::quantize_rows(g.type, x.data(), got.data(), rows, n_per_row, weights);
    size_t bad = 0;
    for (size_t r = 0; r < rows; ++r) {
      const size_t at = std::mismatch(want.begin() + r * rb, want.begin() + (r + 1) * rb, got.begin() + r * rb).first -
                        want.begin();
      if (at == (r + 1) * rb) continue;
      if (++bad <= 3)
        ADD_FAILURE() << g.name << file << " row " << r << (n_per_row == kRow ? " (" + names[r] + ")" : std::string())
                      << ": first difference at byte " << at - r * rb << " of " << rb;
    }
    EXPECT_EQ(bad, 0u) << g.name << file << ": rows differing from llama.cpp, of " << rows;
  };
  const size_t rows = x.size() / kRow;
  for (size_t k = 0; k < kShort; ++k) check(".iw" + std::to_string(k) + ".bin", kRow, rows, w.data() + k * kRow);
  check(".iw-long.bin", kLong, x.size() / kLong, w.data() + kShort * kRow);
  // Without weights: quantize_row's bytes.
  std::string plain(quant::row_bytes(g.type, x.size()), '\0'), unweighted(plain.size(), '\0');
  quant::quantize_row(g.type, x.data(), plain.data(), x.size());
  quant::quantize_rows(g.type, x.data(), unweighted.data(), rows, kRow, nullptr);
  EXPECT_EQ(plain, unweighted);
}

INSTANTIATE_TEST_SUITE_P(Types, QuantImportanceGolden,
                         ::testing::Values(Golden{"Q4_0", GgmlType::Q4_0, false}, Golden{"Q4_1", GgmlType::Q4_1, false},
                                           Golden{"Q5_0", GgmlType::Q5_0, false}, Golden{"Q5_1", GgmlType::Q5_1, false},
                                           Golden{"Q4_K", GgmlType::Q4_K, false}, Golden{"Q5_K", GgmlType::Q5_K, false},
                                           Golden{"Q6_K", GgmlType::Q6_K, false}),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(Quantize, LaneParallelAndScalarFitsAgree) {
  // A row of 9 blocks with weights: the first 8 are fitted 8 at a time (one per SIMD lane), the
  // 9th by the scalar fit. Block 8 repeats block 0 (same values, same weights, same row statistics),
  // so its bytes must equal block 0's whichever path fitted it.
  std::mt19937 rng(31);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::gamma_distribution<float> gd(0.5f, 2.0f);
  for (GgmlType t : {GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1}) {
    const size_t n = 9 * 32;
    std::vector<float> x(n), w(n);
    for (size_t i = 0; i < 8 * 32; ++i) {
      x[i] = nd(rng) * (i % 7 == 0 ? 4.0f : 1.0f);
      w[i] = gd(rng);
    }
    for (size_t i = 0; i < 32; ++i) {
      x[8 * 32 + i] = x[i];
      w[8 * 32 + i] = w[i];
    }
    const size_t bb = kernels::type_size(t).block_bytes;
    std::string q(quant::row_bytes(t, n), '\0');
    quant::quantize_rows(t, x.data(), q.data(), 1, n, w.data());
    EXPECT_EQ(q.substr(8 * bb, bb), q.substr(0, bb)) << kernels::type_name(t);
  }
}

TEST(Quantize, TypesWithoutImportanceIgnoreIt) {
  std::vector<float> x(512), w(256, 0.5f);
  for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(0.37f * float(i));
  for (GgmlType t : {GgmlType::F32, GgmlType::F16, GgmlType::BF16, GgmlType::Q8_0}) {
    EXPECT_FALSE(quant::takes_importance(t));
    std::string a(quant::row_bytes(t, x.size()), '\0'), b(a.size(), '\0');
    quant::quantize_row(t, x.data(), a.data(), x.size());
    quant::quantize_rows(t, x.data(), b.data(), 2, 256, w.data());
    EXPECT_EQ(a, b) << kernels::type_name(t);
  }
}

// dequantize(quantize(x)) against x: max error per block at most `rel` of the block's max |x|.
struct Bound {
  GgmlType type;
  double rel;
};

TEST(Quantize, RoundTripWithinTypeError) {
  std::mt19937 rng(12345);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  const size_t n = 4096;
  std::vector<float> x(n);
  for (auto& v : x) v = nd(rng);
  // Half a quantization step of each grid relative to the block's range, plus the f16 rounding of
  // the scales; the K types allow more (6-bit sub-scales, least-squares fit rather than max).
  const Bound bounds[] = {{GgmlType::F32, 0.0},    {GgmlType::F16, 1e-3},   {GgmlType::BF16, 4e-3},
                          {GgmlType::Q8_0, 0.006}, {GgmlType::Q4_0, 0.13},  {GgmlType::Q4_1, 0.08},
                          {GgmlType::Q5_0, 0.07},  {GgmlType::Q5_1, 0.04},  {GgmlType::Q4_K, 0.15},
                          {GgmlType::Q5_K, 0.08},  {GgmlType::Q6_K, 0.04}};
  for (const Bound& b : bounds) {
    std::vector<uint8_t> q(quant::row_bytes(b.type, n));
    quant::quantize_row(b.type, x.data(), q.data(), n);
    std::vector<float> y(n);
    tensor::dequantize_row(b.type, q.data(), y.data(), n);
    double sq = 0;
    for (size_t blk = 0; blk < n; blk += 256) {
      float amax = 0, err = 0;
      for (size_t i = blk; i < blk + 256; ++i) {
        amax = std::max(amax, std::fabs(x[i]));
        err = std::max(err, std::fabs(x[i] - y[i]));
        sq += double(x[i] - y[i]) * (x[i] - y[i]);
      }
      EXPECT_LE(err, b.rel * amax) << kernels::type_name(b.type) << " block at " << blk;
    }
    const double rms = std::sqrt(sq / n);
    if (b.type != GgmlType::F32) {
      EXPECT_GT(rms, 0.0) << kernels::type_name(b.type);
    }
  }
  // More bits, less error: Q4_K < Q5_K < Q6_K < Q8_0 in rms.
  auto rms_of = [&](GgmlType t) {
    std::vector<uint8_t> q(quant::row_bytes(t, n));
    quant::quantize_row(t, x.data(), q.data(), n);
    std::vector<float> y(n);
    tensor::dequantize_row(t, q.data(), y.data(), n);
    double s = 0;
    for (size_t i = 0; i < n; ++i) s += double(x[i] - y[i]) * (x[i] - y[i]);
    return std::sqrt(s / n);
  };
  EXPECT_GT(rms_of(GgmlType::Q4_0), rms_of(GgmlType::Q5_0));
  EXPECT_GT(rms_of(GgmlType::Q4_K), rms_of(GgmlType::Q5_K));
  EXPECT_GT(rms_of(GgmlType::Q5_K), rms_of(GgmlType::Q6_K));
  EXPECT_GT(rms_of(GgmlType::Q6_K), rms_of(GgmlType::Q8_0));
}

TEST(Quantize, F16ConversionMatchesExactWidening) {
  // Every half that is finite converts back to itself; NaN becomes the canonical quiet NaN.
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = tensor::f16_to_f32(static_cast<uint16_t>(h));
    const uint16_t back = quant::f32_to_f16(f);
    if (std::isnan(f))
      EXPECT_EQ(back, (h & 0x8000) | 0x7e00) << h;
    else
      EXPECT_EQ(back, h) << h;
  }
}

TEST(Quantize, UnsupportedTypeIsUsageErrorListingTypes) {
  std::vector<float> x(256, 1.0f);
  std::vector<uint8_t> out(1024);
  for (GgmlType t : {GgmlType::Q8_1, GgmlType::Q8_K, GgmlType::Q2_K, GgmlType::Q3_K, GgmlType(99)}) {
    EXPECT_FALSE(quant::can_quantize(t));
    try {
      quant::quantize_row(t, x.data(), out.data(), x.size());
      ADD_FAILURE() << "no error for type " << uint32_t(t);
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), Error::Kind::Usage);
      EXPECT_NE(std::string(e.what()).find("Q4_K"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("Q8_0"), std::string::npos) << e.what();
    }
  }
  // A partial block.
  try {
    quant::quantize_row(GgmlType::Q4_K, x.data(), out.data(), 128);
    ADD_FAILURE() << "no error for 128 elements of Q4_K";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), Error::Kind::Usage);
  }
  EXPECT_EQ(quant::row_bytes(GgmlType::Q6_K, 512), 420u);
  EXPECT_EQ(quant::row_bytes(GgmlType::F16, 3), 6u);
}

// NaN and infinities: no crash, deterministic output, finite rows of other blocks unaffected.
// (What ggml writes for such blocks is garbage or NaN scales; loom reproduces ggml's operations
// but only the F16/BF16 bytes are checked against llama.cpp, by the goldens' special rows.)
TEST(Quantize, NonFiniteInputDoesNotCrash) {
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> x(512);
  std::mt19937 rng(3);
  std::normal_distribution<float> nd;
  for (auto& v : x) v = nd(rng);
  x[5] = nan;
  x[40] = inf;
  x[70] = -inf;
  x[100] = nan;
  x[101] = inf;
  for (GgmlType t : {GgmlType::F16, GgmlType::BF16, GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0,
                     GgmlType::Q5_1, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K}) {
    const size_t rb = quant::row_bytes(t, x.size());
    std::vector<uint8_t> a(rb), b(rb), clean(rb);
    quant::quantize_row(t, x.data(), a.data(), x.size());
    quant::quantize_row(t, x.data(), b.data(), x.size());
    EXPECT_EQ(a, b) << kernels::type_name(t);
    // The second super-block (elements 256..511) has no non-finite value: same bytes as alone.
    const size_t half = quant::row_bytes(t, 256);
    quant::quantize_row(t, x.data() + 256, clean.data(), 256);
    EXPECT_TRUE(std::equal(clean.begin(), clean.begin() + half, a.begin() + half)) << kernels::type_name(t);
  }
}

}  // namespace
