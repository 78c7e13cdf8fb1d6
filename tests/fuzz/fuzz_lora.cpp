// Fuzz target: LoRA adapter files and loom-finetune checkpoints read against a base model (the
// tiny qwen3 of tests/reference/golden/arch). Any bytes must load or be rejected with loom::Error;
// an adapter that loads has pairs whose A and B sizes are what their shapes say and fit the base.
#include <cstdint>
#include <memory>
#include <string>

#include "loom/core/error.h"
#include "loom/gguf/gguf.h"
#include "loom/model/lora.h"
#include "loom/model/weights.h"
#include "loom/train/trainer.h"

namespace {
struct Base {
  loom::gguf::File file = loom::gguf::File::open(std::string(LOOM_SOURCE_DIR) + "/tests/reference/golden/arch/qwen3.gguf");
  loom::model::DecoderWeights w{file};
};
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Base base;
  try {
    auto f = loom::gguf::File::parse(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz.gguf");
    if (f.get_string("general.type").value_or("") == "loom-finetune-checkpoint") {
      loom::train::Trainer t(base.w, loom::train::TrainOptions{});  // the options of the seed checkpoint
      t.resume(f, "fuzz.gguf");
    } else {
      const auto a = loom::model::LoraAdapter::from_gguf(f, "fuzz.gguf", base.w);
      for (const auto& p : a.pairs) {
        const loom::model::Weight* w = base.w.layers.at(p.layer).linear(p.module);
        if (p.a.size() != p.rank * p.in || p.b.size() != p.out * p.rank || p.in != w->cols || p.out != w->rows) __builtin_trap();
      }
    }
  } catch (const loom::Error&) {
  }
  return 0;
}
