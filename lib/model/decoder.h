// A decoder-only transformer (llama, qwen2, qwen3, gemma3) run on the CPU from a GGUF file: the
// forward pass as llama.cpp computes it (RMS norm accumulated in double, RoPE angles built by
// repeated multiplication, K/V cached as f16, softmax with the maximum subtracted).
//
//   auto file = std::make_shared<gguf::File>(gguf::File::open("smollm2.gguf"));
//   model::Decoder m(file, {.n_ctx = 2048, .threads = 2});
//   std::vector<float> logits = m.forward(tokens, /*pos=*/0, /*all_logits=*/false);  // last position
//   logits = m.forward({next}, tokens.size());                                      // one more token
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "loom/model/config.h"

namespace loom {
class ThreadPool;
}
namespace loom::gguf {
class File;
}

namespace loom::model {

struct DecoderOptions {
  uint32_t n_ctx = 2048;   // positions the KV cache holds
  unsigned threads = 1;
};

class Decoder {
 public:
  Decoder(std::shared_ptr<const gguf::File> file, DecoderOptions opt);
  ~Decoder();
  Decoder(const Decoder&) = delete;
  Decoder& operator=(const Decoder&) = delete;

  const Config& config() const { return cfg_; }
  uint32_t n_ctx() const { return opt_.n_ctx; }

  // Runs tokens at positions pos, pos+1, ... (the cache must hold positions < pos, as earlier
  // calls left it; later positions are overwritten). Returns the logits of every token
  // (all_logits: n × n_vocab, row by row) or of the last one (n_vocab). loom::Error (Usage) when
  // pos + n exceeds n_ctx; (BadInput) for a token id outside the vocabulary.
  std::vector<float> forward(const std::vector<int32_t>& tokens, uint32_t pos, bool all_logits = false);

 private:
  struct Weight;
  struct Layer;
  const Weight& weight(const std::string& name) const;
  // y[t][r] = W[r] · x[t] for t < n (x: n × cols, y: n × rows)
  void matmul(const Weight& w, const float* x, size_t n, float* y);

  std::shared_ptr<const gguf::File> file_;
  DecoderOptions opt_;
  Config cfg_;
  std::vector<std::unique_ptr<Weight>> weights_;
  std::vector<Layer> layers_;
  const Weight* embd_ = nullptr;
  const Weight* out_norm_ = nullptr;
  const Weight* output_ = nullptr;
  std::vector<uint16_t> k_cache_, v_cache_;  // [layer][pos][n_head_kv * head_dim] as f16
  std::unique_ptr<ThreadPool> pool_;
};

}  // namespace loom::model
