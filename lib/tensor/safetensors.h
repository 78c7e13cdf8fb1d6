// safetensors files (Hugging Face): a tensor directory in JSON, then the raw tensor bytes.
//
// Layout: u64 little-endian N, then N bytes of a JSON object (UTF-8, may be padded with spaces),
// then the data section. Each key of the object but "__metadata__" names a tensor:
//
//   "encoder.layer.0.attention.self.query.weight":
//       {"dtype": "F32", "shape": [384, 384], "data_offsets": [BEGIN, END]}
//
// with BEGIN/END byte offsets into the data section (row-major, little-endian, C order).
// "__metadata__" is an object of string values (e.g. {"format": "pt"}).
//
//   safetensors::File f = safetensors::File::open("model.safetensors");   // mmap
//   const safetensors::Tensor* t = f.find("embeddings.word_embeddings.weight");
//   std::vector<float> w = f.to_f32(*t);                                    // F32/F16/BF16
//
// Everything is checked before use, so a truncated or corrupt file is a clear loom::Error
// (BadInput) naming the file and the tensor, never a crash: the header length against the file
// size (and a 100 MB cap), the JSON, every field's type, known dtypes, shapes whose element count
// times the dtype's size equals END - BEGIN (no overflow), END within the data section, and no
// two tensors overlapping.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace loom {
class MappedFile;
}

namespace loom::safetensors {

enum class DType { BOOL, U8, I8, U16, I16, F16, BF16, U32, I32, F32, U64, I64, F64, F8_E4M3, F8_E5M2 };
const char* dtype_name(DType t);
size_t dtype_size(DType t);

struct Tensor {
  std::string name;
  DType dtype = DType::F32;
  std::vector<uint64_t> shape;  // outermost first (C order)
  uint64_t begin = 0, end = 0;  // byte range within the data section
  uint64_t n_elements() const;
};

class File {
 public:
  // Maps and parses `path`. loom::Error (BadInput) for a malformed file, (Runtime) when it
  // cannot be opened.
  static File open(const std::string& path);
  // Parses bytes in memory (tests, fuzzing); the bytes must outlive the File.
  static File parse(std::string_view bytes, const std::string& name = "<memory>");

  File(File&&) noexcept;
  File& operator=(File&&) noexcept;
  ~File();

  const std::vector<Tensor>& tensors() const { return tensors_; }
  const Tensor* find(std::string_view name) const;  // nullptr when absent
  const std::vector<std::pair<std::string, std::string>>& metadata() const { return metadata_; }
  // The tensor's bytes (a view into the mapping).
  std::string_view data(const Tensor& t) const;
  // The tensor as float32 values: F32 copied, F16 and BF16 widened exactly, F64 rounded.
  // loom::Error (BadInput) naming the tensor for another dtype.
  std::vector<float> to_f32(const Tensor& t) const;
  const std::string& name() const { return name_; }

 private:
  File() = default;
  void parse_all(std::string_view bytes);

  std::string name_;
  std::vector<Tensor> tensors_;
  std::unordered_map<std::string, size_t> index_;
  std::vector<std::pair<std::string, std::string>> metadata_;
  std::string_view data_;
  std::unique_ptr<MappedFile> map_;
};

}  // namespace loom::safetensors
