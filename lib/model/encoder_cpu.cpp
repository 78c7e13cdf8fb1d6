// The encoder's CPU backend: float32 activations in host memory, each operation spread over a
// thread pool (dense layers by rows, attention by sequence and head).
#include <algorithm>
#include <cmath>
#include <deque>
#include <unordered_map>

#include "kernels/cpu/encoder_ops.h"
#include "loom/core/parallel.h"
#include "loom/model/encoder_backend.h"

namespace loom::model {

namespace {

class CpuEncoderBackend final : public EncoderBackend {
 public:
  explicit CpuEncoderBackend(unsigned threads) : threads_(std::max(1u, threads)), pool_(threads_) {
    kernels::blas_single_threaded();
  }
  const char* name() const override { return "cpu"; }

  void begin(const std::vector<uint32_t>& lengths) override {
    lengths_ = lengths;
    starts_.assign(lengths.size() + 1, 0);
    for (size_t s = 0; s < lengths.size(); ++s) starts_[s + 1] = starts_[s] + lengths[s];
    used_ = 0;
  }

  Act alloc(size_t rows, size_t cols) override {
    if (used_ == buffers_.size()) buffers_.emplace_back();
    std::vector<float>& b = buffers_[used_++];
    b.resize(rows * cols);
    return Act{&b, rows, cols};
  }

  void embed(const std::vector<int32_t>& ids, const std::vector<int32_t>& types, const Mat& word, const Mat& pos,
             const Mat& type, Act x) override {
    const size_t n = x.cols;
    for_rows(x.rows, [&](size_t r0, size_t r1) {
      for (size_t s = seq_of(r0), t = r0; t < r1; ++t) {
        while (t >= starts_[s + 1]) ++s;
        float* o = f(x) + t * n;
        const float* w = word.data + static_cast<size_t>(ids[t]) * n;
        const float* p = pos.data + (t - starts_[s]) * n;
        const float* ty = type.data + static_cast<size_t>(types.empty() ? 0 : types[t]) * n;
        for (size_t c = 0; c < n; ++c) o[c] = w[c] + ty[c] + p[c];
      }
    });
  }

  void layer_norm(Act x, Act add, const Mat& w, const Mat& b, float eps) override {
    for_rows(x.rows, [&](size_t r0, size_t r1) {
      for (size_t r = r0; r < r1; ++r)
        kernels::layer_norm_f32(f(x) + r * x.cols, x.cols, add.handle ? f(add) + r * x.cols : nullptr, w.data, b.data, eps);
    });
  }

  void linear(const Mat& w, const Mat& b, Act x, Act y) override { dense(w, b, x, y, false); }
  void linear_gelu(const Mat& w, const Mat& b, Act x, Act y) override { dense(w, b, x, y, true); }

  void attention(Act qkv, uint32_t n_head, Act out) override {
    const size_t n_embd = out.cols, dh = n_embd / n_head, ld = qkv.cols;
    const float scale = 1.0f / std::sqrt(static_cast<float>(dh));
    // longest sequences first: they take longest, and the pool hands out tasks in order
    std::vector<uint32_t> order(lengths_.size());
    for (uint32_t s = 0; s < order.size(); ++s) order[s] = s;
    std::sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) { return lengths_[a] > lengths_[b]; });
    pool_.for_each(order.size() * n_head, [&](size_t task) {
      const size_t s = order[task / n_head], h = task % n_head, L = lengths_[s];
      thread_local std::vector<float> scores;
      if (scores.size() < L * L) scores.resize(L * L);
      const float* base = f(qkv) + starts_[s] * ld + h * dh;
      kernels::attention_head_f32(base, base + n_embd, base + 2 * n_embd, ld, L, dh, scale,
                                  f(out) + starts_[s] * n_embd + h * dh, n_embd, scores.data());
    });
  }

  void tanh(Act x) override {
    float* p = f(x);
    for (size_t i = 0; i < x.rows * x.cols; ++i) p[i] = std::tanh(p[i]);
  }

  void pool(Act x, Pooling p, Act out) override {
    const size_t n = x.cols;
    pool_.for_each(lengths_.size(), [&](size_t s) {
      const float* rows = f(x) + starts_[s] * n;
      const size_t L = lengths_[s];
      float* o = f(out) + s * n;
      switch (p) {
        case Pooling::Cls: std::copy(rows, rows + n, o); break;
        case Pooling::Last: std::copy(rows + (L - 1) * n, rows + L * n, o); break;
        case Pooling::Max:
          std::copy(rows, rows + n, o);
          for (size_t t = 1; t < L; ++t)
            for (size_t c = 0; c < n; ++c) o[c] = std::max(o[c], rows[t * n + c]);
          break;
        case Pooling::Mean:
        case Pooling::MeanSqrtLen: {
          std::fill(o, o + n, 0.0f);
          for (size_t t = 0; t < L; ++t)
            for (size_t c = 0; c < n; ++c) o[c] += rows[t * n + c];
          const float d = p == Pooling::Mean ? static_cast<float>(L) : std::sqrt(static_cast<float>(L));
          for (size_t c = 0; c < n; ++c) o[c] /= d;
          break;
        }
      }
    });
  }

  void read(Act x, float* host) override { std::copy(f(x), f(x) + x.rows * x.cols, host); }

 private:
  static float* f(Act a) { return static_cast<std::vector<float>*>(a.handle)->data(); }

  // y = W x + b (then GELU) over the pass's rows: one block of rows per thread, each through the
  // weight's packed panels (made on first use and kept: the model's weights outlive the backend's
  // passes)
  void dense(const Mat& w, const Mat& b, Act x, Act y, bool gelu) {
    auto it = packed_.find(w.data);
    if (it == packed_.end()) it = packed_.emplace(w.data, kernels::pack_weights(w.data, w.rows, w.cols)).first;
    const kernels::PackedWeights& p = it->second;
    const size_t parts = std::max<size_t>(1, std::min<size_t>(threads_, (x.rows + 15) / 16));
    pool_.for_each(parts, [&](size_t i) {
      const size_t r0 = x.rows * i / parts, r1 = x.rows * (i + 1) / parts;
      kernels::linear_packed_f32(f(x) + r0 * x.cols, x.cols, r1 - r0, p, b.data, f(y) + r0 * y.cols, y.cols, gelu);
    });
  }
  size_t seq_of(size_t row) const {
    return static_cast<size_t>(std::upper_bound(starts_.begin(), starts_.end(), row) - starts_.begin()) - 1;
  }
  // fn(r0, r1) over blocks of rows on the pool
  template <typename Fn>
  void for_rows(size_t rows, Fn&& fn) {
    const size_t block = 64, n = (rows + block - 1) / block;
    pool_.for_each(n, [&](size_t i) { fn(i * block, std::min(rows, (i + 1) * block)); });
  }

  unsigned threads_;
  ThreadPool pool_;
  std::vector<uint32_t> lengths_;
  std::vector<size_t> starts_;
  std::unordered_map<const float*, kernels::PackedWeights> packed_;
  std::deque<std::vector<float>> buffers_;  // a deque: handles stay valid as it grows
  size_t used_ = 0;
};

}  // namespace

std::unique_ptr<EncoderBackend> make_cpu_encoder_backend(unsigned threads) {
  return std::make_unique<CpuEncoderBackend>(threads);
}

}  // namespace loom::model
