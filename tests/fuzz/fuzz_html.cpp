// Fuzz target: HTML to text. Any bytes must convert without crashing, in bounded time, to valid
// UTF-8 text with no leading/trailing whitespace and headings whose offsets point at their titles.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "loom/io/json.h"
#include "loom/text/html.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view html(reinterpret_cast<const char*>(data), size);
  loom::text::HtmlDocument doc = loom::text::html_to_text(html);
  if (!loom::json::valid_utf8(doc.text) || !loom::json::valid_utf8(doc.title)) std::abort();
  if (!doc.text.empty()) {
    auto ws = [](char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; };
    if (ws(doc.text.front()) || ws(doc.text.back())) std::abort();
  }
  for (const auto& h : doc.headings) {
    if (h.offset > doc.text.size() || doc.text.compare(h.offset, h.title.size(), h.title) != 0) std::abort();
  }
  return 0;
}
