// Fuzz target: the tokenizer.json loader and the encoder behind it. Any bytes must load or be
// rejected with loom::Error; a loaded tokenizer must encode and decode text without crashing.
#include <cstdint>
#include <string>

#include "loom/core/error.h"
#include "loom/tokenizer/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  try {
    auto t = loom::tok::Tokenizer::from_json(in, "fuzz.json");
    for (std::string_view text : {std::string_view("Hello, world! caf\xc3\xa9 \xe6\x9d\xb1 [CLS] 123"), in.substr(0, 200)}) {
      if (!text.empty() && (static_cast<unsigned char>(text.back()) & 0x80)) continue;  // keep the text valid UTF-8
      auto e = t.encode(text, {true, true});
      (void)t.decode(e.ids);
    }
  } catch (const loom::Error&) {
  }
  return 0;
}
