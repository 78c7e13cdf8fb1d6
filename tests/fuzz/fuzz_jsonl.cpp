// Fuzz target: the JSONL reader and the Record model.
// Any byte string must either be read as records or rejected with loom::Error — never a crash,
// hang, leak or out-of-bounds access. For every record read, writing it out and reading it back
// must give the same text (the round trip is stable), and every string field must decode, or be
// refused as bad input when it holds a lone surrogate escape (valid JSON, not Unicode text).
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "loom/core/error.h"
#include "loom/io/jsonl.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace loom;
  auto in = io::Input::from_memory(std::string(reinterpret_cast<const char*>(data), size), "fuzz");
  io::JsonlReader reader(*in);
  io::Record rec;
  for (int guard = 0; guard < 100000; ++guard) {
    try {
      if (!reader.next(rec)) break;
    } catch (const Error& e) {
      if (reader.failed()) break;  // the stream itself is bad (corrupt zstd): nothing follows
      continue;                    // a rejected line: the reader goes on after it
    }
    std::string once = rec.to_json();
    io::Record again = io::Record::parse(once);  // must not throw: we wrote valid JSON
    if (again.to_json() != once) std::abort();
    for (size_t i = 0; i < rec.size(); ++i) {
      std::string key = rec.key(i);
      auto raw = rec.raw(key);
      if (!raw) std::abort();
      if ((*raw)[0] == '"') try {
          (void)rec.get_string(key);
        } catch (const Error& e) {
          if (e.kind() != Error::Kind::BadInput || std::string_view(e.what()).find("lone surrogate") == std::string_view::npos)
            std::abort();
        }
    }
    rec.set("added", std::string_view("x\"\\\n\x01"));
    io::Record::parse(rec.to_json());
  }
  return 0;
}
