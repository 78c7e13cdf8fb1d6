// GGUF reader: metadata and tensor directory equal to the `gguf` Python package's reading
// (goldens: tests/reference/gen_gguf_goldens.py), and malformed files rejected cleanly.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>

#include "loom/core/error.h"
#include "loom/gguf/gguf.h"
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
        for (const auto& inner : v->array) n += inner.array.size();
        EXPECT_EQ(n, static_cast<size_t>(*leaves)) << key;
        continue;
      }
      EXPECT_EQ(v->array.size(), static_cast<size_t>(e.get_int("length").value())) << key;
      if (auto first = e.raw("first")) expect_scalar(v->array.front(), *first, key + "[0]");
      if (auto last = e.raw("last")) expect_scalar(v->array.back(), *last, key + "[-1]");
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
