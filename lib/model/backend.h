// The operations a decoder's forward pass is made of, behind an interface: the model code
// (decoder.cpp) says which operations run in which order for an architecture; a backend says how
// each is computed and where the activations and the KV cache live. The CPU backend
// (cpu_backend.cpp) computes every operation in llama.cpp's float order; a GPU backend implements
// the same interface with its activations and cache in device memory, and the model code does not
// change.
//
//   std::unique_ptr<Backend> be = make_cpu_backend(cfg, {.n_ctx = 2048, .threads = 2});
//   be->begin(batch);                       // the tokens, positions and sequences of this pass
//   Act x = be->alloc(batch.size(), cfg.n_embd);
//   be->embed(token_embd, cfg.embd_scale, x);
//   be->rms_norm(x, attn_norm, cfg.rms_eps, cfg.n_embd, h);  ...
//
// Activations (Act) are row-major matrices (one row per batch token) that the backend owns: the
// model code passes them between operations and never reads them, except through read().
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kernels/cpu/ggml_blocks.h"
#include "loom/model/config.h"

namespace loom::model {

struct DecoderOptions;
struct BatchToken;

// A tensor of the model file: `rows` rows of `cols` values of a GGUF type, in the mapped file.
// 1-D tensors (norm weights, biases) are also dequantized to f32 once.
struct Weight {
  std::string name;
  kernels::GgmlType type = kernels::GgmlType::F32;
  const void* data = nullptr;
  uint64_t rows = 0, cols = 0;  // out x in (ggml: ne[1] x ne[0])
  std::vector<float> f32;
};

// An activation matrix of the backend: rows x cols floats (rows = the batch's tokens, or the
// rows selected for logits).
struct Act {
  void* handle = nullptr;  // the backend's
  size_t rows = 0, cols = 0;
};

struct AttentionParams {
  uint32_t layer = 0;
  uint32_t window = 0;  // sliding window (positions p-window+1 .. p), 0: all positions
  float scale = 1.0f;   // multiplies q.k
  float q_scale = 1.0f; // multiplies q (in f32) before q.k
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char* name() const = 0;

  // Starts a forward pass over `batch` (validated by the caller); activations from an earlier
  // pass are invalid afterwards.
  virtual void begin(const std::vector<BatchToken>& batch) = 0;
  // rows x cols floats, valid until the next begin()
  virtual Act alloc(size_t rows, size_t cols) = 0;

  // x[t] = table[token t] * scale
  virtual void embed(const Weight& table, float scale, Act x) = 0;
  // out = x / rms(x) * w over each `width`-wide slice of a row (a head, or the whole row);
  // out may be x
  virtual void rms_norm(Act x, const Weight& w, float eps, size_t width, Act out) = 0;
  // y[t] = W x[t]
  virtual void matmul(const Weight& w, Act x, Act y) = 0;
  // y[t] += b
  virtual void add_bias(const Weight& b, Act y) = 0;
  // rotary embedding of each head (n_heads per row) at its token's position, frequencies from
  // `base`, angles times freq_scale (linear scaling)
  virtual void rope(Act x, size_t n_heads, float base, float freq_scale) = 0;
  // stores k and v in the cache of each token's sequence at its position, then
  // out[t] = attention of q[t] over its sequence's positions <= its own (within the window)
  virtual void attention(const AttentionParams& p, Act q, Act k, Act v, Act out) = 0;
  // gate = act(gate) * up
  virtual void glu(Activation act, Act gate, Act up) = 0;
  // x += y
  virtual void add(Act x, Act y) = 0;
  // x *= s
  virtual void scale(Act x, float s) = 0;
  // out = the rows `rows` of x
  virtual void select_rows(Act x, const std::vector<size_t>& rows, Act out) = 0;
  // copies x to host memory (rows x cols floats)
  virtual void read(Act x, float* host) = 0;

  // Copies positions [0, n) of sequence src's cache to sequence dst.
  virtual void copy_sequence(uint32_t src, uint32_t dst, uint32_t n) = 0;
};

// The CPU backend: llama.cpp's float order, the KV cache as f16 in host memory, `threads`
// threads.
std::unique_ptr<Backend> make_cpu_backend(const Config& cfg, const DecoderOptions& opt);

}  // namespace loom::model
