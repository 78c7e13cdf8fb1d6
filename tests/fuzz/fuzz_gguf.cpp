// Fuzz target: the GGUF reader, the tokenizer loaded from its vocabulary and the importance-matrix
// reader. Any bytes must parse or be rejected with loom::Error — no crash, no out-of-bounds read,
// no allocation the file cannot justify; a vocabulary that loads must encode and decode text; an
// importance matrix that loads gives finite, non-negative weights of its entries' widths.
#include <cmath>
#include <cstdint>
#include <vector>
#include <string>

#include "loom/core/error.h"
#include "loom/gguf/gguf.h"
#include "loom/quant/imatrix.h"
#include "loom/tokenizer/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    auto f = loom::gguf::File::parse(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz.gguf");
    for (const auto& [key, v] : f.metadata()) (void)f.find(key);
    if (f.find("tokenizer.ggml.model")) {
      auto t = loom::tok::Tokenizer::from_gguf(f, "fuzz.gguf");
      for (bool special : {false, true}) {
        auto e = t.encode("Hello, world! caf\xc3\xa9 \xe6\x9d\xb1 <s> 12345 \xf0\x9f\x98\x80\n\n  x", {special, special});
        (void)t.decode(e.ids, !special);
      }
    }
    if (f.get_string("general.type").value_or("") == "imatrix") {
      const loom::quant::Imatrix m = loom::quant::read_imatrix(f, "fuzz.gguf");
      for (const auto& [name, e] : m.entries) {
        const std::vector<float> w = m.importance(name);
        if (w.size() != e.sums.size()) __builtin_trap();
        for (float v : w)
          if (!(v >= 0) || std::isinf(v)) __builtin_trap();
      }
    }
  } catch (const loom::Error&) {
  }
  return 0;
}
