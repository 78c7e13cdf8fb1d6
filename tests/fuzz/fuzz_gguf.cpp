// Fuzz target: the GGUF reader and the tokenizer loaded from its vocabulary. Any bytes must parse
// or be rejected with loom::Error — no crash, no out-of-bounds read, no allocation the file cannot
// justify; a vocabulary that loads must encode and decode text.
#include <cstdint>
#include <string>

#include "loom/core/error.h"
#include "loom/gguf/gguf.h"
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
  } catch (const loom::Error&) {
  }
  return 0;
}
