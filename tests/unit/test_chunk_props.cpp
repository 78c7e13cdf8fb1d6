// Chunking invariants, checked as properties on random and real texts for every strategy, plus
// the rules of the sentence and markdown strategies on hand-made cases.
// (Parity of the recursive strategy with LangChain: test_chunk_golden.cpp.)
#include <gtest/gtest.h>

#include <fstream>
#include <random>

#include "loom/text/chunk.h"
#include "loom/text/utf8.h"

using namespace loom::text;

namespace {

std::string random_text(std::mt19937& rng, size_t words) {
  static const char* const pieces[] = {"alpha", "beta", "gamma", "déjà", "naïve", "東京都", "😀", "x",
                                       "supercalifragilisticexpialidocious", "3.14", "e.g.", "Dr.", "end.",
                                       "what?!", "«quote»", "\u00a0", "\u3000", "a\u0301"};
  static const char* const gaps[] = {" ", " ", " ", " ", "\n", "\n\n", ". ", "! ", "\n\n\n", "  ", "\t", "\r\n"};
  std::string s;
  for (size_t i = 0; i < words; ++i) {
    if (rng() % 40 == 0) {
      s += "\n## Heading ";
      s += std::to_string(i);
      s += "\n";
    }
    if (rng() % 60 == 0) s += "\n```\ncode line\n\n  more code\n```\n";
    s += pieces[rng() % std::size(pieces)];
    s += gaps[rng() % std::size(gaps)];
  }
  return s;
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

size_t cps(std::string_view t, size_t b, size_t e) { return utf8::count(t.substr(b, e - b)); }

// The invariants every strategy promises.
void check_invariants(std::string_view t, const ChunkParams& p, const std::vector<Chunk>& chunks, const std::string& what) {
  SCOPED_TRACE(what + " size=" + std::to_string(p.size) + " overlap=" + std::to_string(p.overlap));
  std::vector<bool> covered(t.size(), false);
  for (size_t i = 0; i < chunks.size(); ++i) {
    const Chunk& c = chunks[i];
    ASSERT_LT(c.start, c.end) << "chunk " << i;
    ASSERT_LE(c.end, t.size());
    ASSERT_TRUE(utf8::is_boundary(t, c.start) && utf8::is_boundary(t, c.end)) << "chunk " << i << " cuts UTF-8";
    ASSERT_LE(cps(t, c.start, c.end), p.size) << "chunk " << i << " too long";
    // in order: starts and ends both advance (no chunk lies inside another)
    if (i) {
      ASSERT_LT(chunks[i - 1].start, c.start) << "chunks out of order at " << i;
      ASSERT_LT(chunks[i - 1].end, c.end) << "chunk " << i << " does not advance";
    }
    if (i && c.start < chunks[i - 1].end && p.strategy != ChunkStrategy::Markdown) {
      ASSERT_LE(cps(t, c.start, chunks[i - 1].end), p.overlap) << "overlap too large at " << i;
    }
    for (size_t k = c.start; k < c.end; ++k) covered[k] = true;
  }
  for (size_t k = 0; k < t.size();) {
    size_t n = k;
    char32_t cp = utf8::next(t, n);
    if (!utf8::is_space(cp)) {
      ASSERT_TRUE(covered[k]) << "content lost at byte " << k;
    }
    k = n;
  }
}

}  // namespace

TEST(ChunkProperties, RandomTextsEveryStrategy) {
  std::mt19937 rng(12345);
  size_t total = 0;
  for (int round = 0; round < 60; ++round) {
    std::string t = random_text(rng, 20 + rng() % 400);
    for (auto strategy : {ChunkStrategy::Recursive, ChunkStrategy::Fixed, ChunkStrategy::Sentence, ChunkStrategy::Markdown}) {
      ChunkParams p;
      p.strategy = strategy;
      p.size = 2 + rng() % 300;
      p.overlap = rng() % p.size;
      auto chunks = chunk_text(t, p);
      ASSERT_FALSE(chunks.empty());
      check_invariants(t, p, chunks, "round " + std::to_string(round) + " strategy " + std::to_string(int(strategy)));
      EXPECT_EQ(chunks.size(), chunk_text(t, p).size());  // deterministic
      total += chunks.size();
    }
  }
  EXPECT_GT(total, 1000u);
}

TEST(ChunkProperties, RealDocuments) {
  for (const char* rel : {"/README.md", "/examples/docs/ops/log-rotation.md", "/tests/reference/golden/chunk/design_1000_200.input.txt"}) {
    std::string t = read_file(std::string(LOOM_SOURCE_DIR) + rel);
    ASSERT_GT(t.size(), 500u) << rel;
    for (auto strategy : {ChunkStrategy::Recursive, ChunkStrategy::Fixed, ChunkStrategy::Sentence, ChunkStrategy::Markdown})
      for (size_t size : {80, 300, 1000}) {
        ChunkParams p;
        p.strategy = strategy;
        p.size = size;
        p.overlap = size / 5;
        check_invariants(t, p, chunk_text(t, p), rel);
      }
  }
}

TEST(ChunkFixed, WindowsShareExactlyTheOverlap) {
  std::string t;
  for (int i = 0; i < 500; ++i) t += i % 7 ? "ab\xc3\xa9 " : "\xe6\x9d\xb1\xf0\x9f\x98\x80";
  ChunkParams p;
  p.strategy = ChunkStrategy::Fixed;
  p.size = 50;
  p.overlap = 13;
  auto chunks = chunk_text(t, p);
  ASSERT_GT(chunks.size(), 10u);
  for (size_t i = 0; i + 1 < chunks.size(); ++i) {
    EXPECT_EQ(cps(t, chunks[i].start, chunks[i].end), 50u);
    EXPECT_EQ(cps(t, chunks[i + 1].start, chunks[i].end), 13u);
  }
  EXPECT_EQ(chunks.back().end, t.size());
}

TEST(ChunkSentence, SplitsAtSentenceEndsOnly) {
  std::string t = "Dr. Smith met J. Doe at 3.14 p.m. today. They talked, e.g. about rain! Did it stop? Yes.\n\nNew paragraph";
  ChunkParams p;
  p.strategy = ChunkStrategy::Sentence;
  p.size = 45;
  p.overlap = 0;
  std::vector<std::string> got;
  for (const Chunk& c : chunk_text(t, p)) got.push_back(t.substr(c.start, c.end - c.start));
  std::vector<std::string> want = {"Dr. Smith met J. Doe at 3.14 p.m. today.", "They talked, e.g. about rain! Did it stop?",
                                   "Yes.\n\nNew paragraph"};
  EXPECT_EQ(got, want);
}

TEST(ChunkMarkdown, SectionsHeadingPathsAndWholeCodeFences) {
  std::string t =
      "Intro line.\n\n"
      "# Install\n\nGet it.\n\n"
      "## From source\n\n```sh\n# not a heading\nmake\n\nmake install\n```\n\nDone building here.\n\n"
      "Setext title\n------------\n\nUnder setext.\n\n"
      "# Use ###\n\nRun it.\n";
  auto hs = markdown_headings(t);
  ASSERT_EQ(hs.size(), 4u);
  EXPECT_EQ(hs[0].title, "Install");
  EXPECT_EQ(hs[1].title, "From source");
  EXPECT_EQ(hs[1].level, 2);
  EXPECT_EQ(hs[2].title, "Setext title");
  EXPECT_EQ(hs[2].offset, t.find("Setext title"));
  EXPECT_EQ(hs[3].title, "Use");

  ChunkParams p;
  p.strategy = ChunkStrategy::Markdown;
  p.size = 50;
  p.overlap = 10;
  auto chunks = chunk_text(t, p);
  std::vector<std::pair<std::string, std::string>> got;
  for (const Chunk& c : chunks) got.push_back({c.section, t.substr(c.start, c.end - c.start)});
  size_t fence = t.find("```sh"), fence_end = t.find("```\n\nDone") + 3;
  bool fence_whole = false;
  for (const Chunk& c : chunks) {
    EXPECT_FALSE(c.start > fence && c.start < fence_end) << "chunk starts inside the code fence";
    EXPECT_FALSE(c.end > fence && c.end < fence_end) << "chunk ends inside the code fence";
    for (const auto& h : hs) EXPECT_FALSE(h.offset > c.start && h.offset < c.end) << "chunk crosses a heading";
    fence_whole |= c.start <= fence && c.end >= fence_end;
  }
  EXPECT_TRUE(fence_whole);
  ASSERT_GE(got.size(), 6u);
  EXPECT_EQ(got[0], (std::pair<std::string, std::string>{"", "Intro line."}));
  EXPECT_EQ(got[1], (std::pair<std::string, std::string>{"Install", "# Install\n\nGet it."}));
  EXPECT_EQ(got[2].first, "Install > From source");
  EXPECT_EQ(got.back(), (std::pair<std::string, std::string>{"Use", "# Use ###\n\nRun it."}));
  bool setext = false;
  for (auto& g : got) setext |= g.first == "Install > Setext title" && g.second.find("Under setext.") != std::string::npos;
  EXPECT_TRUE(setext);
}

TEST(ChunkSections, FollowGivenHeadingsForOtherStrategies) {
  std::string t = "Top\n\nAlpha text here.\n\nBeta text here.";
  std::vector<Heading> hs = {{0, 1, "Top"}, {t.find("Beta"), 2, "Beta"}};
  ChunkParams p;
  p.size = 18;
  p.overlap = 0;
  auto chunks = chunk_text(t, p, hs);
  ASSERT_EQ(chunks.size(), 3u);
  EXPECT_EQ(chunks[0].section, "Top");
  EXPECT_EQ(chunks[1].section, "Top");
  EXPECT_EQ(chunks[2].section, "Top > Beta");
}

TEST(ChunkParams, RejectsOverlapNotSmallerThanSize) {
  ChunkParams p;
  p.size = 10;
  p.overlap = 10;
  EXPECT_THROW(chunk_text("text", p), std::invalid_argument);
  p.size = 0;
  p.overlap = 0;
  EXPECT_THROW(chunk_text("text", p), std::invalid_argument);
}
