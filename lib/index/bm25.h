// loom::index BM25 — the lexical half of a loom index: an analyzer and an inverted index.
//
// Scores are those of bm25s with method="lucene" (and of Lucene's BM25Similarity):
//
//   idf(t)      = ln(1 + (N - df(t) + 0.5) / (df(t) + 0.5))
//   score(d, q) = sum over the query's terms t (repeats count again) of
//                 idf(t) * tf(t,d) / (tf(t,d) + k1 * (1 - b + b * |d| / avgdl))
//
// N is the number of documents, df(t) how many contain t, |d| the number of terms of d after
// analysis and avgdl their mean over the index.
//
// The analyzer is bm25s.tokenize's: lower-case the text (Python's str.lower), split it into the
// matches of the regular expression (?u)\b\w\w+\b (runs of two or more word characters, Python's
// Unicode \w), drop stop words, then stem each term with a Snowball stemmer (libstemmer, the C
// library PyStemmer wraps).
//
// Documents are keyed by a 64-bit label (the store's row id). Statistics (N, df, avgdl) are those
// of the documents present when a query runs, so adding or removing documents changes the scores
// of the others, exactly as rebuilding the index from scratch would.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace loom::index {

struct Bm25Params {
  double k1 = 1.5;
  double b = 0.75;
  std::string stemmer = "english";  // a Snowball algorithm name (libstemmer's), or "none"
  std::string stopwords = "en";     // "en" (bm25s's English list), "none", or a file of one word per line
};

// Text -> terms. Thread-safe after construction (each call uses its own stemmer state).
class Analyzer {
 public:
  // Throws loom::Error (usage) for an unknown stemmer or an unreadable stop-word file.
  explicit Analyzer(const Bm25Params& params);
  ~Analyzer();
  Analyzer(Analyzer&&) noexcept;
  std::vector<std::string> terms(std::string_view text) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

class Bm25Index {
 public:
  explicit Bm25Index(Bm25Params params = {});

  const Bm25Params& params() const { return params_; }
  size_t size() const;  // documents

  // Adds a document's terms (as the Analyzer gives them). A label present already is an error
  // (remove it first: an upsert is remove + add).
  void add(uint64_t label, const std::vector<std::string>& terms);
  // Removes documents; labels not present are ignored. Returns how many were removed.
  size_t remove(const std::vector<uint64_t>& labels);
  bool contains(uint64_t label) const;

  // The k best documents for the query terms, best first: (label, score). Ties are broken by
  // the smaller label. Documents scoring 0 (no query term) are not returned. `keep`, when given,
  // admits a document (metadata filters).
  std::vector<std::pair<uint64_t, float>> search(const std::vector<std::string>& query_terms, size_t k,
                                                 const std::function<bool(uint64_t)>& keep = {}) const;

  // Binary file (magic "LOOMBM25", format version, parameters, documents, postings). save()
  // writes `path` directly (the caller renames it into place); load() validates everything and
  // throws loom::Error (bad input) naming the file for a truncated or corrupt one.
  void save(const std::string& path) const;
  static Bm25Index load(const std::string& path);
  // load() of a file's bytes already in memory (tests, fuzzing); `name` is the file errors name.
  static Bm25Index parse(std::string_view bytes, const std::string& name);

 private:
  Bm25Params params_;
  struct Data;
  std::shared_ptr<Data> data_;
};

}  // namespace loom::index
