// Recursive chunking against LangChain's RecursiveCharacterTextSplitter, chunk for chunk.
//
// The goldens under tests/reference/golden/chunk/ come from LangChain itself
// (tests/reference/gen_chunk_goldens.py); cases.jsonl lists each case's size, overlap and
// separators (null = loom's defaults), <case>.input.txt is the text and <case>.expected.jsonl the
// chunks as {"start", "end", "text"} with byte offsets. Each case is one test; a mismatch names
// the case, the first differing chunk and both texts.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "loom/core/error.h"
#include "loom/io/json.h"
#include "loom/io/jsonl.h"
#include "loom/io/stream.h"
#include "loom/text/chunk.h"
#include "loom/tokenizer/tokenizer.h"

namespace {

const std::string kGoldenDir = std::string(LOOM_SOURCE_DIR) + "/tests/reference/golden/chunk/";

struct Case {
  std::string name;
  size_t size = 0, overlap = 0;
  std::optional<std::vector<std::string>> separators;  // nullopt: the defaults
  std::string length;  // "": characters; else a model whose tokens measure length (--by tokens)
};

struct Expected {
  size_t start, end;
  std::string text;
};

// The string literals of a compact JSON array of strings (as Record::raw gives it).
std::vector<std::string> string_array(std::string_view raw) {
  std::vector<std::string> out;
  for (size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] != '"') continue;
    size_t j = i + 1;
    while (j < raw.size() && raw[j] != '"') j += raw[j] == '\\' ? 2 : 1;
    std::string s;
    loom::json::unescape_string(raw.substr(i, j + 1 - i), s);
    out.push_back(std::move(s));
    i = j;
  }
  return out;
}

std::vector<Case> load_cases(std::string* error = nullptr) {
  std::vector<Case> cases;
  try {
    auto in = loom::io::Input::open(kGoldenDir + "cases.jsonl");
    loom::io::JsonlReader reader(*in);
    loom::io::Record rec;
    while (reader.next(rec)) {
      Case c;
      c.name = rec.get_string("case").value();
      c.size = static_cast<size_t>(rec.get_int("size").value());
      c.overlap = static_cast<size_t>(rec.get_int("overlap").value());
      auto seps = rec.raw("separators");
      if (seps && *seps != "null") c.separators = string_array(*seps);
      c.length = rec.get_string("length").value_or("");
      cases.push_back(std::move(c));
    }
  } catch (const std::exception& e) {
    if (error) *error = e.what();
    cases.clear();
  }
  return cases;
}

std::string read_file(const std::string& path) {
  auto in = loom::io::Input::open(path);
  return loom::io::read_all(*in);
}

std::vector<Expected> read_expected(const std::string& path) {
  std::vector<Expected> out;
  auto in = loom::io::Input::open(path);
  loom::io::JsonlReader reader(*in);
  loom::io::Record rec;
  while (reader.next(rec)) {
    out.push_back({static_cast<size_t>(rec.get_int("start").value()),
                   static_cast<size_t>(rec.get_int("end").value()), rec.get_string("text").value()});
  }
  return out;
}

// Shows control characters and non-breaking spaces, so whitespace differences are visible.
std::string show(std::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '\n') out += "\\n";
    else if (c == '\r') out += "\\r";
    else if (c == '\t') out += "\\t";
    else if (c == '"') out += "\\\"";
    else if (c < 0x20 || c == 0x7f) { char b[8]; snprintf(b, sizeof b, "\\x%02x", c); out += b; }
    else out += static_cast<char>(c);
  }
  return out + "\"";
}

std::string describe(const Case& c) {
  std::string s = c.name + " (size " + std::to_string(c.size) + ", overlap " +
                  std::to_string(c.overlap) + ", separators ";
  if (!c.separators) return s + "default)";
  s += "[";
  for (size_t i = 0; i < c.separators->size(); ++i) s += (i ? ", " : "") + show((*c.separators)[i]);
  return s + "])";
}

// gtest prints the parameter of a failed test with this.
void PrintTo(const Case& c, std::ostream* os) { *os << describe(c); }

class ChunkGolden : public testing::TestWithParam<Case> {};

TEST_P(ChunkGolden, MatchesLangChain) {
  const Case& c = GetParam();
  const std::string input = read_file(kGoldenDir + c.name + ".input.txt");
  const std::vector<Expected> all = read_expected(kGoldenDir + c.name + ".expected.jsonl");
  // The goldens themselves: each expected text is the input at its offsets.
  for (size_t i = 0; i < all.size(); ++i) {
    ASSERT_LE(all[i].end, input.size()) << c.name << " golden chunk " << i;
    ASSERT_EQ(input.substr(all[i].start, all[i].end - all[i].start), all[i].text)
        << c.name << " golden chunk " << i << " does not match its offsets; regenerate the goldens";
  }

  loom::text::ChunkParams p;
  p.strategy = loom::text::ChunkStrategy::Recursive;
  p.size = c.size;
  p.overlap = c.overlap;
  if (c.separators) p.separators = *c.separators;
  std::shared_ptr<loom::tok::Tokenizer> tokenizer;
  if (!c.length.empty()) {
    try {
      tokenizer = std::make_shared<loom::tok::Tokenizer>(loom::tok::Tokenizer::load(c.length));
    } catch (const loom::Error& e) {
      GTEST_SKIP() << "case " << c.name << " measures in " << c.length << " tokens: " << e.what()
                   << " (run scripts/fetch-models)";
    }
    p.length = [tokenizer](std::string_view s) { return tokenizer->encode(s, {false, false}).ids.size(); };
  }
  // loom's one documented difference (chunk.h): of two chunks where one lies inside the other
  // (LangChain emits such pairs when a merge window changes only by a whitespace piece), only the
  // larger is kept. The same rule applied to LangChain's chunks gives the expected list.
  std::vector<Expected> want;
  for (const Expected& e : all) {
    if (!want.empty() && want.back().start <= e.start && e.end <= want.back().end) continue;
    while (!want.empty() && e.start <= want.back().start && want.back().end <= e.end) want.pop_back();
    want.push_back(e);
  }
  const std::vector<loom::text::Chunk> got = loom::text::chunk_text(input, p);

  // First differing chunk (offsets or text), or the first one past the shorter list.
  const size_t n = std::min(got.size(), want.size());
  size_t i = 0;
  for (; i < n; ++i) {
    if (got[i].start != want[i].start || got[i].end != want[i].end) break;
  }
  if (i == n && got.size() == want.size()) return;  // all equal

  std::string msg = "case " + describe(c) + ": loom gives " + std::to_string(got.size()) +
                    " chunks, LangChain " + std::to_string(want.size()) + "; first difference at chunk " +
                    std::to_string(i) + "\n";
  if (i < want.size()) {
    msg += "  LangChain [" + std::to_string(want[i].start) + ", " + std::to_string(want[i].end) + "): " +
           show(want[i].text) + "\n";
  } else {
    msg += "  LangChain: (no more chunks)\n";
  }
  if (i < got.size()) {
    const auto& g = got[i];
    std::string text = g.start <= g.end && g.end <= input.size() ? input.substr(g.start, g.end - g.start)
                                                                 : std::string("(offsets outside the input)");
    msg += "  loom      [" + std::to_string(g.start) + ", " + std::to_string(g.end) + "): " + show(text) + "\n";
  } else {
    msg += "  loom: (no more chunks)\n";
  }
  if (i > 0) {
    msg += "  previous chunk (equal) [" + std::to_string(want[i - 1].start) + ", " +
           std::to_string(want[i - 1].end) + "): " + show(want[i - 1].text) + "\n";
  }
  ADD_FAILURE() << msg;
}

std::string case_name(const testing::TestParamInfo<Case>& info) { return info.param.name; }

INSTANTIATE_TEST_SUITE_P(LangChain, ChunkGolden, testing::ValuesIn(load_cases()), case_name);
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(ChunkGolden);

// A missing or unreadable case list must fail, not pass with nothing tested.
TEST(ChunkGoldenCases, Present) {
  std::string error;
  const auto cases = load_cases(&error);
  EXPECT_EQ(error, "") << "reading " << kGoldenDir << "cases.jsonl";
  EXPECT_GE(cases.size(), 10u) << "no golden cases in " << kGoldenDir
                              << "cases.jsonl; run tests/reference/gen_chunk_goldens.py";
  bool custom = false, empty = false;
  for (const auto& c : cases) {
    custom |= c.separators.has_value() && !c.separators->empty();
    empty |= c.name == "empty";
  }
  EXPECT_TRUE(custom) << "no case with custom separators";
  EXPECT_TRUE(empty) << "no case with an empty text";
}

}  // namespace
