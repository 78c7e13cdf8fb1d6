// Fuzz target: the filter language of `loom retrieve --filter` (lib/index/filter.h).
// Any byte string, taken as a filter expression, must either parse or be rejected with a usage
// error naming a column — never a crash, hang, leak or deep recursion. A filter that parses is
// evaluated against a few fixed records: the same answer twice, and `not (<expr>)` (when that
// still parses within the nesting limit) must give the opposite answer on every record.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "loom/core/error.h"
#include "loom/index/filter.h"
#include "loom/io/jsonl.h"

namespace {

const std::vector<loom::io::Record>& records() {
  static const std::vector<loom::io::Record> recs = [] {
    std::vector<loom::io::Record> r;
    for (const char* json : {
             R"({"id":"doc-1","text":"How to rotate logs","lang":"en","meta":{"lang":"en","year":2021,"score":0.75,"draft":false,"tags":["linux","logs"],"author":null,"odd-key":"yes","nested":{"a":{"b":[10,20,{"c":"deep"}]}},"title":"Caf\u00e9 \"q\" \\ b","big":12345678901234567891,"e":"","z":0,"l":[],"o":{"x":1,"y":[1,2]}}})",
             R"({"id":"doc-2","meta":{"esc":"x\"]}{[,:\\","lang":"fr","year":2019.0,"draft":true,"n":1e3,"s":-0.5,"emoji":"\ud83e\udd99","we\u0069rd":[[[[{}]]]],"q\"k":2}})",
             R"({"id":"doc-3"})",
             R"({"id":4,"meta":"plain","text":null,"true":true,"in":[1,"1",1.0,null,false,{"a":[]}]})",
         })
      r.push_back(loom::io::Record::parse(json));
    loom::io::Record odd;  // text no reader would produce: lone surrogates
    odd.set_raw("meta", R"({"s":"\ud800","t":[1,"\udc00x"],"lang":"en"})");
    r.push_back(std::move(odd));
    return r;
  }();
  return recs;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace loom;
  std::string src(reinterpret_cast<const char*>(data), size);
  std::vector<bool> got;
  try {
    index::Filter f = index::Filter::parse(src);
    if (f.text() != src) std::abort();
    for (const io::Record& r : records()) {
      bool a = f.matches(r);
      if (f.matches(r) != a) std::abort();
      got.push_back(a);
    }
    (void)f.fields();
  } catch (const Error& e) {
    if (e.kind() != Error::Kind::Usage) std::abort();
    if (std::string_view(e.what()).substr(0, 17) != "--filter: column ") std::abort();
    return 0;
  }
  try {
    index::Filter neg = index::Filter::parse("not (" + src + ")");
    for (size_t i = 0; i < records().size(); ++i) {
      if (neg.matches(records()[i]) == got[i]) std::abort();
    }
  } catch (const Error& e) {
    // only the nesting limit may reject the wrapped form of an expression that parsed
    if (std::string_view(e.what()).find("nested too deeply") == std::string_view::npos) std::abort();
  }
  return 0;
}
