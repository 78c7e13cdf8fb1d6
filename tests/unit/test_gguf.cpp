// GGUF reader: metadata and tensor directory equal to the `gguf` Python package's reading
// (goldens: tests/reference/gen_gguf_goldens.py), and malformed files rejected cleanly.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>

#include <unistd.h>

#include "loom/core/error.h"
#include "kernels/cpu/ggml_blocks.h"
#include "loom/gguf/gguf.h"
#include "loom/gguf/writer.h"
#include "loom/io/jsonl.h"

using namespace loom;
namespace fs = std::filesystem;

namespace {

const std::string kDir = std::string(LOOM_SOURCE_DIR) + "/tests/reference/golden/gguf/";

std::string slurp(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

// The golden JSON is one object spread over lines; read it as one record.
io::Record load_golden(const std::string& name) {
  std::string text = slurp(kDir + name + ".meta.json");
  std::string flat;
  for (char c : text) flat += c == '\n' ? ' ' : c;
  return io::Record::parse(flat);
}

std::string loom_type(const std::string& py) {
  static const std::map<std::string, std::string> m = {
      {"uint8", "u8"}, {"int8", "i8"}, {"uint16", "u16"}, {"int16", "i16"}, {"uint32", "u32"}, {"int32", "i32"},
      {"float32", "f32"}, {"bool", "bool"}, {"string", "string"}, {"array", "array"}, {"uint64", "u64"},
      {"int64", "i64"}, {"float64", "f64"}};
  return m.at(py);
}

// Compares a scalar gguf::Value with the golden's JSON text of it.
void expect_scalar(const gguf::Value& v, std::string_view json, const std::string& where) {
  io::Record r = io::Record::parse(std::string("{\"v\":") + std::string(json) + "}");
  switch (v.type) {
    case gguf::Type::String: EXPECT_EQ(v.s, r.get_string("v").value()) << where; break;
    case gguf::Type::Bool: EXPECT_EQ(v.u != 0, r.get_bool("v").value()) << where; break;
    case gguf::Type::F32: case gguf::Type::F64: EXPECT_EQ(v.f, r.get_number("v").value()) << where; break;
    case gguf::Type::U64: EXPECT_EQ(std::to_string(v.u), std::string(json)) << where; break;
    default: EXPECT_EQ(v.as_int().value(), r.get_int("v").value()) << where;
  }
}

void check_against_golden(const std::string& name, const gguf::File& f) {
  io::Record g = load_golden(name);
  EXPECT_EQ(f.version(), static_cast<uint32_t>(g.get_int("version").value()));
  // metadata, in file order
  std::string_view meta = *g.raw("metadata");
  size_t count = 0;
  for (size_t i = 0; (i = meta.find("{\"key\"", i)) != std::string_view::npos; ++count) {
    size_t j = i;
    int depth = 0;
    bool in_str = false;
    for (; j < meta.size(); ++j) {  // the end of this object
      char c = meta[j];
      if (in_str) { if (c == '\\') ++j; else if (c == '"') in_str = false; continue; }
      if (c == '"') in_str = true;
      else if (c == '{' || c == '[') ++depth;
      else if ((c == '}' || c == ']') && --depth == 0) break;
    }
    io::Record e = io::Record::parse(meta.substr(i, j + 1 - i));
    i = j + 1;
    std::string key = e.get_string("key").value();
    ASSERT_LT(count, f.metadata().size());
    EXPECT_EQ(f.metadata()[count].first, key);
    const gguf::Value* v = f.find(key);
    ASSERT_NE(v, nullptr) << key;
    EXPECT_EQ(gguf::type_name(v->type), loom_type(e.get_string("type").value())) << key;
    if (v->type == gguf::Type::Array) {
      EXPECT_EQ(gguf::type_name(v->elem), loom_type(e.get_string("elem").value())) << key;
      if (auto leaves = e.get_int("leaves")) {  // arrays of arrays: the reference counts the leaves
        size_t n = 0;
        for (size_t k = 0; k < v->size(); ++k) n += v->at(k).size();
        EXPECT_EQ(n, static_cast<size_t>(*leaves)) << key;
        continue;
      }
      EXPECT_EQ(v->size(), static_cast<size_t>(e.get_int("length").value())) << key;
      if (auto first = e.raw("first")) expect_scalar(v->at(0), *first, key + "[0]");
      if (auto last = e.raw("last")) expect_scalar(v->at(v->size() - 1), *last, key + "[-1]");
    } else {
      expect_scalar(*v, *e.raw("value"), key);
    }
  }
  EXPECT_EQ(count, f.metadata().size());
  EXPECT_GT(count, 0u);
  // tensors
  std::string_view tens = *g.raw("tensors");
  size_t t = 0;
  for (size_t i = 0; (i = tens.find("{\"name\"", i)) != std::string_view::npos; ++t) {
    size_t j = tens.find('}', i);
    io::Record e = io::Record::parse(tens.substr(i, j + 1 - i));
    i = j + 1;
    ASSERT_LT(t, f.tensors().size());
    const gguf::TensorInfo& ti = f.tensors()[t];
    EXPECT_EQ(ti.name, e.get_string("name").value());
    EXPECT_EQ(ti.ggml_type, static_cast<uint32_t>(e.get_int("type").value())) << ti.name;
    EXPECT_EQ(f.data_offset() + ti.offset, static_cast<uint64_t>(e.get_int("offset").value())) << ti.name;
    std::string ne = "[";
    for (size_t d = 0; d < ti.ne.size(); ++d) ne += (d ? "," : "") + std::to_string(ti.ne[d]);
    EXPECT_EQ(ne + "]", std::string(*e.raw("ne"))) << ti.name;
  }
  EXPECT_EQ(t, f.tensors().size());
}

}  // namespace

TEST(Gguf, TinyFileMatchesTheReference) { check_against_golden("tiny", gguf::File::open(kDir + "tiny.gguf")); }

TEST(Gguf, DefaultModelsMatchTheReference) {
  const char* env = std::getenv("LOOM_MODELS");
  fs::path root = env && *env ? fs::path(env) : fs::path(std::getenv("HOME")) / ".cache/loom/models";
  int checked = 0;
  for (const char* name : {"smollm2", "gemma3"}) {
    fs::path p = root / (std::string(name) + ".gguf");
    if (!fs::exists(p) || !fs::exists(kDir + name + ".meta.json")) continue;
    SCOPED_TRACE(name);
    check_against_golden(name, gguf::File::open(p.string()));
    ++checked;
  }
  if (!checked) GTEST_SKIP() << "no default models in " << root << " (run scripts/fetch-models)";
}

TEST(Gguf, EveryTruncationIsACleanError) {
  std::string full = slurp(kDir + "tiny.gguf");
  gguf::File ok = gguf::File::parse(full, "tiny.gguf");
  for (size_t n = 0; n < full.size(); ++n) {
    bool threw = false;
    try {
      gguf::File::parse(std::string_view(full).substr(0, n), "cut.gguf");
    } catch (const Error& e) {
      threw = true;
      EXPECT_EQ(e.exit_status(), 2);
    }
    if (n <= ok.data_offset()) EXPECT_TRUE(threw) << "prefix of " << n << " bytes was accepted";
  }
}

TEST(Gguf, CorruptHeadersAreNamed) {
  std::string full = slurp(kDir + "tiny.gguf");
  auto msg = [](std::string bytes) {
    try {
      gguf::File::parse(bytes, "x.gguf");
    } catch (const Error& e) {
      return e.located();
    }
    return std::string("accepted");
  };
  std::string bad = full;
  bad[0] = 'X';
  EXPECT_NE(msg(bad).find("x.gguf: not a GGUF file"), std::string::npos);
  bad = full;
  bad[4] = 9;  // version 9
  EXPECT_NE(msg(bad).find("GGUF version 9 is not supported"), std::string::npos);
  bad = full;
  for (int k = 16; k < 24; ++k) bad[k] = '\xff';  // absurd metadata count
  EXPECT_NE(msg(bad).find("does not fit in the file"), std::string::npos);
  EXPECT_THROW(gguf::File::open("/nonexistent.gguf"), Error);
}

// ---- tensor data -------------------------------------------------------------------------------

namespace {

// A GGUF v3 file with no metadata and the given tensor directory (offsets as given, unchecked),
// then `data_bytes` bytes of data (byte k is k % 251) after padding to 32.
std::string raw_gguf(const std::vector<gguf::TensorInfo>& ts, size_t data_bytes) {
  std::string b = "GGUF";
  auto put = [&b](auto v) { b.append(reinterpret_cast<const char*>(&v), sizeof v); };
  put(uint32_t{3});
  put(uint64_t{ts.size()});
  put(uint64_t{0});
  for (const gguf::TensorInfo& t : ts) {
    put(uint64_t{t.name.size()});
    b += t.name;
    put(static_cast<uint32_t>(t.ne.size()));
    for (uint64_t d : t.ne) put(d);
    put(t.ggml_type);
    put(t.offset);
  }
  b.resize((b.size() + 31) / 32 * 32, '\0');
  for (size_t k = 0; k < data_bytes; ++k) b += static_cast<char>(k % 251);
  return b;
}

gguf::TensorInfo tensor(std::string name, std::vector<uint64_t> ne, kernels::GgmlType t, uint64_t offset = 0) {
  return {std::move(name), std::move(ne), static_cast<uint32_t>(t), offset};
}

// The message of the loom::Error that f throws ("no error" when none), checking it is exit 2.
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    EXPECT_EQ(e.exit_status(), 2);
    return e.located();
  }
  return "no error";
}

std::string pattern(size_t n, int seed) {
  std::string s(n, '\0');
  for (size_t k = 0; k < n; ++k) s[k] = static_cast<char>((k * 7 + seed) & 0xff);
  return s;
}

}  // namespace

TEST(GgufTensorData, IsEachTensorsBytes) {
  using kernels::GgmlType;
  gguf::Writer w;
  w.set_string("general.architecture", "test");
  std::string a = pattern(3 * 2 * 4, 1), q8 = pattern(64 / 32 * 34 * 3, 2), q4k = pattern(144, 3), bf = pattern(2 * 5, 4);
  w.add_tensor("a", {3, 2}, static_cast<uint32_t>(GgmlType::F32), a);
  w.add_tensor("q8", {64, 3}, static_cast<uint32_t>(GgmlType::Q8_0), q8);
  w.add_tensor("k", {256, 1, 1}, static_cast<uint32_t>(GgmlType::Q4_K), q4k);
  w.add_tensor("bf", {5}, static_cast<uint32_t>(GgmlType::BF16), bf);
  std::string bytes = w.bytes();
  gguf::File f = gguf::File::parse(bytes, "t.gguf");
  f.validate_tensors();
  ASSERT_EQ(f.tensors().size(), 4u);
  EXPECT_EQ(f.tensor_data(*f.find_tensor("a")), a);
  EXPECT_EQ(f.tensor_data(*f.find_tensor("q8")), q8);
  EXPECT_EQ(f.tensor_data(*f.find_tensor("k")), q4k);
  EXPECT_EQ(f.tensor_data(*f.find_tensor("bf")), bf);
  EXPECT_EQ(f.tensor_bytes(*f.find_tensor("q8")), 204u);
  EXPECT_EQ(f.find_tensor("q8")->n_elements(), 192u);
  EXPECT_EQ(f.find_tensor("nope"), nullptr);
  // the view points into the bytes, at an aligned place
  std::string_view v = f.tensor_data(*f.find_tensor("k"));
  EXPECT_EQ((v.data() - bytes.data()) % 32, 0);
  // a moved File keeps its views valid
  gguf::File g = std::move(f);
  EXPECT_EQ(g.tensor_data(*g.find_tensor("bf")), bf);
}

TEST(GgufTensorData, OfAMappedFile) {
  std::string full = slurp(kDir + "tiny.gguf");
  gguf::File f = gguf::File::open(kDir + "tiny.gguf");
  f.validate_tensors();
  for (const gguf::TensorInfo& t : f.tensors()) {
    std::string_view d = f.tensor_data(t);
    EXPECT_EQ(d, std::string_view(full).substr(f.data_offset() + t.offset, f.tensor_bytes(t))) << t.name;
  }
  EXPECT_EQ(f.tensor_bytes(*f.find_tensor("a")), 24u);  // F32 3x2
  EXPECT_EQ(f.tensor_bytes(*f.find_tensor("b")), 8u);   // F16 4
}

TEST(GgufTensorData, DefaultModelsValidate) {
  const char* env = std::getenv("LOOM_MODELS");
  fs::path root = env && *env ? fs::path(env) : fs::path(std::getenv("HOME")) / ".cache/loom/models";
  int checked = 0;
  for (const char* name : {"smollm2", "gemma3"}) {
    fs::path p = root / (std::string(name) + ".gguf");
    if (!fs::exists(p)) continue;
    SCOPED_TRACE(name);
    gguf::File f = gguf::File::open(p.string());
    f.validate_tensors();
    uint64_t total = 0;
    for (const gguf::TensorInfo& t : f.tensors()) total += f.tensor_bytes(t);
    EXPECT_LE(f.data_offset() + total, fs::file_size(p));
    EXPECT_GT(total, fs::file_size(p) * 9 / 10);  // the data is most of the file
    ++checked;
  }
  if (!checked) GTEST_SKIP() << "no default models in " << root << " (run scripts/fetch-models)";
}

TEST(GgufTensorData, RowsMustBeWholeBlocks) {
  using kernels::GgmlType;
  std::string b = raw_gguf({tensor("blk.0.odd", {33, 2}, GgmlType::Q4_0)}, 64);
  gguf::File f = gguf::File::parse(b, "odd.gguf");  // the directory alone is fine
  std::string m = error_of([&] { f.tensor_data(f.tensors()[0]); });
  EXPECT_NE(m.find("odd.gguf: tensor \"blk.0.odd\": a row of 33 elements is not a whole number of Q4_0 blocks of 32"),
            std::string::npos) << m;
  EXPECT_EQ(error_of([&] { f.validate_tensors(); }), m);
}

TEST(GgufTensorData, UnknownTypesAreNamed) {
  using kernels::GgmlType;
  std::string b = raw_gguf({tensor("w", {32}, static_cast<GgmlType>(99))}, 64);
  gguf::File f = gguf::File::parse(b, "u.gguf");
  std::string m = error_of([&] { f.validate_tensors(); });
  EXPECT_NE(m.find("tensor \"w\" has type 99, which loom does not handle"), std::string::npos) << m;
  b = raw_gguf({tensor("w2", {256}, GgmlType::Q2_K)}, 128);
  gguf::File g = gguf::File::parse(b, "u.gguf");
  m = error_of([&] { g.tensor_data(g.tensors()[0]); });
  EXPECT_NE(m.find("tensor \"w2\" has type 10 Q2_K, which loom does not handle"), std::string::npos) << m;
}

TEST(GgufTensorData, TruncatedDataIsNamed) {
  using kernels::GgmlType;
  // two Q8_0 tensors of 2 blocks (68 bytes) at 0 and 96; the file holds 96 + 40 bytes of data
  std::string b = raw_gguf({tensor("first", {64}, GgmlType::Q8_0, 0), tensor("second", {64}, GgmlType::Q8_0, 96)}, 136);
  gguf::File f = gguf::File::parse(b, "cut.gguf");
  EXPECT_EQ(f.tensor_data(f.tensors()[0]).size(), 68u);
  std::string m = error_of([&] { f.tensor_data(f.tensors()[1]); });
  EXPECT_NE(m.find("cut.gguf: tensor \"second\" needs 68 bytes at byte"), std::string::npos) << m;
  EXPECT_NE(m.find("(truncated?)"), std::string::npos) << m;
  EXPECT_EQ(error_of([&] { f.validate_tensors(); }), m);
  // the same from a mapped file
  fs::path p = fs::temp_directory_path() / ("loom_test_cut_" + std::to_string(::getpid()) + ".gguf");
  { std::ofstream(p, std::ios::binary) << b; }
  gguf::File g = gguf::File::open(p.string());
  std::string want = p.string();
  want += ": tensor \"second\" needs 68 bytes";
  EXPECT_NE(error_of([&] { g.tensor_data(g.tensors()[1]); }).find(want), std::string::npos);
  fs::remove(p);
  // every prefix of a file with tensor data: parse, then reading every tensor, is a clean error or
  // the right bytes
  std::string full = slurp(kDir + "tiny.gguf");
  gguf::File ok = gguf::File::parse(full, "tiny.gguf");
  size_t end = 0;  // of the last tensor's data (the file may be padded after it)
  for (const gguf::TensorInfo& t : ok.tensors()) end = std::max<size_t>(end, ok.data_offset() + t.offset + ok.tensor_bytes(t));
  ASSERT_LE(end, full.size());
  for (size_t n = ok.data_offset(); n < end; ++n) {
    std::string_view cut = std::string_view(full).substr(0, n);
    std::string res = error_of([&] {
      gguf::File c = gguf::File::parse(cut, "cut.gguf");
      for (const gguf::TensorInfo& t : c.tensors()) c.tensor_data(t);
    });
    EXPECT_NE(res, "no error") << "prefix of " << n << " bytes of " << end;
  }
}

TEST(GgufTensorData, HugeAndMisalignedTensorsAreErrors) {
  using kernels::GgmlType;
  std::string b = raw_gguf({tensor("big", {1ull << 40, 1ull << 40}, GgmlType::F32)}, 32);
  gguf::File f = gguf::File::parse(b, "big.gguf");
  EXPECT_NE(error_of([&] { f.validate_tensors(); }).find("tensor \"big\" is too large"), std::string::npos);
  b = raw_gguf({tensor("big2", {1ull << 62, 8}, GgmlType::F32)}, 32);  // elements fit, bytes do not
  gguf::File g = gguf::File::parse(b, "big.gguf");
  EXPECT_NE(error_of([&] { g.tensor_data(g.tensors()[0]); }).find("too large"), std::string::npos);
  b = raw_gguf({tensor("skew", {8}, GgmlType::F32, 8)}, 64);
  EXPECT_NE(error_of([&] { gguf::File::parse(b, "skew.gguf"); }).find("tensor \"skew\" is not aligned to 32"), std::string::npos);
}
