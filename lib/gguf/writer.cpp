#include "loom/gguf/writer.h"

#include <cstring>

#include <fmt/format.h>

#include "kernels/cpu/ggml_blocks.h"
#include "loom/core/error.h"
#include "loom/io/stream.h"

namespace loom::gguf {

namespace {

template <typename T>
void put(std::string& out, T v) {
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));
  out.append(b, sizeof(T));
}

void put_string(std::string& out, std::string_view s) {
  put<uint64_t>(out, s.size());
  out.append(s);
}

void put_value(std::string& out, const Value& v) {
  switch (v.type) {
    case Type::U8: put<uint8_t>(out, static_cast<uint8_t>(v.u)); break;
    case Type::I8: put<int8_t>(out, static_cast<int8_t>(v.i)); break;
    case Type::U16: put<uint16_t>(out, static_cast<uint16_t>(v.u)); break;
    case Type::I16: put<int16_t>(out, static_cast<int16_t>(v.i)); break;
    case Type::U32: put<uint32_t>(out, static_cast<uint32_t>(v.u)); break;
    case Type::I32: put<int32_t>(out, static_cast<int32_t>(v.i)); break;
    case Type::U64: put<uint64_t>(out, v.u); break;
    case Type::I64: put<int64_t>(out, v.i); break;
    case Type::F32: put<float>(out, static_cast<float>(v.f)); break;
    case Type::F64: put<double>(out, v.f); break;
    case Type::Bool: put<uint8_t>(out, v.u ? 1 : 0); break;
    case Type::String: put_string(out, v.s); break;
    case Type::Array:
      put<uint32_t>(out, static_cast<uint32_t>(v.elem));
      put<uint64_t>(out, v.size());
      for (size_t k = 0; k < v.size(); ++k) {
        const Value x = v.at(k);
        if (x.type != v.elem) throw usage_error(fmt::format("a GGUF array of {} holds a {}", type_name(v.elem), type_name(x.type)));
        put_value(out, x);
      }
      break;
  }
}

void pad(std::string& out, uint64_t alignment) {
  size_t rem = out.size() % alignment;
  if (rem) out.append(alignment - rem, '\0');
}

uint64_t aligned(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

}  // namespace

Value u8(uint8_t v) { Value x; x.type = Type::U8; x.u = v; return x; }
Value i8(int8_t v) { Value x; x.type = Type::I8; x.i = v; return x; }
Value u16(uint16_t v) { Value x; x.type = Type::U16; x.u = v; return x; }
Value i16(int16_t v) { Value x; x.type = Type::I16; x.i = v; return x; }
Value u32(uint32_t v) { Value x; x.type = Type::U32; x.u = v; return x; }
Value i32(int32_t v) { Value x; x.type = Type::I32; x.i = v; return x; }
Value u64(uint64_t v) { Value x; x.type = Type::U64; x.u = v; return x; }
Value i64(int64_t v) { Value x; x.type = Type::I64; x.i = v; return x; }
Value f32(float v) { Value x; x.type = Type::F32; x.f = v; return x; }
Value f64(double v) { Value x; x.type = Type::F64; x.f = v; return x; }
Value boolean(bool v) { Value x; x.type = Type::Bool; x.u = v; return x; }
Value str(std::string v) { Value x; x.type = Type::String; x.s = std::move(v); return x; }
Value array(Type elem, std::vector<Value> items) {
  Value x;
  x.type = Type::Array;
  x.elem = elem;
  x.array = std::move(items);
  return x;
}

Writer::Writer(uint64_t alignment) : alignment_(alignment) {
  if (alignment == 0 || (alignment & (alignment - 1))) throw usage_error(fmt::format("GGUF alignment {} is not a power of two", alignment));
  if (alignment != 32) set("general.alignment", u32(static_cast<uint32_t>(alignment)));
}

void Writer::set(const std::string& key, Value v) {
  for (auto& [k, old] : kv_)
    if (k == key) {
      old = std::move(v);
      return;
    }
  kv_.emplace_back(key, std::move(v));
}

void Writer::set_strings(const std::string& key, const std::vector<std::string>& v) {
  std::vector<Value> items;
  items.reserve(v.size());
  for (const auto& s : v) items.push_back(str(s));
  set(key, array(Type::String, std::move(items)));
}

void Writer::add_tensor(const std::string& name, std::vector<uint64_t> ne, uint32_t ggml_type, std::string_view data) {
  add_tensor_info(name, std::move(ne), ggml_type);
  if (data.size() != tensors_.back().size) {
    const uint64_t want = tensors_.back().size;
    tensors_.pop_back();
    throw usage_error(fmt::format("GGUF tensor \"{}\" has {} bytes; its type and dims make {}", name, data.size(), want));
  }
  tensors_.back().data = std::string(data);
}

void Writer::add_tensor_info(const std::string& name, std::vector<uint64_t> ne, uint32_t ggml_type) {
  for (const Tensor& t : tensors_)
    if (t.name == name) throw usage_error(fmt::format("GGUF tensor \"{}\" added twice", name));
  auto ts = kernels::type_size(static_cast<kernels::GgmlType>(ggml_type));
  if (ts.block_elems == 0) throw usage_error(fmt::format("GGUF tensor \"{}\": ggml type {} is not one loom handles", name, ggml_type));
  if (ne.empty() || ne.size() > 4) throw usage_error(fmt::format("GGUF tensor \"{}\" has {} dimensions (1 to 4)", name, ne.size()));
  if (ne[0] % ts.block_elems) throw usage_error(fmt::format("GGUF tensor \"{}\": rows of {} are not whole blocks of {}", name, ne[0], ts.block_elems));
  uint64_t n = 1;
  for (uint64_t d : ne) n *= d;
  tensors_.push_back({name, std::move(ne), ggml_type, n / ts.block_elems * ts.block_bytes, {}});
}

std::string Writer::header() const {
  std::string out;
  out.append("GGUF", 4);
  put<uint32_t>(out, 3);
  put<uint64_t>(out, tensors_.size());
  put<uint64_t>(out, kv_.size());
  for (const auto& [k, v] : kv_) {
    put_string(out, k);
    put<uint32_t>(out, static_cast<uint32_t>(v.type));
    put_value(out, v);
  }
  uint64_t offset = 0;
  for (const Tensor& t : tensors_) {
    put_string(out, t.name);
    put<uint32_t>(out, static_cast<uint32_t>(t.ne.size()));
    for (uint64_t d : t.ne) put<uint64_t>(out, d);
    put<uint32_t>(out, t.type);
    put<uint64_t>(out, offset);
    offset = aligned(offset + t.size, alignment_);
  }
  pad(out, alignment_);
  return out;
}

std::string Writer::bytes() const {
  std::string out = header();
  for (const Tensor& t : tensors_) {
    if (t.data.size() != t.size) throw usage_error(fmt::format("GGUF tensor \"{}\" has no bytes (add_tensor_info)", t.name));
    out += t.data;
    pad(out, alignment_);
  }
  return out;
}

void Writer::write(const std::string& path) const {
  write(path, [this](size_t i) { return std::string_view(tensors_[i].data); });
}

void Writer::write(const std::string& path, const std::function<std::string_view(size_t)>& data) const {
  auto out = io::Output::open(path);
  out->write(header());
  const std::string zeros(alignment_, '\0');
  for (size_t i = 0; i < tensors_.size(); ++i) {  // the header is padded: each tensor's padding is its own
    const Tensor& t = tensors_[i];
    std::string_view d = data(i);
    if (d.size() != t.size)
      throw usage_error(fmt::format("GGUF tensor \"{}\" has {} bytes; its type and dims make {}", t.name, d.size(), t.size));
    out->write(d);
    out->write(std::string_view(zeros).substr(0, aligned(t.size, alignment_) - t.size));
  }
  out->close();
}

}  // namespace loom::gguf
