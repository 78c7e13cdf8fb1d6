// A heading found in a document's text (markdown or HTML), used for chunk sections.
#pragma once
#include <cstddef>
#include <string>

namespace loom::text {

struct Heading {
  size_t offset = 0;   // byte offset in the document text where the heading starts (markdown: its
                       // line; HTML: its text)
  int level = 1;       // 1..6 (h1..h6, '#'..'######')
  std::string title;   // heading text, trimmed, inline markup removed
};

}  // namespace loom::text
