// GGUF model files: metadata and tensor directory (read side).
//
// Layout (all little-endian; GGUF versions 2 and 3):
//   "GGUF" magic, u32 version, u64 tensor_count, u64 kv_count
//   kv_count × { string key, u32 type, value }        string = u64 length + bytes (no NUL)
//   tensor_count × { string name, u32 n_dims, u64 ne[n_dims], u32 ggml_type, u64 offset }
//   padding to general.alignment (default 32), then the tensor data; tensor offsets are relative
//   to the start of the data and aligned.
// Value types: 0 u8, 1 i8, 2 u16, 3 i16, 4 u32, 5 i32, 6 f32, 7 bool, 8 string, 9 array
// (u32 element type, u64 count, elements; arrays of arrays allowed), 10 u64, 11 i64, 12 f64.
//
//   gguf::File f = gguf::File::open("smollm2.gguf");       // mmap; throws loom::Error naming the
//   f.get_string("general.architecture")                   // file and what is wrong
//   const gguf::Value* tokens = f.find("tokenizer.ggml.tokens");   // tokens->str(i), i < tokens->size()
//
// Every length and count is checked against the file size before it is used, so a truncated or
// corrupt file is a clear error (exit 2), never a crash or a huge allocation.
//
// Tensor data: a tensor's bytes are rows of ne[0] elements, ne[0] a whole number of blocks of its
// type (kernels/cpu/ggml_blocks.h), rows laid one after another; tensor_data() returns them as a
// view into the mapped file, checked against the file's end:
//
//   const gguf::TensorInfo* t = f.find_tensor("blk.0.ffn_down.weight");
//   std::string_view bytes = f.tensor_data(*t);   // t->n_elements() / block_elems * block_bytes
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "loom/core/mapped_file.h"

namespace loom::gguf {

enum class Type : uint32_t { U8 = 0, I8, U16, I16, U32, I32, F32, Bool, String, Array, U64, I64, F64 };
const char* type_name(Type t);

struct Value {
  Type type = Type::U8;
  uint64_t u = 0;        // unsigned integers and bool
  int64_t i = 0;         // signed integers
  double f = 0;          // floats
  std::string s;         // string
  Type elem = Type::U8;  // array element type
  // An array's elements. Built in memory (the writer) and arrays of arrays: `array`. Read from a
  // file, numbers and strings stay where they lie in the file's bytes (a vocabulary of 262144
  // tokens would otherwise take a Value each): `packed` (little-endian numbers) or `strings`
  // (views). Read them through size(), at() and str(), which take every form.
  std::vector<Value> array;
  std::string_view packed;
  std::vector<std::string_view> strings;

  size_t size() const;                  // elements of an array (0 for a scalar)
  Value at(size_t k) const;             // element k of an array
  std::string_view str(size_t k) const; // element k of an array of strings

  // Numeric value as the type asked, whatever integer type the file used (nullopt when it is not
  // a number).
  std::optional<int64_t> as_int() const;
  std::optional<double> as_float() const;
};

struct TensorInfo {
  std::string name;
  std::vector<uint64_t> ne;  // dimensions, innermost first (ggml order)
  uint32_t ggml_type = 0;
  uint64_t offset = 0;       // from the start of the data section

  // Product of ne (saturates at UINT64_MAX rather than wrapping).
  uint64_t n_elements() const;
};

class File {
 public:
  // Maps and parses `path`. Throws loom::Error (BadInput) for a malformed file.
  static File open(const std::string& path);
  // Parses bytes in memory (tests, fuzzing); `name` is used in errors. The bytes must outlive the
  // File (array values and tensor data are views into them).
  static File parse(std::string_view bytes, const std::string& name = "<memory>");

  File(File&&) noexcept;
  File& operator=(File&&) noexcept;
  ~File();

  uint32_t version() const { return version_; }
  const std::vector<std::pair<std::string, Value>>& metadata() const { return kv_; }
  const Value* find(std::string_view key) const;
  // Typed getters: nullopt when absent; loom::Error when present with another type.
  std::optional<std::string> get_string(std::string_view key) const;
  std::optional<int64_t> get_int(std::string_view key) const;
  std::optional<bool> get_bool(std::string_view key) const;

  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* find_tensor(std::string_view name) const;  // nullptr when absent
  // Bytes of a tensor's data. loom::Error (BadInput) naming the tensor when its type is not one
  // loom handles, ne[0] is not a whole number of blocks, the size overflows, or the data runs
  // past the end of the file. The view lives as long as the File (or, for parse(), the bytes).
  std::string_view tensor_data(const TensorInfo& t) const;
  // The byte size tensor_data() would return (same checks, except the end of the file).
  uint64_t tensor_bytes(const TensorInfo& t) const;
  // Checks every tensor as tensor_data() does, and that its offset is aligned: the first problem
  // is a loom::Error (BadInput) naming the tensor. (open() and parse() check only the directory,
  // so a file with a tensor of an unknown type can still be read for its metadata.)
  void validate_tensors() const;
  uint64_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }  // start of tensor data in the file
  const std::string& name() const { return name_; }

 private:
  File() = default;
  void parse_all(std::string_view bytes);

  std::string name_;
  uint32_t version_ = 0;
  std::vector<std::pair<std::string, Value>> kv_;
  std::unordered_map<std::string, size_t> index_;
  std::vector<TensorInfo> tensors_;
  uint64_t alignment_ = 32, data_offset_ = 0;
  std::string_view bytes_;  // the whole file: the mapping, or parse()'s bytes
  MappedFile map_;
};

}  // namespace loom::gguf
