#include "loom/model/decoder.h"

#include <algorithm>

#include <fmt/format.h>

#include "loom/core/error.h"
#include "loom/gguf/gguf.h"
#include "loom/model/backend.h"
#include "loom/tensor/dequant.h"

namespace loom::model {

using kernels::GgmlType;

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
  if (opt_.n_seq == 0) throw usage_error("the decoder needs at least one sequence");
  backend_ = opt_.backend ? opt_.backend(cfg_, opt_) : make_cpu_backend(cfg_, opt_);
}

Decoder::~Decoder() = default;

const Weight& Decoder::weight(const std::string& name) const {
  for (const auto& w : weights_)
    if (w->name == name) return *w;
  throw input_error(fmt::format("the model has no tensor {} ({} expects it)", name, cfg_.arch_name), file_->name());
}

void Decoder::copy_sequence(uint32_t src, uint32_t dst, uint32_t n) {
  if (src >= opt_.n_seq || dst >= opt_.n_seq) throw usage_error(fmt::format("sequence {} or {} is past the {} the decoder holds", src, dst, opt_.n_seq));
  if (n > opt_.n_ctx) throw usage_error(fmt::format("{} positions do not fit the context of {}", n, opt_.n_ctx));
  if (src == dst || n == 0) return;
  backend_->copy_sequence(src, dst, n);
}

std::vector<float> Decoder::forward(const std::vector<int32_t>& tokens, uint32_t pos, bool all_logits) {
  if (tokens.empty()) return {};
  if (size_t{pos} + tokens.size() > opt_.n_ctx)
    throw usage_error(fmt::format("{} tokens at position {} do not fit the context of {}", tokens.size(), pos, opt_.n_ctx));
  std::vector<BatchToken> batch(tokens.size());
  for (size_t t = 0; t < tokens.size(); ++t)
    batch[t] = {.token = tokens[t], .pos = pos + static_cast<uint32_t>(t), .seq = 0, .logits = all_logits || t + 1 == tokens.size()};
  return decode(batch);
}

// The forward pass of the supported architectures, as operations of the backend.
std::vector<float> Decoder::decode(const std::vector<BatchToken>& batch) {
  const Config& c = cfg_;
  const size_t n = batch.size();
  if (n == 0) return {};
  for (const BatchToken& b : batch) {
    if (b.seq >= opt_.n_seq) throw usage_error(fmt::format("sequence {} is past the {} the decoder holds", b.seq, opt_.n_seq));
    if (b.pos >= opt_.n_ctx) throw usage_error(fmt::format("position {} does not fit the context of {}", b.pos, opt_.n_ctx));
    if (b.token < 0 || static_cast<uint32_t>(b.token) >= c.n_vocab)
      throw input_error(fmt::format("token id {} is outside the vocabulary of {}", b.token, c.n_vocab));
  }
  Backend& be = *backend_;
  be.begin(batch);
  const size_t E = c.n_embd, hd = c.head_dim, hdv = c.head_dim_v, H = c.n_head, Hkv = c.n_head_kv;
  Act x = be.alloc(n, E), h = be.alloc(n, E), q = be.alloc(n, H * hd), k = be.alloc(n, Hkv * hd), v = be.alloc(n, Hkv * hdv);
  Act att = be.alloc(n, H * hdv), o = be.alloc(n, E), g = be.alloc(n, c.n_ff), u = be.alloc(n, c.n_ff);
  be.embed(*embd_, c.embd_scale, x);
  for (uint32_t l = 0; l < c.n_layer; ++l) {
    const Layer& L = layers_[l];
    be.rms_norm(x, *L.attn_norm, c.rms_eps, E, h);
    be.matmul(*L.wq, h, q);
    be.matmul(*L.wk, h, k);
    be.matmul(*L.wv, h, v);
    if (L.bq) be.add_bias(*L.bq, q);
    if (L.bk) be.add_bias(*L.bk, k);
    if (L.bv) be.add_bias(*L.bv, v);
    if (L.q_norm) be.rms_norm(q, *L.q_norm, c.rms_eps, hd, q);
    if (L.k_norm) be.rms_norm(k, *L.k_norm, c.rms_eps, hd, k);
    const bool sliding = c.layer_sliding[l];
    const float base = sliding ? c.rope_base_local : c.rope_base;
    const float freq_scale = 1.0f / (sliding ? c.rope_scale_local : c.rope_scale);
    be.rope(q, H, base, freq_scale);
    be.rope(k, Hkv, base, freq_scale);
    be.attention({.layer = l, .window = sliding ? c.sliding_window : 0, .scale = c.scale_q ? 1.0f : c.attn_scale,
                  .q_scale = c.scale_q ? c.attn_scale : 1.0f}, q, k, v, att);
    be.matmul(*L.wo, att, o);
    if (L.post_attn_norm) be.rms_norm(o, *L.post_attn_norm, c.rms_eps, E, o);
    be.add(x, o);
    be.rms_norm(x, *L.ffn_norm, c.rms_eps, E, h);
    be.matmul(*L.gate, h, g);
    be.matmul(*L.up, h, u);
    be.glu(c.act, g, u);
    be.matmul(*L.down, g, o);
    if (L.post_ffn_norm) be.rms_norm(o, *L.post_ffn_norm, c.rms_eps, E, o);
    be.add(x, o);
  }
  std::vector<size_t> rows;
  for (size_t t = 0; t < n; ++t)
    if (batch[t].logits) rows.push_back(t);
  if (rows.empty()) return {};
  Act sel = x;
  if (rows.size() < n) {
    sel = be.alloc(rows.size(), E);
    be.select_rows(x, rows, sel);
  }
  Act hn = be.alloc(rows.size(), E);
  be.rms_norm(sel, *out_norm_, c.rms_eps, E, hn);
  if (opt_.embeddings) {
    std::vector<float> h(rows.size() * E);
    be.read(hn, h.data());
    return h;
  }
  Act lg = be.alloc(rows.size(), c.n_vocab);
  be.matmul(*output_, hn, lg);
  std::vector<float> logits(rows.size() * c.n_vocab);
  be.read(lg, logits.data());
  return logits;
}

}  // namespace loom::model
