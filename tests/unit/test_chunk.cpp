// The chunker's building blocks: the UTF-8 helpers (lib/text/utf8.h), the recursive splitter
// against a slow, obviously-correct reference written from LangChain's algorithm (so the fast
// paths — vector separator search, ASCII block index — are checked on inputs built to hit their
// edges), the length hook, and the markdown heading rules on the cases that look like headings
// but are not. (Parity with LangChain itself: test_chunk_golden.cpp; invariants of every
// strategy: test_chunk_props.cpp.)
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "loom/text/chunk.h"
#include "loom/text/utf8.h"

using namespace loom::text;

namespace {

// ---- a reference recursive splitter ------------------------------------------------------------
// LangChain's RecursiveCharacterTextSplitter._split_text / _merge_splits / _join_docs with
// keep_separator="end" and strip_whitespace=True, transcribed as plainly as possible: pieces are
// decoded code point by code point, searches are naive. "[.!?]\s+" stands for the sentence-end
// regex; every other separator is literal; "" splits into code points. loom's one documented
// difference (a chunk inside its neighbour is dropped) is applied at the end.

using Ranges = std::vector<std::pair<size_t, size_t>>;
const std::string kSentenceEnd = "[.!?]\\s+";

struct Reference {
  std::string_view t;
  size_t size, overlap;
  std::vector<std::string> seps;
  std::function<size_t(std::string_view)> length;

  size_t len(size_t b, size_t e) const {
    if (length) return length(t.substr(b, e - b));
    size_t n = 0;
    for (size_t i = b; i < e; ++n) utf8::next(t, i);
    return n;
  }
  bool space_at(size_t i, size_t e, size_t* after) const {
    if (i >= e) return false;
    size_t k = i;
    if (!utf8::is_space(utf8::next(t, k))) return false;
    *after = k;
    return true;
  }
  // Match of separator s at exactly position i (end in *me), within [.., e).
  bool match_at(const std::string& s, size_t i, size_t e, size_t* me) const {
    if (s == kSentenceEnd) {
      if (i >= e || (t[i] != '.' && t[i] != '!' && t[i] != '?')) return false;
      size_t k = i + 1, n;
      if (!space_at(k, e, &n)) return false;
      while (space_at(k, e, &n)) k = n;
      *me = k;
      return true;
    }
    if (e - i < s.size() || t.substr(i, s.size()) != s) return false;
    *me = i + s.size();
    return true;
  }
  void strip_push(size_t b, size_t e, Ranges& out) const {
    size_t n;
    while (b < e && space_at(b, e, &n)) b = n;
    while (e > b) {
      size_t k = e;
      if (!utf8::is_space(utf8::prev(t, k))) break;
      e = k;
    }
    if (b < e) out.push_back({b, e});
  }
  void merge(const Ranges& splits, Ranges& out) const {
    Ranges cur;
    size_t total = 0;
    for (auto [b, e] : splits) {
      size_t l = len(b, e);
      if (total + l > size) {
        if (!cur.empty()) {
          strip_push(cur.front().first, cur.back().second, out);
          while (total > overlap || (total + l > size && total > 0)) {
            total -= len(cur.front().first, cur.front().second);
            cur.erase(cur.begin());
          }
        }
      }
      cur.push_back({b, e});
      total += l;
    }
    if (!cur.empty()) strip_push(cur.front().first, cur.back().second, out);
  }
  void split(size_t b, size_t e, size_t from, Ranges& out) const {
    size_t chosen = seps.size() - 1, next = seps.size();
    for (size_t i = from; i < seps.size(); ++i) {
      if (seps[i].empty()) {
        chosen = i;
        break;
      }
      bool found = false;
      size_t me;
      for (size_t k = b; k < e && !found; k += utf8::sequence_length(static_cast<unsigned char>(t[k])))
        found = match_at(seps[i], k, e, &me);
      if (found) {
        chosen = i;
        next = i + 1;
        break;
      }
    }
    Ranges pieces;
    size_t pos = b, k = b;
    while (k < e) {
      size_t me;
      if (seps[chosen].empty()) {
        me = k + utf8::sequence_length(static_cast<unsigned char>(t[k]));
        pieces.push_back({k, me});
        pos = k = me;
      } else if (match_at(seps[chosen], k, e, &me)) {
        pieces.push_back({pos, me});
        pos = k = me;
      } else {
        k += utf8::sequence_length(static_cast<unsigned char>(t[k]));
      }
    }
    if (pos < e) pieces.push_back({pos, e});
    Ranges good;
    for (auto [pb, pe] : pieces) {
      if (len(pb, pe) < size) {
        good.push_back({pb, pe});
        continue;
      }
      if (!good.empty()) merge(good, out);
      good.clear();
      if (next >= seps.size())
        out.push_back({pb, pe});
      else
        split(pb, pe, next, out);
    }
    if (!good.empty()) merge(good, out);
  }
  Ranges run() const {
    Ranges raw, out;
    if (!t.empty()) split(0, t.size(), 0, raw);
    for (auto r : raw) {
      if (!out.empty() && out.back().first <= r.first && r.second <= out.back().second) continue;
      while (!out.empty() && r.first <= out.back().first && out.back().second <= r.second) out.pop_back();
      out.push_back(r);
    }
    return out;
  }
};

Ranges loom_ranges(std::string_view t, const ChunkParams& p) {
  Ranges out;
  for (const Chunk& c : chunk_text(t, p)) out.push_back({c.start, c.end});
  return out;
}

std::string show(std::string_view t, const Ranges& r) {
  std::string s;
  for (auto [b, e] : r) s += "[" + std::to_string(b) + "," + std::to_string(e) + ") \"" + std::string(t.substr(b, e - b)) + "\"\n";
  return s;
}

void expect_same_as_reference(std::string_view t, ChunkParams p, const std::string& what) {
  Reference ref{t, p.size, p.overlap,
                p.separators.empty() ? std::vector<std::string>{"\n\n", "\n", kSentenceEnd, " ", ""} : p.separators,
                p.length};
  Ranges want = ref.run(), got = loom_ranges(t, p);
  ASSERT_EQ(got, want) << what << " size=" << p.size << " overlap=" << p.overlap << "\ntext: \"" << t
                       << "\"\nloom:\n" << show(t, got) << "reference:\n" << show(t, want);
}

}  // namespace

// ---- utf8.h ------------------------------------------------------------------------------------

TEST(Utf8, CountNextPrevAdvanceBoundary) {
  // one of each length, at every alignment relative to the 8-byte counting loop
  const std::string cps[] = {"a", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80"};  // a é € 😀
  std::mt19937 rng(7);
  for (int round = 0; round < 200; ++round) {
    std::string s;
    std::vector<size_t> starts;
    std::vector<char32_t> want;
    size_t n = rng() % 40;
    for (size_t i = 0; i < n; ++i) {
      size_t k = rng() % 4;
      starts.push_back(s.size());
      s += cps[k];
      want.push_back(k == 0 ? U'a' : k == 1 ? U'\u00e9' : k == 2 ? U'\u20ac' : U'\U0001F600');
    }
    ASSERT_EQ(utf8::count(s), n) << round;
    size_t i = 0;
    for (size_t k = 0; k < n; ++k) {
      ASSERT_EQ(i, starts[k]);
      ASSERT_EQ(utf8::next(s, i), want[k]);
    }
    ASSERT_EQ(i, s.size());
    for (size_t k = n; k-- > 0;) {
      ASSERT_EQ(utf8::prev(s, i), want[k]);
      ASSERT_EQ(i, starts[k]);
    }
    for (size_t k = 0; k <= n; ++k) ASSERT_EQ(utf8::advance(s, 0, k), k < n ? starts[k] : s.size());
    EXPECT_EQ(utf8::advance(s, 0, n + 5), s.size());
    for (size_t b = 0; b <= s.size(); ++b) {
      bool start = b == s.size() || std::find(starts.begin(), starts.end(), b) != starts.end();
      ASSERT_EQ(utf8::is_boundary(s, b), start) << b;
    }
  }
}

TEST(Utf8, AppendRoundTripsAndValidity) {
  for (char32_t cp : {U'\0', U'A', U'\u007f', U'\u0080', U'\u07ff', U'\u0800', U'\ufffd', U'\U00010000', U'\U0010FFFF'}) {
    std::string s;
    utf8::append(s, cp);
    size_t i = 0;
    EXPECT_EQ(utf8::next(s, i), cp);
    EXPECT_EQ(i, s.size());
    EXPECT_TRUE(utf8::is_valid(s));
  }
  EXPECT_TRUE(utf8::is_valid(""));
  for (const char* bad : {"\x80", "\xc0\xaf", "\xc1\xbf", "\xe0\x80\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xf5\x80\x80\x80",
                          "\xc3", "\xe2\x82", "ab\xf0\x9f\x98", "\xff"})
    EXPECT_FALSE(utf8::is_valid(bad)) << utf8::count(bad);
}

TEST(Utf8, SpaceIsPythonsIsspace) {
  // the code points for which Python's str.isspace() is true (and str.strip() removes)
  const std::vector<char32_t> py = {0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x85, 0xa0,
                                    0x1680, 0x2000, 0x2001, 0x2002, 0x2003, 0x2004, 0x2005, 0x2006, 0x2007,
                                    0x2008, 0x2009, 0x200a, 0x2028, 0x2029, 0x202f, 0x205f, 0x3000};
  std::vector<char32_t> got;
  for (char32_t c = 0; c < 0x110000; ++c)
    if (utf8::is_space(c)) got.push_back(c);
  EXPECT_EQ(got, py);
  std::string s = "\xe3\x80\x80 \xc2\xa0x\xe2\x80\x8b\xc2\x85\t";  // U+3000, NBSP, x, ZWSP (kept), U+0085
  utf8::Range r = utf8::strip(s, 0, s.size());
  EXPECT_EQ(s.substr(r.begin, r.end - r.begin), "x\xe2\x80\x8b");
  r = utf8::strip(" \n ", 0, 3);
  EXPECT_EQ(r.begin, r.end);
}

// ---- recursive splitter vs the reference ------------------------------------------------------

TEST(ChunkRecursive, MatchesReferenceOnRandomTexts) {
  static const char* const words[] = {"a", "lorem", "ipsum", "dolor", "x", "\xc3\xa9t\xc3\xa9", "\xe6\x97\xa5\xe6\x9c\xac",
                                      "\xf0\x9f\x98\x80", "averyveryverylongwordwithoutanyspacesinsideofit"};
  static const char* const gaps[] = {" ", " ", " ", "\n", "\n\n", ". ", "! ", "?\n", ".\xc2\xa0", "\t", "  ",
                                     "\xe3\x80\x80", "\r\n", "\n\n\n", ".", "\xe2\x80\xa8"};
  std::mt19937 rng(2024);
  for (int round = 0; round < 400; ++round) {
    std::string t;
    size_t n = rng() % 120;
    for (size_t i = 0; i < n; ++i) {
      t += words[rng() % std::size(words)];
      t += gaps[rng() % std::size(gaps)];
    }
    ChunkParams p;
    p.size = 1 + rng() % 80;
    p.overlap = rng() % p.size;
    if (round % 5 == 1) p.separators = {"\n", " "};
    if (round % 5 == 2) p.separators = {"--", "\n", ""};
    if (round % 7 == 3) p.length = [](std::string_view s) { return s.size(); };  // bytes
    expect_same_as_reference(t, p, "round " + std::to_string(round));
  }
}

// Separators at every offset around the 16-byte blocks of the vector search, and non-ASCII
// bytes at every offset around the 64-byte blocks of the ASCII index.
TEST(ChunkRecursive, FastPathBlockEdges) {
  for (size_t at = 0; at < 80; ++at) {
    std::string t(150, 'a');
    for (size_t i = 7; i < t.size(); i += 11) t[i] = ' ';
    t.replace(at, 2, "\n\n");
    ChunkParams p;
    p.size = 40;
    p.overlap = 9;
    expect_same_as_reference(t, p, "paragraph at " + std::to_string(at));
    p.separators = {"\n\n\n", "ab ", " "};
    t.replace(at, 3, "\n\n\n");
    expect_same_as_reference(t, p, "three-byte separator at " + std::to_string(at));
  }
  for (size_t at = 0; at < 200; at += 3) {
    std::string t;
    for (int i = 0; i < 40; ++i) t += "word ";
    t.insert(at, "\xc3\xa9\xe2\x82\xac");  // é€ — two code points, five bytes
    ChunkParams p;
    p.size = 23;
    p.overlap = 5;
    expect_same_as_reference(t, p, "non-ASCII at " + std::to_string(at));
    auto chunks = chunk_text(t, p);
    for (const Chunk& c : chunks) EXPECT_LE(utf8::count(std::string_view(t).substr(c.start, c.end - c.start)), p.size);
  }
}

TEST(ChunkRecursive, LengthHookSizesChunks) {
  // a "token" is a run of non-spaces: chunks hold at most 5 of them
  auto tokens = [](std::string_view s) {
    size_t n = 0;
    bool in = false;
    for (char c : s) {
      bool sp = c == ' ' || c == '\n';
      n += !sp && !in;
      in = !sp;
    }
    return n;
  };
  std::string t = "one two three four five six seven eight nine ten.\n\neleven twelve thirteen fourteen.";
  ChunkParams p;
  p.size = 5;
  p.overlap = 2;
  p.length = tokens;
  auto chunks = chunk_text(t, p);
  ASSERT_GE(chunks.size(), 3u);
  for (const Chunk& c : chunks) EXPECT_LE(tokens(std::string_view(t).substr(c.start, c.end - c.start)), 5u);
  expect_same_as_reference(t, p, "token length");
}

TEST(ChunkRecursive, KeepsSentenceEndsWithTheirSentence) {
  std::string t = "First one here. Second one here! Third one here? Fourth.";
  ChunkParams p;
  p.size = 20;
  p.overlap = 0;
  std::vector<std::string> got;
  for (const Chunk& c : chunk_text(t, p)) got.push_back(t.substr(c.start, c.end - c.start));
  EXPECT_EQ(got, (std::vector<std::string>{"First one here.", "Second one here!", "Third one here?", "Fourth."}));
}

// ---- markdown headings -------------------------------------------------------------------------

namespace {
std::vector<std::string> titles(std::string_view md) {
  std::vector<std::string> out;
  for (const Heading& h : markdown_headings(md)) out.push_back(std::to_string(h.level) + ":" + h.title);
  return out;
}
using Titles = std::vector<std::string>;
}  // namespace

TEST(MarkdownHeadings, AtxRules) {
  EXPECT_EQ(titles("# One\n## Two ##\n###### Six\n####### Seven\n#NoSpace\n   ### Three spaces\n    # Code\n"),
            (Titles{"1:One", "2:Two", "6:Six", "3:Three spaces"}));
  EXPECT_EQ(titles("# Hash at end#\n# Spaced # #\n## ##\n"), (Titles{"1:Hash at end#", "1:Spaced #", "2:"}));
  EXPECT_EQ(titles("# Title\r\nText\r\n"), (Titles{"1:Title"}));
  auto hs = markdown_headings("intro\n\n## Where\n");
  ASSERT_EQ(hs.size(), 1u);
  EXPECT_EQ(hs[0].offset, 7u);
}

TEST(MarkdownHeadings, SetextOnlyUnderAPlainParagraph) {
  EXPECT_EQ(titles("Title\n=====\n\nSub\n---\n"), (Titles{"1:Title", "2:Sub"}));
  EXPECT_EQ(titles("Two line\nparagraph\n---\n"), (Titles{"2:Two line paragraph"}));
  EXPECT_EQ(titles("- item\n---\n"), Titles{});                 // list item, then a thematic break
  EXPECT_EQ(titles("> quoted\n---\n"), Titles{});               // block quote, then a break
  EXPECT_EQ(titles("    indented code\n---\n"), Titles{});      // code, then a break
  EXPECT_EQ(titles("text\n\n---\n\nmore\n"), Titles{});         // a break between paragraphs
  EXPECT_EQ(titles("***\nNot a title\n* * *\n"), Titles{});     // breaks are not paragraphs
  EXPECT_EQ(titles("Text\n- - -\n"), Titles{});                 // spaced dashes: a break
  EXPECT_EQ(titles("Year\n2019. was good\n---\n"), (Titles{"2:Year 2019. was good"}));  // "2019." does not interrupt
  EXPECT_EQ(titles("===\n"), Titles{});
}

TEST(MarkdownHeadings, FrontMatterIsSkipped) {
  EXPECT_EQ(titles("---\ntitle: x\nlayout: y\n---\n# Real\n"), (Titles{"1:Real"}));
  EXPECT_EQ(titles("---\ntitle: x\n...\nBody\n===\n"), (Titles{"1:Body"}));
  // no closing line: not front matter ("---" is a thematic break)
  EXPECT_EQ(titles("---\nno end\n\nText\n===\n"), (Titles{"1:Text"}));
}

TEST(MarkdownHeadings, NothingCountsInsideFences) {
  EXPECT_EQ(titles("```\n# no\n```\n# yes\n"), (Titles{"1:yes"}));
  EXPECT_EQ(titles("~~~~\n# no\n~~~\n# still code\n~~~~~\n# yes\n"), (Titles{"1:yes"}));  // closing >= opening
  EXPECT_EQ(titles("````\n```\n# no\n````\n# yes\n"), (Titles{"1:yes"}));
  EXPECT_EQ(titles("```\n# no\n~~~\n# no, still open\n"), Titles{});  // unclosed: to the end
  EXPECT_EQ(titles("``` not `a fence\n# yes\n"), (Titles{"1:yes"}));  // backtick info with a backtick
}

TEST(MarkdownHeadings, TitlesLoseInlineMarkup) {
  EXPECT_EQ(titles("# The `chunk_text()` API\n"), (Titles{"1:The chunk_text() API"}));
  EXPECT_EQ(titles("# *Very* **bold** and _em_ and __init__\n"), (Titles{"1:Very bold and em and init"}));
  EXPECT_EQ(titles("# snake_case_name stays\n"), (Titles{"1:snake_case_name stays"}));
  EXPECT_EQ(titles("# See [the docs](https://x.org/a_(b)) and ![logo](l.png)\n"), (Titles{"1:See the docs and logo"}));
  EXPECT_EQ(titles("# [Ref][1] link\n"), (Titles{"1:Ref link"}));
  EXPECT_EQ(titles("# Escaped \\# and \\*stars\\*\n"), (Titles{"1:Escaped # and *stars*"}));
  EXPECT_EQ(titles("# <a id=\"x\"></a>Anchored <https://loom.dev>\n"), (Titles{"1:Anchored https://loom.dev"}));
  EXPECT_EQ(titles("# Many    spaces\tinside\n"), (Titles{"1:Many spaces inside"}));
  EXPECT_EQ(titles("# ``code with ` tick``\n"), (Titles{"1:code with ` tick"}));
}

TEST(ChunkMarkdown, FrontMatterAndBreaksMakeNoSections) {
  std::string t = "---\ntitle: Doc\n---\nIntro para.\n\n---\n\n# Real\n\nBody text.\n";
  ChunkParams p;
  p.strategy = ChunkStrategy::Markdown;
  p.size = 200;
  p.overlap = 0;
  auto chunks = chunk_text(t, p);
  ASSERT_EQ(chunks.size(), 2u);
  EXPECT_EQ(chunks[0].section, "");
  EXPECT_EQ(t.substr(chunks[0].start, chunks[0].end - chunks[0].start), "---\ntitle: Doc\n---\nIntro para.\n\n---");
  EXPECT_EQ(chunks[1].section, "Real");
  EXPECT_EQ(t.substr(chunks[1].start, chunks[1].end - chunks[1].start), "# Real\n\nBody text.");
}
