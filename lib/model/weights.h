// The tensors of a decoder model file, found by name and checked against the config: what the
// forward pass (decoder.cpp), the training pass (lib/train) and LoRA adapters refer to.
//
//   auto file = std::make_shared<gguf::File>(gguf::File::open("smollm2.gguf"));
//   model::DecoderWeights w(*file);          // loom::Error (BadInput) naming a missing tensor
//   const model::Weight& wq = *w.layers[0].wq;
//
// The weights point into the file's mapping, which must outlive them.
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "loom/model/backend.h"
#include "loom/model/config.h"

namespace loom::gguf {
class File;
}

namespace loom::model {

// The linear layers LoRA adapters may target, by their short names.
enum class Module { Q, K, V, O, Gate, Up, Down };
inline constexpr Module kModules[] = {Module::Q, Module::K, Module::V, Module::O, Module::Gate, Module::Up, Module::Down};
// "q", "k", ... and the GGUF tensor stem ("attn_q", ..., "ffn_down")
const char* module_name(Module m);
const char* module_tensor(Module m);

struct LayerWeights {
  const Weight *attn_norm = nullptr, *wq = nullptr, *wk = nullptr, *wv = nullptr, *wo = nullptr;
  const Weight *bq = nullptr, *bk = nullptr, *bv = nullptr;
  const Weight *q_norm = nullptr, *k_norm = nullptr, *post_attn_norm = nullptr;
  const Weight *ffn_norm = nullptr, *gate = nullptr, *up = nullptr, *down = nullptr, *post_ffn_norm = nullptr;
  const Weight* linear(Module m) const;
};

struct DecoderWeights {
  explicit DecoderWeights(const gguf::File& file);
  Config cfg;
  std::vector<std::unique_ptr<Weight>> all;
  std::vector<LayerWeights> layers;
  const Weight* embd = nullptr;
  const Weight* out_norm = nullptr;
  const Weight* output = nullptr;  // token_embd when the embeddings are tied
  // nullptr when the file has no such tensor
  const Weight* find(std::string_view name) const;
};

}  // namespace loom::model
