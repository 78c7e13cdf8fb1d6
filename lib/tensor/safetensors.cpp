#include "loom/tensor/safetensors.h"

#include <algorithm>
#include <cstring>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <simdjson.h>

#include "loom/core/error.h"
#include "loom/core/mapped_file.h"
#include "loom/tensor/dequant.h"

namespace loom::safetensors {

namespace {

constexpr uint64_t kMaxHeader = 100ull << 20;  // the reference implementation's own cap

struct DTypeInfo {
  const char* name;
  DType type;
  size_t size;
};
constexpr DTypeInfo kDTypes[] = {
    {"BOOL", DType::BOOL, 1}, {"U8", DType::U8, 1},   {"I8", DType::I8, 1},     {"U16", DType::U16, 2},
    {"I16", DType::I16, 2},   {"F16", DType::F16, 2}, {"BF16", DType::BF16, 2}, {"U32", DType::U32, 4},
    {"I32", DType::I32, 4},   {"F32", DType::F32, 4}, {"U64", DType::U64, 8},   {"I64", DType::I64, 8},
    {"F64", DType::F64, 8},   {"F8_E4M3", DType::F8_E4M3, 1}, {"F8_E5M2", DType::F8_E5M2, 1},
};

}  // namespace

const char* dtype_name(DType t) {
  for (auto& d : kDTypes)
    if (d.type == t) return d.name;
  return "?";
}

size_t dtype_size(DType t) {
  for (auto& d : kDTypes)
    if (d.type == t) return d.size;
  return 0;
}

uint64_t Tensor::n_elements() const {
  uint64_t n = 1;
  for (uint64_t d : shape) {
    if (d != 0 && n > UINT64_MAX / d) return UINT64_MAX;
    n *= d;
  }
  return n;
}

File File::open(const std::string& path) {
  File f;
  f.name_ = path;
  f.map_ = std::make_unique<MappedFile>(MappedFile::open(path));
  f.parse_all(f.map_->bytes());
  return f;
}

File File::parse(std::string_view bytes, const std::string& name) {
  File f;
  f.name_ = name;
  f.parse_all(bytes);
  return f;
}

File::File(File&&) noexcept = default;
File& File::operator=(File&&) noexcept = default;
File::~File() = default;

void File::parse_all(std::string_view bytes) {
  auto bad = [&](const std::string& what) { return input_error(what, name_); };
  if (bytes.size() < 8) throw bad(fmt::format("not a safetensors file: {} bytes, shorter than its 8-byte header length", bytes.size()));
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = n << 8 | static_cast<uint8_t>(bytes[i]);
  if (n > kMaxHeader) throw bad(fmt::format("not a safetensors file: header length {} is over the 100 MB limit", n));
  if (n > bytes.size() - 8) throw bad(fmt::format("truncated: the header says {} bytes of JSON, the file has {} after the length", n, bytes.size() - 8));
  std::string_view header = bytes.substr(8, n);
  if (header.empty() || header[0] != '{') throw bad("not a safetensors file: the header is not a JSON object");
  data_ = bytes.substr(8 + n);

  simdjson::dom::parser parser;
  simdjson::padded_string padded(header);
  simdjson::dom::element root;
  if (auto err = parser.parse(padded).get(root)) throw bad(fmt::format("header is not valid JSON: {}", simdjson::error_message(err)));
  simdjson::dom::object obj;
  if (root.get(obj)) throw bad("header is not a JSON object");
  for (auto [key, value] : obj) {
    std::string k(key);
    if (k == "__metadata__") {
      simdjson::dom::object meta;
      if (value.get(meta)) throw bad("\"__metadata__\" is not an object");
      for (auto [mk, mv] : meta) {
        std::string_view s;
        if (mv.get(s)) throw bad(fmt::format("\"__metadata__\" value \"{}\" is not a string", std::string(mk)));
        metadata_.emplace_back(std::string(mk), std::string(s));
      }
      continue;
    }
    auto tbad = [&](const std::string& what) { return bad(fmt::format("tensor \"{}\": {}", k, what)); };
    simdjson::dom::object t;
    if (value.get(t)) throw tbad("its entry is not an object");
    Tensor ten;
    ten.name = k;
    std::string_view dt;
    if (t["dtype"].get(dt)) throw tbad("no \"dtype\" string");
    const DTypeInfo* info = nullptr;
    for (auto& d : kDTypes)
      if (dt == d.name) info = &d;
    if (!info) throw tbad(fmt::format("unknown dtype \"{}\"", std::string(dt)));
    ten.dtype = info->type;
    simdjson::dom::array shape, offs;
    if (t["shape"].get(shape)) throw tbad("no \"shape\" array");
    for (auto d : shape) {
      uint64_t v;
      if (d.get(v)) throw tbad("\"shape\" holds something other than a non-negative integer");
      ten.shape.push_back(v);
    }
    if (t["data_offsets"].get(offs) || offs.size() != 2) throw tbad("no \"data_offsets\" array of two integers");
    if (offs.at(0).get(ten.begin) || offs.at(1).get(ten.end)) throw tbad("\"data_offsets\" are not non-negative integers");
    if (ten.begin > ten.end) throw tbad(fmt::format("data_offsets [{}, {}] run backwards", ten.begin, ten.end));
    uint64_t elems = ten.n_elements();
    if (elems == UINT64_MAX || elems > UINT64_MAX / info->size || elems * info->size != ten.end - ten.begin)
      throw tbad(fmt::format("shape [{}] of {} needs {} bytes, data_offsets give {}", fmt::join(ten.shape, ", "),
                             info->name, elems == UINT64_MAX ? std::string("too many") : std::to_string(elems * info->size),
                             ten.end - ten.begin));
    if (ten.end > data_.size())
      throw tbad(fmt::format("data ends at byte {} of the data section, which holds {} (truncated file?)", ten.end, data_.size()));
    if (!index_.emplace(k, tensors_.size()).second) throw tbad("named twice");
    tensors_.push_back(std::move(ten));
  }
  // no two tensors may share bytes
  std::vector<const Tensor*> by_start;
  for (auto& t : tensors_)
    if (t.end > t.begin) by_start.push_back(&t);
  std::sort(by_start.begin(), by_start.end(), [](auto* a, auto* b) { return a->begin < b->begin; });
  for (size_t i = 1; i < by_start.size(); ++i)
    if (by_start[i]->begin < by_start[i - 1]->end)
      throw bad(fmt::format("tensors \"{}\" and \"{}\" overlap", by_start[i - 1]->name, by_start[i]->name));
}

const Tensor* File::find(std::string_view name) const {
  auto it = index_.find(std::string(name));
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

std::string_view File::data(const Tensor& t) const { return data_.substr(t.begin, t.end - t.begin); }

std::vector<float> File::to_f32(const Tensor& t) const {
  std::string_view b = data(t);
  size_t n = t.n_elements();
  std::vector<float> out(n);
  switch (t.dtype) {
    case DType::F32:
      if (n) std::memcpy(out.data(), b.data(), n * 4);
      break;
    case DType::F16:
    case DType::BF16:
      for (size_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, b.data() + 2 * i, 2);
        out[i] = t.dtype == DType::F16 ? tensor::f16_to_f32(h) : tensor::bf16_to_f32(h);
      }
      break;
    case DType::F64:
      for (size_t i = 0; i < n; ++i) {
        double d;
        std::memcpy(&d, b.data() + 8 * i, 8);
        out[i] = static_cast<float>(d);
      }
      break;
    default:
      throw input_error(fmt::format("tensor \"{}\" is {}; only F32, F16, BF16 and F64 weights are read", t.name, dtype_name(t.dtype)), name_);
  }
  return out;
}

}  // namespace loom::safetensors
