#include "loom/model/decoder.h"

#include <algorithm>
#include <array>

#include <fmt/format.h>

#include "loom/core/error.h"
#include "loom/gguf/gguf.h"
#include "loom/model/backend.h"
#include "loom/model/lora.h"
#include "loom/model/weights.h"

namespace loom::model {

// An adapter's matrices as F32 weights the backend multiplies: A (r x in), B (out x r), and the
// scale of their product.
struct Decoder::LoraMats {
  struct Pair {
    Weight a, b;
    float scale;
  };
  std::array<std::vector<Pair>, 7> by_module;
};

Decoder::Decoder(std::shared_ptr<const gguf::File> file, DecoderOptions opt)
    : file_(std::move(file)), opt_(opt), w_(std::make_unique<DecoderWeights>(*file_)), cfg_(w_->cfg) {
  if (opt_.n_ctx == 0) throw usage_error("the context must hold at least one position");
  if (opt_.n_seq == 0) throw usage_error("the decoder needs at least one sequence");
  if (!opt_.lora_scales.empty() && opt_.lora_scales.size() != opt_.loras.size())
    throw usage_error(fmt::format("{} LoRA scales for {} adapters (give none, or one per adapter)", opt_.lora_scales.size(), opt_.loras.size()));
  if (!opt_.loras.empty()) lora_.resize(cfg_.n_layer);
  for (size_t i = 0; i < opt_.loras.size(); ++i) {
    const LoraAdapter a = LoraAdapter::read(opt_.loras[i], *w_);
    const float user = opt_.lora_scales.empty() ? 1.0f : opt_.lora_scales[i];
    for (const LoraPair& p : a.pairs) {
      const float s = a.scale(p, user);
      auto mat = [&](const std::vector<float>& v, uint64_t rows, uint64_t cols, const std::string& suffix) {
        Weight m;
        m.name = p.tensor() + suffix;
        m.type = kernels::GgmlType::F32;
        m.rows = rows;
        m.cols = cols;
        m.f32 = v;
        return m;
      };
      auto& list = lora_[p.layer].by_module[static_cast<size_t>(p.module)];
      list.push_back({mat(p.a, p.rank, p.in, ".lora_a"), mat(p.b, p.out, p.rank, ".lora_b"), s});
    }
  }
  for (auto& L : lora_)  // data pointers once the vectors stay put
    for (auto& list : L.by_module)
      for (auto& m : list) {
        m.a.data = m.a.f32.data();
        m.b.data = m.b.f32.data();
      }
  backend_ = opt_.backend ? opt_.backend(cfg_, opt_) : make_cpu_backend(cfg_, opt_);
}

Decoder::~Decoder() = default;

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
  // y = W x, then each adapter's B (A x), scaled, added: llama.cpp's order of operations
  auto linear = [&](uint32_t l, Module m, const Weight& W, Act in, Act out) {
    be.matmul(W, in, out);
    if (lora_.empty()) return;
    for (const auto& p : lora_[l].by_module[static_cast<size_t>(m)]) {
      Act ax = be.alloc(n, p.a.rows), bx = be.alloc(n, p.b.rows);
      be.matmul(p.a, in, ax);
      be.matmul(p.b, ax, bx);
      be.scale(bx, p.scale);
      be.add(out, bx);
    }
  };
  be.embed(*w_->embd, c.embd_scale, x);
  for (uint32_t l = 0; l < c.n_layer; ++l) {
    const LayerWeights& L = w_->layers[l];
    be.rms_norm(x, *L.attn_norm, c.rms_eps, E, h);
    linear(l, Module::Q, *L.wq, h, q);
    linear(l, Module::K, *L.wk, h, k);
    linear(l, Module::V, *L.wv, h, v);
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
    linear(l, Module::O, *L.wo, att, o);
    if (L.post_attn_norm) be.rms_norm(o, *L.post_attn_norm, c.rms_eps, E, o);
    be.add(x, o);
    be.rms_norm(x, *L.ffn_norm, c.rms_eps, E, h);
    linear(l, Module::Gate, *L.gate, h, g);
    linear(l, Module::Up, *L.up, h, u);
    be.glu(c.act, g, u);
    linear(l, Module::Down, *L.down, g, o);
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
  be.rms_norm(sel, *w_->out_norm, c.rms_eps, E, hn);
  if (opt_.embeddings) {
    std::vector<float> h(rows.size() * E);
    be.read(hn, h.data());
    return h;
  }
  Act lg = be.alloc(rows.size(), c.n_vocab);
  be.matmul(*w_->output, hn, lg);
  std::vector<float> logits(rows.size() * c.n_vocab);
  be.read(lg, logits.data());
  return logits;
}

}  // namespace loom::model
