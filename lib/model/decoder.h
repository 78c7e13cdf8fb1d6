// A decoder-only transformer (llama, qwen2, qwen3, gemma3) run on the CPU from a GGUF file: the
// forward pass as llama.cpp computes it (RMS norm accumulated in double, RoPE angles built by
// repeated multiplication, K/V cached as f16, softmax with the maximum subtracted).
//
//   auto file = std::make_shared<gguf::File>(gguf::File::open("smollm2.gguf"));
//   model::Decoder m(file, {.n_ctx = 2048, .threads = 2});
//   std::vector<float> logits = m.forward(tokens, /*pos=*/0, /*all_logits=*/false);  // last position
//   logits = m.forward({next}, tokens.size());                                      // one more token
//
// Several sequences (batch generation, beams, --n samples) share one forward pass through
// decode(): each token names its sequence and position; each sequence has its own KV cache of
// n_ctx positions (memory is touched only as positions are written).
//
//   model::Decoder m(file, {.n_ctx = 1024, .threads = 2, .n_seq = 16});
//   auto logits = m.decode({{.token = a, .pos = 7, .seq = 0, .logits = true},
//                           {.token = b, .pos = 3, .seq = 1, .logits = true}});  // 2 x n_vocab
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "loom/model/backend.h"
#include "loom/model/config.h"

namespace loom::gguf {
class File;
}

namespace loom::model {

struct DecoderWeights;
struct DecoderOptions {
  uint32_t n_ctx = 2048;   // positions the KV cache holds, per sequence
  unsigned threads = 1;
  uint32_t n_seq = 1;      // sequences with a KV cache of their own
  // decode() returns, for the marked tokens, the final hidden state after the output norm
  // (n_embd floats each: what the output layer would multiply) instead of the logits — a
  // decoder used as an embedder, as llama.cpp's embeddings mode reads it
  bool embeddings = false;
  // The backend the forward pass runs on (backend.h); empty: the CPU backend.
  std::function<std::unique_ptr<Backend>(const Config&, const DecoderOptions&)> backend = nullptr;
  // LoRA adapters (llama.cpp's adapter GGUF files, lora.h) applied to the linear layers they
  // adapt, each with its scale (lora_scales[i], default 1): W x + scale * alpha / r * B (A x).
  std::vector<std::string> loras = {};
  std::vector<float> lora_scales = {};
};

// One token of a batch: `token` at position `pos` of sequence `seq`; its logits are returned when
// `logits` is set.
struct BatchToken {
  int32_t token = 0;
  uint32_t pos = 0;
  uint32_t seq = 0;
  bool logits = false;
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

  // Runs a batch of tokens of any sequences at once: every token's keys and values go into its
  // sequence's cache at its position first, then each token attends to positions <= its own of
  // its sequence (earlier positions must have been filled by earlier calls or this batch).
  // Returns the logits of the tokens marked `logits`, in batch order (count x n_vocab).
  // loom::Error (Usage) for a position >= n_ctx or a sequence >= n_seq; (BadInput) for a token id
  // outside the vocabulary.
  std::vector<float> decode(const std::vector<BatchToken>& batch);

  // Copies positions [0, n) of sequence src's cache to sequence dst (a shared prompt, beams).
  void copy_sequence(uint32_t src, uint32_t dst, uint32_t n);
  uint32_t n_seq() const { return opt_.n_seq; }

 private:
  std::shared_ptr<const gguf::File> file_;
  DecoderOptions opt_;
  std::unique_ptr<DecoderWeights> w_;
  Config cfg_;
  struct LoraMats;
  std::vector<LoraMats> lora_;  // per layer: the adapters' A and (scaled) B of each module
  std::unique_ptr<Backend> backend_;  // the operations (CPU: cpu_backend.cpp), the KV cache
};

}  // namespace loom::model
