// Fuzz target: the BM25 index file reader (lib/index/bm25.h: Bm25Index::parse, what load() runs
// on a file's bytes) and the BM25 analyzer. Any bytes must load or be rejected with loom::Error
// (bad input) — no crash, no out-of-bounds read, no allocation beyond what the bytes can hold.
// The reader checks the structure before the checksum, so mutated files reach every structural
// check. An index that loads must search, change and search again. The same bytes as text (valid
// UTF-8 or not) must analyze into terms of two or more code points of valid UTF-8.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "loom/core/error.h"
#include "loom/index/bm25.h"
#include "loom/text/utf8.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace loom::index;
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  try {
    Bm25Index idx = Bm25Index::parse(bytes, "fuzz.bm25");
    const std::vector<std::string> q = {"x", "y", "packag", "x", ""};
    size_t n = idx.size();
    auto before = idx.search(q, 10);
    if (before.size() > 10 || before.size() > n) std::abort();
    for (size_t i = 1; i < before.size(); ++i)
      if (before[i].second > before[i - 1].second) std::abort();
    std::vector<uint64_t> gone;
    for (const auto& hit : before) gone.push_back(hit.first);
    if (idx.remove(gone) != gone.size() || idx.size() != n - gone.size()) std::abort();
    idx.add(gone.empty() ? 1 : gone[0], {"x", "z"});
    (void)idx.search(q, 3);
  } catch (const loom::Error& e) {
    if (e.kind() != loom::Error::Kind::BadInput) std::abort();
  }
  static const Analyzer plain(Bm25Params{1.2, 0.5, "none", "none"});
  static const Analyzer english(Bm25Params{});
  for (const auto& t : plain.terms(bytes))
    if (loom::text::utf8::count(t) < 2 || !loom::text::utf8::is_valid(t)) std::abort();
  for (const auto& t : english.terms(bytes))
    if (!loom::text::utf8::is_valid(t)) std::abort();
  return 0;
}
