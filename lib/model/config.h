// The hyperparameters of a decoder model, read from its GGUF metadata the way llama.cpp reads
// them (including what llama.cpp fixes per architecture rather than storing, such as Gemma 3's
// sliding-window layer pattern and local RoPE base).
//
//   gguf::File f = gguf::File::open("smollm2.gguf");
//   model::Config c = model::Config::from_gguf(f);    // loom::Error (BadInput) naming the key
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace loom::gguf {
class File;
}

namespace loom::model {

enum class Arch { Llama, Qwen2, Qwen3, Gemma3 };
enum class RopeStyle { Normal, Neox };  // rotate adjacent pairs (llama) / the two halves (neox)
enum class Activation { Silu, GeluTanh };

struct Config {
  Arch arch = Arch::Llama;
  std::string arch_name;
  uint32_t n_vocab = 0, n_embd = 0, n_layer = 0, n_head = 0, n_head_kv = 0, n_ff = 0;
  uint32_t head_dim = 0;      // key and query width per head
  uint32_t head_dim_v = 0;    // value width per head
  uint32_t n_ctx_train = 0;
  float rms_eps = 1e-5f;
  RopeStyle rope = RopeStyle::Normal;
  uint32_t rope_dims = 0;     // leading dims of each head that rotate
  float rope_base = 10000.0f, rope_base_local = 10000.0f;  // global / sliding-window layers
  float rope_scale = 1.0f;    // linear scaling: positions divided by this ...
  float rope_scale_local = 1.0f;  // ... in sliding-window layers (Gemma 3: never scaled)
  std::vector<float> rope_freq_factors;  // rope_freqs.weight (Llama 3.1+): pair i's angle divided by [i]
  uint32_t sliding_window = 0;            // 0: none
  std::vector<bool> layer_sliding;        // per layer: uses the sliding window
  float attn_scale = 0;                   // multiplies q·k ...
  bool scale_q = false;                   // ... by multiplying q first (Gemma 3), as llama.cpp does
  float embd_scale = 1.0f;                // multiplies the token embedding (Gemma: sqrt(n_embd))
  bool qk_norm = false;                   // RMS norm of q and k per head (Qwen3, Gemma 3)
  bool post_norms = false;                // norms after attention and FFN (Gemma 3)
  bool attn_bias = false;                 // q/k/v biases (Qwen2)
  bool tied_embeddings = false;           // output = token_embd (set when the file has no output.weight)
  Activation act = Activation::Silu;

  static Config from_gguf(const gguf::File& f);
  // "llama, qwen2, qwen3, gemma3"
  static const char* supported();
};

}  // namespace loom::model
