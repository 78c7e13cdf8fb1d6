// The safetensors reader (lib/tensor/safetensors.h): a file written by the reference
// implementation (the `safetensors` package, tests/reference/golden/encoder/tiny-cross-encoder,
// F16) reads with the shapes and values its header gives; hand-made files check every dtype
// conversion, the metadata, and that each kind of damage — every truncation of a real file,
// bad JSON, wrong types, unknown dtypes, sizes that disagree with shapes, overlapping or
// out-of-range offsets, an oversized header length — is a loom::Error naming the file.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "loom/core/error.h"
#include "loom/tensor/safetensors.h"

using namespace loom;
using safetensors::DType;
using safetensors::File;

namespace {

std::string make(const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>(n >> (8 * i));
  return out + header + data;
}

std::string floats(std::initializer_list<float> v) {
  std::string s(v.size() * 4, '\0');
  std::memcpy(s.data(), std::data(v), s.size());
  return s;
}

TEST(Safetensors, ReadsTensorsAndMetadata) {
  std::string data = floats({1.0f, -2.5f, 3.25f, 0.0f, 5.0f, 6.0f});
  const uint16_t h[2] = {0x3C00, 0xC000};  // f16 1.0, -2.0
  data.append(reinterpret_cast<const char*>(h), 4);
  const uint16_t bf[1] = {0x3FC0};  // bf16 1.5
  data.append(reinterpret_cast<const char*>(bf), 2);
  std::string hdr = R"({"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},)"
                    R"("h":{"dtype":"F16","shape":[2],"data_offsets":[24,28]},"b":{"dtype":"BF16","shape":[1],"data_offsets":[28,30]},)"
                    R"("e":{"dtype":"F32","shape":[0,4],"data_offsets":[30,30]}}   )";
  std::string bytes = make(hdr, data);
  File f = File::parse(bytes, "t.safetensors");
  ASSERT_EQ(f.tensors().size(), 4u);
  const auto* a = f.find("a");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->shape, (std::vector<uint64_t>{2, 3}));
  EXPECT_EQ(f.to_f32(*a), (std::vector<float>{1.0f, -2.5f, 3.25f, 0.0f, 5.0f, 6.0f}));
  EXPECT_EQ(f.to_f32(*f.find("h")), (std::vector<float>{1.0f, -2.0f}));
  EXPECT_EQ(f.to_f32(*f.find("b")), (std::vector<float>{1.5f}));
  EXPECT_TRUE(f.to_f32(*f.find("e")).empty());
  EXPECT_EQ(f.find("nope"), nullptr);
  ASSERT_EQ(f.metadata().size(), 1u);
  EXPECT_EQ(f.metadata()[0].first, "format");
  EXPECT_EQ(f.metadata()[0].second, "pt");
}

void expect_bad(const std::string& bytes, const std::string& needle) {
  try {
    File::parse(bytes, "bad.safetensors");
    ADD_FAILURE() << "accepted; expected an error mentioning: " << needle;
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), Error::Kind::BadInput);
    EXPECT_EQ(e.file(), "bad.safetensors");
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(Safetensors, DamageIsACleanError) {
  const std::string d = floats({1, 2, 3, 4});
  auto t = [](const std::string& body) { return "{\"x\":" + body + "}"; };
  expect_bad("abc", "shorter than its 8-byte header length");
  expect_bad(make("{}", "").substr(0, 9), "truncated");
  std::string huge(8, '\xff');
  expect_bad(huge + "{}", "100 MB");
  expect_bad(make("[1,2]", ""), "not a JSON object");
  expect_bad(make("{\"x\":", ""), "not valid JSON");
  expect_bad(make(t(R"({"dtype":"F32","shape":[4]})"), d), "data_offsets");
  expect_bad(make(t(R"({"dtype":"Q4","shape":[4],"data_offsets":[0,16]})"), d), "unknown dtype \"Q4\"");
  expect_bad(make(t(R"({"dtype":"F32","shape":[-1],"data_offsets":[0,16]})"), d), "shape");
  expect_bad(make(t(R"({"dtype":"F32","shape":[5],"data_offsets":[0,16]})"), d), "needs 20 bytes");
  expect_bad(make(t(R"({"dtype":"F32","shape":[4],"data_offsets":[16,0]})"), d), "backwards");
  expect_bad(make(t(R"({"dtype":"F32","shape":[8],"data_offsets":[0,32]})"), d), "truncated file");
  expect_bad(make(t(R"({"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,16]})"), d), "too many");
  expect_bad(make(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"y":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", d),
             "overlap");
  expect_bad(make(R"({"__metadata__":{"a":1}})", ""), "not a string");
  expect_bad(make(t("3"), d), "not an object");
  // a dtype loom reads but does not convert
  File f = File::parse(make(t(R"({"dtype":"I64","shape":[2],"data_offsets":[0,16]})"), d), "i.safetensors");
  EXPECT_THROW(f.to_f32(*f.find("x")), Error);
}

TEST(Safetensors, ReferenceFileAndEveryTruncation) {
  const std::filesystem::path p = std::filesystem::path(LOOM_SOURCE_DIR) / "tests/reference/golden/encoder/tiny-cross-encoder/model.safetensors";
  ASSERT_TRUE(std::filesystem::exists(p)) << p;
  File f = File::open(p.string());
  const auto* w = f.find("bert.embeddings.word_embeddings.weight");
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->dtype, DType::F16);
  EXPECT_EQ(w->shape.size(), 2u);
  EXPECT_EQ(f.to_f32(*w).size(), w->n_elements());
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string bytes = ss.str();
  uint64_t header = 0;
  for (int i = 7; i >= 0; --i) header = header << 8 | static_cast<uint8_t>(bytes[i]);
  // every cut inside the header and a spread of cuts through the data
  for (size_t n = 0; n < bytes.size(); n += (n < 8 + header + 64 ? 1 : 4099)) {
    EXPECT_THROW(File::parse(std::string_view(bytes).substr(0, n), "cut"), Error) << "a prefix of " << n << " bytes was accepted";
  }
}

}  // namespace
