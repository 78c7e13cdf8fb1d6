// BM25 (lib/index/bm25.h) against bm25s, its reference (tests/reference/gen_bm25_goldens.py writes
// tests/reference/golden/bm25/ from bm25s 0.3.16 + PyStemmer; nothing there comes from loom):
//   - the analyzer gives bm25s.tokenize's terms for a few hundred tricky strings and the corpus's
//     first 300 documents, and Python's lowercasing and \w on every code point (unicode.json);
//   - on 12,000 Debian package descriptions and 300 queries, in both settings (defaults; k1 1.2,
//     b 0.5 without stop words and stemmer), every query's top 100 has bm25s's scores (within 1e-5
//     relative; the largest difference is printed) and documents, in bm25s's order except among
//     equal scores and at the k-th place's ties;
//   - adds and removes give the index a rebuild from scratch gives; save/load round-trips; every
//     truncation and every corrupted byte of a saved index is a loom::Error (bad input).
#include <gtest/gtest.h>
#include <unistd.h>
#include <utf8proc.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <atomic>
#include <chrono>
#include <thread>
#include <unordered_map>

#include "loom/core/error.h"
#include "loom/index/bm25.h"
#include "loom/io/json.h"
#include "loom/io/stream.h"
#include "loom/text/utf8.h"
#include "golden_json.h"

using namespace loom;
using index::Analyzer;
using index::Bm25Index;
using index::Bm25Params;

namespace {

const std::string kGolden = std::string(LOOM_SOURCE_DIR) + "/tests/reference/golden/bm25/";

using golden::J;
using golden::parse;

std::vector<J> read_jsonl(const std::string& path) {
  auto in = io::Input::open(path);
  std::string all = io::read_all(*in);
  std::vector<J> out;
  size_t b = 0;
  while (b < all.size()) {
    size_t e = all.find('\n', b);
    if (e == std::string::npos) e = all.size();
    if (e > b) out.push_back(parse(std::string_view(all).substr(b, e - b)));
    b = e + 1;
  }
  return out;
}

struct Doc {
  std::string id, text;
};

const std::vector<Doc>& corpus() {
  static const std::vector<Doc> docs = [] {
    std::vector<Doc> out;
    for (const J& j : read_jsonl(kGolden + "corpus.jsonl.zst")) out.push_back({j["id"].str, j["text"].str});
    return out;
  }();
  return docs;
}

Bm25Params setting(const std::string& name) {
  if (name == "default") return Bm25Params{};
  return Bm25Params{1.2, 0.5, "none", "none"};
}

std::string tmp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("loom-test-bm25-" + std::to_string(::getpid()) + "-" + name)).string();
}

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void spit(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << bytes;
}

std::string fmt_hex(char32_t c) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "U+%04X ", static_cast<unsigned>(c));
  return buf;
}

std::string join(const std::vector<std::string>& v) {
  std::string out = "[";
  for (size_t i = 0; i < v.size(); ++i) out += (i ? "|" : "") + v[i];
  return out + "]";
}

// ---- analyzer -------------------------------------------------------------------------------------

void check_analyzer_file(const std::string& file, size_t at_least) {
  Analyzer def(setting("default")), plain(setting("plain"));
  size_t n = 0, bad = 0;
  for (const J& j : read_jsonl(kGolden + file)) {
    const std::string& text = j["text"].str;
    auto want_def = j["default"].strings(), want_plain = j["plain"].strings();
    auto got_def = def.terms(text), got_plain = plain.terms(text);
    if (got_def != want_def || got_plain != want_plain) {
      if (++bad <= 10)
        ADD_FAILURE() << "text " << text.substr(0, 80) << "\n default: loom " << join(got_def) << " bm25s " << join(want_def)
                      << "\n plain:   loom " << join(got_plain) << " bm25s " << join(want_plain);
    }
    ++n;
  }
  EXPECT_GE(n, at_least) << file << " is missing or short";
  EXPECT_EQ(bad, 0u) << bad << " of " << n << " texts differ from bm25s.tokenize";
  std::printf("[ analyzer ] %s: %zu of %zu texts give bm25s's terms in both settings\n", file.c_str(), n - bad, n);
}

TEST(Bm25Analyzer, TrickyStringsMatchBm25s) { check_analyzer_file("analyzer.jsonl", 300); }

TEST(Bm25Analyzer, CorpusDocumentsMatchBm25s) { check_analyzer_file("analyzer-corpus.jsonl.zst", 300); }

// ---- Python's lowercasing and \w, code point by code point -----------------------------------------
//
// unicode.json holds Python's answers (the \w set, str.lower() of each character, and the classes
// that its final-sigma rule asks about). A tiny model of re.findall(r"\b\w\w+\b", s.lower()) built
// on those facts gives the expected terms of probe strings around every code point c:
// "x" c "y" (is c a word character, what does it lower to), "ΑΣ" c (is c cased, for the sigma
// before it) and "Α" c "Σ1" (is c case-ignorable or cased, for the sigma after it).

struct PyFacts {
  std::vector<uint8_t> word, ignorable, cased, unassigned;
  std::map<char32_t, std::u32string> lower;
  std::string unicode;
};

const PyFacts& py_facts() {
  static const PyFacts f = [] {
    PyFacts f;
    auto in = io::Input::open(kGolden + "unicode.json");
    J j = parse(io::read_all(*in));
    f.unicode = j["unicode"].str;
    auto fill = [](const J& ranges, std::vector<uint8_t>& set) {
      set.assign(0x110000, 0);
      for (const J& r : ranges.arr)
        for (auto c = static_cast<size_t>(r.arr[0].num); c <= static_cast<size_t>(r.arr[1].num); ++c) set[c] = 1;
    };
    fill(j["word"], f.word);
    fill(j["case_ignorable"], f.ignorable);
    fill(j["cased"], f.cased);
    fill(j["unassigned"], f.unassigned);
    for (const J& e : j["lower"].arr) {
      std::u32string to;
      for (const J& c : e.arr[1].arr) to += static_cast<char32_t>(c.num);
      f.lower[static_cast<char32_t>(e.arr[0].num)] = to;
    }
    return f;
  }();
  return f;
}

std::vector<std::string> py_terms(const std::u32string& s, const PyFacts& f) {
  std::u32string low;
  for (size_t i = 0; i < s.size(); ++i) {
    char32_t c = s[i];
    if (c == 0x3A3) {
      ptrdiff_t j = static_cast<ptrdiff_t>(i) - 1;
      while (j >= 0 && f.ignorable[s[static_cast<size_t>(j)]]) --j;
      bool fin = j >= 0 && f.cased[s[static_cast<size_t>(j)]];
      size_t k = i + 1;
      while (fin && k < s.size() && f.ignorable[s[k]]) ++k;
      if (fin && k < s.size()) fin = !f.cased[s[k]];
      low += fin ? char32_t(0x3C2) : char32_t(0x3C3);
    } else if (auto it = f.lower.find(c); it != f.lower.end()) {
      low += it->second;
    } else {
      low += c;
    }
  }
  std::vector<std::string> out;
  std::u32string run;
  for (size_t i = 0; i <= low.size(); ++i) {
    if (i < low.size() && f.word[low[i]]) {
      run += low[i];
      continue;
    }
    if (run.size() >= 2) {
      std::string t;
      for (char32_t c : run) text::utf8::append(t, c);
      out.push_back(t);
    }
    run.clear();
  }
  return out;
}

std::u32string probe(int kind, char32_t c) {
  switch (kind) {
    case 0: return std::u32string(U"x") + c + U"y";
    case 1: return std::u32string(U"\u0391\u03a3") + c;
    default: return std::u32string(U"\u0391") + c + U"\u03a31";
  }
}

std::string to_utf8(const std::u32string& s) {
  std::string out;
  for (char32_t c : s) text::utf8::append(out, c);
  return out;
}

TEST(Bm25Analyzer, PythonLowercaseAndWordCharactersOnEveryCodePoint) {
  const PyFacts& f = py_facts();
  ASSERT_GT(f.lower.size(), 1000u);
  Analyzer plain(setting("plain"));
  // Python's and utf8proc's Unicode versions may differ: a code point that only one of them
  // assigns is a letter to one and unassigned (not a word character) to the other. Only those
  // may differ.
  std::set<char32_t> differ, only_utf8proc, only_python;
  size_t checked = 0;
  for (char32_t block = 0; block < 0x110000; block += 256) {
    for (int kind = 0; kind < 3; ++kind) {
      std::u32string batch;
      for (char32_t c = block; c < block + 256; ++c) {
        if (c >= 0xD800 && c <= 0xDFFF) continue;
        batch += probe(kind, c);
        batch += U' ';
        checked += kind == 0;
      }
      if (batch.empty() || plain.terms(to_utf8(batch)) == py_terms(batch, f)) continue;
      for (char32_t c = block; c < block + 256; ++c) {  // find the code points that differ
        if (c >= 0xD800 && c <= 0xDFFF) continue;
        std::u32string one = probe(kind, c);
        if (plain.terms(to_utf8(one)) == py_terms(one, f)) continue;
        bool utf8proc_knows = utf8proc_category(static_cast<utf8proc_int32_t>(c)) != UTF8PROC_CATEGORY_CN;
        bool python_knows = !f.unassigned[c];
        if (utf8proc_knows && python_knows) differ.insert(c);
        else if (utf8proc_knows) only_utf8proc.insert(c);
        else if (python_knows) only_python.insert(c);
        else differ.insert(c);
      }
    }
  }
  auto list = [](const std::set<char32_t>& s) {
    std::string out;
    size_t n = 0;
    for (char32_t c : s) {
      if (++n > 12) return out + "...";
      out += fmt_hex(c);
    }
    return out;
  };
  EXPECT_EQ(checked, 0x110000u - 0x800u);
  EXPECT_TRUE(differ.empty()) << differ.size() << " code points that both utf8proc (Unicode " << utf8proc_unicode_version()
                              << ") and Python (Unicode " << f.unicode << ") assign are lowercased or classified unlike Python: "
                              << list(differ);
  std::printf("[ unicode  ] %zu code points: str.lower and \\w as Python's (Unicode %s) except %zu that only utf8proc %s "
              "(Unicode %s) assigns (%s) and %zu that only Python assigns (%s)\n",
              checked, f.unicode.c_str(), only_utf8proc.size(), utf8proc_version(), utf8proc_unicode_version(),
              list(only_utf8proc).c_str(), only_python.size(), list(only_python).c_str());
}

// ---- scores against bm25s ------------------------------------------------------------------------

void check_setting(const std::string& name) {
  const auto& docs = corpus();
  ASSERT_GE(docs.size(), 10000u) << "the golden corpus must be a real one of at least 10,000 documents";
  Bm25Params params = setting(name);
  Analyzer an(params);
  Bm25Index idx(params);
  auto t0 = std::chrono::steady_clock::now();
  for (size_t i = 0; i < docs.size(); ++i) idx.add(i, an.terms(docs[i].text));
  auto t1 = std::chrono::steady_clock::now();
  ASSERT_EQ(idx.size(), docs.size());
  std::unordered_map<std::string, uint64_t> label_of;
  for (size_t i = 0; i < docs.size(); ++i) label_of[docs[i].id] = i;
  ASSERT_EQ(label_of.size(), docs.size()) << "document ids repeat";

  auto queries = read_jsonl(kGolden + "queries.jsonl");
  auto golden = read_jsonl(kGolden + "results-" + name + ".jsonl.zst");
  ASSERT_EQ(queries.size(), 300u);
  ASSERT_EQ(golden.size(), queries.size());
  double max_rel = 0, query_seconds = 0;
  size_t scores = 0, exact = 0, with_results = 0, golden_with_results = 0, tie_groups = 0, boundary_ties = 0, bad = 0;
  for (size_t q = 0; q < queries.size(); ++q) {
    const J& g = golden[q];
    ASSERT_EQ(static_cast<size_t>(g["qid"].num), static_cast<size_t>(queries[q]["qid"].num));
    auto terms = an.terms(queries[q]["text"].str);
    EXPECT_EQ(terms, g["tokens"].strings()) << "query " << q << ": " << queries[q]["text"].str;
    auto qa = std::chrono::steady_clock::now();
    auto hits = idx.search(terms, 100);
    query_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - qa).count();
    auto gids = g["ids"].strings();
    std::vector<float> gscore;
    for (const J& s : g["scores"].arr) gscore.push_back(static_cast<float>(s.num));
    auto ties = g["tie_ids"].strings();
    golden_with_results += !gids.empty();
    with_results += !hits.empty();
    if (hits.size() != gids.size()) {
      ++bad;
      ADD_FAILURE() << name << " query " << q << " (" << queries[q]["text"].str << "): " << hits.size() << " hits, bm25s "
                    << gids.size();
      continue;
    }
    bool ok = true;
    for (size_t r = 0; r < hits.size(); ++r) {
      double rel = std::fabs(static_cast<double>(hits[r].second) - gscore[r]) / std::fabs(static_cast<double>(gscore[r]));
      max_rel = std::max(max_rel, rel);
      exact += hits[r].second == gscore[r];
      ++scores;
      if (!(rel <= 1e-5)) ok = false;
    }
    // documents: bm25s's order, except that a run of equal scores may come in any order, and
    // the run at the 100th place may hold any of the documents with that score
    for (size_t s = 0; s < gids.size();) {
      size_t e = s;
      while (e < gids.size() && gscore[e] == gscore[s]) ++e;
      std::multiset<std::string> want(gids.begin() + static_cast<ptrdiff_t>(s), gids.begin() + static_cast<ptrdiff_t>(e)), got;
      for (size_t r = s; r < e; ++r) got.insert(docs[hits[r].first].id);
      tie_groups += e - s > 1;
      if (e == gids.size() && e == 100) {
        ++boundary_ties;
        std::set<std::string> allowed(ties.begin(), ties.end());
        EXPECT_TRUE(allowed.count(gids.back())) << "golden tie list lacks the 100th document";
        for (const auto& id : got) ok = ok && allowed.count(id);
      } else {
        ok = ok && got == want;
      }
      s = e;
    }
    if (!ok && ++bad <= 5) {
      std::string detail;
      for (size_t r = 0; r < hits.size() && r < 10; ++r)
        detail += "\n  " + std::to_string(r) + ": loom " + docs[hits[r].first].id + " " + std::to_string(hits[r].second) +
                  "  bm25s " + gids[r] + " " + std::to_string(gscore[r]);
      ADD_FAILURE() << name << " query " << q << " (" << queries[q]["text"].str << ") differs from bm25s:" << detail;
    }
  }
  EXPECT_EQ(bad, 0u) << bad << " queries differ from bm25s";
  EXPECT_LE(max_rel, 1e-5);
  EXPECT_GE(golden_with_results, 250u) << "most golden queries must have results (no vacuous pass)";
  EXPECT_EQ(with_results, golden_with_results);
  EXPECT_GT(scores, 20000u);
  std::printf("[ bm25s    ] %s (k1 %g, b %g, stemmer %s, stop words %s): %zu docs, %zu queries (%zu with results), "
              "%zu scores compared, %zu bit-identical, max relative difference %.3g; %zu runs of equal scores "
              "(%zu at the 100th place); indexing %.2f s, 300 queries %.1f ms\n",
              name.c_str(), params.k1, params.b, params.stemmer.c_str(), params.stopwords.c_str(), docs.size(),
              queries.size(), with_results, scores, exact, max_rel, tie_groups, boundary_ties,
              std::chrono::duration<double>(t1 - t0).count(), query_seconds * 1e3);
}

TEST(Bm25Golden, DefaultSettingMatchesBm25s) { check_setting("default"); }

TEST(Bm25Golden, PlainSettingMatchesBm25s) { check_setting("plain"); }

// ---- index behaviour --------------------------------------------------------------------------------

std::vector<std::vector<std::string>> analyzed(size_t n, size_t from = 0) {
  Analyzer an(Bm25Params{});
  std::vector<std::vector<std::string>> out;
  for (size_t i = from; i < from + n; ++i) out.push_back(an.terms(corpus().at(i).text));
  return out;
}

std::vector<std::vector<std::string>> query_terms() {
  Analyzer an(Bm25Params{});
  std::vector<std::vector<std::string>> out;
  for (const J& q : read_jsonl(kGolden + "queries.jsonl")) out.push_back(an.terms(q["text"].str));
  return out;
}

TEST(Bm25Index, AddAndRemoveGiveWhatARebuildGives) {
  auto terms = analyzed(3500);
  Bm25Index a;
  for (size_t i = 0; i < 3000; ++i) a.add(1000 + i, terms[i]);
  std::vector<uint64_t> rm = {999999, 1000};  // one absent, one listed twice
  for (size_t i = 0; i < 3000; i += 3) rm.push_back(1000 + i);
  EXPECT_EQ(a.remove(rm), 1000u);
  EXPECT_EQ(a.remove(rm), 0u);
  EXPECT_FALSE(a.contains(1000));
  EXPECT_TRUE(a.contains(1001));
  // an upsert (remove + add with other terms), and new documents that reuse the freed slots
  EXPECT_EQ(a.remove({1001}), 1u);
  a.add(1001, terms[3000]);
  for (size_t i = 3001; i < 3500; ++i) a.add(5000 + i, terms[i]);

  std::map<uint64_t, const std::vector<std::string>*> remaining;
  for (size_t i = 0; i < 3000; ++i)
    if (i % 3 != 0 && i != 1) remaining[1000 + i] = &terms[i];
  remaining[1001] = &terms[3000];
  for (size_t i = 3001; i < 3500; ++i) remaining[5000 + i] = &terms[i];
  Bm25Index b;
  for (auto it = remaining.rbegin(); it != remaining.rend(); ++it) b.add(it->first, *it->second);
  ASSERT_EQ(a.size(), b.size());
  ASSERT_EQ(a.size(), remaining.size());

  size_t nonempty = 0;
  for (const auto& q : query_terms()) {
    auto ha = a.search(q, 50), hb = b.search(q, 50);
    ASSERT_EQ(ha, hb) << join(q);
    nonempty += !ha.empty();
    for (const auto& h : ha) ASSERT_TRUE(remaining.count(h.first)) << "removed document " << h.first << " returned";
  }
  EXPECT_GT(nonempty, 200u);
  std::string pa = tmp_path("a.bin"), pb = tmp_path("b.bin");
  a.save(pa);
  b.save(pb);
  EXPECT_EQ(slurp(pa), slurp(pb)) << "the same documents must give the same file";
  std::remove(pa.c_str());
  std::remove(pb.c_str());

  // removing everything leaves an empty index that still takes documents
  std::vector<uint64_t> all;
  for (const auto& [label, t] : remaining) all.push_back(label);
  EXPECT_EQ(a.remove(all), remaining.size());
  EXPECT_EQ(a.size(), 0u);
  EXPECT_TRUE(a.search({"packag"}, 10).empty());
  a.add(7, terms[0]);
  Bm25Index c;
  c.add(7, terms[0]);
  EXPECT_EQ(a.search(terms[0], 5), c.search(terms[0], 5));
  ASSERT_EQ(a.search(terms[0], 5).size(), 1u);
}

TEST(Bm25Index, SaveLoadRoundTrip) {
  auto terms = analyzed(2000);
  Bm25Params params{1.2, 0.5, "porter", "none"};
  Bm25Index a(params);
  for (size_t i = 0; i < terms.size(); ++i) a.add(i * 7919 + 3, terms[i]);
  a.add(std::numeric_limits<uint64_t>::max(), {});  // an empty document counts in N and avgdl
  a.remove({3});
  std::string p = tmp_path("rt.bin"), p2 = tmp_path("rt2.bin");
  a.save(p);
  Bm25Index b = Bm25Index::load(p);
  EXPECT_EQ(b.size(), a.size());
  EXPECT_EQ(b.params().k1, params.k1);
  EXPECT_EQ(b.params().b, params.b);
  EXPECT_EQ(b.params().stemmer, params.stemmer);
  EXPECT_EQ(b.params().stopwords, params.stopwords);
  EXPECT_TRUE(b.contains(std::numeric_limits<uint64_t>::max()));
  EXPECT_FALSE(b.contains(3));
  size_t nonempty = 0;
  for (const auto& q : query_terms()) {
    auto ha = a.search(q, 100);
    ASSERT_EQ(ha, b.search(q, 100));
    nonempty += !ha.empty();
  }
  EXPECT_GT(nonempty, 200u);
  b.save(p2);
  EXPECT_EQ(slurp(p), slurp(p2));
  // a loaded index changes like any other (adds before its first remove, too)
  for (Bm25Index* x : {&a, &b}) {
    x->add(3, terms[0]);
    x->add(123456789, terms[1]);
    EXPECT_EQ(x->remove({10, 123456789, 3 + 7919 * 5, 3 + 7919 * 9}), 3u);  // 10 is no label
    x->add(3 + 7919 * 9, terms[2]);
  }
  for (const auto& q : query_terms()) ASSERT_EQ(a.search(q, 30), b.search(q, 30));
  a.save(p);
  b.save(p2);
  EXPECT_EQ(slurp(p), slurp(p2));
  std::remove(p.c_str());
  std::remove(p2.c_str());
}

// A small saved index: a few corpus documents, an empty one, an extreme label.
std::string small_index_bytes() {
  auto terms = analyzed(12);
  Bm25Index idx;
  for (size_t i = 0; i < terms.size(); ++i) idx.add(100 + i, terms[i]);
  idx.add(0, {});
  idx.add(std::numeric_limits<uint64_t>::max(), {"x", "x", "y"});
  std::string p = tmp_path("small.bin");
  idx.save(p);
  std::string bytes = slurp(p);
  std::remove(p.c_str());
  return bytes;
}

// Parses `bytes` as the file `name`: true when it loads, false for loom::Error(BadInput) naming
// the file; anything else (another exception, a crash) fails the test.
bool loads(const std::string& bytes, const std::string& name, std::string* what = nullptr) {
  try {
    Bm25Index::parse(bytes, name);
    return true;
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), Error::Kind::BadInput) << e.what();
    EXPECT_EQ(e.file(), name);
    if (what) *what = e.what();
    return false;
  }
}

TEST(Bm25Index, EveryTruncationIsAnError) {
  std::string bytes = small_index_bytes();
  ASSERT_GT(bytes.size(), 500u);
  std::string p = tmp_path("trunc.bin");
  EXPECT_TRUE(loads(bytes, p));
  size_t errors = 0;
  for (size_t n = 0; n < bytes.size(); ++n) errors += !loads(bytes.substr(0, n), p);
  EXPECT_EQ(errors, bytes.size());
  EXPECT_FALSE(loads(bytes + '\0', p));
  // the same through a file
  spit(p, bytes.substr(0, bytes.size() - 1));
  try {
    Bm25Index::load(p);
    ADD_FAILURE() << "a truncated file must not load";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), Error::Kind::BadInput);
    EXPECT_EQ(e.file(), p);
  }
  spit(p, bytes);
  EXPECT_EQ(Bm25Index::load(p).size(), 14u);
  std::remove(p.c_str());
  std::printf("[ file     ] all %zu truncations of a %zu-byte index rejected\n", errors, bytes.size());
}

TEST(Bm25Index, EveryCorruptedByteIsAnError) {
  std::string bytes = small_index_bytes();
  std::string p = tmp_path("flip.bin");
  std::mt19937 rng(42);
  size_t errors = 0, tries = 0;
  for (size_t i = 0; i < bytes.size(); ++i) {
    std::string bad = bytes;
    bad[i] = static_cast<char>(bad[i] ^ static_cast<char>(1 + rng() % 255));
    errors += !loads(bad, p);
    ++tries;
  }
  for (int k = 0; k < 300; ++k) {  // several bytes at once
    std::string bad = bytes;
    for (int j = 0; j < 4; ++j) {
      size_t i = rng() % bad.size();
      bad[i] = static_cast<char>(bad[i] ^ static_cast<char>(1 + rng() % 255));
    }
    errors += !loads(bad, p);
    ++tries;
  }
  EXPECT_EQ(errors, tries);
  std::printf("[ file     ] all %zu corrupted copies of a %zu-byte index rejected\n", errors, bytes.size());
}

TEST(Bm25Index, StructuralDamageIsNamed) {
  std::string bytes = small_index_bytes();
  std::string p = tmp_path("damage.bin");
  // header: magic 8, version 4, flags 4, k1 8, b 8, stemmer 4+7 ("english"), stop words 4+2 ("en")
  const size_t counts = 8 + 4 + 4 + 8 + 8 + 4 + 7 + 4 + 2;
  auto put64 = [](std::string& s, size_t at, uint64_t v) {
    for (int i = 0; i < 8; ++i) s[at + static_cast<size_t>(i)] = static_cast<char>(v >> (8 * i));
  };
  std::string what;
  std::string huge = bytes;
  put64(huge, counts, uint64_t(1) << 40);  // documents: far more than the file holds
  EXPECT_FALSE(loads(huge, p, &what));
  EXPECT_NE(what.find("exceeds"), std::string::npos) << what;
  huge = bytes;
  put64(huge, counts + 8, ~uint64_t(0));  // terms
  EXPECT_FALSE(loads(huge, p, &what));
  EXPECT_NE(what.find("exceeds"), std::string::npos) << what;
  std::string v2 = bytes;
  v2[8] = 2;
  EXPECT_FALSE(loads(v2, p, &what));
  EXPECT_NE(what.find("version 2"), std::string::npos) << what;
  std::string labels = bytes;  // the first two labels (0, then 100) made equal
  put64(labels, counts + 24 + 12, 0);
  EXPECT_FALSE(loads(labels, p, &what));
  EXPECT_NE(what.find("labels"), std::string::npos) << what;
  std::string length = bytes;  // the second document's length
  length[counts + 24 + 12 + 8] ^= 1;
  EXPECT_FALSE(loads(length, p, &what));
  EXPECT_NE(what.find("length"), std::string::npos) << what;
  EXPECT_FALSE(loads("", p, &what));
  EXPECT_FALSE(loads("LOOMBM25", p, &what));
  EXPECT_NE(what.find("truncated"), std::string::npos) << what;
  EXPECT_FALSE(loads(std::string(100, 'x'), p, &what));
  EXPECT_NE(what.find("magic"), std::string::npos) << what;
  try {
    Bm25Index::load(tmp_path("does-not-exist.bin"));
    ADD_FAILURE() << "loading a missing file must throw";
  } catch (const Error&) {
  }
}

TEST(Bm25Index, ScoresTiesRepeatsFiltersAndLimits) {
  Bm25Params params{1.5, 0.75, "none", "none"};
  Bm25Index idx(params);
  idx.add(9, {"apple", "pie"});
  idx.add(2, {"apple", "pie"});
  idx.add(5, {"cherry"});
  idx.add(7, {"apple", "apple", "cherry", "tart"});
  EXPECT_THROW(idx.add(7, {"x"}), Error);
  EXPECT_TRUE(idx.contains(7));
  // Lucene's formula, by hand: N 4, avgdl 9/4
  auto want = [&](double df, double tf, double len) {
    double idf = std::log(1 + (4 - df + 0.5) / (df + 0.5));
    return idf * tf / (tf + 1.5 * (1 - 0.75 + 0.75 * len / 2.25));
  };
  auto h = idx.search({"apple"}, 10);
  ASSERT_EQ(h.size(), 3u);
  EXPECT_EQ(h[0].first, 7u);
  EXPECT_NEAR(h[0].second, want(3, 2, 4), 1e-6);
  EXPECT_EQ(h[1].first, 2u);  // equal scores: the smaller label first
  EXPECT_EQ(h[2].first, 9u);
  EXPECT_EQ(h[1].second, h[2].second);
  EXPECT_NEAR(h[1].second, want(3, 1, 2), 1e-6);
  // a repeated query term counts again; unknown terms count nothing
  float once = idx.search({"cherry"}, 1)[0].second;
  auto twice = idx.search({"cherry", "nothing", "cherry"}, 10);
  ASSERT_EQ(twice.size(), 2u);
  EXPECT_EQ(twice[0].first, 5u);
  EXPECT_EQ(twice[0].second, once + once);
  EXPECT_TRUE(idx.search({"nothing"}, 10).empty());
  EXPECT_TRUE(idx.search({}, 10).empty());
  EXPECT_TRUE(idx.search({"apple"}, 0).empty());
  auto top1 = idx.search({"apple", "pie"}, 1);
  ASSERT_EQ(top1.size(), 1u);
  EXPECT_EQ(top1[0].first, 2u);
  auto kept = idx.search({"apple", "pie"}, 10, [](uint64_t l) { return l != 2; });
  ASSERT_EQ(kept.size(), 2u);
  EXPECT_EQ(kept[0].first, 9u);
  EXPECT_EQ(kept[1].first, 7u);
  // a search inside the filter (same thread) works and leaves the outer one intact
  auto nested = idx.search({"apple"}, 10, [&](uint64_t l) { return !idx.search({"tart"}, 10).empty() && l != 9; });
  ASSERT_EQ(nested.size(), 2u);
  EXPECT_EQ(nested[0].first, 7u);
  // contributions below float's range (an absurd k1) score 0: not returned, never twice
  Bm25Index huge(Bm25Params{1e300, 0.75, "none", "none"});
  huge.add(1, {"apple", "cherry"});
  huge.add(2, {"apple"});
  EXPECT_TRUE(huge.search({"apple", "cherry", "apple"}, 10).empty());
  Bm25Index zero_k1(Bm25Params{0, 0.75, "none", "none"});  // k1 0: tf and length do not matter
  zero_k1.add(1, {"apple", "apple", "pie"});
  zero_k1.add(2, {"apple"});
  zero_k1.add(3, {"pie"});
  auto z = zero_k1.search({"apple"}, 10);
  ASSERT_EQ(z.size(), 2u);
  EXPECT_EQ(z[0].second, z[1].second);
  EXPECT_EQ(z[0].first, 1u);
  // copies are independent
  Bm25Index copy = idx;
  copy.remove({7});
  copy.add(11, {"pie"});
  EXPECT_TRUE(idx.contains(7));
  EXPECT_FALSE(idx.contains(11));
  EXPECT_EQ(idx.search({"apple"}, 10), h);
  EXPECT_EQ(copy.size(), 4u);
}

TEST(Bm25Analyzer, SettingsAndBadInput) {
  EXPECT_THROW(Analyzer(Bm25Params{1.5, 0.75, "klingon", "en"}), Error);
  EXPECT_THROW(Bm25Index(Bm25Params{-1, 0.75, "english", "en"}), Error);
  EXPECT_THROW(Bm25Index(Bm25Params{1.5, 1.5, "english", "en"}), Error);
  EXPECT_THROW(Bm25Index(Bm25Params{1.5, 0.75, "klingon", "en"}), Error);
  try {
    Analyzer a(Bm25Params{1.5, 0.75, "none", tmp_path("no-such-stopwords.txt")});
    ADD_FAILURE() << "a missing stop-word file must throw";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), Error::Kind::Usage);
  }
  std::string sw = tmp_path("stopwords.txt");
  spit(sw, "foo\n  bar \r\n\n");
  Analyzer custom(Bm25Params{1.5, 0.75, "none", sw});
  EXPECT_EQ(custom.terms("Foo BAR baz the"), (std::vector<std::string>{"baz", "the"}));
  std::remove(sw.c_str());
  Analyzer english(Bm25Params{});
  EXPECT_EQ(english.terms("The running connections"), (std::vector<std::string>{"run", "connect"}));
  // invalid UTF-8 is read as U+FFFD (not a word character), never out of bounds
  Analyzer plain(setting("plain"));
  EXPECT_EQ(plain.terms("ab\xff\xfe" "cd \xc3"), (std::vector<std::string>{"ab", "cd"}));
  EXPECT_EQ(plain.terms("\xce\xa3\xce"), std::vector<std::string>{});
  EXPECT_EQ(plain.terms("\xce\x91\xce\xa3\x80\x80"), (std::vector<std::string>{"\xce\xb1\xcf\x82"}));
  // the analyzer is usable from several threads at once (one stemmer per call)
  std::vector<std::thread> threads;
  std::atomic<int> wrong{0};
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 2000; ++i)
        if (english.terms("The running connections") != std::vector<std::string>{"run", "connect"}) ++wrong;
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(wrong.load(), 0);
}

}  // namespace
