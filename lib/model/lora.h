// LoRA adapters in llama.cpp's adapter GGUF format: general.type = "adapter", adapter.type =
// "lora", adapter.lora.alpha, general.architecture of the base; for each adapted linear layer
// W (out x in) two tensors "<W's name>.lora_a" (ggml ne [in, r]: r rows of in) and
// "<W's name>.lora_b" (ne [r, out]). The layer becomes W x + scale * B (A x), scale =
// user_scale * alpha / r (user_scale when alpha is 0), as llama.cpp applies it.
//
//   model::DecoderWeights base(file);
//   model::LoraAdapter a = model::LoraAdapter::read("style.lora.gguf", base);  // checked against base
//   a.write("copy.lora.gguf");
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "loom/gguf/gguf.h"
#include "loom/model/weights.h"

namespace loom::model {

struct LoraPair {
  uint32_t layer = 0;
  Module module = Module::Q;
  uint64_t in = 0, out = 0, rank = 0;
  std::vector<float> a = {};  // rank x in, row-major
  std::vector<float> b = {};  // out x rank
  std::string tensor() const;  // "blk.<layer>.<module tensor>.weight"
};

struct LoraAdapter {
  std::string arch;
  std::string base_name;  // general.name of the base it was trained on ("" when unknown)
  float alpha = 0;
  std::vector<LoraPair> pairs;
  std::vector<std::pair<std::string, gguf::Value>> extra;  // further metadata written as is

  float scale(const LoraPair& p, float user_scale = 1.0f) const {
    return alpha != 0.0f ? user_scale * alpha / static_cast<float>(p.rank) : user_scale;
  }
  // Reads an adapter and checks it against `base`: loom::Error (BadInput) naming the file when it
  // is not a LoRA adapter, was made for another architecture, names a tensor the base lacks or one
  // of another shape, or adapts something other than the linear layers of the blocks.
  static LoraAdapter read(const std::string& path, const DecoderWeights& base);
  // The same from a GGUF file already open (`name` names it in errors).
  static LoraAdapter from_gguf(const gguf::File& f, const std::string& name, const DecoderWeights& base);
  // Writes it (F32 tensors, atomically).
  void write(const std::string& path) const;
};

}  // namespace loom::model
