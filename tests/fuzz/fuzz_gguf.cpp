// Fuzz target: the GGUF reader. Any bytes must parse or be rejected with loom::Error — no crash,
// no out-of-bounds read, no allocation the file cannot justify.
#include <cstdint>
#include <string>

#include "loom/core/error.h"
#include "loom/gguf/gguf.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    auto f = loom::gguf::File::parse(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz.gguf");
    for (const auto& [key, v] : f.metadata()) (void)f.find(key);
  } catch (const loom::Error&) {
  }
  return 0;
}
