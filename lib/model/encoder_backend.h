// The operations an encoder's forward pass is made of (encoder.cpp says which run in which
// order), behind an interface a GPU backend can implement without touching the model code. The
// CPU backend (encoder_cpu.cpp) computes them in float32 on host memory.
//
// A pass covers several sequences whose tokens are laid one after another: activations (Act, as
// in backend.h) have one row per token of the pass, or one per sequence after pool().
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "loom/model/backend.h"
#include "loom/model/encoder.h"

namespace loom::model {

// A float32 weight in host memory: rows x cols (a vector has rows == 1).
struct Mat {
  const float* data = nullptr;
  size_t rows = 0, cols = 0;
};

class EncoderBackend {
 public:
  virtual ~EncoderBackend() = default;
  virtual const char* name() const = 0;

  // Starts a pass over sequences of these lengths; earlier activations become invalid.
  virtual void begin(const std::vector<uint32_t>& lengths) = 0;
  virtual Act alloc(size_t rows, size_t cols) = 0;

  // x[t] = word[ids[t]] + pos[position of t in its sequence] + type[types[t]]
  virtual void embed(const std::vector<int32_t>& ids, const std::vector<int32_t>& types, const Mat& word,
                     const Mat& pos, const Mat& type, Act x) = 0;
  // x = layer_norm(x + add) with weight w, bias b (add.handle == nullptr: no addition)
  virtual void layer_norm(Act x, Act add, const Mat& w, const Mat& b, float eps) = 0;
  // y[t] = W x[t] + b   (W: out x in; b.data == nullptr: no bias)
  virtual void linear(const Mat& w, const Mat& b, Act x, Act y) = 0;
  // qkv rows hold q, k, v (n_embd each); out[t] = bidirectional attention of each head over t's
  // sequence, scaled by 1/sqrt(head size)
  virtual void attention(Act qkv, uint32_t n_head, Act out) = 0;
  // y[t] = gelu(W x[t] + b), the exact erf form
  virtual void linear_gelu(const Mat& w, const Mat& b, Act x, Act y) = 0;
  virtual void tanh(Act x) = 0;
  // out[s] = the pooled rows of sequence s
  virtual void pool(Act x, Pooling p, Act out) = 0;
  virtual void read(Act x, float* host) = 0;
};

std::unique_ptr<EncoderBackend> make_cpu_encoder_backend(unsigned threads);

}  // namespace loom::model
