// Splitting a document's text into chunks for embedding and retrieval.
//
//   ChunkParams p;                       // recursive, 1000 characters, 200 overlap
//   p.size = 500; p.overlap = 50;
//   for (const Chunk& c : chunk_text(text, p))
//     use(text.substr(c.start, c.end - c.start), c.section);
//
// Units: `size` and `overlap` count Unicode code points ("characters", what Python's len()
// counts), unless `length` is set (token sizing). Offsets are bytes into the text.
//
// Guarantees, for every strategy: chunks come in order (starts and ends both strictly
// increase, so no chunk lies inside another); [start, end) lies inside the
// text and never cuts a UTF-8 sequence; a chunk is at most `size` long (a single code point always
// fits); every non-whitespace character of the text is in some chunk; the output depends only on
// the text and the parameters.
//
// Strategies:
//   Recursive  LangChain's RecursiveCharacterTextSplitter, chunk for chunk (keep_separator="end",
//              strip_whitespace=True): split on the first separator that occurs — paragraphs
//              ("\n\n"), lines, sentence ends ([.!?] then whitespace), words, characters —
//              recursing into pieces that are still too long, then merge neighbouring pieces up
//              to `size`. Consecutive chunks share whole pieces totalling at most `overlap`.
//              Chunks are trimmed of whitespace (Python's str.isspace set); empty ones dropped.
//              One deliberate difference: where LangChain emits a chunk lying inside the chunk
//              before or after it (a merge window that differs only by a whitespace piece), loom
//              keeps only the larger one.
//   Fixed      windows of exactly `size` code points starting every size-overlap code points;
//              consecutive windows share exactly `overlap` code points; the last window ends at
//              the end of the text; windows that are only whitespace are dropped. No trimming.
//   Sentence   sentences (terminal punctuation + whitespace, or a blank line; not after common
//              abbreviations, initials, or before a lowercase word) merged up to `size` with the
//              Recursive merge; overlap is whole sentences; a sentence longer than `size` is split
//              at lines, words, then characters.
//   Markdown   one chunk per section (a heading line and what follows, up to the next heading)
//              when it fits; longer sections are split with the Recursive rules, never inside a
//              fenced code block that fits in `size`. No chunk crosses a heading, no overlap
//              across sections.
//
// `section` is the heading path in effect at the chunk's start ("Install > From source"), from
// `headings` (markdown_headings() for markdown text, html_to_text()'s for HTML). The Markdown
// strategy finds the headings itself when none are given. "" when no heading precedes the chunk.
#pragma once
#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "loom/text/heading.h"

namespace loom::text {

enum class ChunkStrategy { Recursive, Fixed, Sentence, Markdown };

struct ChunkParams {
  ChunkStrategy strategy = ChunkStrategy::Recursive;
  size_t size = 1000;    // largest chunk, in code points (or `length` units)
  size_t overlap = 200;  // must be smaller than size (checked: std::invalid_argument)
  // Recursive only: literal separators, coarsest first; "" splits into characters.
  // Empty = the defaults: "\n\n", "\n", sentence end ([.!?] followed by whitespace), " ", "".
  std::vector<std::string> separators;
  // Length of a piece of text; empty = code points. (Token sizing; not for Fixed.)
  std::function<size_t(std::string_view)> length;
};

struct Chunk {
  size_t start = 0, end = 0;  // byte offsets: the chunk is text[start, end)
  std::string section;        // heading path, titles joined with " > "
};

std::vector<Chunk> chunk_text(std::string_view text, const ChunkParams& params,
                              const std::vector<Heading>& headings = {});

// ATX ("## Title", up to three spaces of indent, closing #s removed) and setext (a paragraph
// underlined with === or ---) headings, outside fenced code blocks (``` or ~~~; the closing fence
// is the same character, at least as long; an unclosed fence runs to the end). Not headings: a
// "---" under a list item, a block quote or indented code, or after a blank line (a thematic
// break), and a YAML front matter block at the top ("---" ... "---"). Titles are trimmed, with
// inline markup removed: `code` keeps its content, *emphasis*/_emphasis_ markers go (snake_case
// stays), [links](url) and ![images](url) keep their text, <tags> go, \-escapes give the
// character; a multi-line setext title is joined with spaces. Offsets are the byte offsets of the
// heading's first line.
std::vector<Heading> markdown_headings(std::string_view text);

}  // namespace loom::text
