#include "loom/model/decoder.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include <fmt/format.h>
#if defined(__F16C__)
#include <immintrin.h>
#endif

#include "kernels/cpu/ggml_blocks.h"
#include "kernels/cpu/quant_dot.h"
#include "loom/core/error.h"
#include "loom/core/parallel.h"
#include "loom/gguf/gguf.h"
#include "loom/tensor/dequant.h"

namespace loom::model {

using kernels::GgmlType;

namespace {

// f32 -> f16, round to nearest even (as ggml's conversion).
uint16_t f32_to_f16(float f) {
#if defined(__F16C__)
  return static_cast<uint16_t>(_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT));
#else
  uint32_t x;
  std::memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000, mant = x & 0x7FFFFF;
  int32_t exp = static_cast<int32_t>((x >> 23) & 0xFF);
  if (exp == 0xFF) return static_cast<uint16_t>(sign | 0x7C00 | (mant ? 0x200 | (mant >> 13) : 0));
  exp -= 127 - 15;
  if (exp >= 0x1F) return static_cast<uint16_t>(sign | 0x7C00);
  if (exp <= 0) {
    if (exp < -10) return static_cast<uint16_t>(sign);
    mant |= 0x800000;
    uint32_t shift = static_cast<uint32_t>(14 - exp);
    uint32_t half = mant >> shift, rem = mant & ((1u << shift) - 1), mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1))) ++half;
    return static_cast<uint16_t>(sign | half);
  }
  uint32_t half = (static_cast<uint32_t>(exp) << 10) | (mant >> 13), rem = mant & 0x1FFF;
  if (rem > 0x1000 || (rem == 0x1000 && (half & 1))) ++half;
  return static_cast<uint16_t>(sign | half);
#endif
}

// n f16 values widened to f32 (exact).
void widen_f16(const uint16_t* in, float* out, size_t n) {
  size_t i = 0;
#if defined(__F16C__)
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(in + i))));
#endif
  for (; i < n; ++i) out[i] = tensor::f16_to_f32(in[i]);
}

// x * w / rms(x), the sum of squares in double (as ggml).
void rms_norm(const float* x, const float* w, float* out, size_t n, float eps) {
  double sum = 0;
  for (size_t i = 0; i < n; ++i) sum += static_cast<double>(x[i] * x[i]);
  float scale = 1.0f / std::sqrt(static_cast<float>(sum / static_cast<double>(n)) + eps);
  for (size_t i = 0; i < n; ++i) out[i] = x[i] * scale * w[i];
}

// GELU (tanh form) as ggml computes it on the CPU: through a table of f16 values indexed by the
// input rounded to f16 (0 below -10, x above 10).
float gelu_tanh(float x) {
  if (x <= -10.0f) return 0.0f;
  if (x >= 10.0f) return x;
  float h = tensor::f16_to_f32(f32_to_f16(x));
  const float c = 0.797884560802865355f;  // sqrt(2/pi)
  return tensor::f16_to_f32(f32_to_f16(0.5f * h * (1.0f + std::tanh(c * h * (1.0f + 0.044715f * h * h)))));
}
// exp(x) as ggml's vectorized CPU code computes it, lane by lane (a degree-5 polynomial after
// range reduction by powers of two; llama.cpp's softmax and SiLU go through it).
float ggml_expf(float x) {
  auto bits = [](float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; };
  auto from = [](uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; };
  const float r = 0x1.8p23f;
  const float z = std::fma(x, 0x1.715476p+0f, r);
  const float n = z - r;
  const float b = std::fma(-n, 0x1.7f7d1cp-20f, std::fma(-n, 0x1.62e4p-1f, x));
  const uint32_t e = bits(z) << 23;
  const float k = from(e + bits(1.0f));
  const float u = b * b;
  const float j = std::fma(std::fma(std::fma(0x1.0e4020p-7f, b, 0x1.573e2ep-5f), u, std::fma(0x1.555e66p-3f, b, 0x1.fffdb6p-2f)), u,
                           0x1.ffffecp-1f * b);
  if (!(std::fabs(n) > 126.0f)) return std::fma(k, j, k);
  const uint32_t g = n <= 0.0f ? 0x82000000u : 0u;
  const float s1 = from(g + 0x7f000000u), s2 = from(e - g);
  if (std::fabs(n) > 192.0f) return s1 * s1;
  return std::fma(s2, j, s2) * s1;
}

float silu(float x) { return x / (1.0f + ggml_expf(0.0f - x)); }

// An f16 dot product as llama.cpp's CPU matmul (llamafile's tinyBLAS on AVX2) computes it for the
// attention: one accumulator of 8 lanes (element i in lane i % 8), fused multiply-adds, the lanes
// summed pairwise. n must be a multiple of 8.
float dot_f16(const uint16_t* x, const uint16_t* y, size_t n) {
  float acc[8] = {};
  for (size_t i = 0; i < n; i += 8)
    for (size_t l = 0; l < 8; ++l) acc[l] = std::fma(tensor::f16_to_f32(x[i + l]), tensor::f16_to_f32(y[i + l]), acc[l]);
  return ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
}

}  // namespace

struct Decoder::Weight {
  std::string name;
  GgmlType type;
  const void* data;
  uint64_t rows, cols;           // out × in (ggml: ne[1] × ne[0])
  std::vector<float> f32;        // small tensors (norms, biases) dequantized once
};

struct Decoder::Layer {
  const Weight *attn_norm = nullptr, *wq = nullptr, *wk = nullptr, *wv = nullptr, *wo = nullptr;
  const Weight *bq = nullptr, *bk = nullptr, *bv = nullptr;
  const Weight *q_norm = nullptr, *k_norm = nullptr, *post_attn_norm = nullptr;
  const Weight *ffn_norm = nullptr, *gate = nullptr, *up = nullptr, *down = nullptr, *post_ffn_norm = nullptr;
};

Decoder::Decoder(std::shared_ptr<const gguf::File> file, DecoderOptions opt) : file_(std::move(file)), opt_(opt) {
  cfg_ = Config::from_gguf(*file_);
  if (opt_.n_ctx == 0) throw usage_error("the context must hold at least one position");
  for (const auto& t : file_->tensors()) {
    auto w = std::make_unique<Weight>();
    w->name = t.name;
    w->type = static_cast<GgmlType>(t.ggml_type);
    std::string_view bytes = file_->tensor_data(t);
    w->data = bytes.data();
    w->cols = t.ne[0];
    w->rows = t.ne.size() > 1 ? t.ne[1] : 1;
    if (!tensor::can_dequantize(w->type))
      throw input_error(fmt::format("tensor {} has ggml type {}, which loom does not handle", t.name, t.ggml_type), file_->name());
    if (t.ne.size() == 1) {
      w->f32.resize(w->cols);
      tensor::dequantize_row(w->type, w->data, w->f32.data(), w->cols);
    }
    weights_.push_back(std::move(w));
  }
  auto need = [&](const std::string& name, uint64_t cols, uint64_t rows) -> const Weight* {
    const Weight& w = weight(name);
    if (w.cols != cols || w.rows != rows)
      throw input_error(fmt::format("tensor {} is {}x{}, expected {}x{}", name, w.cols, w.rows, cols, rows), file_->name());
    return &w;
  };
  auto maybe = [&](const std::string& name, uint64_t cols, uint64_t rows) -> const Weight* {
    for (const auto& w : weights_)
      if (w->name == name) return need(name, cols, rows);
    return nullptr;
  };
  const Config& c = cfg_;
  uint64_t q_dim = uint64_t{c.n_head} * c.head_dim, kv_dim = uint64_t{c.n_head_kv} * c.head_dim,
           v_dim = uint64_t{c.n_head_kv} * c.head_dim_v;
  embd_ = need("token_embd.weight", c.n_embd, c.n_vocab);
  out_norm_ = need("output_norm.weight", c.n_embd, 1);
  output_ = c.tied_embeddings ? embd_ : need("output.weight", c.n_embd, c.n_vocab);
  layers_.resize(c.n_layer);
  for (uint32_t l = 0; l < c.n_layer; ++l) {
    std::string p = fmt::format("blk.{}.", l);
    Layer& L = layers_[l];
    L.attn_norm = need(p + "attn_norm.weight", c.n_embd, 1);
    L.wq = need(p + "attn_q.weight", c.n_embd, q_dim);
    L.wk = need(p + "attn_k.weight", c.n_embd, kv_dim);
    L.wv = need(p + "attn_v.weight", c.n_embd, v_dim);
    L.wo = need(p + "attn_output.weight", uint64_t{c.n_head} * c.head_dim_v, c.n_embd);
    if (c.attn_bias) {
      L.bq = maybe(p + "attn_q.bias", q_dim, 1);
      L.bk = maybe(p + "attn_k.bias", kv_dim, 1);
      L.bv = maybe(p + "attn_v.bias", v_dim, 1);
    }
    if (c.qk_norm) {
      L.q_norm = need(p + "attn_q_norm.weight", c.head_dim, 1);
      L.k_norm = need(p + "attn_k_norm.weight", c.head_dim, 1);
    }
    if (c.post_norms) {
      L.post_attn_norm = need(p + "post_attention_norm.weight", c.n_embd, 1);
      L.post_ffn_norm = need(p + "post_ffw_norm.weight", c.n_embd, 1);
    }
    L.ffn_norm = need(p + "ffn_norm.weight", c.n_embd, 1);
    L.gate = need(p + "ffn_gate.weight", c.n_embd, c.n_ff);
    L.up = need(p + "ffn_up.weight", c.n_embd, c.n_ff);
    L.down = need(p + "ffn_down.weight", c.n_ff, c.n_embd);
  }
  size_t per_layer = size_t{opt_.n_ctx} * kv_dim;
  k_cache_.assign(per_layer * c.n_layer, 0);
  v_cache_.assign(size_t{opt_.n_ctx} * v_dim * c.n_layer, 0);
  pool_ = std::make_unique<ThreadPool>(std::max(1u, opt_.threads));
}

Decoder::~Decoder() = default;

const Decoder::Weight& Decoder::weight(const std::string& name) const {
  for (const auto& w : weights_)
    if (w->name == name) return *w;
  throw input_error(fmt::format("the model has no tensor {} ({} expects it)", name, cfg_.arch_name), file_->name());
}

void Decoder::matmul(const Weight& w, const float* x, size_t n, float* y) {
  // activations quantized as llama.cpp quantizes them (Q8_0/Q8_1/Q8_K per weight type), rows
  // split across the pool
  kernels::ThreadHint hint;
  hint.threads = static_cast<int>(std::max(1u, opt_.threads));
  hint.run = [this](size_t n_tasks, const std::function<void(size_t)>& task) { pool_->for_each(n_tasks, task); };
  if (n == 1)
    kernels::matvec(w.type, w.data, w.rows, w.cols, x, y, hint);
  else
    kernels::matmul(w.type, w.data, w.rows, w.cols, x, n, y, hint);
}

std::vector<float> Decoder::forward(const std::vector<int32_t>& tokens, uint32_t pos, bool all_logits) {
  const Config& c = cfg_;
  size_t n = tokens.size();
  if (n == 0) return {};
  if (size_t{pos} + n > opt_.n_ctx)
    throw usage_error(fmt::format("{} tokens at position {} do not fit the context of {}", n, pos, opt_.n_ctx));
  const size_t E = c.n_embd, hd = c.head_dim, hdv = c.head_dim_v, H = c.n_head, Hkv = c.n_head_kv;
  const size_t q_dim = H * hd, kv_dim = Hkv * hd, v_dim = Hkv * hdv, F = c.n_ff;
  std::vector<float> x(n * E), h(n * E), q(n * q_dim), k(n * kv_dim), v(n * v_dim), att(n * H * hdv), o(n * E);
  std::vector<float> g(n * F), u(n * F);
  // embeddings
  {
    auto ts = kernels::type_size(embd_->type);
    size_t row_bytes = E / ts.block_elems * ts.block_bytes;
    for (size_t t = 0; t < n; ++t) {
      int32_t id = tokens[t];
      if (id < 0 || static_cast<uint32_t>(id) >= c.n_vocab)
        throw input_error(fmt::format("token id {} is outside the vocabulary of {}", id, c.n_vocab));
      tensor::dequantize_row(embd_->type, static_cast<const char*>(embd_->data) + size_t(id) * row_bytes, &x[t * E], E);
      if (c.embd_scale != 1.0f)
        for (size_t i = 0; i < E; ++i) x[t * E + i] *= c.embd_scale;
    }
  }
  // RoPE angles per position: theta_i = p * base^(-2i/d), built by repeated multiplication (as ggml)
  auto rope = [&](float* vec, size_t n_heads, uint32_t p, float base) {
    const size_t d = c.rope_dims;
    const float theta_scale = std::pow(base, -2.0f / static_cast<float>(d));
    for (size_t hh = 0; hh < n_heads; ++hh) {
      float* hv = vec + hh * hd;
      float theta = static_cast<float>(p) / c.rope_scale;
      for (size_t i0 = 0; i0 < d; i0 += 2) {
        float cs = std::cos(theta), sn = std::sin(theta);
        size_t a, b;
        if (c.rope == RopeStyle::Normal) {
          a = i0;
          b = i0 + 1;
        } else {
          a = i0 / 2;
          b = i0 / 2 + d / 2;
        }
        float x0 = hv[a], x1 = hv[b];
        // as ggml's compiled rotation: the first product fused with the rounded second
        hv[a] = std::fma(x0, cs, -(x1 * sn));
        hv[b] = std::fma(x0, sn, x1 * cs);
        theta *= theta_scale;
      }
    }
  };
  const size_t group = H / Hkv;
  for (uint32_t l = 0; l < c.n_layer; ++l) {
    const Layer& L = layers_[l];
    for (size_t t = 0; t < n; ++t) rms_norm(&x[t * E], L.attn_norm->f32.data(), &h[t * E], E, c.rms_eps);
    matmul(*L.wq, h.data(), n, q.data());
    matmul(*L.wk, h.data(), n, k.data());
    matmul(*L.wv, h.data(), n, v.data());
    auto add_bias = [&](const Weight* b, float* m, size_t dim) {
      if (!b) return;
      for (size_t t = 0; t < n; ++t)
        for (size_t i = 0; i < dim; ++i) m[t * dim + i] += b->f32[i];
    };
    add_bias(L.bq, q.data(), q_dim);
    add_bias(L.bk, k.data(), kv_dim);
    add_bias(L.bv, v.data(), v_dim);
    const bool sliding = c.layer_sliding[l];
    const float base = sliding ? c.rope_base_local : c.rope_base;
    for (size_t t = 0; t < n; ++t) {
      if (L.q_norm)
        for (size_t hh = 0; hh < H; ++hh) rms_norm(&q[t * q_dim + hh * hd], L.q_norm->f32.data(), &q[t * q_dim + hh * hd], hd, c.rms_eps);
      if (L.k_norm)
        for (size_t hh = 0; hh < Hkv; ++hh) rms_norm(&k[t * kv_dim + hh * hd], L.k_norm->f32.data(), &k[t * kv_dim + hh * hd], hd, c.rms_eps);
      rope(&q[t * q_dim], H, pos + static_cast<uint32_t>(t), base);
      rope(&k[t * kv_dim], Hkv, pos + static_cast<uint32_t>(t), base);
      // into the cache as f16
      uint16_t* kc = &k_cache_[(size_t{l} * opt_.n_ctx + pos + t) * kv_dim];
      uint16_t* vc = &v_cache_[(size_t{l} * opt_.n_ctx + pos + t) * v_dim];
      for (size_t i = 0; i < kv_dim; ++i) kc[i] = f32_to_f16(k[t * kv_dim + i]);
      for (size_t i = 0; i < v_dim; ++i) vc[i] = f32_to_f16(v[t * v_dim + i]);
    }
    // attention, one (token, head) per task, as llama.cpp computes it without flash attention:
    // scores over n_kv cache cells (the used ones rounded up to 256; the rest masked) by f16 dot
    // products, scaled, softmax through ggml's exp, then the f16 probabilities dotted with each
    // value column over all n_kv cells.
    const size_t n_kv = std::min<size_t>(opt_.n_ctx, std::max<size_t>(256, (size_t{pos} + n + 255) / 256 * 256));
    pool_->for_each(n * H, [&](size_t job) {
      size_t t = job / H, hh = job % H, kvh = hh / group;
      uint32_t p = pos + static_cast<uint32_t>(t);
      uint32_t first = sliding && c.sliding_window && p >= c.sliding_window ? p - c.sliding_window + 1 : 0;
      thread_local std::vector<uint16_t> qh, probs, col;
      thread_local std::vector<float> w;
      qh.resize(hd);
      for (size_t i = 0; i < hd; ++i) qh[i] = f32_to_f16(q[t * q_dim + hh * hd + i]);
      w.assign(n_kv, -INFINITY);
      float mx = -INFINITY;
      for (uint32_t j = first; j <= p; ++j) {
        w[j] = dot_f16(&k_cache_[(size_t{l} * opt_.n_ctx + j) * kv_dim + kvh * hd], qh.data(), hd) * c.attn_scale;
        mx = std::max(mx, w[j]);
      }
      double sum = 0;
      for (size_t j0 = 0; j0 < n_kv; j0 += 8) {  // n_kv is a multiple of 256
        float e[8];
        for (size_t l = 0; l < 8; ++l) e[l] = w[j0 + l] = ggml_expf(w[j0 + l] - mx);
        sum += static_cast<double>(((e[0] + e[4]) + (e[2] + e[6])) + ((e[1] + e[5]) + (e[3] + e[7])));
      }
      const float inv = static_cast<float>(1.0 / sum);
      probs.resize(n_kv);
      for (size_t j = 0; j < n_kv; ++j) probs[j] = f32_to_f16(w[j] * inv);
      float* out = &att[t * H * hdv + hh * hdv];
      col.resize(n_kv);
      for (size_t i = 0; i < hdv; ++i) {
        for (size_t j = 0; j < n_kv; ++j) col[j] = v_cache_[(size_t{l} * opt_.n_ctx + j) * v_dim + kvh * hdv + i];
        out[i] = dot_f16(col.data(), probs.data(), n_kv);
      }
    });
    matmul(*L.wo, att.data(), n, o.data());
    for (size_t t = 0; t < n; ++t) {
      if (L.post_attn_norm) rms_norm(&o[t * E], L.post_attn_norm->f32.data(), &o[t * E], E, c.rms_eps);
      for (size_t i = 0; i < E; ++i) x[t * E + i] += o[t * E + i];
      rms_norm(&x[t * E], L.ffn_norm->f32.data(), &h[t * E], E, c.rms_eps);
    }
    matmul(*L.gate, h.data(), n, g.data());
    matmul(*L.up, h.data(), n, u.data());
    for (size_t i = 0; i < n * F; ++i) g[i] = (c.act == Activation::Silu ? silu(g[i]) : gelu_tanh(g[i])) * u[i];
    matmul(*L.down, g.data(), n, o.data());
    for (size_t t = 0; t < n; ++t) {
      if (L.post_ffn_norm) rms_norm(&o[t * E], L.post_ffn_norm->f32.data(), &o[t * E], E, c.rms_eps);
      for (size_t i = 0; i < E; ++i) x[t * E + i] += o[t * E + i];
    }
  }
  size_t first_out = all_logits ? 0 : n - 1, n_out = n - first_out;
  for (size_t t = first_out; t < n; ++t) rms_norm(&x[t * E], out_norm_->f32.data(), &h[(t - first_out) * E], E, c.rms_eps);
  std::vector<float> logits(n_out * c.n_vocab);
  matmul(*output_, h.data(), n_out, logits.data());
  return logits;
}

}  // namespace loom::model
