// Fuzz target: the safetensors reader. Any bytes must parse or be rejected with loom::Error — no
// crash, no out-of-bounds read; every tensor of a file that parses converts to floats or is
// refused with loom::Error.
#include <cstdint>
#include <string>

#include "loom/core/error.h"
#include "loom/tensor/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    auto f = loom::safetensors::File::parse(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz.safetensors");
    for (const auto& t : f.tensors()) {
      (void)f.find(t.name);
      try {
        if (t.n_elements() < (1u << 20)) (void)f.to_f32(t);
      } catch (const loom::Error&) {
      }
    }
  } catch (const loom::Error&) {
  }
  return 0;
}
