#include "loom/train/network.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <unordered_map>

#include <fmt/format.h>

#include "kernels/cpu/encoder_ops.h"
#include "kernels/cpu/train_ops.h"
#include "loom/core/error.h"
#include "loom/core/parallel.h"
#include "loom/tensor/dequant.h"

namespace loom::train {

namespace ops = kernels::train;
using model::Module;
using model::Weight;

Gradients Gradients::like(const model::LoraAdapter& lora) {
  Gradients g;
  for (const auto& p : lora.pairs) {
    g.a.emplace_back(p.a.size(), 0.0f);
    g.b.emplace_back(p.b.size(), 0.0f);
  }
  return g;
}

void Gradients::zero() {
  for (auto& v : a) std::fill(v.begin(), v.end(), 0.0f);
  for (auto& v : b) std::fill(v.begin(), v.end(), 0.0f);
}

double Gradients::sq_norm() const {
  double s = 0;
  for (const auto* set : {&a, &b})
    for (const auto& v : *set)
      for (float x : v) s += static_cast<double>(x) * x;
  return s;
}

void Gradients::scale(float s) {
  for (auto* set : {&a, &b})
    for (auto& v : *set)
      for (float& x : v) x *= s;
}

namespace {

constexpr size_t kModuleCount = 7;

// A uniform number in [0, 1) from a key: splitmix64 of the key.
inline float hash_uniform(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  x ^= x >> 31;
  return static_cast<float>(x >> 40) * (1.0f / 16777216.0f);
}

// What the backward pass of one layer needs from its forward pass.
struct LayerCache {
  std::vector<float> x, r1, h;                 // input, attn-norm rstd per row, normed input
  std::vector<float> q0, k0, rq, rk;           // q, k before their per-head norms, and the rstds
  std::vector<float> q, k, v, lse, att;        // after RoPE; log-sum-exp per row and head; attention output
  std::vector<float> o0, rpo;                  // attention projection before the post-norm
  std::vector<float> x2, r2, h2, g, u, a;      // residual after attention, ffn norm, gate, up, act(gate)*up
  std::vector<float> d0, rpf;                  // ffn output before the post-norm
  std::vector<float> lu[kModuleCount];         // A x (dropped out) of each adapted layer: N x r
};

}  // namespace

struct Network::Impl {
  const model::DecoderWeights& w;
  const model::Config& c;
  model::LoraAdapter& lora;
  NetworkOptions opt;
  SpinPool pool;
  // pair index of (layer, module), -1 where not adapted
  std::vector<std::array<int, kModuleCount>> pair_of;
  std::vector<LayerCache> caches;     // one per layer, or one (checkpointing)
  struct Work {  // the backward pass's buffers, kept from layer to layer and pass to pass
    std::vector<float> o, dd, da, dg, du, dh, dout, datt, dq, dkp, dvp, dk, dv;
  } ws;
  std::vector<std::vector<float>> ckpt;  // layer inputs (checkpointing)
  std::vector<float> deq;             // a dequantized matrix
  const Weight* deq_of = nullptr;
  std::unordered_map<const Weight*, std::vector<float>> cache;  // dequantized matrices kept
  size_t cached_bytes = 0;
  // this pass
  size_t N = 0;
  std::vector<size_t> seg_start, seg_len;
  std::vector<uint32_t> pos;
  std::vector<float> rope_global, rope_local;  // N x half x (cos, sin)
  bool use_lora = true;
  uint64_t dropout_key = 0;
  Gradients* grad = nullptr;

  Impl(const model::DecoderWeights& w_, model::LoraAdapter& l, NetworkOptions o)
      : w(w_), c(w_.cfg), lora(l), opt(o), pool(std::max(1u, o.threads)) {
    // each gemm call runs on one of the pool's threads; OpenBLAS's own threads would only compete
    kernels::blas_single_threaded();
    pair_of.assign(c.n_layer, {});
    for (auto& a : pair_of) a.fill(-1);
    for (size_t i = 0; i < lora.pairs.size(); ++i) {
      const auto& p = lora.pairs[i];
      if (p.layer >= c.n_layer) throw usage_error(fmt::format("adapter layer {} is past the model's {}", p.layer, c.n_layer));
      pair_of[p.layer][static_cast<size_t>(p.module)] = static_cast<int>(i);
    }
    caches.resize(opt.checkpoint ? 1 : c.n_layer);
    if (opt.checkpoint) ckpt.resize(c.n_layer);
  }

  unsigned threads() const { return std::max(1u, opt.threads); }

  // f32 values of a base matrix (rows x cols): the file's own when F32, else dequantized — kept
  // while the cache's budget allows, else into a scratch buffer each time
  const float* f32(const Weight& m) {
    if (m.type == kernels::GgmlType::F32) return static_cast<const float*>(m.data);
    if (auto it = cache.find(&m); it != cache.end()) return it->second.data();
    if (deq_of == &m) return deq.data();
    const size_t bytes = m.rows * m.cols * sizeof(float);
    if (cached_bytes + bytes <= opt.weight_cache) {
      cached_bytes += bytes;
      std::vector<float>& v = cache[&m];
      v.resize(m.rows * m.cols);
      dequantize(m, v.data());
      return v.data();
    }
    deq.resize(m.rows * m.cols);
    dequantize(m, deq.data());
    deq_of = &m;
    return deq.data();
  }

  void dequantize(const Weight& m, float* out) {
    const auto ts = kernels::type_size(m.type);
    const size_t row_bytes = m.cols / ts.block_elems * ts.block_bytes;
    const size_t chunk = 64;
    pool.for_each((m.rows + chunk - 1) / chunk, [&](size_t i) {
      const size_t r0 = i * chunk, r1 = std::min<size_t>(m.rows, r0 + chunk);
      tensor::dequantize_row(m.type, static_cast<const char*>(m.data) + r0 * row_bytes, out + r0 * m.cols, (r1 - r0) * m.cols);
    });
  }

  // C (M x N) = alpha op(A) op(B) + beta C, split across the threads along the larger of M, N
  void gemm(bool ta, bool tb, size_t M, size_t Nn, size_t K, float alpha, const float* A, size_t lda, const float* B,
            size_t ldb, float beta, float* C, size_t ldc) {
    const size_t T = threads();
    const bool by_rows = M >= Nn;
    const size_t len = by_rows ? M : Nn;
    const size_t parts = std::min(T, std::max<size_t>(1, len / 16));
    if (parts <= 1) return ops::gemm(ta, tb, M, Nn, K, alpha, A, lda, B, ldb, beta, C, ldc);
    pool.for_each(parts, [&](size_t p) {
      const size_t i0 = len * p / parts, i1 = len * (p + 1) / parts;
      if (by_rows)
        ops::gemm(ta, tb, i1 - i0, Nn, K, alpha, ta ? A + i0 : A + i0 * lda, lda, B, ldb, beta, C + i0 * ldc, ldc);
      else
        ops::gemm(ta, tb, M, i1 - i0, K, alpha, A, lda, tb ? B + i0 * ldb : B + i0, ldb, beta, C + i0, ldc);
    });
  }

  template <class F>
  void rows(size_t n, F&& fn) {
    const size_t chunk = 8;
    pool.for_each((n + chunk - 1) / chunk, [&](size_t i) {
      for (size_t r = i * chunk, e = std::min(n, r + chunk); r < e; ++r) fn(r);
    });
  }

  const model::LoraPair* pair(uint32_t l, Module m, int* idx) const {
    *idx = use_lora ? pair_of[l][static_cast<size_t>(m)] : -1;
    return *idx >= 0 ? &lora.pairs[static_cast<size_t>(*idx)] : nullptr;
  }

  bool dropping() const { return opt.dropout > 0.0f && dropout_key != 0; }

  // the dropout of layer l's module m input: keep mask value (0 or 1/(1-p)) of element e
  float keep(uint32_t l, Module m, size_t e) const {
    const uint64_t key = dropout_key * 0x100000001B3ull ^ (uint64_t{l} << 48) ^ (uint64_t(m) << 44) ^ e;
    return hash_uniform(key) < opt.dropout ? 0.0f : 1.0f / (1.0f - opt.dropout);
  }

  // X (N x in) with layer l's module m dropout applied, into buf (or X itself without dropout)
  const float* dropped(uint32_t l, Module m, const float* X, size_t in, std::vector<float>& buf) {
    if (!dropping()) return X;
    buf.resize(N * in);
    rows(N, [&](size_t r) {
      for (size_t i = 0; i < in; ++i) buf[r * in + i] = X[r * in + i] * keep(l, m, r * in + i);
    });
    return buf.data();
  }

  // Y = X W^T (+ scale B A drop(X)); lu gets A drop(X)
  void linear(uint32_t l, Module m, const float* X, float* Y, std::vector<float>& lu) {
    const Weight& W = *w.layers[l].linear(m);
    const size_t in = W.cols, out = W.rows;
    gemm(false, true, N, out, in, 1.0f, X, in, f32(W), in, 0.0f, Y, out);
    int idx;
    if (const model::LoraPair* p = pair(l, m, &idx)) {
      std::vector<float> buf;
      const float* Xd = dropped(l, m, X, in, buf);
      lu.resize(N * p->rank);
      gemm(false, true, N, p->rank, in, 1.0f, Xd, in, p->a.data(), in, 0.0f, lu.data(), p->rank);
      gemm(false, true, N, out, p->rank, lora.scale(*p), lu.data(), p->rank, p->b.data(), p->rank, 1.0f, Y, out);
    }
  }

  // dX (+)= dY W (+ the adapter's part); the adapter's gradients added to grad
  void linear_bwd(uint32_t l, Module m, const float* X, const float* dY, float* dX, bool accumulate, const std::vector<float>& lu) {
    const Weight& W = *w.layers[l].linear(m);
    const size_t in = W.cols, out = W.rows;
    gemm(false, false, N, in, out, 1.0f, dY, out, f32(W), in, accumulate ? 1.0f : 0.0f, dX, in);
    int idx;
    const model::LoraPair* p = pair(l, m, &idx);
    if (!p) return;
    const size_t r = p->rank;
    const float s = lora.scale(*p);
    std::vector<float> dU(N * r), buf;
    gemm(false, false, N, r, out, s, dY, out, p->b.data(), r, 0.0f, dU.data(), r);
    if (grad) {
      gemm(true, false, out, r, N, s, dY, out, lu.data(), r, 1.0f, grad->b[idx].data(), r);
      const float* Xd = dropped(l, m, X, in, buf);
      gemm(true, false, r, in, N, 1.0f, dU.data(), r, Xd, in, 1.0f, grad->a[idx].data(), in);
    }
    if (!dropping()) {
      gemm(false, false, N, in, r, 1.0f, dU.data(), r, p->a.data(), in, 1.0f, dX, in);
    } else {
      std::vector<float> t(N * in);
      gemm(false, false, N, in, r, 1.0f, dU.data(), r, p->a.data(), in, 0.0f, t.data(), in);
      rows(N, [&](size_t row) {
        for (size_t i = 0; i < in; ++i) dX[row * in + i] += t[row * in + i] * keep(l, m, row * in + i);
      });
    }
  }

  void build_rope(std::vector<float>& tab, float base, float freq_scale) {
    const size_t half = c.rope_dims / 2;
    tab.resize(N * half * 2);
    const auto& ff = c.rope_freq_factors;
    for (size_t t = 0; t < N; ++t)
      for (size_t i = 0; i < half; ++i) {
        const double theta = static_cast<double>(pos[t]) *
                             std::pow(static_cast<double>(base), -2.0 * static_cast<double>(i) / static_cast<double>(c.rope_dims));
        const double angle = static_cast<double>(freq_scale) * theta / (ff.empty() ? 1.0 : static_cast<double>(ff[i]));
        tab[(t * half + i) * 2] = static_cast<float>(std::cos(angle));
        tab[(t * half + i) * 2 + 1] = static_cast<float>(std::sin(angle));
      }
  }

  // per-head rms norm of an N x (heads * hd) matrix in place; r gets the rstds
  void head_norm(std::vector<float>& x, const Weight& wn, size_t heads, std::vector<float>& r) {
    const size_t hd = c.head_dim;
    r.resize(N * heads);
    rows(N, [&](size_t t) {
      for (size_t h = 0; h < heads; ++h) {
        float* p = x.data() + (t * heads + h) * hd;
        r[t * heads + h] = ops::rms_norm_fwd(p, wn.f32.data(), p, hd, c.rms_eps);
      }
    });
  }

  void norm_rows(const float* x, const Weight& wn, float* y, std::vector<float>& r, size_t width) {
    r.resize(N);
    rows(N, [&](size_t t) { r[t] = ops::rms_norm_fwd(x + t * width, wn.f32.data(), y + t * width, width, c.rms_eps); });
  }
  void norm_rows_bwd(const float* x, const Weight& wn, const std::vector<float>& r, const float* dy, float* dx, size_t width,
                     bool accumulate) {
    rows(N, [&](size_t t) {
      std::vector<float> tmp(width);
      ops::rms_norm_bwd(x + t * width, wn.f32.data(), r[t], dy + t * width, tmp.data(), width);
      float* o = dx + t * width;
      for (size_t i = 0; i < width; ++i) o[i] = accumulate ? o[i] + tmp[i] : tmp[i];
    });
  }

  float attn_scale() const { return c.attn_scale; }  // q.k scale (q scaled first in Gemma 3: the same product)
  size_t window(uint32_t l) const { return c.layer_sliding[l] ? c.sliding_window : 0; }
  const std::vector<float>& rope_tab(uint32_t l) const { return c.layer_sliding[l] ? rope_local : rope_global; }

  // x (N x E) in place: the layer's output; cache filled
  void layer_fwd(uint32_t l, float* x, LayerCache& k) {
    const model::LayerWeights& L = w.layers[l];
    const size_t E = c.n_embd, H = c.n_head, Hkv = c.n_head_kv, hd = c.head_dim, hdv = c.head_dim_v, F = c.n_ff;
    const size_t qd = H * hd, kd = Hkv * hd, vd = Hkv * hdv, ad = H * hdv;
    k.x.assign(x, x + N * E);
    k.h.resize(N * E);
    norm_rows(x, *L.attn_norm, k.h.data(), k.r1, E);
    k.q.resize(N * qd);
    k.k.resize(N * kd);
    k.v.resize(N * vd);
    linear(l, Module::Q, k.h.data(), k.q.data(), k.lu[0]);
    linear(l, Module::K, k.h.data(), k.k.data(), k.lu[1]);
    linear(l, Module::V, k.h.data(), k.v.data(), k.lu[2]);
    auto bias = [&](const Weight* b, std::vector<float>& y, size_t width) {
      if (!b) return;
      for (size_t t = 0; t < N; ++t)
        for (size_t i = 0; i < width; ++i) y[t * width + i] += b->f32[i];
    };
    bias(L.bq, k.q, qd);
    bias(L.bk, k.k, kd);
    bias(L.bv, k.v, vd);
    if (L.q_norm) {
      k.q0 = k.q;
      k.k0 = k.k;
      head_norm(k.q, *L.q_norm, H, k.rq);
      head_norm(k.k, *L.k_norm, Hkv, k.rk);
    }
    const std::vector<float>& cs = rope_tab(l);
    const size_t half = c.rope_dims / 2;
    const bool neox = c.rope == model::RopeStyle::Neox;
    rows(N, [&](size_t t) {
      for (size_t h = 0; h < H; ++h) ops::rope_fwd(&k.q[t * qd + h * hd], &cs[t * half * 2], half, neox);
      for (size_t h = 0; h < Hkv; ++h) ops::rope_fwd(&k.k[t * kd + h * hd], &cs[t * half * 2], half, neox);
    });
    k.att.resize(N * ad);
    k.lse.resize(N * H);
    const size_t S = seg_start.size(), group = H / Hkv;
    const float scale = attn_scale();
    pool.for_each(S * H, [&](size_t job) {
      const size_t s = job / H, h = job % H, g = h / group, s0 = seg_start[s], T = seg_len[s];
      thread_local std::vector<float> scratch, lse;
      scratch.resize(T * T);
      lse.resize(T);
      ops::attention_fwd(T, hd, hdv, &k.q[s0 * qd + h * hd], qd, &k.k[s0 * kd + g * hd], kd, &k.v[s0 * vd + g * hdv], vd, scale,
                         window(l), &k.att[s0 * ad + h * hdv], ad, lse.data(), scratch.data());
      for (size_t t = 0; t < T; ++t) k.lse[(s0 + t) * H + h] = lse[t];
    });
    std::vector<float>& o = ws.o;
    o.resize(N * E);
    linear(l, Module::O, k.att.data(), o.data(), k.lu[3]);
    if (L.post_attn_norm) {
      k.o0 = o;
      norm_rows(k.o0.data(), *L.post_attn_norm, o.data(), k.rpo, E);
    }
    for (size_t i = 0; i < N * E; ++i) x[i] += o[i];
    k.x2.assign(x, x + N * E);
    k.h2.resize(N * E);
    norm_rows(x, *L.ffn_norm, k.h2.data(), k.r2, E);
    k.g.resize(N * F);
    k.u.resize(N * F);
    k.a.resize(N * F);
    linear(l, Module::Gate, k.h2.data(), k.g.data(), k.lu[4]);
    linear(l, Module::Up, k.h2.data(), k.u.data(), k.lu[5]);
    const bool gelu = c.act == model::Activation::GeluTanh;
    rows(N, [&](size_t t) { ops::glu_fwd(gelu, &k.g[t * F], &k.u[t * F], &k.a[t * F], F); });
    linear(l, Module::Down, k.a.data(), o.data(), k.lu[6]);
    if (L.post_ffn_norm) {
      k.d0 = o;
      norm_rows(k.d0.data(), *L.post_ffn_norm, o.data(), k.rpf, E);
    }
    for (size_t i = 0; i < N * E; ++i) x[i] += o[i];
  }

  // dx (N x E) in place: from the gradient of the layer's output to that of its input
  void layer_bwd(uint32_t l, float* dx, LayerCache& k) {
    const model::LayerWeights& L = w.layers[l];
    const size_t E = c.n_embd, H = c.n_head, Hkv = c.n_head_kv, hd = c.head_dim, hdv = c.head_dim_v, F = c.n_ff;
    const size_t qd = H * hd, kd = Hkv * hd, vd = Hkv * hdv, ad = H * hdv;
    // ffn
    std::vector<float>& dd = ws.dd;
    dd.assign(dx, dx + N * E);
    if (L.post_ffn_norm) norm_rows_bwd(k.d0.data(), *L.post_ffn_norm, k.rpf, dx, dd.data(), E, false);
    std::vector<float>&da = ws.da, &dg = ws.dg, &du = ws.du;
    da.resize(N * F);
    dg.resize(N * F);
    du.resize(N * F);
    linear_bwd(l, Module::Down, k.a.data(), dd.data(), da.data(), false, k.lu[6]);
    const bool gelu = c.act == model::Activation::GeluTanh;
    rows(N, [&](size_t t) { ops::glu_bwd(gelu, &k.g[t * F], &k.u[t * F], &da[t * F], &dg[t * F], &du[t * F], F); });
    std::vector<float>& dh = ws.dh;
    dh.resize(N * E);
    linear_bwd(l, Module::Gate, k.h2.data(), dg.data(), dh.data(), false, k.lu[4]);
    linear_bwd(l, Module::Up, k.h2.data(), du.data(), dh.data(), true, k.lu[5]);
    norm_rows_bwd(k.x2.data(), *L.ffn_norm, k.r2, dh.data(), dx, E, true);  // dx is now d(x2)
    // attention
    std::vector<float>& dout = ws.dout;
    dout.assign(dx, dx + N * E);
    if (L.post_attn_norm) norm_rows_bwd(k.o0.data(), *L.post_attn_norm, k.rpo, dx, dout.data(), E, false);
    std::vector<float>& datt = ws.datt;
    datt.resize(N * ad);
    linear_bwd(l, Module::O, k.att.data(), dout.data(), datt.data(), false, k.lu[3]);
    std::vector<float>&dq = ws.dq, &dkp = ws.dkp, &dvp = ws.dvp;
    dq.resize(N * qd);
    dkp.resize(N * H * hd);
    dvp.resize(N * H * hdv);
    const size_t S = seg_start.size(), group = H / Hkv;
    const float scale = attn_scale();
    pool.for_each(S * H, [&](size_t job) {
      const size_t s = job / H, h = job % H, g = h / group, s0 = seg_start[s], T = seg_len[s];
      thread_local std::vector<float> scratch, lse;
      scratch.resize(2 * T * T);
      lse.resize(T);
      for (size_t t = 0; t < T; ++t) lse[t] = k.lse[(s0 + t) * H + h];
      ops::attention_bwd(T, hd, hdv, &k.q[s0 * qd + h * hd], qd, &k.k[s0 * kd + g * hd], kd, &k.v[s0 * vd + g * hdv], vd, scale,
                         window(l), lse.data(), &datt[s0 * ad + h * hdv], ad, &dq[s0 * qd + h * hd], qd,
                         &dkp[s0 * H * hd + h * hd], H * hd, &dvp[s0 * H * hdv + h * hdv], H * hdv, scratch.data());
    });
    std::vector<float>&dk = ws.dk, &dv = ws.dv;
    dk.assign(N * kd, 0.0f);
    dv.assign(N * vd, 0.0f);
    rows(N, [&](size_t t) {
      for (size_t h = 0; h < H; ++h) {
        const size_t g = h / group;
        for (size_t i = 0; i < hd; ++i) dk[t * kd + g * hd + i] += dkp[t * H * hd + h * hd + i];
        for (size_t i = 0; i < hdv; ++i) dv[t * vd + g * hdv + i] += dvp[t * H * hdv + h * hdv + i];
      }
    });
    const std::vector<float>& cs = rope_tab(l);
    const size_t half = c.rope_dims / 2;
    const bool neox = c.rope == model::RopeStyle::Neox;
    rows(N, [&](size_t t) {
      for (size_t h = 0; h < H; ++h) ops::rope_bwd(&dq[t * qd + h * hd], &cs[t * half * 2], half, neox);
      for (size_t h = 0; h < Hkv; ++h) ops::rope_bwd(&dk[t * kd + h * hd], &cs[t * half * 2], half, neox);
    });
    if (L.q_norm) {
      rows(N, [&](size_t t) {
        for (size_t h = 0; h < H; ++h) {
          float* p = &dq[(t * H + h) * hd];
          ops::rms_norm_bwd(&k.q0[(t * H + h) * hd], L.q_norm->f32.data(), k.rq[t * H + h], p, p, hd);
        }
        for (size_t h = 0; h < Hkv; ++h) {
          float* p = &dk[(t * Hkv + h) * hd];
          ops::rms_norm_bwd(&k.k0[(t * Hkv + h) * hd], L.k_norm->f32.data(), k.rk[t * Hkv + h], p, p, hd);
        }
      });
    }
    linear_bwd(l, Module::Q, k.h.data(), dq.data(), dh.data(), false, k.lu[0]);
    linear_bwd(l, Module::K, k.h.data(), dk.data(), dh.data(), true, k.lu[1]);
    linear_bwd(l, Module::V, k.h.data(), dv.data(), dh.data(), true, k.lu[2]);
    norm_rows_bwd(k.x.data(), *L.attn_norm, k.r1, dh.data(), dx, E, true);
  }

  // Every buffer at the size a pass of n tokens needs, once: passes of varying sizes then never
  // reallocate (which fragmented the heap and grew the peak RSS step after step).
  void reserve(size_t n) {
    const size_t E = c.n_embd, H = c.n_head, Hkv = c.n_head_kv, hd = c.head_dim, hdv = c.head_dim_v, F = c.n_ff;
    const size_t qd = H * hd, kd = Hkv * hd, vd = Hkv * hdv, ad = H * hdv;
    size_t r = 0;
    for (const auto& p : lora.pairs) r = std::max<size_t>(r, p.rank);
    for (LayerCache& k : caches) {
      for (auto* v : {&k.x, &k.h, &k.x2, &k.h2}) v->reserve(n * E);
      for (auto* v : {&k.r1, &k.r2, &k.rpo, &k.rpf}) v->reserve(n);
      k.q.reserve(n * qd);
      k.k.reserve(n * kd);
      k.v.reserve(n * vd);
      k.att.reserve(n * ad);
      k.lse.reserve(n * H);
      for (auto* v : {&k.g, &k.u, &k.a}) v->reserve(n * F);
      if (c.qk_norm) {
        k.q0.reserve(n * qd);
        k.k0.reserve(n * kd);
        k.rq.reserve(n * H);
        k.rk.reserve(n * Hkv);
      }
      if (c.post_norms) {
        k.o0.reserve(n * E);
        k.d0.reserve(n * E);
      }
      for (auto& v : k.lu) v.reserve(n * r);
    }
    for (auto* v : {&ws.o, &ws.dd, &ws.dh, &ws.dout}) v->reserve(n * E);
    for (auto* v : {&ws.da, &ws.dg, &ws.du}) v->reserve(n * F);
    ws.datt.reserve(n * ad);
    ws.dq.reserve(n * qd);
    ws.dkp.reserve(n * H * hd);
    ws.dvp.reserve(n * H * hdv);
    ws.dk.reserve(n * kd);
    ws.dv.reserve(n * vd);
  }

  Pass run(const std::vector<const Sequence*>& seqs, Gradients* g, uint64_t key, bool lora_on) {
    Pass pass;
    pass.logp.assign(seqs.size(), 0.0);
    use_lora = lora_on;
    grad = lora_on ? g : nullptr;
    dropout_key = key;
    seg_start.clear();
    seg_len.clear();
    pos.clear();
    N = 0;
    for (const Sequence* s : seqs) {
      if (s->weight.size() != s->tokens.size()) throw usage_error("a training sequence needs one weight per token");
      seg_start.push_back(N);
      seg_len.push_back(s->tokens.size());
      for (size_t t = 0; t < s->tokens.size(); ++t) {
        const int32_t tok = s->tokens[t];
        if (tok < 0 || static_cast<uint32_t>(tok) >= c.n_vocab)
          throw input_error(fmt::format("token id {} is outside the vocabulary of {}", tok, c.n_vocab));
        pos.push_back(static_cast<uint32_t>(t));
      }
      N += s->tokens.size();
    }
    if (N == 0) return pass;
    build_rope(rope_global, c.rope_base, 1.0f / c.rope_scale);
    build_rope(rope_local, c.rope_base_local, 1.0f / c.rope_scale_local);
    const size_t E = c.n_embd;
    // embeddings
    std::vector<float> x(N * E);
    {
      const Weight& T = *w.embd;
      const auto ts = kernels::type_size(T.type);
      const size_t row_bytes = E / ts.block_elems * ts.block_bytes;
      size_t r = 0;
      for (const Sequence* s : seqs)
        for (int32_t tok : s->tokens) {
          tensor::dequantize_row(T.type, static_cast<const char*>(T.data) + size_t(tok) * row_bytes, &x[r * E], E);
          if (c.embd_scale != 1.0f)
            for (size_t i = 0; i < E; ++i) x[r * E + i] *= c.embd_scale;
          ++r;
        }
    }
    for (uint32_t l = 0; l < c.n_layer; ++l) {
      if (opt.checkpoint) {
        if (grad) ckpt[l] = x;
        layer_fwd(l, x.data(), caches[0]);
      } else {
        layer_fwd(l, x.data(), caches[l]);
      }
    }
    // the output layer and the loss, over the rows that predict a target
    struct Target {
      size_t row, seq;
      int32_t token;
      float weight;
    };
    std::vector<Target> targets;
    for (size_t s = 0; s < seqs.size(); ++s)
      for (size_t t = 1; t < seqs[s]->tokens.size(); ++t)
        if (seqs[s]->weight[t] != 0.0f) targets.push_back({seg_start[s] + t - 1, s, seqs[s]->tokens[t], seqs[s]->weight[t]});
    pass.targets = targets.size();
    std::vector<float> dx(grad ? N * E : 0, 0.0f);
    const Weight& Out = *w.output;
    const size_t V = c.n_vocab;
    const size_t chunk = std::max<size_t>(8, std::min<size_t>(256, (size_t{64} << 20) / (V * sizeof(float))));
    const float* Wout = targets.empty() ? nullptr : f32(Out);
    std::vector<float> hn, rr, logits, dhn;
    std::vector<double> lp;
    for (size_t c0 = 0; c0 < targets.size(); c0 += chunk) {
      const size_t C = std::min(chunk, targets.size() - c0);
      hn.resize(C * E);
      rr.resize(C);
      logits.resize(C * V);
      lp.resize(C);
      for (size_t i = 0; i < C; ++i)
        rr[i] = ops::rms_norm_fwd(&x[targets[c0 + i].row * E], w.out_norm->f32.data(), &hn[i * E], E, c.rms_eps);
      gemm(false, true, C, V, E, 1.0f, hn.data(), E, Wout, E, 0.0f, logits.data(), V);
      pool.for_each(C, [&](size_t i) {
        const Target& tg = targets[c0 + i];
        lp[i] = ops::log_softmax_target(&logits[i * V], V, static_cast<size_t>(tg.token), tg.weight, grad != nullptr);
      });
      for (size_t i = 0; i < C; ++i) {
        const Target& tg = targets[c0 + i];
        pass.loss -= static_cast<double>(tg.weight) * lp[i];
        pass.logp[tg.seq] += lp[i];
      }
      if (grad) {
        dhn.resize(C * E);
        gemm(false, false, C, E, V, 1.0f, logits.data(), V, Wout, E, 0.0f, dhn.data(), E);
        for (size_t i = 0; i < C; ++i) {
          std::vector<float> tmp(E);
          const size_t row = targets[c0 + i].row;
          ops::rms_norm_bwd(&x[row * E], w.out_norm->f32.data(), rr[i], &dhn[i * E], tmp.data(), E);
          for (size_t j = 0; j < E; ++j) dx[row * E + j] += tmp[j];
        }
      }
    }
    if (!grad) return pass;
    for (uint32_t l = c.n_layer; l-- > 0;) {
      if (opt.checkpoint) {
        std::vector<float> xi = ckpt[l];
        layer_fwd(l, xi.data(), caches[0]);
        layer_bwd(l, dx.data(), caches[0]);
      } else {
        layer_bwd(l, dx.data(), caches[l]);
      }
    }
    return pass;
  }
};

Network::Network(const model::DecoderWeights& base, model::LoraAdapter& lora, NetworkOptions opt)
    : impl_(std::make_unique<Impl>(base, lora, opt)) {}
Network::~Network() = default;

Network::Pass Network::run(const std::vector<const Sequence*>& seqs, Gradients* grad, uint64_t dropout_key, bool use_lora) {
  return impl_->run(seqs, grad, dropout_key, use_lora);
}

void Network::reserve(size_t max_tokens) { impl_->reserve(max_tokens); }

size_t Network::activation_bytes(size_t n) const {
  const model::Config& c = impl_->c;
  const size_t E = c.n_embd, qd = size_t{c.n_head} * c.head_dim, kd = size_t{c.n_head_kv} * c.head_dim,
               vd = size_t{c.n_head_kv} * c.head_dim_v, ad = size_t{c.n_head} * c.head_dim_v, F = c.n_ff;
  size_t per_layer = n * (4 * E + qd + kd + vd + ad + 3 * F + c.n_head + 4) * sizeof(float);
  if (c.qk_norm) per_layer += n * (qd + kd) * sizeof(float);
  if (c.post_norms) per_layer += 2 * n * E * sizeof(float);
  size_t r = 0;
  for (const auto& p : impl_->lora.pairs) r = std::max<size_t>(r, p.rank);
  per_layer += n * r * kModuleCount * sizeof(float);
  const size_t layers = impl_->opt.checkpoint ? 1 : c.n_layer;
  const size_t ckpt = impl_->opt.checkpoint ? c.n_layer * n * E * sizeof(float) : 0;
  return layers * per_layer + ckpt;
}

}  // namespace loom::train
