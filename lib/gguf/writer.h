// GGUF writer: metadata and tensors into a GGUF v3 file that the reader (gguf.h), llama.cpp and
// the gguf Python package read back. Keys and tensors are written in the order they were added
// (as the Python writer does), tensor data padded to the alignment.
//
//   gguf::Writer w;
//   w.set_string("general.architecture", "llama");
//   w.set("llama.context_length", gguf::u32(2048));
//   w.set_strings("tokenizer.ggml.tokens", tokens);
//   w.add_tensor("token_embd.weight", {576, 49152}, 2 /* Q4_0 */, bytes);   // ne innermost first
//   w.write("model.gguf");                       // atomic: a temp file renamed into place
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "loom/gguf/gguf.h"

namespace loom::gguf {

// Values of each type, for Writer::set.
Value u8(uint8_t v);
Value i8(int8_t v);
Value u16(uint16_t v);
Value i16(int16_t v);
Value u32(uint32_t v);
Value i32(int32_t v);
Value u64(uint64_t v);
Value i64(int64_t v);
Value f32(float v);
Value f64(double v);
Value boolean(bool v);
Value str(std::string v);
// An array of `elem` values (each of that type; arrays of arrays allowed).
Value array(Type elem, std::vector<Value> items);

class Writer {
 public:
  explicit Writer(uint64_t alignment = 32);

  // Sets a key (replacing an earlier value of the same key, which keeps its place).
  void set(const std::string& key, Value v);
  void set_string(const std::string& key, std::string v) { set(key, str(std::move(v))); }
  void set_strings(const std::string& key, const std::vector<std::string>& v);

  // A tensor: dims innermost first, ggml type id, its bytes (copied). The byte count must be what
  // the type and dims make; loom::Error (Usage) otherwise, and for a repeated name.
  void add_tensor(const std::string& name, std::vector<uint64_t> ne, uint32_t ggml_type, std::string_view data);
  // A tensor whose bytes are given only when the file is written (write with a `data` function).
  void add_tensor_info(const std::string& name, std::vector<uint64_t> ne, uint32_t ggml_type);

  // The whole file.
  std::string bytes() const;
  // Writes the file atomically, tensor by tensor; loom::Error (Runtime) when it cannot be written.
  void write(const std::string& path) const;
  // The same, asking data(i) for the bytes of the i-th tensor when the file reaches it (the view
  // must stay valid until the next call): memory holds one tensor at a time. loom::Error (Usage)
  // when a tensor's bytes are not the size its type and dims make.
  void write(const std::string& path, const std::function<std::string_view(size_t)>& data) const;

 private:
  struct Tensor {
    std::string name;
    std::vector<uint64_t> ne;
    uint32_t type;
    uint64_t size;     // bytes
    std::string data;  // (empty for add_tensor_info)
  };
  std::string header() const;  // everything before the first tensor's data, padded
  uint64_t alignment_;
  std::vector<std::pair<std::string, Value>> kv_;
  std::vector<Tensor> tensors_;
};

}  // namespace loom::gguf
