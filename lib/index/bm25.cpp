// loom::index BM25: the analyzer (bm25s.tokenize's) and the inverted index (see bm25.h).
//
// Scores are bit-for-bit those of bm25s 0.3.x with method="lucene" and its default float32 dtype.
// bm25s computes each posting's contribution once, at indexing time, as
//   float32( double(float32(idf)) * (tf / (k1 * ((1 - b) + b * |d| / avgdl) + tf)) )
// with idf and the length norm in double (math.log, numpy float64 scalars), stores it as float32,
// and at query time adds the contributions of the query's terms in query order into a float32
// array (np.add.at). search() computes the same expressions in the same order, so with the same
// statistics the float32 scores are identical, ties included. That requires that the compiler
// does not contract a*b+c into a fused multiply-add here (it would round once instead of twice):
// the pragmas below turn contraction off for this file whatever the build's flags.
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include "loom/index/bm25.h"

#include <libstemmer.h>
#include <utf8proc.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_set>

#include <unistd.h>

#include <fmt/format.h>

#include "loom/core/error.h"
#include "loom/core/mapped_file.h"
#include "loom/text/python_chars.h"
#include "loom/text/utf8.h"

namespace loom::index {

namespace {

// ---- Unicode: Python's str.lower() and re's \w ----------------------------------------------------
//
// The character classes are text::py's (lib/text/python_chars.h). str.lower() is the simple
// lowercase mapping (utf8proc) except for U+0130 (-> "i\u0307", the one unconditional
// multi-character lowercase of SpecialCasing.txt) and U+03A3, final sigma U+03C2 in the
// Final_Sigma context. tests/unit/test_bm25.cpp checks them against Python on every code point
// (tests/reference/golden/bm25/unicode.json).

using text::py::is_case_ignorable;
using text::py::is_cased;
using text::py::is_word;

constexpr char32_t kReplacement = 0xFFFD;

// Decodes the UTF-8 sequence at s[i] and moves i past it. An invalid byte (a stray continuation,
// an overlong or truncated sequence, a surrogate, past U+10FFFF) decodes as U+FFFD, one byte.
char32_t decode(std::string_view s, size_t& i) {
  auto u = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  uint32_t b0 = u(i);
  if (b0 < 0x80) {
    ++i;
    return b0;
  }
  size_t n = s.size();
  auto cont = [&](size_t k) { return k < n && (u(k) & 0xC0) == 0x80; };
  if (b0 >= 0xC2 && b0 <= 0xDF && cont(i + 1)) {
    char32_t c = ((b0 & 0x1F) << 6) | (u(i + 1) & 0x3F);
    i += 2;
    return c;
  }
  if (b0 >= 0xE0 && b0 <= 0xEF && cont(i + 1) && cont(i + 2)) {
    char32_t c = ((b0 & 0x0F) << 12) | ((u(i + 1) & 0x3F) << 6) | (u(i + 2) & 0x3F);
    if (c >= 0x800 && (c < 0xD800 || c > 0xDFFF)) {
      i += 3;
      return c;
    }
  }
  if (b0 >= 0xF0 && b0 <= 0xF4 && cont(i + 1) && cont(i + 2) && cont(i + 3)) {
    char32_t c = ((b0 & 0x07) << 18) | ((u(i + 1) & 0x3F) << 12) | ((u(i + 2) & 0x3F) << 6) | (u(i + 3) & 0x3F);
    if (c >= 0x10000 && c <= 0x10FFFF) {
      i += 4;
      return c;
    }
  }
  ++i;
  return kReplacement;
}

// The code point that ends at byte i (as decode() reads it); moves i to its start. Requires i > 0.
char32_t decode_before(std::string_view s, size_t& i) {
  size_t start = i - 1;
  while (start > 0 && i - start < 4 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
  size_t k = start;
  char32_t c = decode(s, k);
  if (k == i) {
    i = start;
    return c;
  }
  i = i - 1;
  return kReplacement;
}

// Python's Final_Sigma test for the U+03A3 at bytes [begin, end) of s.
bool final_sigma(std::string_view s, size_t begin, size_t end) {
  size_t j = begin;
  for (;;) {
    if (j == 0) return false;
    char32_t c = decode_before(s, j);
    if (is_case_ignorable(c)) continue;
    if (!is_cased(c)) return false;
    break;
  }
  size_t k = end;
  while (k < s.size()) {
    char32_t c = decode(s, k);
    if (!is_case_ignorable(c)) return !is_cased(c);
  }
  return true;
}

// re.findall(r"(?u)\b\w\w+\b", text.lower()): the maximal runs of two or more word characters
// of the lowercased text, in order. `emit` gets each as UTF-8.
template <typename Emit>
void split_lower(std::string_view s, Emit&& emit) {
  std::string tok;
  size_t tok_chars = 0;
  auto flush = [&] {
    if (tok_chars >= 2) emit(std::string_view(tok));
    tok.clear();
    tok_chars = 0;
  };
  auto put = [&](char32_t c) {
    if (is_word(c)) {
      text::utf8::append(tok, c);
      ++tok_chars;
    } else if (tok_chars) {
      flush();
    }
  };
  size_t i = 0, n = s.size();
  while (i < n) {
    unsigned char b = static_cast<unsigned char>(s[i]);
    if (b < 0x80) {
      if ((b >= 'a' && b <= 'z') || (b >= '0' && b <= '9') || b == '_') {
        tok += static_cast<char>(b);
        ++tok_chars;
      } else if (b >= 'A' && b <= 'Z') {
        tok += static_cast<char>(b + ('a' - 'A'));
        ++tok_chars;
      } else if (tok_chars) {
        flush();
      }
      ++i;
      continue;
    }
    size_t begin = i;
    char32_t c = decode(s, i);
    if (c == 0x130) {
      put(U'i');
      put(0x307);
    } else if (c == 0x3A3) {
      put(final_sigma(s, begin, i) ? 0x3C2 : 0x3C3);
    } else {
      put(static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(c))));
    }
  }
  flush();
}

// ---- stop words -------------------------------------------------------------------------------

constexpr const char* kStopwordsEn[] = {
#include "stopwords_en.inc"
};

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};
using StringSet = std::unordered_set<std::string, StringHash, std::equal_to<>>;

// "none", or a name libstemmer knows (its algorithms and their aliases: "english", "en", ...).
bool known_stemmer(const std::string& name) {
  if (name == "none") return true;
  if (name.find('\0') != std::string::npos) return false;
  sb_stemmer* s = sb_stemmer_new(name.c_str(), "UTF_8");
  if (s) sb_stemmer_delete(s);
  return s != nullptr;
}

std::string stemmer_names() {
  std::string out;
  for (const char** p = sb_stemmer_list(); *p; ++p) {
    if (!out.empty()) out += ", ";
    out += *p;
  }
  return out;
}

void check_params(const Bm25Params& p) {
  if (!std::isfinite(p.k1) || p.k1 < 0) throw usage_error(fmt::format("BM25 k1 must be a finite number >= 0, not {}", p.k1));
  if (!std::isfinite(p.b) || p.b < 0 || p.b > 1) throw usage_error(fmt::format("BM25 b must be between 0 and 1, not {}", p.b));
  if (!known_stemmer(p.stemmer))
    throw usage_error(fmt::format("unknown stemmer '{}' (none, {})", p.stemmer, stemmer_names()));
  if (p.stopwords.empty() || p.stopwords.size() > 4096 || p.stopwords.find('\0') != std::string::npos)
    throw usage_error("BM25 stop words must be \"en\", \"none\" or the path of a file");
}

}  // namespace

// ---- Analyzer ---------------------------------------------------------------------------------

struct Analyzer::Impl {
  std::string stemmer;  // empty: no stemming
  StringSet stop;
  std::mutex mu;
  std::vector<sb_stemmer*> idle;  // stemmers not in use (one sb_stemmer serves one call at a time)

  ~Impl() {
    for (sb_stemmer* s : idle) sb_stemmer_delete(s);
  }
  sb_stemmer* acquire() {
    {
      std::lock_guard<std::mutex> lock(mu);
      if (!idle.empty()) {
        sb_stemmer* s = idle.back();
        idle.pop_back();
        return s;
      }
    }
    sb_stemmer* s = sb_stemmer_new(stemmer.c_str(), "UTF_8");
    if (!s) throw runtime_error(fmt::format("cannot create the '{}' stemmer (out of memory)", stemmer));
    return s;
  }
  void release(sb_stemmer* s) {
    std::lock_guard<std::mutex> lock(mu);
    try {
      idle.push_back(s);
    } catch (...) {
      sb_stemmer_delete(s);
    }
  }
};

Analyzer::Analyzer(const Bm25Params& params) : impl_(std::make_unique<Impl>()) {
  if (params.stemmer != "none") {
    sb_stemmer* s = sb_stemmer_new(params.stemmer.c_str(), "UTF_8");
    if (!s) throw usage_error(fmt::format("unknown stemmer '{}' (none, {})", params.stemmer, stemmer_names()));
    impl_->stemmer = params.stemmer;
    impl_->idle.push_back(s);
  }
  if (params.stopwords == "en") {
    for (const char* w : kStopwordsEn) impl_->stop.emplace(w);
  } else if (params.stopwords != "none") {
    std::ifstream in(params.stopwords, std::ios::binary);
    if (!in) throw usage_error(fmt::format("{}: cannot read the stop-word file", params.stopwords));
    std::string line;
    while (std::getline(in, line)) {
      size_t a = line.find_first_not_of(" \t\r\f\v"), z = line.find_last_not_of(" \t\r\f\v");
      if (a != std::string::npos) impl_->stop.emplace(line.substr(a, z - a + 1));
    }
    if (in.bad()) throw usage_error(fmt::format("{}: cannot read the stop-word file", params.stopwords));
  }
}

Analyzer::~Analyzer() = default;
Analyzer::Analyzer(Analyzer&&) noexcept = default;

std::vector<std::string> Analyzer::terms(std::string_view text) const {
  std::vector<std::string> out;
  Impl& im = *impl_;
  sb_stemmer* st = nullptr;
  struct Release {
    Impl& im;
    sb_stemmer*& st;
    ~Release() {
      if (st) im.release(st);
    }
  } release{im, st};
  split_lower(text, [&](std::string_view tok) {
    if (!im.stop.empty() && im.stop.find(tok) != im.stop.end()) return;
    if (im.stemmer.empty()) {
      out.emplace_back(tok);
      return;
    }
    if (!st) st = im.acquire();
    const sb_symbol* r = sb_stemmer_stem(st, reinterpret_cast<const sb_symbol*>(tok.data()), static_cast<int>(tok.size()));
    if (!r) throw runtime_error("stemmer: out of memory");
    out.emplace_back(reinterpret_cast<const char*>(r), static_cast<size_t>(sb_stemmer_length(st)));
  });
  return out;
}

// ---- index data -------------------------------------------------------------------------------

namespace {

struct Posting {
  uint32_t doc;  // slot
  uint32_t tf;
};

using TermMap = std::unordered_map<std::string, uint32_t, StringHash, std::equal_to<>>;

}  // namespace

// Documents live in slots (dense indexes into the per-document arrays); a removed document's slot
// is reused. Postings hold live documents only, so df(t) is the length of t's posting list. Each
// document keeps the ids of its terms (the forward index) so that removing it touches only those
// terms' lists; a loaded index builds that at its first remove(), so that loading for search
// alone stays fast.
struct Bm25Index::Data {
  std::vector<uint64_t> label;                  // per slot
  std::vector<uint32_t> length;                 // per slot: terms after analysis
  std::vector<std::vector<uint32_t>> doc_terms;  // per slot: its distinct term ids (when forward)
  bool forward = true;                          // doc_terms is there
  std::vector<uint32_t> free_slots;
  std::unordered_map<uint64_t, uint32_t> slot_of;  // live documents
  uint64_t total_length = 0;

  TermMap term_id;
  std::vector<std::string> term;                // per term id ("" and no postings when free)
  std::vector<std::vector<Posting>> postings;   // per term id
  std::vector<uint32_t> free_terms;

  uint32_t intern(std::string_view t) {
    auto it = term_id.find(t);
    if (it != term_id.end()) return it->second;
    if (t.size() > std::numeric_limits<uint32_t>::max()) throw input_error("BM25 index: a term longer than 4 GiB");
    uint32_t id;
    if (!free_terms.empty()) {
      id = free_terms.back();
      free_terms.pop_back();
      term[id] = std::string(t);
    } else {
      if (term.size() >= std::numeric_limits<uint32_t>::max()) throw runtime_error("BM25 index: too many distinct terms");
      id = static_cast<uint32_t>(term.size());
      term.emplace_back(t);
      postings.emplace_back();
    }
    term_id.emplace(term[id], id);
    return id;
  }

  void build_forward() {
    if (forward) return;
    std::vector<uint32_t> count(label.size(), 0);
    for (const auto& pl : postings)
      for (const Posting& p : pl) ++count[p.doc];
    doc_terms.assign(label.size(), {});
    for (size_t i = 0; i < label.size(); ++i) doc_terms[i].reserve(count[i]);
    for (uint32_t t = 0; t < postings.size(); ++t)
      for (const Posting& p : postings[t]) doc_terms[p.doc].push_back(t);
    forward = true;
  }
};

Bm25Index::Bm25Index(Bm25Params params) : params_(std::move(params)), data_(std::make_shared<Data>()) {
  check_params(params_);
}

size_t Bm25Index::size() const { return data_ ? data_->slot_of.size() : 0; }

bool Bm25Index::contains(uint64_t label) const { return data_ && data_->slot_of.count(label) != 0; }

namespace {
// Copies of a Bm25Index share their data until one of them changes (copy on write).
template <typename D>
D& writable(std::shared_ptr<D>& p) {
  if (!p) p = std::make_shared<D>();
  else if (p.use_count() > 1) p = std::make_shared<D>(*p);
  return *p;
}
}  // namespace

void Bm25Index::add(uint64_t label, const std::vector<std::string>& terms) {
  Data& d = writable(data_);
  if (d.slot_of.count(label)) throw input_error(fmt::format("BM25 index: label {} is in the index already", label));
  if (terms.size() > std::numeric_limits<uint32_t>::max())
    throw input_error(fmt::format("BM25 index: document {} has too many terms ({})", label, terms.size()));
  if (d.free_slots.empty() && d.label.size() >= std::numeric_limits<uint32_t>::max())
    throw runtime_error("BM25 index: too many documents");
  std::vector<uint32_t> ids;
  ids.reserve(terms.size());
  for (const auto& t : terms) ids.push_back(d.intern(t));
  std::sort(ids.begin(), ids.end());

  uint32_t slot;
  const bool reuse = !d.free_slots.empty();
  if (reuse) {
    slot = d.free_slots.back();
  } else {
    slot = static_cast<uint32_t>(d.label.size());
    d.label.push_back(0);
    d.length.push_back(0);
    if (d.forward) d.doc_terms.emplace_back();
  }
  std::vector<uint32_t> distinct;
  for (size_t i = 0; i < ids.size();) {
    size_t j = i;
    while (j < ids.size() && ids[j] == ids[i]) ++j;
    if (d.forward) distinct.push_back(ids[i]);
    d.postings[ids[i]].push_back({slot, static_cast<uint32_t>(j - i)});
    i = j;
  }
  d.slot_of.emplace(label, slot);
  if (reuse) d.free_slots.pop_back();
  d.label[slot] = label;
  d.length[slot] = static_cast<uint32_t>(terms.size());
  if (d.forward) d.doc_terms[slot] = std::move(distinct);
  d.total_length += terms.size();
}

size_t Bm25Index::remove(const std::vector<uint64_t>& labels) {
  if (!data_ || data_->slot_of.empty() || labels.empty()) return 0;
  bool any = false;
  for (uint64_t l : labels)
    if (data_->slot_of.count(l)) {
      any = true;
      break;
    }
  if (!any) return 0;
  Data& d = writable(data_);
  d.build_forward();
  std::vector<uint32_t> slots;
  for (uint64_t l : labels) {
    auto it = d.slot_of.find(l);
    if (it == d.slot_of.end()) continue;  // absent, or listed twice
    slots.push_back(it->second);
    d.slot_of.erase(it);
  }
  std::vector<uint8_t> dying(d.label.size(), 0);
  std::vector<uint32_t> affected;
  for (uint32_t s : slots) {
    dying[s] = 1;
    affected.insert(affected.end(), d.doc_terms[s].begin(), d.doc_terms[s].end());
  }
  std::sort(affected.begin(), affected.end());
  affected.erase(std::unique(affected.begin(), affected.end()), affected.end());
  for (uint32_t t : affected) {
    auto& pl = d.postings[t];
    std::erase_if(pl, [&](const Posting& p) { return dying[p.doc] != 0; });
    if (pl.empty()) {
      std::vector<Posting>().swap(pl);
      d.term_id.erase(d.term[t]);
      std::string().swap(d.term[t]);
      d.free_terms.push_back(t);
    }
  }
  for (uint32_t s : slots) {
    d.total_length -= d.length[s];
    d.length[s] = 0;
    d.label[s] = 0;
    std::vector<uint32_t>().swap(d.doc_terms[s]);
    d.free_slots.push_back(s);
  }
  return slots.size();
}

// ---- search -----------------------------------------------------------------------------------

namespace {

// Per-thread scratch for search(): a dense score array over the slots, each touched slot's length
// norm (-1 until touched: a norm is >= 0), and the list of touched slots; all reset after each
// query. A nested search on the same thread (from a `keep` callback) gets its own.
struct Scratch {
  std::vector<float> score;
  std::vector<double> norm;
  std::vector<uint32_t> touched;
  bool busy = false;
};
thread_local Scratch tls_scratch;

}  // namespace

std::vector<std::pair<uint64_t, float>> Bm25Index::search(const std::vector<std::string>& query_terms, size_t k,
                                                         const std::function<bool(uint64_t)>& keep) const {
  std::vector<std::pair<uint64_t, float>> out;
  if (!data_ || k == 0 || query_terms.empty()) return out;
  const Data& d = *data_;
  const size_t n_docs = d.slot_of.size();
  if (n_docs == 0) return out;
  const double N = static_cast<double>(n_docs);
  const double avgdl = static_cast<double>(d.total_length) / N;
  const double k1 = params_.k1, b = params_.b;

  Scratch local;
  Scratch& sc = tls_scratch.busy ? local : tls_scratch;
  sc.busy = true;
  struct Reset {
    Scratch& sc;
    ~Reset() {
      for (uint32_t s : sc.touched) {
        sc.score[s] = 0.0f;
        sc.norm[s] = -1.0;
      }
      sc.touched.clear();
      sc.busy = false;
    }
  } reset{sc};
  if (sc.score.size() < d.label.size()) {
    sc.score.resize(d.label.size(), 0.0f);
    sc.norm.resize(d.label.size(), -1.0);
  }
  float* score = sc.score.data();
  double* norm = sc.norm.data();

  for (const auto& t : query_terms) {
    auto it = d.term_id.find(std::string_view(t));
    if (it == d.term_id.end()) continue;
    const auto& pl = d.postings[it->second];
    if (pl.empty()) continue;
    const double df = static_cast<double>(pl.size());
    // bm25s: idf = math.log(1 + (N - df + 0.5) / (df + 0.5)), stored as float32
    const double idf = static_cast<double>(static_cast<float>(std::log(1.0 + (N - df + 0.5) / (df + 0.5))));
    for (const Posting& p : pl) {
      float& s = score[p.doc];
      if (norm[p.doc] < 0) {
        sc.touched.push_back(p.doc);
        // bm25s: k1 * ((1 - b) + b * l_d / l_avg), a float64 scalar
        norm[p.doc] = k1 * ((1.0 - b) + b * static_cast<double>(d.length[p.doc]) / avgdl);
      }
      const double tf = static_cast<double>(p.tf);
      s += static_cast<float>(idf * (tf / (norm[p.doc] + tf)));
    }
  }

  // top k: ties by the smaller label. `better` orders the heap so that its front is the worst kept.
  using Hit = std::pair<float, uint64_t>;
  auto better = [](const Hit& a, const Hit& c) { return a.first > c.first || (a.first == c.first && a.second < c.second); };
  std::vector<Hit> heap;
  heap.reserve(std::min(k, sc.touched.size()));
  for (uint32_t slot : sc.touched) {
    Hit h{score[slot], d.label[slot]};
    if (h.first <= 0.0f) continue;  // a contribution below float's range (huge k1): scores 0 as in bm25s
    if (heap.size() == k && !better(h, heap.front())) continue;
    if (keep && !keep(h.second)) continue;
    if (heap.size() < k) {
      heap.push_back(h);
      std::push_heap(heap.begin(), heap.end(), better);
    } else {
      std::pop_heap(heap.begin(), heap.end(), better);
      heap.back() = h;
      std::push_heap(heap.begin(), heap.end(), better);
    }
  }
  std::sort_heap(heap.begin(), heap.end(), better);
  out.reserve(heap.size());
  for (const Hit& h : heap) out.emplace_back(h.second, h.first);
  return out;
}

// ---- file format ------------------------------------------------------------------------------
//
// All integers little-endian; doubles as IEEE-754 binary64 bits.
//
//   "LOOMBM25"                 magic, 8 bytes
//   u32 version (1)  u32 flags (0)
//   f64 k1  f64 b
//   u32 n + n bytes            stemmer name ("none" or a libstemmer algorithm)
//   u32 n + n bytes            stop words ("en", "none" or a path)
//   u64 n_docs  u64 n_terms  u64 n_postings
//   n_docs x { u64 label, u32 length }          labels strictly increasing
//   n_terms x { u32 n, n bytes term, u32 df, df x { u32 doc, u32 tf } }
//                              terms strictly increasing (bytewise), df >= 1, docs strictly
//                              increasing and < n_docs, tf >= 1; a document's tfs sum to its length
//   u64 checksum               of every byte before it (Checksum below)
//
// The file is canonical: the same documents give the same bytes, whatever the order of adds and
// removes that led to them.

namespace {

constexpr char kMagic[8] = {'L', 'O', 'O', 'M', 'B', 'M', '2', '5'};
constexpr uint32_t kVersion = 1;

// 64-bit checksum over 8-byte little-endian words: each step h = mix(h ^ word) with mix a
// bijection, so any change confined to one word (any single corrupted byte) changes the result.
class Checksum {
 public:
  void update(const unsigned char* p, size_t n) {
    total_ += n;
    while (n > 0 && fill_ > 0 && fill_ < 8) {
      pend_[fill_++] = *p++;
      --n;
    }
    if (fill_ == 8) {
      word(load(pend_));
      fill_ = 0;
    }
    for (; n >= 8; p += 8, n -= 8) word(load(p));
    while (n > 0) {
      pend_[fill_++] = *p++;
      --n;
    }
  }
  uint64_t value() const {
    uint64_t h = h_;
    if (fill_ > 0) {
      unsigned char last[8] = {};
      std::memcpy(last, pend_, fill_);
      h = step(h, load(last));
    }
    return step(h, total_);
  }

 private:
  static uint64_t load(const unsigned char* p) {
    uint64_t w = 0;
    for (int i = 7; i >= 0; --i) w = (w << 8) | p[i];
    return w;
  }
  static uint64_t step(uint64_t h, uint64_t w) {
    h ^= w;
    h *= 0x9E3779B97F4A7C15ull;
    h ^= h >> 31;
    h *= 0xBF58476D1CE4E5B9ull;
    h ^= h >> 29;
    return h;
  }
  void word(uint64_t w) { h_ = step(h_, w); }
  uint64_t h_ = 0x243F6A8885A308D3ull;
  uint64_t total_ = 0;
  unsigned char pend_[8] = {};
  size_t fill_ = 0;
};

class FileWriter {
 public:
  explicit FileWriter(const std::string& path) : path_(path) {
    f_ = std::fopen(path.c_str(), "wb");
    if (!f_) throw runtime_error(fmt::format("cannot create: {}", std::strerror(errno)), path);
    buf_.reserve(1 << 20);
  }
  ~FileWriter() {
    if (f_) std::fclose(f_);
  }
  void bytes(const void* p, size_t n) {
    const auto* c = static_cast<const unsigned char*>(p);
    sum_.update(c, n);
    buf_.append(reinterpret_cast<const char*>(c), n);
    if (buf_.size() >= (1 << 20)) flush();
  }
  void u32(uint32_t v) {
    unsigned char b[4];
    for (int i = 0; i < 4; ++i) b[i] = static_cast<unsigned char>(v >> (8 * i));
    bytes(b, 4);
  }
  void u64(uint64_t v) {
    unsigned char b[8];
    for (int i = 0; i < 8; ++i) b[i] = static_cast<unsigned char>(v >> (8 * i));
    bytes(b, 8);
  }
  void f64(double v) { u64(std::bit_cast<uint64_t>(v)); }
  void str(std::string_view s) {
    u32(static_cast<uint32_t>(s.size()));
    bytes(s.data(), s.size());
  }
  // Writes the checksum and makes the file durable (flushed and fsync'ed) before closing it.
  void finish() {
    u64(sum_.value());
    flush();
    std::FILE* f = f_;
    f_ = nullptr;
    bool ok = std::fflush(f) == 0 && ::fsync(::fileno(f)) == 0;
    int err = errno;
    if (std::fclose(f) != 0 && ok) {
      ok = false;
      err = errno;
    }
    if (!ok) throw runtime_error(fmt::format("cannot write: {}", std::strerror(err)), path_);
  }

 private:
  void flush() {
    if (!buf_.empty() && std::fwrite(buf_.data(), 1, buf_.size(), f_) != buf_.size())
      throw runtime_error(fmt::format("cannot write: {}", std::strerror(errno)), path_);
    buf_.clear();
  }
  std::string path_;
  std::FILE* f_ = nullptr;
  std::string buf_;
  Checksum sum_;
};

class Reader {
 public:
  Reader(std::string_view bytes, const std::string& name)
      : p_(reinterpret_cast<const unsigned char*>(bytes.data())), n_(bytes.size()), name_(name) {}
  size_t pos() const { return pos_; }
  size_t left() const { return n_ - pos_; }
  [[noreturn]] void fail(const std::string& what) const {
    throw input_error(fmt::format("not a valid BM25 index: {} (at byte {})", what, pos_), name_);
  }
  void need(size_t n, const char* what) const {
    if (left() < n) fail(fmt::format("truncated in {}", what));
  }
  // An unsigned little-endian integer of sizeof(T) bytes.
  template <typename T>
  T le(const char* what) {
    need(sizeof(T), what);
    T v = 0;
    for (size_t i = sizeof(T); i-- > 0;) v = T(v << 8) | p_[pos_ + i];
    pos_ += sizeof(T);
    return v;
  }
  uint32_t u32(const char* what) { return le<uint32_t>(what); }
  uint64_t u64(const char* what) { return le<uint64_t>(what); }
  double f64(const char* what) { return std::bit_cast<double>(u64(what)); }
  std::string_view bytes(size_t n, const char* what) {
    need(n, what);
    std::string_view s(reinterpret_cast<const char*>(p_ + pos_), n);
    pos_ += n;
    return s;
  }
  const unsigned char* data() const { return p_; }

 private:
  const unsigned char* p_;
  size_t n_;
  size_t pos_ = 0;
  const std::string& name_;
};

}  // namespace

void Bm25Index::save(const std::string& path) const {
  static const Data empty;
  const Data& d = data_ ? *data_ : empty;
  // documents in label order: file index of each slot
  std::vector<uint32_t> slots;
  slots.reserve(d.slot_of.size());
  for (const auto& [label, slot] : d.slot_of) slots.push_back(slot);
  std::sort(slots.begin(), slots.end(), [&](uint32_t a, uint32_t c) { return d.label[a] < d.label[c]; });
  std::vector<uint32_t> file_index(d.label.size(), 0);
  for (size_t i = 0; i < slots.size(); ++i) file_index[slots[i]] = static_cast<uint32_t>(i);
  // terms in byte order
  std::vector<uint32_t> terms;
  terms.reserve(d.term_id.size());
  uint64_t n_postings = 0;
  for (const auto& [t, id] : d.term_id)
    if (!d.postings[id].empty()) {
      terms.push_back(id);
      n_postings += d.postings[id].size();
    }
  std::sort(terms.begin(), terms.end(), [&](uint32_t a, uint32_t c) { return d.term[a] < d.term[c]; });

  FileWriter w(path);
  w.bytes(kMagic, 8);
  w.u32(kVersion);
  w.u32(0);
  w.f64(params_.k1);
  w.f64(params_.b);
  w.str(params_.stemmer);
  w.str(params_.stopwords);
  w.u64(slots.size());
  w.u64(terms.size());
  w.u64(n_postings);
  for (uint32_t s : slots) {
    w.u64(d.label[s]);
    w.u32(d.length[s]);
  }
  std::vector<Posting> pl;
  for (uint32_t id : terms) {
    w.str(d.term[id]);
    pl.assign(d.postings[id].begin(), d.postings[id].end());
    for (auto& p : pl) p.doc = file_index[p.doc];
    std::sort(pl.begin(), pl.end(), [](const Posting& a, const Posting& c) { return a.doc < c.doc; });
    w.u32(static_cast<uint32_t>(pl.size()));
    for (const auto& p : pl) {
      w.u32(p.doc);
      w.u32(p.tf);
    }
  }
  w.finish();
}

Bm25Index Bm25Index::load(const std::string& path) {
  MappedFile file = MappedFile::open(path);
  return parse(file.bytes(), path);
}

Bm25Index Bm25Index::parse(std::string_view bytes, const std::string& path) {
  Reader r(bytes, path);
  if (r.left() < 8 || std::memcmp(r.data(), kMagic, 8) != 0)
    throw input_error("not a loom BM25 index (no LOOMBM25 magic)", path);
  r.bytes(8, "the magic");
  uint32_t version = r.u32("the header");
  if (version != kVersion) r.fail(fmt::format("format version {} (this loom reads {})", version, kVersion));
  if (r.u32("the header") != 0) r.fail("unknown flags");
  Bm25Params params;
  params.k1 = r.f64("the header");
  params.b = r.f64("the header");
  if (!std::isfinite(params.k1) || params.k1 < 0) r.fail("k1 is not a finite number >= 0");
  if (!std::isfinite(params.b) || params.b < 0 || params.b > 1) r.fail("b is not between 0 and 1");
  uint32_t len = r.u32("the header");
  if (len > 64) r.fail("stemmer name too long");
  params.stemmer = std::string(r.bytes(len, "the header"));
  if (!known_stemmer(params.stemmer)) r.fail(fmt::format("unknown stemmer '{}'", params.stemmer));
  len = r.u32("the header");
  if (len == 0 || len > 4096) r.fail("bad stop-word setting length");
  params.stopwords = std::string(r.bytes(len, "the header"));
  if (params.stopwords.find('\0') != std::string::npos) r.fail("bad stop-word setting");
  uint64_t n_docs = r.u64("the header"), n_terms = r.u64("the header"), n_postings = r.u64("the header");
  // every count is bounded by the bytes that must follow, before anything is allocated
  if (n_docs > r.left() / 12 || n_docs >= std::numeric_limits<uint32_t>::max()) r.fail("document count exceeds the file");
  if (n_terms > r.left() / 16) r.fail("term count exceeds the file");
  if (n_postings > r.left() / 8) r.fail("posting count exceeds the file");

  Bm25Index index(params);
  Data& d = *index.data_;
  d.label.resize(n_docs);
  d.length.resize(n_docs);
  d.slot_of.reserve(n_docs);
  for (uint64_t i = 0; i < n_docs; ++i) {
    uint64_t label = r.u64("the documents");
    uint32_t length = r.u32("the documents");
    if (i > 0 && label <= d.label[i - 1]) r.fail("document labels not strictly increasing");
    d.label[i] = label;
    d.length[i] = length;
    d.total_length += length;
    d.slot_of.emplace(label, static_cast<uint32_t>(i));
  }
  std::vector<uint64_t> tf_sum(n_docs, 0);
  d.term.reserve(n_terms);
  d.postings.reserve(n_terms);
  d.term_id.reserve(n_terms);
  uint64_t seen_postings = 0;
  for (uint64_t t = 0; t < n_terms; ++t) {
    uint32_t tlen = r.u32("the terms");
    std::string_view term = r.bytes(tlen, "the terms");
    if (t > 0 && !(std::string_view(d.term.back()) < term)) r.fail("terms not strictly increasing");
    uint32_t df = r.u32("the postings");
    if (df == 0) r.fail("a term without postings");
    if (df > n_docs || df > n_postings - seen_postings) r.fail("posting count exceeds the document or posting count");
    r.need(static_cast<size_t>(df) * 8, "the postings");
    seen_postings += df;
    std::vector<Posting> pl(df);
    for (uint32_t j = 0; j < df; ++j) {
      uint32_t doc = r.u32("the postings"), tf = r.u32("the postings");
      if (doc >= n_docs) r.fail("posting of a document that does not exist");
      if (j > 0 && doc <= pl[j - 1].doc) r.fail("postings not strictly increasing");
      if (tf == 0) r.fail("posting with term frequency 0");
      pl[j] = {doc, tf};
      tf_sum[doc] += tf;
    }
    d.term.emplace_back(term);
    d.postings.push_back(std::move(pl));
    d.term_id.emplace(d.term.back(), static_cast<uint32_t>(t));
  }
  if (seen_postings != n_postings) r.fail("posting count differs from the header");
  for (uint64_t i = 0; i < n_docs; ++i)
    if (tf_sum[i] != d.length[i])
      r.fail(fmt::format("document {} length {} differs from its postings' {}", d.label[i], d.length[i], tf_sum[i]));
  Checksum sum;
  sum.update(r.data(), r.pos());
  uint64_t want = r.u64("the checksum");
  if (r.left() != 0) r.fail("trailing bytes after the checksum");
  if (sum.value() != want) throw input_error("corrupt BM25 index (checksum mismatch)", path);
  d.forward = false;  // built by the first remove()
  return index;
}

}  // namespace loom::index
