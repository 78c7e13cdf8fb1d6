#include "loom/model/weights.h"

#include <fmt/format.h>

#include "loom/core/error.h"
#include "loom/gguf/gguf.h"
#include "loom/tensor/dequant.h"

namespace loom::model {

using kernels::GgmlType;

const char* module_name(Module m) {
  static const char* names[] = {"q", "k", "v", "o", "gate", "up", "down"};
  return names[static_cast<int>(m)];
}

const char* module_tensor(Module m) {
  static const char* names[] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"};
  return names[static_cast<int>(m)];
}

const Weight* LayerWeights::linear(Module m) const {
  switch (m) {
    case Module::Q: return wq;
    case Module::K: return wk;
    case Module::V: return wv;
    case Module::O: return wo;
    case Module::Gate: return gate;
    case Module::Up: return up;
    case Module::Down: return down;
  }
  return nullptr;
}

const Weight* DecoderWeights::find(std::string_view name) const {
  for (const auto& w : all)
    if (w->name == name) return w.get();
  return nullptr;
}

DecoderWeights::DecoderWeights(const gguf::File& file) : cfg(Config::from_gguf(file)) {
  for (const auto& t : file.tensors()) {
    auto w = std::make_unique<Weight>();
    w->name = t.name;
    w->type = static_cast<GgmlType>(t.ggml_type);
    std::string_view bytes = file.tensor_data(t);
    w->data = bytes.data();
    w->cols = t.ne[0];
    w->rows = t.ne.size() > 1 ? t.ne[1] : 1;
    if (!tensor::can_dequantize(w->type))
      throw input_error(fmt::format("tensor {} has ggml type {}, which loom does not handle", t.name, t.ggml_type), file.name());
    if (t.ne.size() == 1) {
      w->f32.resize(w->cols);
      tensor::dequantize_row(w->type, w->data, w->f32.data(), w->cols);
    }
    all.push_back(std::move(w));
  }
  auto check = [&](const Weight* w, const std::string& name, uint64_t cols, uint64_t rows) {
    if (w->cols != cols || w->rows != rows)
      throw input_error(fmt::format("tensor {} is {}x{}, expected {}x{}", name, w->cols, w->rows, cols, rows), file.name());
    return w;
  };
  auto need = [&](const std::string& name, uint64_t cols, uint64_t rows) -> const Weight* {
    const Weight* w = find(name);
    if (!w) throw input_error(fmt::format("the model has no tensor {} ({} expects it)", name, cfg.arch_name), file.name());
    return check(w, name, cols, rows);
  };
  auto maybe = [&](const std::string& name, uint64_t cols, uint64_t rows) -> const Weight* {
    const Weight* w = find(name);
    return w ? check(w, name, cols, rows) : nullptr;
  };
  const Config& c = cfg;
  uint64_t q_dim = uint64_t{c.n_head} * c.head_dim, kv_dim = uint64_t{c.n_head_kv} * c.head_dim,
           v_dim = uint64_t{c.n_head_kv} * c.head_dim_v;
  embd = need("token_embd.weight", c.n_embd, c.n_vocab);
  out_norm = need("output_norm.weight", c.n_embd, 1);
  output = c.tied_embeddings ? embd : need("output.weight", c.n_embd, c.n_vocab);
  layers.resize(c.n_layer);
  for (uint32_t l = 0; l < c.n_layer; ++l) {
    std::string p = fmt::format("blk.{}.", l);
    LayerWeights& L = layers[l];
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
}

}  // namespace loom::model
