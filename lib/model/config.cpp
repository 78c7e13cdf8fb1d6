#include "loom/model/config.h"

#include <cmath>
#include <cstring>

#include <fmt/format.h>

#include "loom/core/error.h"
#include "loom/gguf/gguf.h"

namespace loom::model {

const char* Config::supported() { return "llama, qwen2, qwen3, gemma3"; }

Config Config::from_gguf(const gguf::File& f) {
  Config c;
  auto arch = f.get_string("general.architecture");
  if (!arch) throw input_error("no general.architecture: not a model file", f.name());
  c.arch_name = *arch;
  if (*arch == "llama") c.arch = Arch::Llama;
  else if (*arch == "qwen2") c.arch = Arch::Qwen2;
  else if (*arch == "qwen3") c.arch = Arch::Qwen3;
  else if (*arch == "gemma3") c.arch = Arch::Gemma3;
  else throw input_error(fmt::format("architecture \"{}\" is not supported (supported: {})", *arch, supported()), f.name());
  const std::string p = *arch + ".";
  auto req = [&](const char* key) -> uint32_t {
    auto v = f.get_int(p + key);
    if (!v || *v <= 0 || *v > (1 << 30)) throw input_error(fmt::format("{}{} is missing or out of range", p, key), f.name());
    return static_cast<uint32_t>(*v);
  };
  auto opt_int = [&](const char* key, uint32_t def) -> uint32_t {
    auto v = f.get_int(p + key);
    if (!v) return def;
    if (*v < 0 || *v > (1 << 30)) throw input_error(fmt::format("{}{} is out of range", p, key), f.name());
    return static_cast<uint32_t>(*v);
  };
  auto opt_float = [&](const char* key, float def) -> float {
    const gguf::Value* v = f.find(p + key);
    if (!v) return def;
    auto x = v->as_float();
    if (!x || !std::isfinite(*x)) throw input_error(fmt::format("{}{} is not a number", p, key), f.name());
    return static_cast<float>(*x);
  };
  c.n_embd = req("embedding_length");
  c.n_layer = req("block_count");
  c.n_head = req("attention.head_count");
  c.n_head_kv = opt_int("attention.head_count_kv", c.n_head);
  c.n_ff = req("feed_forward_length");
  c.n_ctx_train = opt_int("context_length", 2048);
  if (c.n_embd % c.n_head) throw input_error(fmt::format("embedding_length {} is not a multiple of head_count {}", c.n_embd, c.n_head), f.name());
  c.head_dim = opt_int("attention.key_length", c.n_embd / c.n_head);
  c.head_dim_v = opt_int("attention.value_length", c.head_dim);
  if (c.n_head_kv == 0 || c.n_head % c.n_head_kv)
    throw input_error(fmt::format("head_count {} is not a multiple of head_count_kv {}", c.n_head, c.n_head_kv), f.name());
  c.rms_eps = opt_float("attention.layer_norm_rms_epsilon", 1e-5f);
  c.rope_base = opt_float("rope.freq_base", 10000.0f);
  c.rope_base_local = c.rope_base;
  c.rope_dims = opt_int("rope.dimension_count", c.head_dim);
  if (c.rope_dims > c.head_dim || c.rope_dims % 2) throw input_error(fmt::format("rope.dimension_count {} does not fit the heads", c.rope_dims), f.name());
  if (auto st = f.get_string(p + "rope.scaling.type"); st && *st != "none") {
    if (*st != "linear") throw input_error(fmt::format("rope.scaling.type \"{}\" is not supported (none, linear)", *st), f.name());
    c.rope_scale = opt_float("rope.scaling.factor", 1.0f);
    if (c.rope_scale <= 0) throw input_error("rope.scaling.factor must be positive", f.name());
  }
  c.rope_scale_local = c.rope_scale;
  c.layer_sliding.assign(c.n_layer, false);
  c.attn_scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  switch (c.arch) {
    case Arch::Llama:
      c.rope = RopeStyle::Normal;
      break;
    case Arch::Qwen2:
      c.rope = RopeStyle::Neox;
      c.attn_bias = true;
      break;
    case Arch::Qwen3:
      c.rope = RopeStyle::Neox;
      c.qk_norm = true;
      break;
    case Arch::Gemma3:
      // as llama.cpp fixes them for Gemma 3: every 6th layer global, the others a sliding window
      // with RoPE base 10000; embeddings scaled by sqrt(n_embd); GELU (tanh); norms after
      // attention and FFN; q and k normed per head
      c.rope = RopeStyle::Neox;
      c.qk_norm = true;
      c.post_norms = true;
      c.act = Activation::GeluTanh;
      c.embd_scale = std::sqrt(static_cast<float>(c.n_embd));
      // q is scaled before q·k, by 1/sqrt(head_dim) (27B, 62 layers: by 1/sqrt(n_embd / n_head))
      c.scale_q = true;
      if (c.n_layer == 62) c.attn_scale = 1.0f / std::sqrt(static_cast<float>(c.n_embd / c.n_head));
      c.sliding_window = opt_int("attention.sliding_window", 0);
      c.rope_base_local = 10000.0f;
      c.rope_scale_local = 1.0f;
      for (uint32_t l = 0; l < c.n_layer; ++l) c.layer_sliding[l] = c.sliding_window > 0 && (l + 1) % 6 != 0;
      break;
  }
  bool has_output = false;
  for (const auto& t : f.tensors())
    if (t.name == "output.weight") has_output = true;
  c.tied_embeddings = !has_output;
  // vocabulary size: the embedding's rows
  for (const auto& t : f.tensors())
    if (t.name == "token_embd.weight" && t.ne.size() == 2) c.n_vocab = static_cast<uint32_t>(t.ne[1]);
  if (!c.n_vocab) throw input_error("no token_embd.weight tensor of 2 dimensions", f.name());
  // per-pair frequency factors (llama.cpp's rope_freqs, written for Llama 3.1's long-context RoPE)
  for (const auto& t : f.tensors()) {
    if (t.name != "rope_freqs.weight") continue;
    if (t.ggml_type != 0 || t.n_elements() != c.rope_dims / 2)
      throw input_error(fmt::format("rope_freqs.weight must be {} F32 values", c.rope_dims / 2), f.name());
    const std::string_view bytes = f.tensor_data(t);
    c.rope_freq_factors.resize(c.rope_dims / 2);
    std::memcpy(c.rope_freq_factors.data(), bytes.data(), c.rope_freq_factors.size() * sizeof(float));
    for (float x : c.rope_freq_factors)
      if (!std::isfinite(x) || x <= 0) throw input_error("rope_freqs.weight holds a factor that is not a positive number", f.name());
  }
  return c;
}

}  // namespace loom::model
