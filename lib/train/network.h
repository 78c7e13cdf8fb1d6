// The training pass of a decoder with LoRA adapters, in float32 on the CPU: the forward pass of
// llama / qwen2 / qwen3 / gemma3 (the operations of lib/model/decoder.cpp, as plain float32
// formulas rather than llama.cpp's rounding), the loss over chosen target tokens, and the
// backward pass down to the adapters' A and B matrices. The base weights stay frozen and in
// their file's type: each matrix is dequantized when an operation needs it (QLoRA's way).
//
//   model::DecoderWeights base(file);
//   model::LoraAdapter lora = ...;                       // the trainable A, B of each adapted layer
//   train::Network net(base, lora, {.threads = 2});
//   train::Sequence s{tokens, weights};                  // weights[t]: how much token t counts
//   train::Gradients g = train::Gradients::like(lora);
//   auto pass = net.run({&s}, &g, /*dropout_key=*/step); // pass.loss = -sum w log p; g += d loss
//
// Each sequence starts at position 0 and attends only to itself, so several packed into one
// pass give each the loss and gradients it would have alone.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "loom/model/lora.h"
#include "loom/model/weights.h"

namespace loom::train {

struct Sequence {
  std::vector<int32_t> tokens;
  // weight[t] for t >= 1: the factor of -log p(tokens[t] | tokens[< t]) in the loss; 0 where
  // token t is not a target (weight[0] is unused)
  std::vector<float> weight;
};

// One float vector per A and per B of an adapter's pairs.
struct Gradients {
  std::vector<std::vector<float>> a, b;
  static Gradients like(const model::LoraAdapter& lora);
  void zero();
  double sq_norm() const;  // the sum of every squared element
  void scale(float s);
};

struct NetworkOptions {
  unsigned threads = 1;
  float dropout = 0;        // dropout on each adapted layer's input to A (as PEFT's lora_dropout)
  bool checkpoint = false;  // keep only each layer's input; recompute the layer for the backward
  // bytes of dequantized base matrices kept between uses (0: dequantize at every use, the least
  // memory; a matrix that does not fit the rest of the budget is dequantized each time)
  size_t weight_cache = 0;
};

class Network {
 public:
  Network(const model::DecoderWeights& base, model::LoraAdapter& lora, NetworkOptions opt);
  ~Network();
  Network(const Network&) = delete;
  Network& operator=(const Network&) = delete;

  struct Pass {
    double loss = 0;            // -sum over sequences and targets of weight * log p
    std::vector<double> logp;   // per sequence: sum of log p over its targets (weight != 0)
    size_t targets = 0;
  };
  // Runs the sequences; with `grad`, adds d(loss)/dA and d(loss)/dB to it. dropout_key picks the
  // dropout masks (the same key, the same masks); key 0: no dropout (evaluation). use_lora false: the base model alone (no
  // gradients). loom::Error (BadInput) for a token outside the vocabulary.
  Pass run(const std::vector<const Sequence*>& seqs, Gradients* grad, uint64_t dropout_key, bool use_lora = true);

  // Sizes every buffer for passes of up to max_tokens tokens at once (optional: a larger pass
  // still works, it only reallocates).
  void reserve(size_t max_tokens);

  // Bytes of activations a pass over n_tokens keeps (for --dry-run's estimate).
  size_t activation_bytes(size_t n_tokens) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace loom::train
