#include "loom/gguf/gguf.h"

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "kernels/cpu/ggml_blocks.h"
#include "loom/core/error.h"

namespace loom::gguf {

namespace {

constexpr uint64_t kMaxDims = 8;
constexpr int kMaxDepth = 4;  // arrays of arrays

// A bounds-checked little-endian cursor over the file.
class Cursor {
 public:
  Cursor(std::string_view b, const std::string& name) : b_(b), name_(name) {}
  size_t pos() const { return pos_; }
  size_t size() const { return b_.size(); }

  template <typename T>
  T read(const char* what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, b_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string string(const char* what) {
    uint64_t n = read<uint64_t>(what);
    if (n > b_.size() - pos_) fail(fmt::format("{} has a length of {} bytes, past the end of the file", what, n));
    std::string s(b_.substr(pos_, n));
    pos_ += n;
    return s;
  }
  // The next n bytes, as a view.
  std::string_view view(size_t n, const char* what) {
    need(n, what);
    std::string_view v = b_.substr(pos_, n);
    pos_ += n;
    return v;
  }
  std::string_view view_string(const char* what) {
    uint64_t n = read<uint64_t>(what);
    if (n > b_.size() - pos_) fail(fmt::format("{} has a length of {} bytes, past the end of the file", what, n));
    return view(n, what);
  }
  [[noreturn]] void fail(const std::string& what) const {
    throw input_error(fmt::format("{} (at byte {})", what, pos_), name_);
  }
  void need(size_t n, const char* what) const {
    if (n > b_.size() - pos_) fail(fmt::format("file ends inside {}", what));
  }

 private:
  std::string_view b_;
  const std::string& name_;
  size_t pos_ = 0;
};

size_t fixed_size(Type t) {
  switch (t) {
    case Type::U8: case Type::I8: case Type::Bool: return 1;
    case Type::U16: case Type::I16: return 2;
    case Type::U32: case Type::I32: case Type::F32: return 4;
    case Type::U64: case Type::I64: case Type::F64: return 8;
    default: return 0;
  }
}

Value read_value(Cursor& c, Type t, int depth) {
  Value v;
  v.type = t;
  switch (t) {
    case Type::U8: v.u = c.read<uint8_t>("a u8 value"); break;
    case Type::I8: v.i = c.read<int8_t>("an i8 value"); break;
    case Type::U16: v.u = c.read<uint16_t>("a u16 value"); break;
    case Type::I16: v.i = c.read<int16_t>("an i16 value"); break;
    case Type::U32: v.u = c.read<uint32_t>("a u32 value"); break;
    case Type::I32: v.i = c.read<int32_t>("an i32 value"); break;
    case Type::U64: v.u = c.read<uint64_t>("a u64 value"); break;
    case Type::I64: v.i = c.read<int64_t>("an i64 value"); break;
    case Type::F32: v.f = c.read<float>("an f32 value"); break;
    case Type::F64: v.f = c.read<double>("an f64 value"); break;
    case Type::Bool: {
      uint8_t b = c.read<uint8_t>("a bool value");
      if (b > 1) c.fail(fmt::format("bool value {} is neither 0 nor 1", b));
      v.u = b;
      break;
    }
    case Type::String: v.s = c.string("a string value"); break;
    case Type::Array: {
      if (depth >= kMaxDepth) c.fail("arrays nested too deep");
      uint32_t et = c.read<uint32_t>("an array's element type");
      if (et > static_cast<uint32_t>(Type::F64)) c.fail(fmt::format("unknown array element type {}", et));
      v.elem = static_cast<Type>(et);
      uint64_t n = c.read<uint64_t>("an array's length");
      // every element takes at least one byte (strings at least eight): a count the rest of the
      // file cannot hold is corrupt, and is rejected before anything is allocated
      size_t min = v.elem == Type::String || v.elem == Type::Array ? 8 : fixed_size(v.elem);
      if (n > (c.size() - c.pos()) / min) c.fail(fmt::format("array of {} elements does not fit in the file", n));
      if (v.elem == Type::Array) {
        v.array.reserve(n);
        for (uint64_t k = 0; k < n; ++k) v.array.push_back(read_value(c, v.elem, depth + 1));
      } else if (v.elem == Type::String) {
        v.strings.reserve(n);
        for (uint64_t k = 0; k < n; ++k) v.strings.push_back(c.view_string("a string in an array"));
      } else {
        v.packed = c.view(n * min, "an array");
        if (v.elem == Type::Bool)
          for (char b : v.packed)
            if (static_cast<uint8_t>(b) > 1) c.fail(fmt::format("bool value {} is neither 0 nor 1", static_cast<uint8_t>(b)));
      }
      break;
    }
    default: c.fail(fmt::format("unknown value type {}", static_cast<uint32_t>(t)));
  }
  return v;
}

}  // namespace

const char* type_name(Type t) {
  static const char* const names[] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64"};
  auto k = static_cast<uint32_t>(t);
  return k < 13 ? names[k] : "unknown";
}

std::optional<int64_t> Value::as_int() const {
  switch (type) {
    case Type::U8: case Type::U16: case Type::U32: case Type::U64: case Type::Bool: return static_cast<int64_t>(u);
    case Type::I8: case Type::I16: case Type::I32: case Type::I64: return i;
    default: return std::nullopt;
  }
}

size_t Value::size() const {
  if (type != Type::Array) return 0;
  if (!array.empty()) return array.size();
  if (elem == Type::String) return strings.size();
  const size_t w = fixed_size(elem);
  return w ? packed.size() / w : 0;
}

Value Value::at(size_t k) const {
  if (k >= size()) throw usage_error(fmt::format("array element {} of {}", k, size()));
  if (!array.empty()) return array[k];
  Value v;
  v.type = elem;
  if (elem == Type::String) {
    v.s = std::string(strings[k]);
    return v;
  }
  const char* p = packed.data() + k * fixed_size(elem);
  auto get = [&](auto x) {
    std::memcpy(&x, p, sizeof x);
    return x;
  };
  switch (elem) {
    case Type::U8: v.u = get(uint8_t{}); break;
    case Type::I8: v.i = get(int8_t{}); break;
    case Type::U16: v.u = get(uint16_t{}); break;
    case Type::I16: v.i = get(int16_t{}); break;
    case Type::U32: v.u = get(uint32_t{}); break;
    case Type::I32: v.i = get(int32_t{}); break;
    case Type::U64: v.u = get(uint64_t{}); break;
    case Type::I64: v.i = get(int64_t{}); break;
    case Type::F32: v.f = get(float{}); break;
    case Type::F64: v.f = get(double{}); break;
    case Type::Bool: v.u = get(uint8_t{}); break;
    default: break;
  }
  return v;
}

std::string_view Value::str(size_t k) const {
  if (type != Type::Array || elem != Type::String || k >= size())
    throw usage_error(fmt::format("not a string array element ({} of {})", k, size()));
  return array.empty() ? strings[k] : std::string_view(array[k].s);
}

std::optional<double> Value::as_float() const {
  if (type == Type::F32 || type == Type::F64) return f;
  if (auto n = as_int()) return static_cast<double>(*n);
  return std::nullopt;
}

void File::parse_all(std::string_view bytes) {
  Cursor c(bytes, name_);
  c.need(4, "the magic");
  if (bytes.substr(0, 4) != "GGUF") throw input_error("not a GGUF file (no GGUF magic)", name_);
  c.read<uint32_t>("the magic");
  version_ = c.read<uint32_t>("the version");
  if (version_ != 2 && version_ != 3) c.fail(fmt::format("GGUF version {} is not supported (2 and 3 are)", version_));
  uint64_t n_tensors = c.read<uint64_t>("the tensor count");
  uint64_t n_kv = c.read<uint64_t>("the metadata count");
  if (n_kv > bytes.size() / 12) c.fail(fmt::format("metadata count {} does not fit in the file", n_kv));
  if (n_tensors > bytes.size() / 24) c.fail(fmt::format("tensor count {} does not fit in the file", n_tensors));
  for (uint64_t k = 0; k < n_kv; ++k) {
    std::string key = c.string("a metadata key");
    uint32_t t = c.read<uint32_t>("a metadata type");
    if (t > static_cast<uint32_t>(Type::F64)) c.fail(fmt::format("metadata \"{}\" has unknown type {}", key, t));
    Value v = read_value(c, static_cast<Type>(t), 0);
    if (index_.count(key)) c.fail(fmt::format("metadata key \"{}\" appears twice", key));
    index_[key] = kv_.size();
    kv_.emplace_back(std::move(key), std::move(v));
  }
  if (const Value* a = find("general.alignment")) {
    auto n = a->as_int();
    if (!n || *n <= 0 || (*n & (*n - 1)) != 0) c.fail("general.alignment is not a power of two");
    alignment_ = static_cast<uint64_t>(*n);
  }
  for (uint64_t k = 0; k < n_tensors; ++k) {
    TensorInfo ti;
    ti.name = c.string("a tensor name");
    uint32_t nd = c.read<uint32_t>("a tensor's dimension count");
    if (nd == 0 || nd > kMaxDims) c.fail(fmt::format("tensor \"{}\" has {} dimensions", ti.name, nd));
    for (uint32_t d = 0; d < nd; ++d) ti.ne.push_back(c.read<uint64_t>("a tensor dimension"));
    ti.ggml_type = c.read<uint32_t>("a tensor type");
    ti.offset = c.read<uint64_t>("a tensor offset");
    if (ti.offset % alignment_) c.fail(fmt::format("tensor \"{}\" is not aligned to {}", ti.name, alignment_));
    tensors_.push_back(std::move(ti));
  }
  bytes_ = bytes;
  data_offset_ = (c.pos() + alignment_ - 1) / alignment_ * alignment_;
  for (const TensorInfo& ti : tensors_)
    if (ti.offset > bytes.size() || data_offset_ > bytes.size() - ti.offset)
      throw input_error(fmt::format("tensor \"{}\" starts past the end of the file", ti.name), name_);
}

File File::parse(std::string_view bytes, const std::string& name) {
  File f;
  f.name_ = name;
  f.parse_all(bytes);
  return f;
}

File File::open(const std::string& path) {
  File f;
  f.name_ = path;
  f.map_ = MappedFile::open(path);
  f.parse_all(f.map_.bytes());
  return f;
}

File::File(File&&) noexcept = default;
File& File::operator=(File&&) noexcept = default;
File::~File() = default;

const Value* File::find(std::string_view key) const {
  auto it = index_.find(std::string(key));
  return it == index_.end() ? nullptr : &kv_[it->second].second;
}

uint64_t TensorInfo::n_elements() const {
  uint64_t n = 1;
  for (uint64_t d : ne) {
    if (d != 0 && n > UINT64_MAX / d) return UINT64_MAX;
    n *= d;
  }
  return n;
}

const TensorInfo* File::find_tensor(std::string_view name) const {
  for (const TensorInfo& t : tensors_)
    if (t.name == name) return &t;
  return nullptr;
}

uint64_t File::tensor_bytes(const TensorInfo& t) const {
  auto type = static_cast<kernels::GgmlType>(t.ggml_type);
  kernels::TypeSize ts = kernels::type_size(type);
  if (ts.block_elems == 0) {
    const char* tn = kernels::type_name(type);
    throw input_error(fmt::format("tensor \"{}\" has type {}{}{}, which loom does not handle", t.name, t.ggml_type,
                                  tn ? " " : "", tn ? tn : ""),
                      name_);
  }
  if (t.ne.empty() || t.ne[0] % ts.block_elems != 0)
    throw input_error(fmt::format("tensor \"{}\": a row of {} elements is not a whole number of {} blocks of {}", t.name,
                                  t.ne.empty() ? 0 : t.ne[0], kernels::type_name(type), ts.block_elems),
                      name_);
  uint64_t n = t.n_elements();
  uint64_t blocks = n / ts.block_elems;
  if (n == UINT64_MAX || blocks > UINT64_MAX / ts.block_bytes)
    throw input_error(fmt::format("tensor \"{}\" is too large (its size overflows)", t.name), name_);
  return blocks * ts.block_bytes;
}

std::string_view File::tensor_data(const TensorInfo& t) const {
  uint64_t size = tensor_bytes(t);
  uint64_t start = data_offset_ + t.offset;  // parse_all checked that start <= the file size
  if (start > bytes_.size() || size > bytes_.size() - start)
    throw input_error(fmt::format("tensor \"{}\" needs {} bytes at byte {} but the file ends at byte {} (truncated?)", t.name,
                                  size, start, bytes_.size()),
                      name_);
  return bytes_.substr(start, size);
}

void File::validate_tensors() const {
  for (const TensorInfo& t : tensors_) {
    if (t.offset % alignment_)
      throw input_error(fmt::format("tensor \"{}\" is not aligned to {}", t.name, alignment_), name_);
    tensor_data(t);
  }
}

std::optional<std::string> File::get_string(std::string_view key) const {
  const Value* v = find(key);
  if (!v) return std::nullopt;
  if (v->type != Type::String) throw input_error(fmt::format("metadata \"{}\" is a {}, not a string", key, type_name(v->type)), name_);
  return v->s;
}

std::optional<int64_t> File::get_int(std::string_view key) const {
  const Value* v = find(key);
  if (!v) return std::nullopt;
  auto n = v->as_int();
  if (!n || v->type == Type::Bool) throw input_error(fmt::format("metadata \"{}\" is a {}, not an integer", key, type_name(v->type)), name_);
  return n;
}

std::optional<bool> File::get_bool(std::string_view key) const {
  const Value* v = find(key);
  if (!v) return std::nullopt;
  if (v->type != Type::Bool) throw input_error(fmt::format("metadata \"{}\" is a {}, not a bool", key, type_name(v->type)), name_);
  return v->u != 0;
}

}  // namespace loom::gguf
