// loom::eval text metrics: SQuAD, BLEU, chrF, ROUGE as their reference implementations compute
// them (see text.h for which and for the decisions).
//
// Exactness: every floating-point value is computed with the reference's operations in its order
// (Python floats are IEEE doubles; int / int is a correctly rounded division, as double / double
// is for integers below 2^53). The pragmas keep the compiler from fusing a*b+c into one rounding.
//
// Speed: tokens and characters are replaced by small integers, n-grams by integers packed into
// 64 or 128 bits, and n-gram bags by sorted arrays: a clipped match count is then the size of the
// intersection of two sorted multisets, found in one merge.
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include "loom/eval/text.h"

#include <utf8proc.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstdlib>
#include <string>
#include <unordered_map>

#include <fmt/format.h>

#include "loom/core/error.h"
#include "loom/text/python_chars.h"
#include "loom/text/utf8.h"

namespace loom::eval {

namespace utf8 = loom::text::utf8;

namespace {

constexpr const char* kSacrebleuVersion = "2.6.0";

// ---- Python string semantics --------------------------------------------------------------------

bool is_ascii_punct(unsigned char c) {  // string.punctuation
  return (c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x40) || (c >= 0x5B && c <= 0x60) || (c >= 0x7B && c <= 0x7E);
}

utf8proc_category_t category(char32_t c) {
  return static_cast<utf8proc_category_t>(utf8proc_category(static_cast<utf8proc_int32_t>(c)));
}

using text::py::is_case_ignorable;  // lib/text/python_chars.h
using text::py::is_cased;

std::u32string decode(std::string_view s) {
  std::u32string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) out.push_back(utf8::next(s, i));
  return out;
}

// Calls f(begin, end) for each run of non-whitespace (Python's str.split()).
template <typename F>
void for_each_word(std::string_view s, F&& f) {
  size_t i = 0, n = s.size();
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  auto space_at = [&](size_t k, size_t& next) {
    if (p[k] < 0x80) {
      next = k + 1;
      return utf8::is_space(p[k]);
    }
    next = k;
    return utf8::is_space(utf8::next(s, next));
  };
  while (i < n) {
    size_t nx;
    while (i < n && space_at(i, nx)) i = nx;
    if (i >= n) break;
    size_t b = i;
    while (i < n && !space_at(i, nx)) i = nx;
    f(b, i);
  }
}

std::vector<std::string_view> split_ws(std::string_view s) {
  std::vector<std::string_view> out;
  for_each_word(s, [&](size_t b, size_t e) { out.push_back(s.substr(b, e - b)); });
  return out;
}

// Python's str.rstrip().
std::string_view rstrip(std::string_view s) {
  size_t e = s.size();
  while (e > 0) {
    size_t k = e;
    if (!utf8::is_space(utf8::prev(s, k))) break;
    e = k;
  }
  return s.substr(0, e);
}

// Python's str.replace(from, to): non-overlapping, left to right.
std::string replace_all(std::string_view s, std::string_view from, std::string_view to) {
  std::string out;
  out.reserve(s.size());
  size_t b = 0;
  for (size_t k; (k = s.find(from, b)) != std::string_view::npos; b = k + from.size()) {
    out.append(s.substr(b, k - b));
    out.append(to);
  }
  out.append(s.substr(b));
  return out;
}

// A regular-expression substitution whose pattern is two single-character classes, (A)(B), with
// a replacement that puts spaces around the groups, as re.sub scans: left to right, and after a
// match the scan goes on behind it. Works on bytes: every class used here either lists ASCII
// characters only or matches every character that is not a listed ASCII one, so a multi-byte
// character behaves like any of its bytes.
template <typename A, typename B>
std::string sub_pairs(const std::string& s, A a, B b, const char* before1, const char* between, const char* after2) {
  std::string out;
  out.reserve(s.size() + s.size() / 4);
  size_t n = s.size();
  for (size_t i = 0; i < n;) {
    auto c = static_cast<unsigned char>(s[i]);
    if (i + 1 < n && a(c) && b(static_cast<unsigned char>(s[i + 1]))) {
      out += before1;
      out += s[i];
      out += between;
      out += s[i + 1];
      out += after2;
      i += 2;
    } else {
      out += s[i];
      ++i;
    }
  }
  return out;
}

// ---- token interning and sorted n-gram bags ------------------------------------------------------

using u128 = unsigned __int128;

struct Interner {
  std::unordered_map<std::string_view, uint32_t> ids;
  uint32_t id(std::string_view t) { return ids.try_emplace(t, static_cast<uint32_t>(ids.size() + 1)).first->second; }
};

// Dense ids for the characters of one item (n-gram keys then take few bits).
struct CharIds {
  std::array<uint32_t, 128> ascii{};
  std::unordered_map<char32_t, uint32_t> other;
  uint32_t n = 0;
  uint32_t id(char32_t c) {
    if (c < 128) return ascii[c] ? ascii[c] : (ascii[c] = ++n);
    auto [it, added] = other.try_emplace(c, n + 1);
    if (added) ++n;
    return it->second;
  }
};

int id_bits(size_t ids) { return std::max(1, static_cast<int>(std::bit_width(ids))); }

// Calls f(K{}) with the key type that holds `bits` bits: uint64_t when it can, else u128.
template <typename F>
void with_key(int bits, F&& f) {
  if (bits <= 64) f(uint64_t{});
  else f(u128{});
}

// The sorted n-grams of `seq` for n = 1..max_n (ids >= 1 packed `bits` bits apiece into a K), from
// a single sort: position i's key packs the ids i .. i+max_n-1, 0 past the end, so sorting the
// keys sorts every prefix of them too; the n-gram at i is its key's first n ids, present when the
// n-th of them is not 0.
template <typename K>
std::vector<std::vector<K>> ngrams(const std::vector<uint32_t>& seq, size_t max_n, int bits) {
  size_t len = seq.size();
  std::vector<K> keys(len);
  for (size_t i = 0; i < len; ++i) {
    K k = 0;
    for (size_t j = 0; j < max_n; ++j) k = (k << bits) | (i + j < len ? seq[i + j] : 0u);
    keys[i] = k;
  }
  std::sort(keys.begin(), keys.end());
  const K mask = (K(1) << bits) - 1;
  std::vector<std::vector<K>> out(max_n);
  for (size_t n = 1; n <= max_n && n <= len; ++n) {
    out[n - 1].reserve(len - n + 1);
    int shift = bits * static_cast<int>(max_n - n);
    for (K k : keys)
      if (K p = k >> shift; (p & mask) != 0) out[n - 1].push_back(p);
  }
  return out;
}

// Size of the multiset intersection of two sorted arrays: the sum over keys of min(count_a, count_b).
template <typename T>
int64_t overlap(const std::vector<T>& a, const std::vector<T>& b) {
  int64_t m = 0;
  size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    if (a[i] < b[j]) ++i;
    else if (b[j] < a[i]) ++j;
    else ++m, ++i, ++j;
  }
  return m;
}

void require_references(std::span<const std::string> references, const char* metric) {
  if (references.empty()) throw input_error(fmt::format("{}: an item needs at least one reference", metric));
}

}  // namespace

// ---- Python string semantics (public) -----------------------------------------------------------

bool python_is_word(char32_t c) { return text::py::is_word(c); }

std::string python_lower(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  bool sigma = text.find("\xCE\xA3") != std::string_view::npos;
  std::u32string cps = sigma ? decode(text) : std::u32string();
  size_t k = 0;  // index into cps
  for (size_t i = 0; i < text.size(); ++k) {
    auto b = static_cast<unsigned char>(text[i]);
    if (b < 0x80) {
      out += static_cast<char>(b >= 'A' && b <= 'Z' ? b + 32 : b);
      ++i;
      continue;
    }
    char32_t c = utf8::next(text, i);
    if (c == 0x130) {
      out += "i\xCC\x87";
    } else if (c == 0x3A3) {
      // Final_Sigma: a cased letter before (case-ignorables skipped), none after
      size_t j = k;
      while (j > 0 && is_case_ignorable(cps[j - 1])) --j;
      bool final = j > 0 && is_cased(cps[j - 1]);
      if (final) {
        size_t e = k + 1;
        while (e < cps.size() && is_case_ignorable(cps[e])) ++e;
        final = e == cps.size() || !is_cased(cps[e]);
      }
      utf8::append(out, final ? 0x3C2 : 0x3C3);
    } else {
      utf8::append(out, static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(c))));
    }
  }
  return out;
}

// ---- SQuAD --------------------------------------------------------------------------------------

namespace {

std::vector<std::string> squad_tokens(std::string_view answer) {
  std::string lower = python_lower(answer);
  std::string nopunct;
  nopunct.reserve(lower.size());
  for (char c : lower)
    if (!is_ascii_punct(static_cast<unsigned char>(c))) nopunct += c;
  // \b(a|an|the)\b: a match is a whole run of word characters
  std::string s;
  s.reserve(nopunct.size());
  std::string_view v = nopunct;
  for (size_t i = 0; i < v.size();) {
    size_t b = i;
    char32_t c = utf8::next(v, i);
    if (!python_is_word(c)) {
      s.append(v.substr(b, i - b));
      continue;
    }
    size_t e = i;
    while (e < v.size()) {
      size_t k = e;
      if (!python_is_word(utf8::next(v, k))) break;
      e = k;
    }
    std::string_view run = v.substr(b, e - b);
    if (run == "a" || run == "an" || run == "the") s += ' ';
    else s.append(run);
    i = e;
  }
  std::vector<std::string> out;
  for (std::string_view t : split_ws(s)) out.emplace_back(t);
  return out;
}

std::string join(const std::vector<std::string>& tokens) {
  std::string out;
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (i) out += ' ';
    out += tokens[i];
  }
  return out;
}

// The F1 of evaluate-v1.1.py's f1_score (v2 = false) or evaluate-v2.0.py's compute_f1.
double squad_f1(std::vector<std::string> pred, std::vector<std::string> gold, bool v2) {
  if (v2 && (pred.empty() || gold.empty())) return pred == gold ? 1.0 : 0.0;
  std::size_t np = pred.size(), ng = gold.size();
  std::sort(pred.begin(), pred.end());
  std::sort(gold.begin(), gold.end());
  int64_t same = overlap(pred, gold);
  if (same == 0) return 0.0;
  double precision = 1.0 * static_cast<double>(same) / static_cast<double>(np);
  double recall = 1.0 * static_cast<double>(same) / static_cast<double>(ng);
  return (2 * precision * recall) / (precision + recall);
}

}  // namespace

std::string squad_normalize(std::string_view answer) { return join(squad_tokens(answer)); }

SquadScore squad_score(std::string_view prediction, std::span<const std::string> references, SquadVersion version) {
  bool v2 = version == SquadVersion::V2_0;
  std::vector<std::string> pred = squad_tokens(prediction);
  std::vector<std::vector<std::string>> golds;
  for (const std::string& r : references) {
    std::vector<std::string> g = squad_tokens(r);
    if (v2 && g.empty()) continue;  // normalizes to nothing: not an answer
    golds.push_back(std::move(g));
  }
  if (golds.empty()) {
    if (!v2) require_references(references, "SQuAD v1.1");
    golds.emplace_back();  // unanswerable: the only correct answer is ""
  }
  SquadScore s;
  for (const auto& g : golds) {
    s.exact = std::max(s.exact, g == pred ? 1.0 : 0.0);
    s.f1 = std::max(s.f1, squad_f1(pred, g, v2));
  }
  return s;
}

// ---- BLEU ---------------------------------------------------------------------------------------

namespace {

bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

// mteval-v13a as sacrebleu's Tokenizer13a and TokenizerRegexp: the text between spaces.
std::string tokenize_13a(std::string_view line) {
  std::string s = replace_all(line, "<skipped>", "");
  s = replace_all(s, "-\n", "");
  s = replace_all(s, "\n", " ");
  if (s.find('&') != std::string::npos) {
    s = replace_all(s, "&quot;", "\"");
    s = replace_all(s, "&amp;", "&");
    s = replace_all(s, "&lt;", "<");
    s = replace_all(s, "&gt;", ">");
  }
  // ([\{-\~\[-\` -\&\(-\+\:-\@\/]) -> " \1 "
  std::string t;
  t.reserve(s.size() * 2 + 6);
  t += "   ";  // f' {line} ': the leading space is itself in the class
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    bool sym = (c >= 0x7B && c <= 0x7E) || (c >= 0x5B && c <= 0x60) || (c >= 0x20 && c <= 0x26) ||
               (c >= 0x28 && c <= 0x2B) || (c >= 0x3A && c <= 0x40) || c == '/';
    if (sym) {
      t += ' ';
      t += ch;
      t += ' ';
    } else {
      t += ch;
    }
  }
  t += "   ";
  auto dot = [](unsigned char c) { return c == '.' || c == ','; };
  auto nondigit = [](unsigned char c) { return !is_digit(c); };
  t = sub_pairs(t, nondigit, dot, "", " ", " ");                          // ([^0-9])([\.,]) -> "\1 \2 "
  t = sub_pairs(t, dot, nondigit, " ", " ", "");                          // ([\.,])([^0-9]) -> " \1 \2"
  t = sub_pairs(t, is_digit, [](unsigned char c) { return c == '-'; }, "", " ", " ");  // ([0-9])(-) -> "\1 \2 "
  return t;
}

// mteval-v14's international tokenization as sacrebleu's TokenizerV14International (the regex
// module's \p{N}, \p{P}, \p{S}; here utf8proc's categories). Works on code points.
std::string tokenize_intl(std::string_view line) {
  auto cat_of = [](char32_t c) {
    switch (category(c)) {
      case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO:
        return 'N';
      case UTF8PROC_CATEGORY_PC: case UTF8PROC_CATEGORY_PD: case UTF8PROC_CATEGORY_PS:
      case UTF8PROC_CATEGORY_PE: case UTF8PROC_CATEGORY_PI: case UTF8PROC_CATEGORY_PF:
      case UTF8PROC_CATEGORY_PO:
        return 'P';
      case UTF8PROC_CATEGORY_SM: case UTF8PROC_CATEGORY_SC: case UTF8PROC_CATEGORY_SK:
      case UTF8PROC_CATEGORY_SO:
        return 'S';
      default:
        return ' ';
    }
  };
  std::u32string cps = decode(line);
  std::u32string a, b;
  // (\P{N})(\p{P}) -> "\1 \2 "
  for (size_t i = 0; i < cps.size();) {
    if (i + 1 < cps.size() && cat_of(cps[i]) != 'N' && cat_of(cps[i + 1]) == 'P') {
      a += cps[i], a += U' ', a += cps[i + 1], a += U' ';
      i += 2;
    } else {
      a += cps[i++];
    }
  }
  // (\p{P})(\P{N}) -> " \1 \2"
  for (size_t i = 0; i < a.size();) {
    if (i + 1 < a.size() && cat_of(a[i]) == 'P' && cat_of(a[i + 1]) != 'N') {
      b += U' ', b += a[i], b += U' ', b += a[i + 1];
      i += 2;
    } else {
      b += a[i++];
    }
  }
  // (\p{S}) -> " \1 "
  std::string out;
  out.reserve(b.size() * 2);
  for (char32_t c : b) {
    if (cat_of(c) == 'S') {
      out += ' ';
      utf8::append(out, c);
      out += ' ';
    } else {
      utf8::append(out, c);
    }
  }
  return out;
}

// The text whose whitespace-separated words BLEU counts (sacrebleu's _preprocess_segment).
std::string bleu_text(std::string_view text, const BleuOptions& o) {
  std::string lowered;
  if (o.lowercase) {
    lowered = python_lower(text);
    text = lowered;
  }
  std::string_view line = rstrip(text);
  switch (o.tokenize) {
    case BleuTokenize::None:
      return std::string(line);
    case BleuTokenize::T13a:
      return tokenize_13a(line);
    case BleuTokenize::Intl:
      return tokenize_intl(line);
    case BleuTokenize::Char: {
      std::string out;  // " ".join(line): every character a word
      for (size_t i = 0; i < line.size();) {
        size_t b = i;
        utf8::next(line, i);
        if (b) out += ' ';
        out.append(line.substr(b, i - b));
      }
      return out;
    }
  }
  return std::string(line);
}

const char* tokenize_name(BleuTokenize t) {
  switch (t) {
    case BleuTokenize::None: return "none";
    case BleuTokenize::T13a: return "13a";
    case BleuTokenize::Intl: return "intl";
    case BleuTokenize::Char: return "char";
  }
  return "?";
}

std::string nrefs_text(int nrefs) { return nrefs < 0 ? std::string("var") : std::to_string(nrefs); }

}  // namespace

std::vector<std::string> bleu_tokenize(std::string_view text, const BleuOptions& options) {
  std::string t = bleu_text(text, options);
  std::vector<std::string> out;
  for (std::string_view w : split_ws(t)) out.emplace_back(w);
  return out;
}

BleuStats& BleuStats::operator+=(const BleuStats& o) {
  sys_len += o.sys_len;
  ref_len += o.ref_len;
  for (size_t n = 0; n < 4; ++n) {
    correct[n] += o.correct[n];
    total[n] += o.total[n];
  }
  return *this;
}

BleuStats bleu_stats(std::string_view prediction, std::span<const std::string> references, const BleuOptions& options) {
  require_references(references, "BLEU");
  std::string hyp_text = bleu_text(prediction, options);
  std::vector<std::string> ref_texts;
  ref_texts.reserve(references.size());
  for (const std::string& r : references) ref_texts.push_back(bleu_text(r, options));

  Interner in;
  auto ids = [&](std::string_view t) {
    std::vector<uint32_t> out;
    for_each_word(t, [&](size_t b, size_t e) { out.push_back(in.id(t.substr(b, e - b))); });
    return out;
  };
  std::vector<uint32_t> hyp = ids(hyp_text);
  std::vector<std::vector<uint32_t>> refs;
  for (const std::string& t : ref_texts) refs.push_back(ids(t));

  BleuStats s;
  s.sys_len = static_cast<int64_t>(hyp.size());
  int64_t best_diff = -1, best_len = -1;  // _get_closest_ref_len
  for (const auto& r : refs) {
    auto len = static_cast<int64_t>(r.size());
    int64_t diff = std::abs(s.sys_len - len);
    if (best_diff == -1 || diff < best_diff) {
      best_diff = diff;
      best_len = len;
    } else if (diff == best_diff && len < best_len) {
      best_len = len;
    }
  }
  s.ref_len = best_len;
  int bits = id_bits(in.ids.size());
  with_key(4 * bits, [&](auto key) {
    using K = decltype(key);
    auto h_all = ngrams<K>(hyp, 4, bits);
    std::vector<std::vector<std::vector<K>>> r_all;
    for (const auto& r : refs) r_all.push_back(ngrams<K>(r, 4, bits));
    for (size_t n = 1; n <= 4; ++n) {
      const std::vector<K>& h = h_all[n - 1];
      s.total[n - 1] = static_cast<int64_t>(h.size());
      if (h.empty()) continue;
      if (refs.size() == 1) {
        s.correct[n - 1] = overlap(h, r_all[0][n - 1]);
        continue;
      }
      // the references' counts merged by maximum: the multiset union
      std::vector<K> merged;
      for (const auto& ra : r_all) {
        const std::vector<K>& g = ra[n - 1];
        std::vector<K> u;
        u.reserve(merged.size() + g.size());
        size_t i = 0, j = 0;
        while (i < merged.size() || j < g.size()) {
          if (j == g.size() || (i < merged.size() && merged[i] < g[j])) u.push_back(merged[i++]);
          else if (i == merged.size() || g[j] < merged[i]) u.push_back(g[j++]);
          else u.push_back(merged[i++]), ++j;
        }
        merged.swap(u);
      }
      s.correct[n - 1] = overlap(h, merged);
    }
  });
  return s;
}

BleuScore bleu_score(const BleuStats& st, bool effective_order) {
  BleuScore r;
  r.sys_len = st.sys_len;
  r.ref_len = st.ref_len;
  r.counts = st.correct;
  r.totals = st.total;
  r.bp = 1.0;
  if (st.sys_len < st.ref_len)
    r.bp = st.sys_len > 0 ? std::exp(1 - static_cast<double>(st.ref_len) / static_cast<double>(st.sys_len)) : 0.0;
  if (std::all_of(st.correct.begin(), st.correct.end(), [](int64_t c) { return c == 0; })) return r;
  double smooth = 1.0;
  int eff_order = 4;
  for (int n = 1; n <= 4; ++n) {
    if (st.total[n - 1] == 0) break;
    if (effective_order) eff_order = n;
    auto total = static_cast<double>(st.total[n - 1]);
    if (st.correct[n - 1] == 0) {
      smooth *= 2;
      r.precisions[n - 1] = 100. / (smooth * total);
    } else {
      r.precisions[n - 1] = 100. * static_cast<double>(st.correct[n - 1]) / total;
    }
  }
  double logs = 0;  // sum() of my_log(p): log floored at -9999999999 for 0
  for (int n = 0; n < eff_order; ++n) logs += r.precisions[n] == 0.0 ? -9999999999.0 : std::log(r.precisions[n]);
  r.score = r.bp * std::exp(logs / eff_order);
  return r;
}

std::string bleu_signature(const BleuOptions& o, int nrefs, bool effective_order) {
  return fmt::format("nrefs:{}|case:{}|eff:{}|tok:{}|smooth:exp|version:{}", nrefs_text(nrefs),
                     o.lowercase ? "lc" : "mixed", effective_order ? "yes" : "no", tokenize_name(o.tokenize),
                     kSacrebleuVersion);
}

// ---- chrF ---------------------------------------------------------------------------------------

namespace {

void check_chrf_options(const ChrfOptions& o) {
  if (o.char_order < 1 || o.char_order > 6) throw usage_error("chrF: char_order must be 1..6");
  if (o.word_order < 0 || o.word_order > 4) throw usage_error("chrF: word_order must be 0..4");
  if (o.beta < 0) throw usage_error("chrF: beta must be >= 0");
}

// One segment as chrF sees it: its characters (whitespace removed unless kept) and, for chrF++,
// its words with punctuation split off, both as dense ids.
struct ChrfSegment {
  std::vector<uint32_t> chars, words;
};

ChrfSegment chrf_segment(std::string_view text, const ChrfOptions& o, CharIds& chars, Interner& words) {
  ChrfSegment seg;
  for (size_t i = 0; i < text.size();) {
    char32_t c = utf8::next(text, i);
    if (o.whitespace || !utf8::is_space(c)) seg.chars.push_back(chars.id(c));
  }
  if (o.word_order > 0) {
    // _remove_punctuation: a word's last (else first) ASCII punctuation character split off
    auto punct = [](char c) { return is_ascii_punct(static_cast<unsigned char>(c)); };
    for (std::string_view w : split_ws(text)) {
      if (w.size() == 1) {
        seg.words.push_back(words.id(w));
      } else if (punct(w.back())) {
        seg.words.push_back(words.id(w.substr(0, w.size() - 1)));
        seg.words.push_back(words.id(w.substr(w.size() - 1)));
      } else if (punct(w.front())) {
        seg.words.push_back(words.id(w.substr(0, 1)));
        seg.words.push_back(words.id(w.substr(1)));
      } else {
        seg.words.push_back(words.id(w));
      }
    }
  }
  return seg;
}

// Fills [hyp, ref, match] of orders first+1 .. first+orders in each reference's statistics.
template <typename K>
void chrf_count(const std::vector<uint32_t>& hyp, const std::vector<const std::vector<uint32_t>*>& refs, int orders,
                int bits, size_t first, std::vector<ChrfStats>& stats) {
  if (orders == 0) return;
  auto h = ngrams<K>(hyp, static_cast<size_t>(orders), bits);
  for (size_t r = 0; r < refs.size(); ++r) {
    auto g = ngrams<K>(*refs[r], static_cast<size_t>(orders), bits);
    for (size_t n = 0; n < static_cast<size_t>(orders); ++n) {
      size_t k = 3 * (first + n);
      stats[r][k] = g[n].empty() ? 0 : static_cast<int64_t>(h[n].size());  // no reference n-grams: no hits counted
      stats[r][k + 1] = static_cast<int64_t>(g[n].size());
      stats[r][k + 2] = overlap(h[n], g[n]);
    }
  }
}

}  // namespace

ChrfStats chrf_stats(std::string_view prediction, std::span<const std::string> references, const ChrfOptions& o) {
  check_chrf_options(o);
  require_references(references, "chrF");
  CharIds chars;
  Interner words;
  std::vector<std::string> lowered;
  if (o.lowercase) {
    lowered.push_back(python_lower(prediction));
    for (const std::string& r : references) lowered.push_back(python_lower(r));
  }
  ChrfSegment hyp = chrf_segment(o.lowercase ? lowered[0] : prediction, o, chars, words);
  std::vector<ChrfSegment> refs;
  for (size_t r = 0; r < references.size(); ++r)
    refs.push_back(chrf_segment(o.lowercase ? std::string_view(lowered[r + 1]) : references[r], o, chars, words));
  size_t orders = static_cast<size_t>(o.char_order + o.word_order);
  std::vector<ChrfStats> stats(refs.size(), ChrfStats(3 * orders, 0));
  std::vector<const std::vector<uint32_t>*> ref_chars, ref_words;
  for (const auto& r : refs) ref_chars.push_back(&r.chars), ref_words.push_back(&r.words);
  int cbits = id_bits(chars.n), wbits = id_bits(words.ids.size());
  with_key(o.char_order * cbits, [&](auto key) {
    chrf_count<decltype(key)>(hyp.chars, ref_chars, o.char_order, cbits, 0, stats);
  });
  with_key(o.word_order * wbits, [&](auto key) {
    chrf_count<decltype(key)>(hyp.words, ref_words, o.word_order, wbits, static_cast<size_t>(o.char_order), stats);
  });
  // the reference with the best f-score, the first one on ties
  size_t best = 0;
  double best_f = -1.0;
  for (size_t r = 0; r < stats.size(); ++r) {
    double f = chrf_score(stats[r], o);
    if (f > best_f) {
      best_f = f;
      best = r;
    }
  }
  return std::move(stats[best]);
}

double chrf_score(std::span<const int64_t> stats, const ChrfOptions& o) {
  const double eps = 1e-16;
  const int factor = o.beta * o.beta;
  const size_t order = stats.size() / 3;
  double score = 0.0, avg_prec = 0.0, avg_rec = 0.0;
  int effective = 0;
  for (size_t i = 0; i < order; ++i) {
    int64_t n_hyp = stats[3 * i], n_ref = stats[3 * i + 1], n_match = stats[3 * i + 2];
    double prec = n_hyp > 0 ? static_cast<double>(n_match) / static_cast<double>(n_hyp) : eps;
    double rec = n_ref > 0 ? static_cast<double>(n_match) / static_cast<double>(n_ref) : eps;
    double denom = factor * prec + rec;
    score += denom > 0 ? (1 + factor) * prec * rec / denom : eps;
    if (n_hyp > 0 && n_ref > 0) {
      avg_prec += prec;
      avg_rec += rec;
      ++effective;
    }
  }
  if (o.eps_smoothing) return 100 * score / static_cast<double>(order);
  if (effective == 0) {
    avg_prec = avg_rec = 0.0;
  } else {
    avg_prec /= effective;
    avg_rec /= effective;
  }
  if (avg_prec + avg_rec != 0) {
    score = (1 + factor) * avg_prec * avg_rec;
    score /= (factor * avg_prec) + avg_rec;
    return 100 * score;
  }
  return 0.0;
}

std::string chrf_signature(const ChrfOptions& o, int nrefs) {
  return fmt::format("nrefs:{}|case:{}|eff:{}|nc:{}|nw:{}|space:{}|version:{}", nrefs_text(nrefs),
                     o.lowercase ? "lc" : "mixed", o.eps_smoothing ? "no" : "yes", o.char_order, o.word_order,
                     o.whitespace ? "yes" : "no", kSacrebleuVersion);
}

// ---- ROUGE --------------------------------------------------------------------------------------

std::vector<std::string> rouge_tokenize(std::string_view text, bool stem) {
  // str.lower(), then [^a-z0-9]+ -> " ": only ASCII letters and digits survive, and the two
  // characters whose lowercase is ASCII: U+212A KELVIN SIGN -> "k", U+0130 -> "i" + U+0307
  std::vector<std::string> out;
  std::string cur;
  auto flush = [&] {
    if (cur.empty()) return;
    if (stem && cur.size() > 3) cur = porter_stem(cur);
    if (!cur.empty()) out.push_back(std::move(cur));
    cur.clear();
  };
  for (size_t i = 0; i < text.size();) {
    auto b = static_cast<unsigned char>(text[i]);
    if (b < 0x80) {
      ++i;
      if ((b >= 'a' && b <= 'z') || (b >= '0' && b <= '9')) cur += static_cast<char>(b);
      else if (b >= 'A' && b <= 'Z') cur += static_cast<char>(b + 32);
      else flush();
      continue;
    }
    char32_t c = utf8::next(text, i);
    if (c == 0x212A) {
      cur += 'k';
    } else if (c == 0x130) {
      cur += 'i';
      flush();
    } else {
      flush();
    }
  }
  flush();
  return out;
}

namespace {

double fmeasure(double p, double r) { return p + r > 0 ? 2 * p * r / (p + r) : 0.0; }

Prf prf(double p, double r) { return {p, r, fmeasure(p, r)}; }

// _score_ngrams over sorted n-gram arrays.
Prf rouge_n(const std::vector<uint64_t>& target, const std::vector<uint64_t>& pred) {
  int64_t inter = overlap(target, pred);
  double p = static_cast<double>(inter) / static_cast<double>(std::max<size_t>(pred.size(), 1));
  double r = static_cast<double>(inter) / static_cast<double>(std::max<size_t>(target.size(), 1));
  return prf(p, r);
}

size_t lcs_length(const std::vector<uint32_t>& a, const std::vector<uint32_t>& b) {
  std::vector<uint32_t> prev(b.size() + 1, 0), cur(b.size() + 1, 0);
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = a[i - 1] == b[j - 1] ? prev[j - 1] + 1 : std::max(prev[j], cur[j - 1]);
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

// lcs_ind: the indices into `ref` of the LCS that rouge-score's backtrack reads out.
void lcs_indices(const std::vector<uint32_t>& ref, const std::vector<uint32_t>& can, std::vector<uint32_t>& table,
                 std::vector<char>& mark) {
  size_t rows = ref.size(), cols = can.size(), w = cols + 1;
  table.assign((rows + 1) * w, 0);
  for (size_t i = 1; i <= rows; ++i)
    for (size_t j = 1; j <= cols; ++j)
      table[i * w + j] = ref[i - 1] == can[j - 1] ? table[(i - 1) * w + j - 1] + 1
                                                  : std::max(table[(i - 1) * w + j], table[i * w + j - 1]);
  size_t i = rows, j = cols;
  while (i > 0 && j > 0) {
    if (ref[i - 1] == can[j - 1]) {
      mark[i - 1] = 1;
      --i, --j;
    } else if (table[i * w + j - 1] > table[(i - 1) * w + j]) {
      --j;
    } else {
      --i;
    }
  }
}

struct RougeText {
  std::vector<uint32_t> tokens;                  // all tokens
  std::vector<std::vector<uint32_t>> sentences;  // the tokens of each non-empty "\n"-separated line
};

RougeText rouge_text(std::string_view text, bool stem, std::unordered_map<std::string, uint32_t>& ids) {
  auto id = [&](std::string t) { return ids.try_emplace(std::move(t), static_cast<uint32_t>(ids.size() + 1)).first->second; };
  // "\n" separates tokens, so the text's tokens are its lines' tokens one after another
  RougeText r;
  for (size_t b = 0; b <= text.size();) {
    size_t e = text.find('\n', b);
    if (e == std::string_view::npos) e = text.size();
    if (e > b) {
      std::vector<uint32_t> s;
      for (std::string& t : rouge_tokenize(text.substr(b, e - b), stem)) s.push_back(id(std::move(t)));
      r.tokens.insert(r.tokens.end(), s.begin(), s.end());
      r.sentences.push_back(std::move(s));
    }
    b = e + 1;
  }
  return r;
}

// _summary_level_lcs
Prf rouge_lsum(const RougeText& ref, const RougeText& can, size_t vocabulary) {
  if (ref.sentences.empty() || can.sentences.empty()) return {};
  size_t m = 0, n = 0;
  for (const auto& s : ref.sentences) m += s.size();
  for (const auto& s : can.sentences) n += s.size();
  if (m == 0 || n == 0) return {};
  std::vector<int64_t> cnt_r(vocabulary + 1, 0), cnt_c(vocabulary + 1, 0);
  for (const auto& s : ref.sentences)
    for (uint32_t t : s) ++cnt_r[t];
  for (const auto& s : can.sentences)
    for (uint32_t t : s) ++cnt_c[t];
  int64_t hits = 0;
  std::vector<uint32_t> table;
  std::vector<char> mark;
  for (const auto& r : ref.sentences) {
    mark.assign(r.size(), 0);
    for (const auto& c : can.sentences) lcs_indices(r, c, table, mark);
    for (size_t i = 0; i < r.size(); ++i) {
      if (!mark[i]) continue;
      uint32_t t = r[i];
      if (cnt_c[t] > 0 && cnt_r[t] > 0) {
        ++hits;
        --cnt_c[t];
        --cnt_r[t];
      }
    }
  }
  double recall = static_cast<double>(hits) / static_cast<double>(m);
  double precision = static_cast<double>(hits) / static_cast<double>(n);
  return prf(precision, recall);
}

}  // namespace

RougeScores rouge_score(std::string_view prediction, std::span<const std::string> references, const RougeOptions& o) {
  require_references(references, "ROUGE");
  std::unordered_map<std::string, uint32_t> ids;
  RougeText pred = rouge_text(prediction, o.use_stemmer, ids);
  auto p = ngrams<uint64_t>(pred.tokens, 2, 32);
  RougeScores best;
  bool first = true;
  for (const std::string& ref : references) {
    RougeText t = rouge_text(ref, o.use_stemmer, ids);
    RougeScores s;
    auto g = ngrams<uint64_t>(t.tokens, 2, 32);
    s.rouge1 = rouge_n(g[0], p[0]);
    s.rouge2 = rouge_n(g[1], p[1]);
    if (!t.tokens.empty() && !pred.tokens.empty()) {
      auto lcs = static_cast<double>(lcs_length(t.tokens, pred.tokens));
      s.rougeL = prf(lcs / static_cast<double>(pred.tokens.size()), lcs / static_cast<double>(t.tokens.size()));
    }
    s.rougeLsum = rouge_lsum(t, pred, ids.size());
    // score_multi: per type the first reference with the highest fmeasure (np.argmax)
    auto keep = [&](Prf& b, const Prf& v) {
      if (first || v.fmeasure > b.fmeasure) b = v;
    };
    keep(best.rouge1, s.rouge1);
    keep(best.rouge2, s.rouge2);
    keep(best.rougeL, s.rougeL);
    keep(best.rougeLsum, s.rougeLsum);
    first = false;
  }
  return best;
}

// ---- TextEvaluator ------------------------------------------------------------------------------

TextEvaluator::TextEvaluator(TextOptions options) : options_(std::move(options)) {
  check_chrf_options(options_.chrf_options);
  chrf_.assign(3 * static_cast<size_t>(options_.chrf_options.char_order + options_.chrf_options.word_order), 0);
}

TextItemScores TextEvaluator::score(const TextItem& item) const {
  TextItemScores s;
  s.n_references = item.references.size();
  const auto& refs = item.references;
  if (options_.squad) s.squad = squad_score(item.prediction, refs, options_.squad_version);
  if (options_.bleu) {
    s.bleu_stats = bleu_stats(item.prediction, refs, options_.bleu_options);
    s.bleu = bleu_score(s.bleu_stats, true);
  }
  if (options_.chrf) {
    s.chrf_stats = chrf_stats(item.prediction, refs, options_.chrf_options);
    s.chrf = chrf_score(s.chrf_stats, options_.chrf_options);
  }
  if (options_.rouge) s.rouge = rouge_score(item.prediction, refs, options_.rouge_options);
  return s;
}

void TextEvaluator::add(const TextItemScores& s) {
  int n = static_cast<int>(s.n_references);
  if (items_ == 0) min_refs_ = max_refs_ = n;
  min_refs_ = std::min(min_refs_, n);
  max_refs_ = std::max(max_refs_, n);
  ++items_;
  squad_exact_ += s.squad.exact;
  squad_f1_ += s.squad.f1;
  bleu_ += s.bleu_stats;
  for (size_t k = 0; k < chrf_.size() && k < s.chrf_stats.size(); ++k) chrf_[k] += s.chrf_stats[k];
  const Prf* p[4] = {&s.rouge.rouge1, &s.rouge.rouge2, &s.rouge.rougeL, &s.rouge.rougeLsum};
  for (size_t t = 0; t < 4; ++t) {
    rouge_[3 * t] += p[t]->precision;
    rouge_[3 * t + 1] += p[t]->recall;
    rouge_[3 * t + 2] += p[t]->fmeasure;
  }
}

TextSummary TextEvaluator::summary() const {
  TextSummary r;
  r.items = items_;
  int nrefs = min_refs_ == max_refs_ ? min_refs_ : -1;
  if (options_.bleu) r.bleu_signature = bleu_signature(options_.bleu_options, nrefs, false);
  if (options_.chrf) r.chrf_signature = chrf_signature(options_.chrf_options, nrefs);
  if (items_ == 0) return r;
  auto n = static_cast<double>(items_);
  if (options_.squad) r.squad = {100.0 * squad_exact_ / n, 100.0 * squad_f1_ / n};
  if (options_.bleu) r.bleu = bleu_score(bleu_, false);
  if (options_.chrf) r.chrf = chrf_score(chrf_, options_.chrf_options);
  if (options_.rouge) {
    Prf* p[4] = {&r.rouge.rouge1, &r.rouge.rouge2, &r.rouge.rougeL, &r.rouge.rougeLsum};
    for (size_t t = 0; t < 4; ++t) *p[t] = {rouge_[3 * t] / n, rouge_[3 * t + 1] / n, rouge_[3 * t + 2] / n};
  }
  return r;
}

}  // namespace loom::eval
