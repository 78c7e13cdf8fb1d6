// Fuzz target: index manifests (lib/index/store.h, Manifest::from_json), the first thing read from
// an index directory someone else wrote. Any bytes must either give a manifest that writes back to
// JSON that reads again to the same manifest, or be rejected with loom::Error — never a crash.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "loom/core/error.h"
#include "loom/index/store.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  loom::index::Manifest m;
  try {
    m = loom::index::Manifest::from_json(text, "manifest.json");
  } catch (const loom::Error&) {
    return 0;
  }
  std::string again = m.to_json();
  if (loom::index::Manifest::from_json(again, "again").to_json() != again) std::abort();
  return 0;
}
