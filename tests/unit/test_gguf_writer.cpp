// gguf::Writer: the same bytes as the reference writer (the gguf Python package) for the same
// content, and files the reader reads back.
#include <gtest/gtest.h>

#include <filesystem>

#include "kernels/cpu/ggml_blocks.h"
#include "loom/core/error.h"
#include "loom/gguf/gguf.h"
#include "loom/gguf/writer.h"
#include "loom/io/stream.h"

using namespace loom;
namespace fs = std::filesystem;

namespace {
const std::string kRef = std::string(LOOM_SOURCE_DIR) + "/tests/reference/golden/gguf/writer-reference.gguf";

std::string read_file(const std::string& path) { return io::read_all(*io::Input::open(path)); }

std::string tensor_bytes(const gguf::File& f, std::string_view all, const gguf::TensorInfo& t) {
  auto ts = kernels::type_size(static_cast<kernels::GgmlType>(t.ggml_type));
  uint64_t n = 1;
  for (uint64_t d : t.ne) n *= d;
  return std::string(all.substr(f.data_offset() + t.offset, n / ts.block_elems * ts.block_bytes));
}
}  // namespace

// Built key by key with the typed constructors, as gen_gguf_writer_golden.py wrote it.
TEST(GgufWriter, SameBytesAsTheReferenceWriter) {
  std::string ref = read_file(kRef);
  gguf::File f = gguf::File::parse(ref, kRef);
  gguf::Writer w;
  w.set_string("general.architecture", "llama");
  w.set("t.u8", gguf::u8(200));
  w.set("t.i8", gguf::i8(-100));
  w.set("t.u16", gguf::u16(60000));
  w.set("t.i16", gguf::i16(-30000));
  w.set("t.u32", gguf::u32(4000000000u));
  w.set("t.i32", gguf::i32(-2000000000));
  w.set("t.u64", gguf::u64(18000000000000000000ull));
  w.set("t.i64", gguf::i64(-9000000000000000000ll));
  w.set("t.f32", gguf::f32(0.1f));
  w.set("t.f64", gguf::f64(-2.5e-300));
  w.set("t.bool", gguf::boolean(true));
  w.set_string("t.str", "h\xc3\xa9llo \xe2\x9c\x93");
  w.set("t.arr_i32", gguf::array(gguf::Type::I32, {gguf::i32(1), gguf::i32(-2), gguf::i32(3)}));
  w.set("t.arr_f32", gguf::array(gguf::Type::F32, {gguf::f32(0.5f), gguf::f32(-1.25f)}));
  w.set_strings("t.arr_str", {"a", "", "\xe2\x96\x81" "b"});
  w.set("t.arr_bool", gguf::array(gguf::Type::Bool, {gguf::boolean(true), gguf::boolean(false)}));
  w.set("t.arr_nested", gguf::array(gguf::Type::Array, {gguf::array(gguf::Type::I32, {gguf::i32(1), gguf::i32(2)}),
                                                        gguf::array(gguf::Type::I32, {gguf::i32(3)})}));
  ASSERT_EQ(f.tensors().size(), 4u);
  for (const auto& t : f.tensors()) w.add_tensor(t.name, t.ne, t.ggml_type, tensor_bytes(f, ref, t));
  std::string mine = w.bytes();
  ASSERT_EQ(mine.size(), ref.size());
  EXPECT_TRUE(mine == ref) << "first difference at byte "
                           << std::mismatch(mine.begin(), mine.end(), ref.begin()).first - mine.begin();
  // written to a file tensor by tensor: the same bytes; and with the bytes given only then
  fs::path p = fs::temp_directory_path() / "loom_test_gguf_writer_stream.gguf";
  w.write(p.string());
  EXPECT_TRUE(read_file(p.string()) == ref);
  gguf::Writer lazy;
  for (const auto& [k, v] : f.metadata()) lazy.set(k, v);
  std::vector<std::string> data;
  for (const auto& t : f.tensors()) {
    lazy.add_tensor_info(t.name, t.ne, t.ggml_type);
    data.push_back(tensor_bytes(f, ref, t));
  }
  EXPECT_THROW(lazy.bytes(), Error);  // no bytes to put in a string
  lazy.write(p.string(), [&](size_t i) { return std::string_view(data[i]); });
  EXPECT_TRUE(read_file(p.string()) == ref);
  EXPECT_THROW(lazy.write(p.string(), [&](size_t i) { return std::string_view(data[i]).substr(1); }), Error);
  EXPECT_TRUE(read_file(p.string()) == ref);  // a failed write leaves the file as it was
  fs::remove(p);
}

// Whatever the reader reads, the writer writes back identically (every value type, nested arrays).
TEST(GgufWriter, RewritesWhatTheReaderRead) {
  std::string ref = read_file(kRef);
  gguf::File f = gguf::File::parse(ref, kRef);
  gguf::Writer w;
  for (const auto& [k, v] : f.metadata()) w.set(k, v);
  for (const auto& t : f.tensors()) w.add_tensor(t.name, t.ne, t.ggml_type, tensor_bytes(f, ref, t));
  EXPECT_TRUE(w.bytes() == ref);
}

TEST(GgufWriter, AlignmentAndAtomicFile) {
  gguf::Writer w(64);
  std::string data(3 * 4, '\x01');
  w.add_tensor("x", {3}, 0, data);
  w.add_tensor("y", {32}, static_cast<uint32_t>(kernels::GgmlType::Q8_0), std::string(34, '\x02'));
  fs::path p = fs::temp_directory_path() / "loom-writer-test.gguf";
  w.write(p.string());
  gguf::File f = gguf::File::open(p.string());
  EXPECT_EQ(f.alignment(), 64u);
  ASSERT_EQ(f.tensors().size(), 2u);
  EXPECT_EQ(f.tensors()[1].offset % 64, 0u);
  EXPECT_EQ(f.data_offset() % 64, 0u);
  fs::remove(p);
}

TEST(GgufWriter, MisuseIsAnError) {
  gguf::Writer w;
  EXPECT_THROW(w.add_tensor("x", {3}, 0, std::string(11, 'a')), Error);                        // wrong size
  EXPECT_THROW(w.add_tensor("q", {31}, 8, std::string(34, 'a')), Error);                        // not whole blocks
  EXPECT_THROW(w.add_tensor("z", {4}, 99, std::string(4, 'a')), Error);                         // unknown type
  w.add_tensor("ok", {1}, 0, std::string(4, 'a'));
  EXPECT_THROW(w.add_tensor("ok", {1}, 0, std::string(4, 'a')), Error);                         // twice
  EXPECT_THROW(gguf::Writer(48), Error);                                                       // not a power of two
  gguf::Writer bad;
  bad.set("a", gguf::array(gguf::Type::I32, {gguf::str("x")}));
  EXPECT_THROW((void)bad.bytes(), Error);                                                       // mixed array
}
