#include "loom/quant/imatrix.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "loom/core/error.h"
#include "loom/gguf/gguf.h"
#include "loom/gguf/writer.h"
#include "loom/model/backend.h"
#include "loom/model/decoder.h"
#include "loom/tokenizer/tokenizer.h"

// The squares are summed as llama-imatrix sums them: one float product, one float addition.
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

namespace loom::quant {

namespace {

constexpr uint32_t kMicroBatch = 512;  // llama.cpp's n_ubatch: the most tokens one matmul sees
constexpr size_t kMinRows = 16;        // llama-imatrix ignores products over fewer tokens

// A backend that runs every operation on `inner` and, for each product with a weight it collects,
// reads the input activations back and adds their squares to that weight's entry.
class CollectingBackend final : public model::Backend {
 public:
  CollectingBackend(std::unique_ptr<model::Backend> inner, Imatrix& out, bool process_output)
      : inner_(std::move(inner)), out_(out), process_output_(process_output) {}

  const char* name() const override { return inner_->name(); }
  void begin(const std::vector<model::BatchToken>& batch) override { inner_->begin(batch); }
  model::Act alloc(size_t rows, size_t cols) override { return inner_->alloc(rows, cols); }
  void embed(const model::Weight& t, float scale, model::Act x) override { inner_->embed(t, scale, x); }
  void rms_norm(model::Act x, const model::Weight& w, float eps, size_t width, model::Act out) override {
    inner_->rms_norm(x, w, eps, width, out);
  }
  void matmul(const model::Weight& w, model::Act x, model::Act y) override {
    if (x.rows >= kMinRows && (w.name.starts_with("blk.") || (process_output_ && w.name == "output.weight")))
      collect(w.name, x);
    inner_->matmul(w, x, y);
  }
  void add_bias(const model::Weight& b, model::Act y) override { inner_->add_bias(b, y); }
  void rope(model::Act x, size_t n_heads, float base, float freq_scale) override {
    inner_->rope(x, n_heads, base, freq_scale);
  }
  void attention(const model::AttentionParams& p, model::Act q, model::Act k, model::Act v, model::Act out) override {
    inner_->attention(p, q, k, v, out);
  }
  void glu(model::Activation act, model::Act gate, model::Act up) override { inner_->glu(act, gate, up); }
  void add(model::Act x, model::Act y) override { inner_->add(x, y); }
  void scale(model::Act x, float s) override { inner_->scale(x, s); }
  void select_rows(model::Act x, const std::vector<size_t>& rows, model::Act out) override {
    inner_->select_rows(x, rows, out);
  }
  void read(model::Act x, float* host) override { inner_->read(x, host); }
  void copy_sequence(uint32_t src, uint32_t dst, uint32_t n) override { inner_->copy_sequence(src, dst, n); }

 private:
  void collect(const std::string& name, model::Act x) {
    host_.resize(x.rows * x.cols);
    inner_->read(x, host_.data());
    ImatrixEntry& e = out_.entries[name];
    if (e.sums.empty()) e.sums.assign(x.cols, 0.0f);
    float* acc = e.sums.data();
    for (size_t r = 0; r < x.rows; ++r) {
      const float* v = host_.data() + r * x.cols;
      for (size_t j = 0; j < x.cols; ++j) acc[j] += v[j] * v[j];
    }
    e.count += static_cast<int64_t>(x.rows);
  }

  std::unique_ptr<model::Backend> inner_;
  Imatrix& out_;
  bool process_output_;
  std::vector<float> host_;
};

}  // namespace

std::vector<float> Imatrix::importance(const std::string& name) const {
  auto it = entries.find(name);
  if (it == entries.end()) return {};
  const ImatrixEntry& e = it->second;
  std::vector<float> w(e.sums.size(), 1.0f);
  if (e.count > 0) {
    const float c = static_cast<float>(e.count);
    for (size_t j = 0; j < w.size(); ++j) w[j] = e.sums[j] / c;
  }
  return w;
}

Imatrix collect_imatrix(std::shared_ptr<const gguf::File> model, const tok::Tokenizer& tokenizer, std::string_view text,
                        const ImatrixOptions& opt, const ImatrixProgress& progress) {
  if (opt.n_ctx < kMinRows)
    throw usage_error(fmt::format("a chunk of {} tokens is too small: at least {}", opt.n_ctx, kMinRows));
  if (opt.chunks == 0 || opt.chunks < -1) throw usage_error(fmt::format("{} chunks: at least 1 (or -1: all)", opt.chunks));
  const std::vector<tok::TokenId>& prefix = tokenizer.special_prefix();
  if (prefix.size() > 1)
    throw usage_error("the vocabulary puts more than one token before a text; an importance matrix needs BOS or none");
  const std::vector<int32_t> ids = tokenizer.encode(text, {.add_special = true, .parse_special = false}).ids;
  const size_t n = opt.n_ctx;
  if (ids.size() < 2 * n)
    throw input_error(fmt::format("the text is {} tokens; chunks of {} need at least {}", ids.size(), n, 2 * n));
  size_t n_chunks = ids.size() / n;
  if (opt.chunks > 0) n_chunks = std::min(n_chunks, static_cast<size_t>(opt.chunks));

  Imatrix out;
  out.chunk_size = opt.n_ctx;
  model::DecoderOptions dopt{.n_ctx = opt.n_ctx, .threads = opt.threads, .n_seq = 1};
  dopt.backend = [&out, &opt](const model::Config& cfg, const model::DecoderOptions& o) -> std::unique_ptr<model::Backend> {
    model::DecoderOptions plain = o;
    plain.backend = nullptr;
    return std::make_unique<CollectingBackend>(model::make_cpu_backend(cfg, plain), out, opt.process_output);
  };
  model::Decoder decoder(std::move(model), dopt);
  std::vector<model::BatchToken> batch;
  for (size_t c = 0; c < n_chunks; ++c) {
    for (size_t b0 = 0; b0 < n; b0 += kMicroBatch) {
      const size_t len = std::min<size_t>(kMicroBatch, n - b0);
      batch.clear();
      for (size_t i = 0; i < len; ++i) {
        const size_t p = b0 + i;
        const int32_t t = p == 0 && !prefix.empty() ? prefix[0] : ids[c * n + p];
        // Logits of the last token only, unless output.weight is collected (then all, as llama.cpp).
        batch.push_back({.token = t, .pos = static_cast<uint32_t>(p), .seq = 0,
                         .logits = opt.process_output || i + 1 == len});
      }
      decoder.decode(batch);
    }
    out.chunk_count = static_cast<uint32_t>(c + 1);
    if (progress) progress(c + 1, n_chunks);
  }
  return out;
}

void write_imatrix(const Imatrix& m, const std::string& path) {
  gguf::Writer w;
  w.set_string("general.type", "imatrix");
  w.set_strings("imatrix.datasets", m.datasets);
  w.set("imatrix.chunk_count", gguf::u32(m.chunk_count));
  w.set("imatrix.chunk_size", gguf::u32(m.chunk_size));
  constexpr uint32_t kF32 = 0;
  for (const auto& [name, e] : m.entries) {  // std::map: name order, as llama-imatrix sorts
    const float count = static_cast<float>(e.count);
    w.add_tensor(name + ".in_sum2", {e.sums.size()}, kF32,
                 std::string_view(reinterpret_cast<const char*>(e.sums.data()), e.sums.size() * sizeof(float)));
    w.add_tensor(name + ".counts", {1}, kF32, std::string_view(reinterpret_cast<const char*>(&count), sizeof count));
  }
  w.write(path);
}

Imatrix read_imatrix(const std::string& path) { return read_imatrix(gguf::File::open(path), path); }

Imatrix read_imatrix(const gguf::File& f, const std::string& path) {
  f.validate_tensors();
  auto bad = [&](const std::string& what) { return input_error(what, path); };
  if (f.get_string("general.type").value_or("") != "imatrix")
    throw bad("not an importance matrix (general.type is not \"imatrix\"; the legacy .dat format is not read)");
  Imatrix m;
  if (const gguf::Value* d = f.find("imatrix.datasets"))
    for (size_t i = 0; i < d->size(); ++i) m.datasets.emplace_back(d->str(i));
  m.chunk_count = static_cast<uint32_t>(f.get_int("imatrix.chunk_count").value_or(0));
  m.chunk_size = static_cast<uint32_t>(f.get_int("imatrix.chunk_size").value_or(0));
  std::map<std::string, std::pair<const gguf::TensorInfo*, const gguf::TensorInfo*>> pairs;
  for (const gguf::TensorInfo& t : f.tensors()) {
    std::string_view n = t.name;
    if (n.ends_with(".in_sum2")) {
      pairs[std::string(n.substr(0, n.size() - 8))].first = &t;
    } else if (n.ends_with(".counts")) {
      pairs[std::string(n.substr(0, n.size() - 7))].second = &t;
    } else {
      throw bad(fmt::format("tensor {} is neither NAME.in_sum2 nor NAME.counts", t.name));
    }
  }
  for (const auto& [name, p] : pairs) {
    if (!p.first || !p.second) throw bad(fmt::format("{}: sums and counts do not come in a pair", name));
    if (p.first->ggml_type != 0 || p.second->ggml_type != 0) throw bad(fmt::format("{}: sums and counts must be F32", name));
    const uint64_t nval = p.first->n_elements(), ncount = p.second->n_elements();
    if (ncount != 1 || nval == 0)
      throw bad(fmt::format("{}: {} counts for {} sums (one matrix per weight is read: no expert tensors)", name, ncount,
                            nval));
    ImatrixEntry e;
    e.sums.resize(nval);
    std::memcpy(e.sums.data(), f.tensor_data(*p.first).data(), nval * sizeof(float));
    float count;
    std::memcpy(&count, f.tensor_data(*p.second).data(), sizeof count);
    for (float v : e.sums)
      if (!(std::isfinite(v) && v >= 0)) throw bad(fmt::format("{}: a sum of squares that is negative or not finite", name));
    if (!(std::isfinite(count) && count >= 0 && count < 9.0e18f)) throw bad(fmt::format("{}: a bad count", name));
    e.count = std::lround(count);
    m.entries.emplace(name, std::move(e));
  }
  return m;
}

}  // namespace loom::quant
