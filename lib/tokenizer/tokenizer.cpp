#include "loom/tokenizer/tokenizer.h"
#include "loom/tokenizer/flat_map.h"
#include "loom/tokenizer/parts.h"
#include "loom/tokenizer/parts_extra.h"

#include <utf8proc.h>

#include <algorithm>
#include <atomic>
#include <queue>
#include <cstdlib>
#include <filesystem>
#include <optional>

#include <fmt/format.h>
#include <simdjson.h>

#include "loom/core/error.h"
#include "loom/io/base64.h"
#include "loom/model/models_dir.h"
#include "loom/io/json.h"
#include "loom/io/stream.h"
#include "loom/text/utf8.h"

namespace loom::tok {

namespace {

using simdjson::dom::element;
using simdjson::dom::object;

// ---- Unicode classes as the reference (Rust `tokenizers`) defines them ------------------------

// Rust char::is_whitespace: the Unicode White_Space property.
bool is_white_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

struct CodeRange {
  char32_t first, last;
};
#include "loom/tokenizer/bert_tables.inc"

template <size_t N>
bool in_ranges(const CodeRange (&table)[N], char32_t c) {
  auto it = std::upper_bound(std::begin(table), std::end(table), c, [](char32_t v, const CodeRange& r) { return v < r.first; });
  return it != std::begin(table) && c <= (it - 1)->last;
}

// What BERT's clean_text deletes (controls, format characters, private use, NUL, U+FFFD) and
// what its pre-tokenizer isolates as punctuation: the reference's own sets (bert_tables.inc).
bool is_bert_removed(char32_t c) { return in_ranges(kBertRemoved, c); }
bool is_bert_punctuation(char32_t c) {
  if (c < 0x80) return (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126);
  return in_ranges(kBertPunctuation, c);
}

bool is_cjk_ideograph(char32_t c) {
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
         (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
         (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

// ---- JSON helpers ----------------------------------------------------------------------------

struct Json {
  const std::string& file;
  Error bad(const std::string& what) const { return input_error(what, file); }
  object obj(element e, const char* what) const {
    object o;
    if (e.get(o)) throw bad(fmt::format("{} must be an object", what));
    return o;
  }
  std::string str(element e, const char* what) const {
    std::string_view s;
    if (e.get(s)) throw bad(fmt::format("{} must be a string", what));
    return std::string(s);
  }
  bool flag(object o, const char* key, bool def) const {
    element e;
    if (o[key].get(e) || e.is_null()) return def;
    bool b;
    if (e.get(b)) throw bad(fmt::format("\"{}\" must be true or false", key));
    return b;
  }
  int64_t num(object o, const char* key, int64_t def) const {
    element e;
    if (o[key].get(e) || e.is_null()) return def;
    int64_t v;
    if (e.get(v)) throw bad(fmt::format("\"{}\" must be an integer", key));
    return v;
  }
  std::string type(object o, const char* what) const {
    element e;
    if (o["type"].get(e)) throw bad(fmt::format("{} has no \"type\"", what));
    return str(e, what);
  }
};

// ---- BertNormalizer --------------------------------------------------------------------------

class BertNormalizer final : public Normalizer {
 public:
  BertNormalizer(bool clean, bool chinese, bool strip_accents, bool lowercase)
      : clean_(clean), chinese_(chinese), strip_(strip_accents), lower_(lowercase) {}

  Normalized normalize(std::string_view text) const override {
    struct Ch {
      char32_t c;
      uint32_t b, e;
    };
    std::vector<Ch> chars;
    chars.reserve(text.size());
    for (size_t i = 0; i < text.size();) {
      uint32_t b = static_cast<uint32_t>(i);
      char32_t c = text::utf8::next(text, i);
      uint32_t e = static_cast<uint32_t>(i);
      if (clean_) {
        if (is_bert_removed(c)) continue;  // removed characters leave no trace in the alignment
        if (is_white_space(c)) c = ' ';
      }
      if (chinese_ && is_cjk_ideograph(c)) {
        chars.push_back({' ', b, e});
        chars.push_back({c, b, e});
        chars.push_back({' ', b, e});
      } else {
        chars.push_back({c, b, e});
      }
    }
    if (strip_) {
      // canonical decomposition (NFD), then the marks removed. As in the reference, reordering
      // combining marks moves the characters but not the alignment slots.
      std::vector<Ch> d;
      d.reserve(chars.size());
      for (const Ch& ch : chars) {
        utf8proc_int32_t buf[32];
        int last = 0;
        utf8proc_ssize_t k = ch.c < 0x80 ? 0 : utf8proc_decompose_char(static_cast<utf8proc_int32_t>(ch.c), buf, 32, UTF8PROC_DECOMPOSE, &last);
        if (k <= 0 || k > 32) {
          d.push_back(ch);
          continue;
        }
        for (utf8proc_ssize_t j = 0; j < k; ++j) d.push_back({static_cast<char32_t>(buf[j]), ch.b, ch.e});
      }
      auto ccc = [](char32_t c) { return c < 0x300 ? 0 : utf8proc_get_property(static_cast<utf8proc_int32_t>(c))->combining_class; };
      for (size_t i = 0; i < d.size();) {
        if (ccc(d[i].c) == 0) {
          ++i;
          continue;
        }
        size_t j = i;
        while (j < d.size() && ccc(d[j].c) != 0) ++j;
        if (j - i > 1) {
          std::vector<char32_t> run;
          for (size_t k = i; k < j; ++k) run.push_back(d[k].c);
          std::stable_sort(run.begin(), run.end(), [&](char32_t a, char32_t b) { return ccc(a) < ccc(b); });
          for (size_t k = i; k < j; ++k) d[k].c = run[k - i];
        }
        i = j;
      }
      chars.clear();
      for (const Ch& ch : d)
        if (!in_ranges(kBertMarks, ch.c)) chars.push_back(ch);
    }
    Normalized n;
    n.text.reserve(text.size() + text.size() / 8);
    for (const Ch& ch : chars) lower(n, ch.c, ch.b, ch.e);
    return n;
  }

 private:
  void lower(Normalized& n, char32_t c, uint32_t b, uint32_t e) const {
    if (!lower_) return n.push(c, b, e);
    if (c < 0x80) return n.push(c >= 'A' && c <= 'Z' ? c + 32 : c, b, e);
    if (c == 0x130) {  // the one unconditional multi-character lowercase mapping: İ -> i + U+0307
      n.push('i', b, e);
      return n.push(0x307, b, e);
    }
    n.push(static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(c))), b, e);
  }
  bool clean_, chinese_, strip_, lower_;
};

// ---- BertPreTokenizer ------------------------------------------------------------------------

class BertPreTokenizer final : public PreTokenizer {
 public:
  void split(const Normalized& n, Span within, std::vector<Span>& out) const override {
    std::string_view t = n.text;
    size_t word = within.b;
    for (size_t i = within.b; i < within.e;) {
      size_t b = i;
      char32_t c = text::utf8::next(t, i);
      if (is_white_space(c)) {
        if (word < b) out.push_back({word, b});
        word = i;
      } else if (is_bert_punctuation(c)) {
        if (word < b) out.push_back({word, b});
        out.push_back({b, i});
        word = i;
      }
    }
    if (word < within.e) out.push_back({word, within.e});
  }
};

// ---- WordPiece -------------------------------------------------------------------------------

class WordPiece final : public Model {
 public:
  WordPiece(std::vector<std::string> pieces, TokenId unk, std::string prefix, size_t max_chars)
      : pieces_(std::move(pieces)), unk_(unk), prefix_(std::move(prefix)), max_chars_(max_chars) {
    for (size_t i = 0; i < pieces_.size(); ++i)
      if (!pieces_[i].empty() || i == 0) ids_.emplace(pieces_[i], static_cast<TokenId>(i));
  }

  void encode_word(std::string_view text, Span word, std::vector<TokenId>& ids, std::vector<Span>& spans) const override {
    std::string_view w = text.substr(word.b, word.e - word.b);
    if (text::utf8::count(w) > max_chars_) {
      ids.push_back(unk_);
      spans.push_back(word);
      return;
    }
    size_t mark = ids.size(), span_mark = spans.size();
    std::string key;
    for (size_t start = 0; start < w.size();) {
      size_t end = w.size();
      TokenId found = -1;
      while (start < end) {
        key.assign(start > 0 ? prefix_ : std::string());
        key.append(w.substr(start, end - start));
        auto it = ids_.find(key);
        if (it != ids_.end()) {
          found = it->second;
          break;
        }
        size_t j = end;
        text::utf8::prev(w, j);
        end = j;
      }
      if (found < 0) {  // no piece fits: the whole word is unknown
        ids.resize(mark);
        spans.resize(span_mark);
        ids.push_back(unk_);
        spans.push_back(word);
        return;
      }
      ids.push_back(found);
      spans.push_back({word.b + start, word.b + end});
      start = end;
    }
  }
  size_t vocab_size() const override { return pieces_.size(); }
  const std::string& piece(TokenId id) const override { return pieces_[static_cast<size_t>(id)]; }

 private:
  std::vector<std::string> pieces_;
  std::unordered_map<std::string, TokenId> ids_;
  TokenId unk_;
  std::string prefix_;
  size_t max_chars_;
};

// ---- WordPiece decoder -----------------------------------------------------------------------

std::string replace_all(std::string s, std::string_view from, std::string_view to) {
  if (from.empty()) return s;  // nothing to find (and no end to the search)
  for (size_t at = 0; (at = s.find(from, at)) != std::string::npos; at += to.size()) s.replace(at, from.size(), to);
  return s;
}

class WordPieceDecoder final : public Decoder {
 public:
  WordPieceDecoder(std::string prefix, bool cleanup) : prefix_(std::move(prefix)), cleanup_(cleanup) {}
  std::string decode(const std::vector<std::string>& pieces) const override {
    std::string out;
    for (size_t i = 0; i < pieces.size(); ++i) {
      std::string t = pieces[i];
      if (i != 0) {
        if (t.compare(0, prefix_.size(), prefix_) == 0) t.erase(0, prefix_.size());
        else t = std::string(" ").append(t);
      }
      if (cleanup_) {
        static const std::pair<const char*, const char*> kRules[] = {
            {" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"}, {" n't", "n't"},
            {" 'm", "'m"}, {" do not", " don't"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
        for (auto& [from, to] : kRules) t = replace_all(std::move(t), from, to);
      }
      out += t;
    }
    return out;
  }

 private:
  std::string prefix_;
  bool cleanup_;
};

// ---- byte-level BPE (GPT-2 family) --------------------------------------------------------

bool is_letter(char32_t c) {
  if (c < 0x80) return (c | 0x20) >= 'a' && (c | 0x20) <= 'z';
  auto k = utf8proc_category(static_cast<utf8proc_int32_t>(c));
  return k == UTF8PROC_CATEGORY_LU || k == UTF8PROC_CATEGORY_LL || k == UTF8PROC_CATEGORY_LT || k == UTF8PROC_CATEGORY_LM ||
         k == UTF8PROC_CATEGORY_LO;
}
bool is_number(char32_t c) {
  if (c < 0x80) return c >= '0' && c <= '9';
  auto k = utf8proc_category(static_cast<utf8proc_int32_t>(c));
  return k == UTF8PROC_CATEGORY_ND || k == UTF8PROC_CATEGORY_NL || k == UTF8PROC_CATEGORY_NO;
}

// GPT-2's pre-tokenization regex, matched by hand (leftmost alternative wins, as a regex would):
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
class Gpt2PreTokenizer final : public PreTokenizer {
 public:
  void split(const Normalized& n, Span within, std::vector<Span>& out) const override {
    std::string_view t = n.text;
    size_t i = within.b, end = within.e;
    auto peek = [&](size_t at, size_t* next) -> char32_t {
      size_t k = at;
      char32_t c = text::utf8::next(t, k);
      if (next) *next = k;
      return c;
    };
    auto run = [&](size_t at, auto pred) {
      while (at < end) {
        size_t k;
        char32_t c = peek(at, &k);
        if (!pred(c)) break;
        at = k;
      }
      return at;
    };
    auto other = [](char32_t c) { return !is_white_space(c) && !is_letter(c) && !is_number(c); };
    while (i < end) {
      size_t start = i;
      // contractions
      if (t[i] == '\'') {
        static const char* const kContractions[] = {"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"};
        size_t len = 0;
        for (const char* c : kContractions) {
          size_t l = std::char_traits<char>::length(c);
          if (i + l <= end && t.compare(i, l, c) == 0) {
            len = l;
            break;
          }
        }
        if (len) {
          out.push_back({i, i + len});
          i += len;
          continue;
        }
      }
      size_t j = t[i] == ' ' && i + 1 < end ? i + 1 : i;  // the optional leading space
      size_t after;
      char32_t c = peek(j, &after);
      size_t stop = 0;
      if (is_letter(c)) stop = run(after, is_letter);
      else if (is_number(c)) stop = run(after, is_number);
      else if (other(c)) stop = run(after, other);
      if (stop) {
        out.push_back({start, stop});
        i = stop;
        continue;
      }
      // whitespace: \s+(?!\S) keeps the last whitespace character for the next token, \s+ otherwise
      size_t ws_end = run(i, is_white_space);
      if (ws_end == end) {
        out.push_back({i, ws_end});
        i = ws_end;
        continue;
      }
      size_t last = ws_end;
      text::utf8::prev(t, last);  // start of the last whitespace character
      if (last > i) {
        out.push_back({i, last});
        i = last;
      } else {
        out.push_back({i, ws_end});
        i = ws_end;
      }
    }
  }
};

// The Llama 3 / Qwen pre-tokenization regex, matched by hand (max_digits 3 for Llama 3, 1 for Qwen):
//   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,max}| ?[^\s\p{L}\p{N}]+[\r\n]*|
//   \s*[\r\n]+|\s+(?!\S)|\s+
class Llama3PreTokenizer final : public PreTokenizer {
 public:
  explicit Llama3PreTokenizer(size_t max_digits) : max_digits_(max_digits) {}
  void split(const Normalized& n, Span within, std::vector<Span>& out) const override {
    std::string_view t = n.text;
    size_t i = within.b, end = within.e;
    auto at = [&](size_t k, size_t* next) -> char32_t {
      char32_t c = text::utf8::next(t, k);
      if (next) *next = k;
      return c;
    };
    auto run = [&](size_t k, auto pred, size_t limit = SIZE_MAX) {
      size_t count = 0;
      while (k < end && count < limit) {
        size_t nx;
        if (!pred(at(k, &nx))) break;
        k = nx;
        ++count;
      }
      return k;
    };
    auto nl = [](char32_t c) { return c == '\r' || c == '\n'; };
    auto other = [](char32_t c) { return !is_white_space(c) && !is_letter(c) && !is_number(c); };
    while (i < end) {
      size_t nx;
      char32_t c = at(i, &nx);
      // contractions, any case
      if (c == '\'' && nx < end) {
        size_t len = 0;
        for (const char* w : {"s", "t", "re", "ve", "m", "ll", "d"}) {
          size_t l = std::char_traits<char>::length(w), k = 0;
          while (k < l && nx + k < end && (t[nx + k] | 0x20) == w[k]) ++k;
          if (k == l) {
            len = l;
            break;
          }
        }
        if (len) {
          out.push_back({i, nx + len});
          i = nx + len;
          continue;
        }
      }
      // [^\r\n\p{L}\p{N}]?\p{L}+
      if (!nl(c) && !is_letter(c) && !is_number(c) && nx < end) {
        size_t nx2;
        if (is_letter(at(nx, &nx2))) {
          size_t stop = run(nx2, is_letter);
          out.push_back({i, stop});
          i = stop;
          continue;
        }
      }
      if (is_letter(c)) {
        size_t stop = run(nx, is_letter);
        out.push_back({i, stop});
        i = stop;
        continue;
      }
      // \p{N}{1,max}
      if (is_number(c)) {
        size_t stop = run(i, is_number, max_digits_);
        out.push_back({i, stop});
        i = stop;
        continue;
      }
      //  ?[^\s\p{L}\p{N}]+[\r\n]*
      {
        size_t j = c == ' ' ? nx : i;
        if (j < end && other(at(j, nullptr))) {
          size_t stop = run(run(j, other), nl);
          out.push_back({i, stop});
          i = stop;
          continue;
        }
      }
      // whitespace
      size_t ws_end = run(i, is_white_space);
      size_t last_nl = 0;  // end of the last newline character in the run
      for (size_t k = i; k < ws_end;) {
        size_t k2;
        if (nl(at(k, &k2))) last_nl = k2;
        k = k2;
      }
      if (last_nl) {  // \s*[\r\n]+
        out.push_back({i, last_nl});
        i = last_nl;
        continue;
      }
      if (ws_end == end) {
        out.push_back({i, ws_end});
        i = ws_end;
        continue;
      }
      size_t last = ws_end;
      text::utf8::prev(t, last);
      size_t stop = last > i ? last : ws_end;  // \s+(?!\S), else \s+
      out.push_back({i, stop});
      i = stop;
    }
  }

 private:
  size_t max_digits_;
};

// Pre-tokenizers applied in turn, each to the pieces of the one before.
class SequencePreTokenizer final : public PreTokenizer {
 public:
  explicit SequencePreTokenizer(std::vector<std::unique_ptr<PreTokenizer>> parts) : parts_(std::move(parts)) {}
  void split(const Normalized& n, Span within, std::vector<Span>& out) const override {
    std::vector<Span> cur = {within}, next;
    for (const auto& p : parts_) {
      next.clear();
      for (const Span& s : cur) p->split(n, s, next);
      cur.swap(next);
    }
    out.insert(out.end(), cur.begin(), cur.end());
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> parts_;
};

// ByteLevel without its regex: the byte mapping happens in the model; no split.
class WholePreTokenizer final : public PreTokenizer {
 public:
  void split(const Normalized&, Span within, std::vector<Span>& out) const override {
    if (within.b < within.e) out.push_back(within);
  }
};

// Unicode NFC, aligned as the reference aligns it. Each original character is decomposed
// canonically (the first character of its decomposition "replaces" it, the others are "inserted"),
// combining marks are put in canonical order, then characters compose into the last starter (a
// composed character "removes" the characters it absorbed). Alignment follows those changes: a
// kept or composed character takes the original character at the current position (then skips
// what it absorbed), an inserted one the original character before. So "e" + U+0301 gives "é"
// aligned with the "e" alone, as Hugging Face tokenizers does. ASCII text passes through.
class NfcNormalizer final : public Normalizer {
 public:
  Normalized normalize(std::string_view text) const override {
    Normalized n;
    n.text.reserve(text.size());
    n.src_begin.reserve(text.size());
    n.src_end.reserve(text.size());
    size_t i = 0;
    while (i < text.size()) {
      if (static_cast<unsigned char>(text[i]) < 0x80 && (i + 1 == text.size() || static_cast<unsigned char>(text[i + 1]) < 0x80)) {
        n.push(static_cast<unsigned char>(text[i]), static_cast<uint32_t>(i), static_cast<uint32_t>(i + 1));
        ++i;
        continue;
      }
      // a segment: from here to the next ASCII character (no composition has an ASCII second
      // character, so nothing composes across that boundary)
      size_t j = i + 1;
      while (j < text.size() && static_cast<unsigned char>(text[j]) >= 0x80) ++j;
      segment(text, i, j, n);
      i = j;
    }
    return n;
  }

 private:
  struct Ch {
    char32_t c;
    int ccc;
    int change;  // 0 replaces an original character, +1 inserted, -k: absorbed k more
  };
  static int ccc(char32_t c) { return utf8proc_get_property(static_cast<utf8proc_int32_t>(c))->combining_class; }
  // The primary composite of a + b, or 0.
  static char32_t compose(char32_t a, char32_t b) {
    thread_local std::unordered_map<uint64_t, char32_t> memo;
    uint64_t key = (static_cast<uint64_t>(a) << 32) | b;
    if (auto it = memo.find(key); it != memo.end()) return it->second;
    utf8proc_int32_t buf[2] = {static_cast<utf8proc_int32_t>(a), static_cast<utf8proc_int32_t>(b)};
    char32_t out = 0;
    // composition only (the pair is already decomposed): one code point left means a composite
    utf8proc_ssize_t len = utf8proc_normalize_utf32(buf, 2, static_cast<utf8proc_option_t>(UTF8PROC_COMPOSE | UTF8PROC_STABLE));
    if (len == 1) out = static_cast<char32_t>(buf[0]);
    if (memo.size() > (1u << 16)) memo.clear();
    memo.emplace(key, out);
    return out;
  }
  static void segment(std::string_view text, size_t from, size_t to, Normalized& n) {
    std::vector<Span> orig;  // byte span of each original character
    std::vector<Ch> d;
    for (size_t i = from; i < to;) {
      size_t b = i;
      char32_t c = text::utf8::next(text, i);
      orig.push_back({b, i});
      utf8proc_int32_t buf[32];
      int last = 0;
      utf8proc_ssize_t k = utf8proc_decompose_char(static_cast<utf8proc_int32_t>(c), buf, 32, UTF8PROC_DECOMPOSE, &last);
      if (k <= 0 || k > 32) {
        d.push_back({c, ccc(c), 0});
        continue;
      }
      for (utf8proc_ssize_t m = 0; m < k; ++m) d.push_back({static_cast<char32_t>(buf[m]), ccc(static_cast<char32_t>(buf[m])), m == 0 ? 0 : 1});
    }
    // canonical order: runs of combining marks stably sorted by class
    for (size_t x = 1; x < d.size(); ++x)
      for (size_t y = x; y > 0 && d[y].ccc != 0 && d[y - 1].ccc > d[y].ccc; --y) std::swap(d[y], d[y - 1]);
    // canonical composition
    std::vector<Ch> out;
    long starter = -1;
    int last_ccc = -1;  // class of the last character kept after the starter (-1: none)
    for (const Ch& x : d) {
      if (starter >= 0 && (last_ccc < 0 || (x.ccc != 0 && last_ccc < x.ccc))) {
        if (char32_t comp = compose(out[static_cast<size_t>(starter)].c, x.c)) {
          Ch& s = out[static_cast<size_t>(starter)];
          s.c = comp;
          s.change += x.change - 1;
          continue;
        }
      }
      if (x.ccc == 0) {
        starter = static_cast<long>(out.size());
        last_ccc = -1;
      } else {
        last_ccc = x.ccc;
      }
      out.push_back(x);
    }
    // alignment
    size_t pos = 0;
    for (const Ch& x : out) {
      size_t o;
      if (x.change > 0) {
        o = pos ? pos - 1 : 0;
      } else {
        o = std::min(pos, orig.size() - 1);
        pos += static_cast<size_t>(1 - x.change);
      }
      n.push(x.c, static_cast<uint32_t>(orig[o].b), static_cast<uint32_t>(orig[o].e));
    }
  }
};

// ---- SentencePiece-style pieces (Llama 2, Gemma) ---------------------------------------------

// Normalizers applied in turn; each one's alignment composes with the one before.
class SequenceNormalizer final : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> parts) : parts_(std::move(parts)) {}
  Normalized normalize(std::string_view text) const override {
    Normalized n = Normalized::identity(text);
    for (const auto& p : parts_) {
      Normalized next = p->normalize(n.text);
      for (size_t i = 0; i < next.text.size(); ++i) {  // map back through the previous step
        next.src_begin[i] = n.src_begin[next.src_begin[i]];
        next.src_end[i] = n.src_end[next.src_end[i] - 1];
      }
      n = std::move(next);
    }
    return n;
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> parts_;
};

// Prepend: a prefix before non-empty text (aligned with the first character).
class PrependNormalizer final : public Normalizer {
 public:
  explicit PrependNormalizer(std::string prefix) : prefix_(std::move(prefix)) {}
  Normalized normalize(std::string_view text) const override {
    Normalized n;
    if (text.empty()) return n;
    size_t first = 0;
    text::utf8::next(text, first);
    for (size_t i = 0; i < prefix_.size();) n.push(text::utf8::next(prefix_, i), 0, static_cast<uint32_t>(first));
    Normalized rest = Normalized::identity(text);
    n.text += rest.text;
    n.src_begin.insert(n.src_begin.end(), rest.src_begin.begin(), rest.src_begin.end());
    n.src_end.insert(n.src_end.end(), rest.src_end.begin(), rest.src_end.end());
    return n;
  }

 private:
  std::string prefix_;
};

// Replace: every occurrence of a literal string by another (aligned with what it replaced).
class ReplaceNormalizer final : public Normalizer {
 public:
  ReplaceNormalizer(std::string from, std::string to) : from_(std::move(from)), to_(std::move(to)) {}
  Normalized normalize(std::string_view text) const override {
    Normalized n;
    for (size_t i = 0; i < text.size();) {
      if (!from_.empty() && text.compare(i, from_.size(), from_) == 0) {
        for (size_t k = 0; k < to_.size();) n.push(text::utf8::next(to_, k), static_cast<uint32_t>(i), static_cast<uint32_t>(i + from_.size()));
        i += from_.size();
        continue;
      }
      size_t b = i;
      char32_t c = text::utf8::next(text, i);
      n.push(c, static_cast<uint32_t>(b), static_cast<uint32_t>(i));
    }
    return n;
  }

 private:
  std::string from_, to_;
};

// Split on a literal, the delimiter kept at the end of the piece before it (MergedWithPrevious).
class SplitMergedWithPrevious final : public PreTokenizer {
 public:
  explicit SplitMergedWithPrevious(std::string delim) : delim_(std::move(delim)) {}
  void split(const Normalized& n, Span within, std::vector<Span>& out) const override {
    std::string_view t = n.text;
    size_t start = within.b;
    for (size_t at = within.b; at < within.e;) {
      size_t hit = t.substr(0, within.e).find(delim_, at);
      if (hit == std::string_view::npos) break;
      out.push_back({start, hit + delim_.size()});
      start = at = hit + delim_.size();
    }
    if (start < within.e) out.push_back({start, within.e});
  }

 private:
  std::string delim_;
};

// Decoders that work piece by piece and hand the pieces on (as the reference's decode chain).
class ChainDecoder final : public Decoder {
 public:
  struct Step {
    enum Kind { Replace, ByteFallback, Fuse, Strip } kind;
    std::string from, to;  // Replace; Strip: `from` is the character to strip
    size_t start = 0, stop = 0;
  };
  explicit ChainDecoder(std::vector<Step> steps) : steps_(std::move(steps)) {}
  std::string decode(const std::vector<std::string>& pieces) const override {
    std::vector<std::string> p = pieces;
    for (const Step& s : steps_) {
      switch (s.kind) {
        case Step::Replace:
          for (auto& x : p) x = replace_all(std::move(x), s.from, s.to);
          break;
        case Step::ByteFallback: {
          std::vector<std::string> out;
          std::string bytes;
          size_t n_bytes = 0;
          auto flush = [&] {
            if (!n_bytes) return;
            if (json::valid_utf8(bytes)) {
              out.push_back(bytes);
            } else {
              std::string r;
              for (size_t k = 0; k < n_bytes; ++k) r += "\xEF\xBF\xBD";
              out.push_back(r);
            }
            bytes.clear();
            n_bytes = 0;
          };
          for (auto& x : p) {
            if (x.size() == 6 && x.compare(0, 3, "<0x") == 0 && x[5] == '>' && std::isxdigit(static_cast<unsigned char>(x[3])) &&
                std::isxdigit(static_cast<unsigned char>(x[4]))) {
              bytes += static_cast<char>(std::stoi(x.substr(3, 2), nullptr, 16));
              ++n_bytes;
            } else {
              flush();
              out.push_back(std::move(x));
            }
          }
          flush();
          p = std::move(out);
          break;
        }
        case Step::Fuse: {
          std::string all;
          for (auto& x : p) all += x;
          p.assign(1, all);
          break;
        }
        case Step::Strip:
          for (auto& x : p) {
            for (size_t k = 0; k < s.start && x.compare(0, s.from.size(), s.from) == 0; ++k) x.erase(0, s.from.size());
            for (size_t k = 0; k < s.stop && x.size() >= s.from.size() && x.compare(x.size() - s.from.size(), s.from.size(), s.from) == 0; ++k)
              x.erase(x.size() - s.from.size());
          }
          break;
      }
    }
    std::string out;
    for (auto& x : p) out += x;
    return out;
  }

 private:
  std::vector<Step> steps_;
};

// GPT-2's reversible map from bytes to printable characters.
struct ByteMap {
  std::string to_char[256];            // UTF-8 of the character standing for each byte
  std::unordered_map<char32_t, uint8_t> to_byte;
  ByteMap() {
    int extra = 0;
    for (int b = 0; b < 256; ++b) {
      bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
      char32_t c = printable ? static_cast<char32_t>(b) : static_cast<char32_t>(256 + extra++);
      char buf[4];
      to_char[b].assign(buf, text::utf8::encode(c, buf));
      to_byte[c] = static_cast<uint8_t>(b);
    }
  }
};
const ByteMap& byte_map() {
  static const ByteMap m;
  return m;
}

// BPE over one word. Byte-level (GPT-2 family): the symbols are the word's bytes, each as its
// printable stand-in. Otherwise (SentencePiece style): the symbols are characters, and a character
// missing from the vocabulary becomes its bytes as <0xXX> tokens (byte_fallback) or the unknown
// token (consecutive unknowns fused when fuse_unk). Pairs merge lowest rank first, leftmost on a
// tie: a scan over cached pair ranks for short pieces, a heap for long ones (linear-logarithmic
// even for a 20 KB word).
//
// Speed, with results unchanged:
// - SentencePiece-style tokenizers have no pre-tokenizer: the whole text is one word. It is cut
//   before each U+2581 (the space marker) where no vocabulary piece contains the two characters
//   either side of the cut: no symbol can ever span such a cut (every symbol is a vocabulary piece
//   or a single character), so the pieces between cuts merge independently.
// - Each thread remembers the tokens of the last pieces it encoded (as Hugging Face's BPE does).
class Bpe final : public Model {
 public:
  Bpe(std::vector<std::string> pieces, const std::vector<std::pair<std::string_view, std::string_view>>& merges, BpeConfig cfg,
      const std::string& file)
      : pieces_(std::move(pieces)), cfg_(cfg) {
    static std::atomic<uint64_t> serial{0};
    serial_ = ++serial;
    ids_.build(pieces_);
    ranks_.reserve(merges.size());
    std::string joined;
    bool merges_special = false;  // a merge of a byte-fallback or unknown token
    for (size_t r = 0; r < merges.size(); ++r) {
      joined = merges[r].first;
      joined += merges[r].second;
      TokenId a = ids_.find(merges[r].first), b = ids_.find(merges[r].second), ab = ids_.find(joined);
      if (a < 0 || b < 0 || ab < 0)
        throw input_error(fmt::format("merge {} (\"{} {}\") uses a token that is not in the vocab", r + 1, merges[r].first, merges[r].second), file);
      ranks_.insert(PairMap::key(a, b), static_cast<uint32_t>(r), ab);
      merges_special |= is_byte_token(merges[r].first) || is_byte_token(merges[r].second) || a == cfg_.unk || b == cfg_.unk;
    }
    for (int c = 0; c < 128; ++c) ascii_ids_[c] = ids_.find(std::string(1, static_cast<char>(c)));
    for (int byte = 0; byte < 256; ++byte) {
      level_ids_[byte] = ids_.find(byte_map().to_char[byte]);
      byte_ids_[byte] = cfg_.byte_fallback ? ids_.find(fmt::format("<0x{:02X}>", byte)) : -1;
    }
    // character pairs that occur inside some piece: cuts before U+2581 elsewhere are safe
    // (not with ignore_merges, which looks at whole words)
    if (!cfg_.byte_level && !cfg_.ignore_merges && !merges_special && ids_.find(kSpaceMarker) >= 0) {
      cut_ok_ = true;
      for (const std::string& p : pieces_) {
        if (p.find(kSpaceMarker, 1) == std::string::npos) continue;
        size_t i = 0;
        char32_t prev = p.empty() ? 0 : text::utf8::next(p, i);
        while (i < p.size()) {
          char32_t c = text::utf8::next(p, i);
          if (c == U'\u2581') inner_pairs_.insert(PairMap::key(static_cast<int32_t>(prev), static_cast<int32_t>(c)), 0, 0);
          prev = c;
        }
      }
    }
  }
  Bpe(const Bpe&) = delete;
  Bpe& operator=(const Bpe&) = delete;

  void encode_word(std::string_view text, Span word, std::vector<TokenId>& ids, std::vector<Span>& spans) const override {
    std::string_view w = text.substr(word.b, word.e - word.b);
    if (!cut_ok_) return encode_piece(w, word.b, ids, spans);
    // cut before U+2581 (E2 96 81) where no piece holds the characters either side
    size_t start = 0;
    for (size_t i = 1; i + 3 <= w.size(); ++i) {
      if (static_cast<unsigned char>(w[i]) != 0xE2 || w.compare(i, 3, kSpaceMarker) != 0) continue;
      size_t k = i;
      char32_t before = text::utf8::prev(w, k);
      if (inner_pairs_.find(PairMap::key(static_cast<int32_t>(before), 0x2581))) continue;
      encode_piece(w.substr(start, i - start), word.b + start, ids, spans);
      start = i;
      i += 2;
    }
    encode_piece(w.substr(start), word.b + start, ids, spans);
  }
  size_t vocab_size() const override { return pieces_.size(); }
  const std::string& piece(TokenId id) const override { return pieces_[static_cast<size_t>(id)]; }

 private:
  static constexpr std::string_view kSpaceMarker = "\xE2\x96\x81";
  static bool is_byte_token(std::string_view p) { return p.size() == 6 && p.starts_with("<0x") && p.back() == '>'; }

  struct Sym {
    TokenId id;
    uint32_t b, e;
    int32_t prev, next;  // linked list of live symbols (-1: none)
  };
  struct Tok {
    TokenId id;
    uint32_t len;  // bytes of the piece it covers
  };
  // The tokens of recently encoded pieces, per thread, for the Bpe with serial `owner`.
  struct Cache {
    uint64_t owner = 0;
    std::unordered_map<std::string, std::vector<Tok>> map;
  };
  static constexpr size_t kCacheMaxWord = 64, kCacheMaxEntries = 1 << 16;

  // One piece of text (a word, or a part of a word between safe cuts) at byte `base` of the text.
  void encode_piece(std::string_view w, size_t base, std::vector<TokenId>& ids, std::vector<Span>& spans) const {
    if (w.empty()) return;
    thread_local Cache cache;
    bool cacheable = w.size() <= kCacheMaxWord;
    if (cacheable) {
      if (cache.owner != serial_) {
        cache.map.clear();
        cache.owner = serial_;
      }
      if (auto it = cache.map.find(std::string(w)); it != cache.map.end()) {
        size_t at = base;
        for (const Tok& t : it->second) {
          ids.push_back(t.id);
          spans.push_back({at, at + t.len});
          at += t.len;
        }
        return;
      }
    }
    std::vector<Tok> toks;
    if (cfg_.ignore_merges) {  // a word that is a token is that token
      TokenId id = -1;
      if (cfg_.byte_level) {
        thread_local std::string mapped;
        mapped.clear();
        for (unsigned char c : w) mapped += byte_map().to_char[c];
        id = ids_.find(mapped);
      } else {
        id = ids_.find(w);
      }
      if (id >= 0) {
        ids.push_back(id);
        spans.push_back({base, base + w.size()});
        if (cacheable) remember(cache, w, {{id, static_cast<uint32_t>(w.size())}});
        return;
      }
    }
    thread_local std::vector<Sym> syms;
    syms.clear();
    make_symbols(w, syms);
    if (syms.size() <= 48)
      merge_scan(syms);
    else
      merge_heap(syms);
    for (size_t i = 0; i < syms.size(); i = static_cast<size_t>(syms[i].next)) {
      ids.push_back(syms[i].id);
      spans.push_back({base + syms[i].b, base + syms[i].e});
      if (cacheable) toks.push_back({syms[i].id, syms[i].e - syms[i].b});
      if (syms[i].next < 0) break;
    }
    if (cacheable) remember(cache, w, std::move(toks));
  }
  static void remember(Cache& cache, std::string_view w, std::vector<Tok> toks) {
    if (cache.map.size() >= kCacheMaxEntries) cache.map.clear();
    cache.map.emplace(std::string(w), std::move(toks));
  }

  // The initial symbols of w (offsets relative to w).
  void make_symbols(std::string_view w, std::vector<Sym>& syms) const {
    syms.reserve(w.size());
    if (cfg_.byte_level) {
      for (size_t i = 0; i < w.size(); ++i) {
        TokenId id = level_ids_[static_cast<unsigned char>(w[i])];
        if (id < 0) throw input_error("the vocabulary lacks a byte token");
        push_sym(syms, id, i, i + 1);
      }
      return;
    }
    for (size_t i = 0; i < w.size();) {
      size_t b = i;
      text::utf8::next(w, i);
      if (i - b == 1 && ascii_ids_[static_cast<unsigned char>(w[b])] >= 0) {  // common case, no hashing
        push_sym(syms, ascii_ids_[static_cast<unsigned char>(w[b])], b, i);
        continue;
      }
      std::string_view ch = w.substr(b, i - b);
      if (TokenId id = ids_.find(ch); id >= 0) {
        push_sym(syms, id, b, i);
      } else if (cfg_.byte_fallback &&
                 std::all_of(ch.begin(), ch.end(), [&](char c) { return byte_ids_[static_cast<unsigned char>(c)] >= 0; })) {
        for (size_t k = b; k < i; ++k) push_sym(syms, byte_ids_[static_cast<unsigned char>(w[k])], k, k + 1);
      } else {
        if (cfg_.unk < 0) throw input_error("a character is not in the vocabulary and the model has no unknown token");
        if (cfg_.fuse_unk && !syms.empty() && syms.back().id == cfg_.unk && syms.back().e == b)
          syms.back().e = static_cast<uint32_t>(i);
        else
          push_sym(syms, cfg_.unk, b, i);
      }
    }
  }

  static void push_sym(std::vector<Sym>& syms, TokenId id, size_t b, size_t e) {
    int32_t n = static_cast<int32_t>(syms.size());
    if (n) syms.back().next = n;
    syms.push_back({id, static_cast<uint32_t>(b), static_cast<uint32_t>(e), n - 1, -1});
  }

  // Few symbols: keep each live symbol's pair rank with its right neighbour and scan for the
  // lowest (leftmost on a tie).
  void merge_scan(std::vector<Sym>& syms) const {
    size_t n = syms.size();
    if (n < 2) return;
    constexpr uint32_t kNone = ~0u;
    uint32_t rank[48];
    TokenId merged[48];
    auto update = [&](size_t l) {
      rank[l] = kNone;
      if (syms[l].next < 0) return;
      if (const PairMap::Entry* m = ranks_.find(PairMap::key(syms[l].id, syms[static_cast<size_t>(syms[l].next)].id))) {
        rank[l] = m->rank;
        merged[l] = m->merged;
      }
    };
    for (size_t i = 0; i < n; ++i) update(i);
    for (;;) {
      uint32_t best = kNone;
      size_t at = 0;
      for (size_t i = 0; i < n; i = static_cast<size_t>(syms[i].next)) {
        if (rank[i] < best) {
          best = rank[i];
          at = i;
        }
        if (syms[i].next < 0) break;
      }
      if (best == kNone) return;
      Sym& l = syms[at];
      Sym& r = syms[static_cast<size_t>(l.next)];
      l.id = merged[at];
      l.e = r.e;
      l.next = r.next;
      if (r.next >= 0) syms[static_cast<size_t>(r.next)].prev = static_cast<int32_t>(at);
      update(at);
      if (l.prev >= 0) update(static_cast<size_t>(l.prev));
    }
  }

  void merge_heap(std::vector<Sym>& syms) const {
    if (syms.size() < 2) return;
    struct Cand {
      uint32_t rank;
      int32_t pos;
      TokenId left, right, merged;
      bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
    };
    std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> heap;
    auto consider = [&](int32_t l) {
      if (l < 0 || syms[static_cast<size_t>(l)].next < 0) return;
      int32_t r = syms[static_cast<size_t>(l)].next;
      const PairMap::Entry* m = ranks_.find(PairMap::key(syms[static_cast<size_t>(l)].id, syms[static_cast<size_t>(r)].id));
      if (m) heap.push({m->rank, l, syms[static_cast<size_t>(l)].id, syms[static_cast<size_t>(r)].id, m->merged});
    };
    for (int32_t i = 0; i + 1 < static_cast<int32_t>(syms.size()); ++i) consider(i);
    while (!heap.empty()) {
      Cand c = heap.top();
      heap.pop();
      Sym& l = syms[static_cast<size_t>(c.pos)];
      if (l.id != c.left || l.next < 0) continue;  // l merged or dead since this pair was queued
      Sym& r = syms[static_cast<size_t>(l.next)];
      if (r.id != c.right) continue;
      // still the same pair: merge r into l
      l.id = c.merged;
      l.e = r.e;
      l.next = r.next;
      if (r.next >= 0) syms[static_cast<size_t>(r.next)].prev = c.pos;
      r.id = -2;  // dead
      consider(l.prev);
      consider(c.pos);
    }
  }

  std::vector<std::string> pieces_;
  PieceMap ids_;
  PairMap ranks_;  // pair -> (rank, merged id)
  BpeConfig cfg_;
  uint64_t serial_;
  bool cut_ok_ = false;
  PairMap inner_pairs_;     // (character, U+2581) pairs found inside pieces
  TokenId byte_ids_[256];   // id of each <0xXX> byte-fallback token, or -1
  TokenId level_ids_[256];  // id of each byte's GPT-2 stand-in character, or -1
  TokenId ascii_ids_[128];  // id of each one-character ASCII token, or -1
};

class ByteLevelDecoder final : public Decoder {
 public:
  std::string decode(const std::vector<std::string>& pieces) const override {
    const ByteMap& bm = byte_map();
    std::string out;
    for (const auto& p : pieces) {
      for (size_t i = 0; i < p.size();) {
        size_t b = i;
        char32_t c = text::utf8::next(p, i);
        auto it = bm.to_byte.find(c);
        if (it != bm.to_byte.end()) out += static_cast<char>(it->second);
        else out.append(p, b, i - b);  // an added token's own text
      }
    }
    // bytes that are not valid UTF-8 become U+FFFD, one per maximal invalid subpart (the
    // reference's lossy decoding)
    return json::lossy_utf8(out);
  }
};


std::string string_pattern(const Json& j, object o, const char* what) {
  element pat, str;
  std::string_view v;
  if (o["pattern"].get(pat) || pat["String"].get(str) || str.get(v))
    throw j.bad(fmt::format("{}: only literal \"String\" patterns are supported", what));
  return std::string(v);
}

MetaspaceConfig load_metaspace_config(const Json& j, object o) {
  MetaspaceConfig cfg;
  element e;
  if (!o["replacement"].get(e)) cfg.replacement = j.str(e, "\"replacement\"");
  if (cfg.replacement.empty() || text::utf8::count(cfg.replacement) != 1) throw j.bad("Metaspace \"replacement\" must be one character");
  if (!o["prepend_scheme"].get(e) && !e.is_null()) {
    std::string s = j.str(e, "\"prepend_scheme\"");
    if (s == "always") cfg.prepend = MetaspaceConfig::Always;
    else if (s == "first") cfg.prepend = MetaspaceConfig::First;
    else if (s == "never") cfg.prepend = MetaspaceConfig::Never;
    else throw j.bad(fmt::format("Metaspace \"prepend_scheme\" \"{}\" is not always, first or never", s));
  }
  if (!j.flag(o, "add_prefix_space", true)) {  // the old spelling of "never"
    if (cfg.prepend != MetaspaceConfig::Never) throw j.bad("Metaspace: add_prefix_space false contradicts its prepend_scheme");
  }
  cfg.split = j.flag(o, "split", true);
  return cfg;
}

// The normalizer followed by the text rewrite of a Metaspace pre-tokenizer (alone, or in a Sequence
// after WhitespaceSplit); the normalizer as it is when the pre-tokenizer has no Metaspace.
std::unique_ptr<Normalizer> load_metaspace_rewrite(const Json& j, object o, std::unique_ptr<Normalizer> normalizer) {
  std::string type = j.type(o, "\"pre_tokenizer\"");
  if (type == "Metaspace") return make_metaspace_rewrite(load_metaspace_config(j, o), false, std::move(normalizer));
  element ps;
  simdjson::dom::array arr;
  if (type != "Sequence" || o["pretokenizers"].get(ps) || ps.get(arr)) return normalizer;
  bool ws = false, other = false;
  for (element p : arr) {
    object po = j.obj(p, "a pre_tokenizer");
    std::string t = j.type(po, "a pre_tokenizer");
    if (t == "Metaspace") {
      if (other) throw j.bad("Metaspace after a pre_tokenizer other than WhitespaceSplit is not supported yet");
      return make_metaspace_rewrite(load_metaspace_config(j, po), ws, std::move(normalizer));
    }
    (t == "WhitespaceSplit" ? ws : other) = true;
  }
  return normalizer;
}

// Unigram: "vocab" is [[piece, score], ...] by id, "unk_id" an id or null.
std::unique_ptr<Model> load_unigram(const Json& j, object model) {
  element e;
  simdjson::dom::array arr;
  if (model["vocab"].get(e) || e.get(arr)) throw j.bad("Unigram model without a \"vocab\" array");
  std::vector<std::pair<std::string, double>> vocab;
  for (element entry : arr) {
    simdjson::dom::array pair;
    double score;
    std::string_view piece;
    if (entry.get(pair) || pair.size() != 2 || pair.at(0).get(piece) || pair.at(1).get(score))
      throw j.bad(fmt::format("Unigram vocab entry {} is not [piece, score]", vocab.size()));
    vocab.emplace_back(std::string(piece), as_serde_json_reads(score));  // the reference's bits
  }
  std::optional<TokenId> unk;
  if (!model["unk_id"].get(e) && !e.is_null()) {
    int64_t id;
    if (e.get(id)) throw j.bad("Unigram \"unk_id\" must be an integer");
    if (id < 0 || static_cast<uint64_t>(id) >= vocab.size())
      throw j.bad(fmt::format("Unigram unk_id {} is outside the vocabulary of {}", id, vocab.size()));
    unk = static_cast<TokenId>(id);
  }
  return make_unigram(std::move(vocab), unk, j.flag(model, "byte_fallback", false), j.file);
}

std::unique_ptr<Normalizer> load_normalizer(const Json& j, object o) {
  std::string type = j.type(o, "\"normalizer\"");
  element e;
  if (type == "BertNormalizer") {
    bool lower = j.flag(o, "lowercase", true);
    return std::make_unique<BertNormalizer>(j.flag(o, "clean_text", true), j.flag(o, "handle_chinese_chars", true),
                                            j.flag(o, "strip_accents", lower), lower);
  }
  if (type == "NFC") return std::make_unique<NfcNormalizer>();
  if (type == "Prepend") {
    if (o["prepend"].get(e)) throw j.bad("Prepend normalizer without \"prepend\"");
    return std::make_unique<PrependNormalizer>(j.str(e, "\"prepend\""));
  }
  if (type == "Precompiled") {
    std::string_view b64;
    if (o["precompiled_charsmap"].get(e) || e.get(b64)) throw j.bad("Precompiled normalizer without a \"precompiled_charsmap\" string");
    auto bytes = io::base64_decode(b64);
    if (!bytes) throw j.bad("Precompiled normalizer: \"precompiled_charsmap\" is not valid base64");
    return make_precompiled_normalizer(std::move(*bytes), j.file);
  }
  if (type == "NFKC") return make_nfkc_normalizer();
  if (type == "Lowercase") return make_lowercase_normalizer();
  if (type == "Strip") return make_strip_normalizer(j.flag(o, "strip_left", false), j.flag(o, "strip_right", false));
  element rx;
  if (type == "Replace" && !o["pattern"].get(e) && !e["Regex"].get(rx)) {
    element content;
    if (o["content"].get(content)) throw j.bad("Replace normalizer without \"content\"");
    return make_regex_replace_normalizer(j.str(rx, "the Replace regex"), j.str(content, "\"content\""), j.file);
  }
  if (type == "Replace") {
    if (o["content"].get(e)) throw j.bad("Replace normalizer without \"content\"");
    return std::make_unique<ReplaceNormalizer>(string_pattern(j, o, "Replace normalizer"), j.str(e, "\"content\""));
  }
  if (type == "Sequence") {
    simdjson::dom::array arr;
    if (o["normalizers"].get(e) || e.get(arr)) throw j.bad("Sequence normalizer without \"normalizers\"");
    std::vector<std::unique_ptr<Normalizer>> parts;
    for (element x : arr) parts.push_back(load_normalizer(j, j.obj(x, "a normalizer")));
    return std::make_unique<SequenceNormalizer>(std::move(parts));
  }
  throw j.bad(fmt::format("normalizer type \"{}\" is not supported yet (supported: BertNormalizer, NFC, NFKC, Lowercase, Strip, Precompiled, Prepend, Replace, Sequence)", type));
}

void load_decoder_steps(const Json& j, object o, std::vector<ChainDecoder::Step>& steps) {
  std::string type = j.type(o, "\"decoder\"");
  element e;
  if (type == "Replace") {
    if (o["content"].get(e)) throw j.bad("Replace decoder without \"content\"");
    steps.push_back({ChainDecoder::Step::Replace, string_pattern(j, o, "Replace decoder"), j.str(e, "\"content\""), 0, 0});
  } else if (type == "ByteFallback") {
    steps.push_back({ChainDecoder::Step::ByteFallback, "", "", 0, 0});
  } else if (type == "Fuse") {
    steps.push_back({ChainDecoder::Step::Fuse, "", "", 0, 0});
  } else if (type == "Strip") {
    if (o["content"].get(e)) throw j.bad("Strip decoder without \"content\"");
    steps.push_back({ChainDecoder::Step::Strip, j.str(e, "\"content\""), "", static_cast<size_t>(j.num(o, "start", 0)),
                     static_cast<size_t>(j.num(o, "stop", 0))});
  } else if (type == "Sequence") {
    simdjson::dom::array arr;
    if (o["decoders"].get(e) || e.get(arr)) throw j.bad("Sequence decoder without \"decoders\"");
    for (element x : arr) load_decoder_steps(j, j.obj(x, "a decoder"), steps);
  } else {
    throw j.bad(fmt::format("decoder type \"{}\" is not supported yet", type));
  }
}

std::unique_ptr<Decoder> load_decoder(const Json& j, object o) {
  std::string type = j.type(o, "\"decoder\"");
  element e;
  if (type == "WordPiece") {
    std::string p = "##";
    if (!o["prefix"].get(e)) p = j.str(e, "\"prefix\"");
    return std::make_unique<WordPieceDecoder>(p, j.flag(o, "cleanup", true));
  }
  if (type == "ByteLevel") return std::make_unique<ByteLevelDecoder>();
  if (type == "Metaspace") return make_metaspace_decoder(load_metaspace_config(j, o));
  std::vector<ChainDecoder::Step> steps;
  load_decoder_steps(j, o, steps);
  return std::make_unique<ChainDecoder>(std::move(steps));
}


std::unique_ptr<PreTokenizer> load_pre_tokenizer(const Json& j, object o) {
  std::string type = j.type(o, "\"pre_tokenizer\"");
  if (type == "BertPreTokenizer") return std::make_unique<BertPreTokenizer>();
  if (type == "Metaspace") return make_metaspace_split(load_metaspace_config(j, o));  // its rewrite: load_metaspace_rewrite
  if (type == "WhitespaceSplit") return make_whitespace_split_pre_tokenizer();
  if (type == "ByteLevel") {
    if (j.flag(o, "add_prefix_space", true)) throw j.bad("ByteLevel with add_prefix_space is not supported yet");
    if (j.flag(o, "use_regex", true)) return std::make_unique<Gpt2PreTokenizer>();
    return std::make_unique<WholePreTokenizer>();
  }
  if (type == "Split") {
    element pat, rx;
    std::string_view pattern;
    element lit;
    if (!o["pattern"].get(pat) && !pat["String"].get(lit)) {
      element beh;
      std::string behavior = o["behavior"].get(beh) ? "" : j.str(beh, "\"behavior\"");
      if (behavior != "MergedWithPrevious" || j.flag(o, "invert", false))
        throw j.bad("Split on a string: only the MergedWithPrevious behavior is supported yet");
      return std::make_unique<SplitMergedWithPrevious>(j.str(lit, "the Split pattern"));
    }
    if (o["pattern"].get(pat) || pat["Regex"].get(rx) || rx.get(pattern)) throw j.bad("Split pre_tokenizer without a \"Regex\" pattern");
    element beh;
    std::string behavior = o["behavior"].get(beh) ? "" : j.str(beh, "\"behavior\"");
    if (behavior != "Isolated" || j.flag(o, "invert", false)) throw j.bad("Split pre_tokenizer: only the Isolated behavior is supported");
    static const std::string kLlama3 =
        "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    static const std::string kQwen =
        "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    if (pattern == kLlama3) return std::make_unique<Llama3PreTokenizer>(3);
    if (pattern == kQwen) return std::make_unique<Llama3PreTokenizer>(1);
    throw j.bad(fmt::format("Split pre_tokenizer regex is not one loom knows yet: {}", std::string(pattern)));
  }
  if (type == "Sequence") {
    element ps;
    simdjson::dom::array arr;
    if (o["pretokenizers"].get(ps) || ps.get(arr)) throw j.bad("Sequence pre_tokenizer without \"pretokenizers\"");
    std::vector<std::unique_ptr<PreTokenizer>> parts;
    for (element p : arr) parts.push_back(load_pre_tokenizer(j, j.obj(p, "a pre_tokenizer")));
    return std::make_unique<SequencePreTokenizer>(std::move(parts));
  }
  throw j.bad(fmt::format("pre_tokenizer type \"{}\" is not supported yet (supported: BertPreTokenizer, ByteLevel, Metaspace, Split, Sequence, WhitespaceSplit)", type));
}

}  // namespace

std::unique_ptr<Model> make_bpe(std::vector<std::string> pieces, const std::vector<std::pair<std::string_view, std::string_view>>& merges,
                                BpeConfig cfg, const std::string& file) {
  return std::make_unique<Bpe>(std::move(pieces), merges, cfg, file);
}
std::unique_ptr<Model> make_bpe(std::vector<std::string> pieces, const std::vector<std::pair<std::string, std::string>>& merges,
                                BpeConfig cfg, const std::string& file) {
  std::vector<std::pair<std::string_view, std::string_view>> views(merges.begin(), merges.end());
  return std::make_unique<Bpe>(std::move(pieces), views, cfg, file);
}
std::unique_ptr<PreTokenizer> make_gpt2_pre_tokenizer() { return std::make_unique<Gpt2PreTokenizer>(); }
std::unique_ptr<PreTokenizer> make_llama3_pre_tokenizer(size_t max_digits) { return std::make_unique<Llama3PreTokenizer>(max_digits); }
std::unique_ptr<PreTokenizer> make_sequence_pre_tokenizer(std::vector<std::unique_ptr<PreTokenizer>> parts) {
  return std::make_unique<SequencePreTokenizer>(std::move(parts));
}
std::unique_ptr<Decoder> make_byte_level_decoder() { return std::make_unique<ByteLevelDecoder>(); }
const std::string& byte_level_char(unsigned char byte) { return byte_map().to_char[byte]; }

// ---- Normalized ------------------------------------------------------------------------------

Normalized Normalized::identity(std::string_view original) {
  Normalized n;
  n.text.assign(original);
  n.src_begin.resize(original.size());
  n.src_end.resize(original.size());
  for (size_t i = 0; i < original.size();) {
    size_t b = i;
    text::utf8::next(original, i);
    for (size_t k = b; k < i; ++k) {
      n.src_begin[k] = static_cast<uint32_t>(b);
      n.src_end[k] = static_cast<uint32_t>(i);
    }
  }
  return n;
}

void Normalized::push(char32_t cp, uint32_t b, uint32_t e) {
  char buf[4];
  size_t k = text::utf8::encode(cp, buf);
  text.append(buf, k);
  for (size_t i = 0; i < k; ++i) {
    src_begin.push_back(b);
    src_end.push_back(e);
  }
}

// ---- Tokenizer -------------------------------------------------------------------------------

Tokenizer Tokenizer::from_json_file(const std::string& path) {
  auto in = io::Input::open(path);
  return from_json(io::read_all(*in), path);
}

Tokenizer Tokenizer::load(const std::string& m) {
  namespace fs = std::filesystem;
  std::error_code ec;
  auto file = [&](const fs::path& p) { return fs::is_regular_file(p, ec); };
  auto from_file = [](const fs::path& p) {
    std::string ext = p.extension().string();
    if (ext == ".gguf") return from_gguf_file(p.string());
    if (ext == ".model") return from_sentencepiece_file(p.string());
    return from_json_file(p.string());
  };
  auto from_dir = [&](const fs::path& d) -> std::optional<Tokenizer> {
    if (file(d / "tokenizer.json")) return from_json_file((d / "tokenizer.json").string());
    if (file(d / "tokenizer.model")) return from_sentencepiece_file((d / "tokenizer.model").string());
    if (file(d / "encoder.json") && file(d / "vocab.bpe"))
      return from_gpt2_files((d / "encoder.json").string(), (d / "vocab.bpe").string());
    return std::nullopt;
  };
  if (file(m)) return from_file(m);
  if (fs::is_directory(m, ec)) {
    if (auto t = from_dir(m)) return std::move(*t);
    throw usage_error(fmt::format("{}: the folder holds no tokenizer.json, tokenizer.model, or encoder.json + vocab.bpe", m));
  }
  const fs::path root = model::models_dir();
  if (m.find('/') == std::string::npos && !m.empty()) {
    if (fs::is_directory(root / m, ec))
      if (auto t = from_dir(root / m)) return std::move(*t);
    if (file(root / (m + ".gguf"))) return from_gguf_file((root / (m + ".gguf")).string());
  }
  throw usage_error(fmt::format("no tokenizer for '{}': not a tokenizer file, a folder with one, or a model under {}", m, root.string()));
}

Tokenizer Tokenizer::from_gpt2_files(const std::string& encoder_json, const std::string& vocab_bpe) {
  // encoder.json: {"piece": id, ...} in GPT-2's byte-to-character mapping
  std::string data = io::read_all(*io::Input::open(encoder_json));
  Json j{encoder_json};
  simdjson::dom::parser parser;
  element root;
  simdjson::padded_string padded(data);
  if (auto err = parser.parse(padded).get(root)) throw j.bad(fmt::format("not valid JSON: {}", simdjson::error_message(err)));
  object vocab = j.obj(root, "the file");
  std::vector<std::string> pieces;
  for (auto [key, value] : vocab) {
    int64_t id;
    if (value.get(id) || id < 0 || id > (1 << 24)) throw j.bad(fmt::format("entry \"{}\" has no valid id", std::string(key)));
    if (static_cast<size_t>(id) >= pieces.size()) pieces.resize(static_cast<size_t>(id) + 1);
    pieces[static_cast<size_t>(id)] = std::string(key);
  }
  // vocab.bpe: an optional "#version" line, then one merge "a b" per line, in rank order
  std::string bpe = io::read_all(*io::Input::open(vocab_bpe));
  std::vector<std::pair<std::string_view, std::string_view>> merges;  // views into bpe
  size_t line_no = 0;
  for (size_t i = 0; i < bpe.size();) {
    size_t nl = bpe.find('\n', i);
    if (nl == std::string::npos) nl = bpe.size();
    std::string_view line(bpe.data() + i, nl - i);
    i = nl + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || (line_no == 1 && line.starts_with("#version"))) continue;
    size_t sp = line.find(' ');
    if (sp == 0 || sp == std::string_view::npos || line.find(' ', sp + 1) != std::string_view::npos)
      throw input_error("a merge must be two tokens separated by one space", vocab_bpe, line_no);
    merges.emplace_back(line.substr(0, sp), line.substr(sp + 1));
  }
  Parts p;
  // GPT-2's <|endoftext|> is an ordinary vocabulary entry in encoder.json; as in the Hugging Face
  // conversion it is also a special token, so it is only parsed from text with parse_special.
  for (size_t id = 0; id < pieces.size(); ++id)
    if (pieces[id] == "<|endoftext|>") p.added.push_back({pieces[id], static_cast<TokenId>(id), true});
  p.model = make_bpe(std::move(pieces), merges, BpeConfig{}, vocab_bpe);
  p.pre = make_gpt2_pre_tokenizer();
  p.decoder = make_byte_level_decoder();
  return from_parts(std::move(p));
}

Tokenizer Tokenizer::from_json(std::string_view data, const std::string& name) {
  Json j{name};
  simdjson::dom::parser parser;
  element root;
  simdjson::padded_string padded(data);
  if (auto err = parser.parse(padded).get(root)) throw j.bad(fmt::format("not valid JSON: {}", simdjson::error_message(err)));
  object top = j.obj(root, "the file");
  Parts t;

  // model
  element model_el;
  if (top["model"].get(model_el)) throw j.bad("no \"model\"");
  object model = j.obj(model_el, "\"model\"");
  std::string mtype = j.type(model, "\"model\"");
  if (mtype != "WordPiece" && mtype != "BPE" && mtype != "Unigram")
    throw j.bad(fmt::format("model type \"{}\" is not supported yet (supported: WordPiece, BPE, Unigram)", mtype));
  std::vector<std::string> pieces;
  if (mtype == "Unigram") {
    t.model = load_unigram(j, model);
  } else {
    object vocab;
    element vocab_el;
    if (model["vocab"].get(vocab_el) || vocab_el.get(vocab)) throw j.bad(fmt::format("{} model without a \"vocab\" object", mtype));
    for (auto [key, value] : vocab) {
      int64_t id;
      if (value.get(id) || id < 0 || id > (1 << 24)) throw j.bad(fmt::format("vocab entry \"{}\" has no valid id", std::string(key)));
      if (static_cast<size_t>(id) >= pieces.size()) pieces.resize(static_cast<size_t>(id) + 1);
      pieces[static_cast<size_t>(id)] = std::string(key);
    }
  }
  element e;
  if (mtype == "WordPiece") {
    std::string unk = "[UNK]";
    if (!model["unk_token"].get(e)) unk = j.str(e, "\"unk_token\"");
    std::string prefix = "##";
    if (!model["continuing_subword_prefix"].get(e) && !e.is_null()) prefix = j.str(e, "\"continuing_subword_prefix\"");
    auto unk_it = std::find(pieces.begin(), pieces.end(), unk);
    if (unk_it == pieces.end()) throw j.bad(fmt::format("unk_token \"{}\" is not in the vocab", unk));
    t.model = std::make_unique<WordPiece>(pieces, static_cast<TokenId>(unk_it - pieces.begin()), prefix,
                                           static_cast<size_t>(j.num(model, "max_input_chars_per_word", 100)));
  } else if (mtype == "BPE") {
    std::vector<std::pair<std::string_view, std::string_view>> merges;  // views into the parsed document
    simdjson::dom::array arr;
    if (model["merges"].get(e) || e.get(arr)) throw j.bad("BPE model without \"merges\"");
    merges.reserve(arr.size());
    for (element m : arr) {
      std::string_view sv;
      simdjson::dom::array pair;
      if (!m.get(sv)) {  // "a b"
        size_t sp = sv.find(' ', 1);
        if (sp == std::string_view::npos) throw j.bad(fmt::format("merge \"{}\" is not two tokens", std::string(sv)));
        merges.emplace_back(sv.substr(0, sp), sv.substr(sp + 1));
      } else if (std::string_view a, b; !m.get(pair) && pair.size() == 2 && !pair.at(0).get(a) && !pair.at(1).get(b)) {  // ["a", "b"]
        merges.emplace_back(a, b);
      } else {
        throw j.bad("a merge must be \"a b\" or [\"a\", \"b\"]");
      }
    }
    BpeConfig cfg;
    cfg.byte_fallback = j.flag(model, "byte_fallback", false);
    cfg.byte_level = !cfg.byte_fallback;  // byte fallback means SentencePiece-style characters
    cfg.ignore_merges = j.flag(model, "ignore_merges", false);
    cfg.fuse_unk = j.flag(model, "fuse_unk", false);
    if (!model["unk_token"].get(e) && !e.is_null()) {
      std::string unk = j.str(e, "\"unk_token\"");
      auto it = std::find(pieces.begin(), pieces.end(), unk);
      if (it == pieces.end()) throw j.bad(fmt::format("unk_token \"{}\" is not in the vocab", unk));
      cfg.unk = static_cast<TokenId>(it - pieces.begin());
    }
    t.model = std::make_unique<Bpe>(std::move(pieces), merges, cfg, name);
  }

  // normalizer
  if (!top["normalizer"].get(e) && !e.is_null()) {
    object o = j.obj(e, "\"normalizer\"");
    t.normalizer = load_normalizer(j, o);
  }
  // pre-tokenizer
  if (!top["pre_tokenizer"].get(e) && !e.is_null()) {
    object o = j.obj(e, "\"pre_tokenizer\"");
    t.pre = load_pre_tokenizer(j, o);
    t.normalizer = load_metaspace_rewrite(j, o, std::move(t.normalizer));  // Metaspace also rewrites the text
  }
  // added tokens
  element added;
  if (!top["added_tokens"].get(added) && !added.is_null()) {
    simdjson::dom::array arr;
    if (added.get(arr)) throw j.bad("\"added_tokens\" must be an array");
    for (element a : arr) {
      object o = j.obj(a, "an added token");
      element c;
      if (o["content"].get(c)) throw j.bad("an added token has no \"content\"");
      AddedToken tok{j.str(c, "\"content\""), static_cast<TokenId>(j.num(o, "id", -1)), j.flag(o, "special", false)};
      if (tok.id < 0 || tok.content.empty()) throw j.bad(fmt::format("added token \"{}\" has no valid id", tok.content));
      t.added.push_back(std::move(tok));
    }
  }
  // post-processor: template for a single sequence
  if (!top["post_processor"].get(e) && !e.is_null()) {
    object o = j.obj(e, "\"post_processor\"");
    std::string type = j.type(o, "\"post_processor\"");
    if (type != "TemplateProcessing" && type != "ByteLevel")
      throw j.bad(fmt::format("post_processor type \"{}\" is not supported yet (supported: TemplateProcessing, ByteLevel)", type));
    if (type == "TemplateProcessing") {  // (ByteLevel adds no tokens: it only trims offsets)
      simdjson::dom::array single;
      element s_el;
      if (o["single"].get(s_el) || s_el.get(single)) throw j.bad("TemplateProcessing without \"single\"");
      object specials;
      element sp_el;
      if (o["special_tokens"].get(sp_el) || sp_el.get(specials)) throw j.bad("TemplateProcessing without \"special_tokens\"");
      bool after = false;
      for (element piece : single) {
        object po = j.obj(piece, "a template piece");
        element x;
        if (!po["Sequence"].get(x)) {
          after = true;
          continue;
        }
        if (po["SpecialToken"].get(x)) throw j.bad("a template piece is neither Sequence nor SpecialToken");
        element idel;
        if (x["id"].get(idel)) throw j.bad("a template SpecialToken has no id");
        std::string name = j.str(idel, "a template token id");
        element def, ids;
        if (specials[name].get(def) || def["ids"].get(ids)) throw j.bad(fmt::format("template token \"{}\" is not in special_tokens", name));
        simdjson::dom::array id_arr;
        if (ids.get(id_arr)) throw j.bad(fmt::format("special token \"{}\" has no ids", name));
        for (element v : id_arr) {
          int64_t id;
          if (v.get(id)) throw j.bad(fmt::format("special token \"{}\" has a bad id", name));
          (after ? t.suffix : t.prefix).push_back(static_cast<TokenId>(id));
        }
      }
    }
  }
  // decoder
  if (!top["decoder"].get(e) && !e.is_null()) {
    object o = j.obj(e, "\"decoder\"");
    t.decoder = load_decoder(j, o);
  }
  return from_parts(std::move(t));
}

Tokenizer Tokenizer::from_parts(Parts p) {
  if (!p.model) throw std::logic_error("Tokenizer::from_parts without a model");
  Tokenizer t;
  t.normalizer_ = std::move(p.normalizer);
  t.pre_ = std::move(p.pre);
  t.model_ = std::move(p.model);
  t.decoder_ = std::move(p.decoder);
  t.added_ = std::move(p.added);
  t.prefix_ = std::move(p.prefix);
  t.suffix_ = std::move(p.suffix);
  // longest added tokens first, so the longest match wins
  std::stable_sort(t.added_.begin(), t.added_.end(), [](const Added& a, const Added& b) { return a.content.size() > b.content.size(); });
  t.added_by_id_.clear();
  for (size_t i = 0; i < t.added_.size(); ++i) {
    t.added_by_id_[t.added_[i].id] = i;
    int32_t node = 0;
    t.trie_first_[static_cast<unsigned char>(t.added_[i].content[0])] = true;
    for (unsigned char c : t.added_[i].content) {
      int32_t fresh = static_cast<int32_t>(t.trie_end_.size());
      node = t.trie_.emplace((static_cast<uint64_t>(node) << 8) | c, fresh);
      if (node == fresh) t.trie_end_.push_back(-1);
    }
    if (t.trie_end_[static_cast<size_t>(node)] < 0) t.trie_end_[static_cast<size_t>(node)] = static_cast<int32_t>(i);
  }
  return t;
}

void Tokenizer::encode_text(std::string_view text, size_t base, Encoding& out) const {
  if (text.empty()) return;
  thread_local Normalized plain;  // without a normalizer: the text itself, aligned to itself
  thread_local std::vector<Span> words, spans;
  const Normalized* n = &plain;
  Normalized normalized;
  if (normalizer_) {
    normalized = normalizer_->normalize_at(text, base);
    n = &normalized;
  } else {
    plain.text.assign(text);
  }
  words.clear();
  spans.clear();
  if (pre_)
    pre_->split(*n, {0, n->text.size()}, words);
  else if (!n->text.empty())
    words.push_back({0, n->text.size()});
  for (const Span& w : words) model_->encode_word(n->text, w, out.ids, spans);
  out.offsets.reserve(out.ids.size());
  if (normalizer_) {
    for (const Span& s : spans) out.offsets.push_back({base + n->src_begin[s.b], base + n->src_end[s.e - 1]});
  } else {
    // a token may end inside a character (byte-level BPE): widen to whole characters
    for (Span s : spans) {
      while (s.b > 0 && text::utf8::is_continuation(static_cast<unsigned char>(text[s.b]))) --s.b;
      while (s.e < text.size() && text::utf8::is_continuation(static_cast<unsigned char>(text[s.e]))) ++s.e;
      out.offsets.push_back({base + s.b, base + s.e});
    }
  }
}

Encoding Tokenizer::encode(std::string_view text, const EncodeOptions& opt) const {
  Encoding out;
  out.ids.reserve(text.size() / 3 + 8);
  if (opt.add_special)
    for (TokenId id : prefix_) {
      out.ids.push_back(id);
      out.offsets.push_back({0, 0});
    }
  // Added tokens are cut out of the text first (leftmost, then longest): always the ordinary
  // ones, the special ones only with parse_special.
  size_t start = 0;
  if (!added_.empty()) {
    for (size_t i = 0; i < text.size();) {
      if (!trie_first_[static_cast<unsigned char>(text[i])]) {
        ++i;
        continue;
      }
      // walk the trie of added tokens from i; keep the longest token allowed here
      const Added* hit = nullptr;
      int32_t node = 0;
      for (size_t k = i; k < text.size(); ++k) {
        node = trie_.find((static_cast<uint64_t>(node) << 8) | static_cast<unsigned char>(text[k]));
        if (node < 0) break;
        int32_t a = trie_end_[static_cast<size_t>(node)];
        if (a >= 0 && (!added_[static_cast<size_t>(a)].special || opt.parse_special)) hit = &added_[static_cast<size_t>(a)];
      }
      if (!hit) {
        ++i;
        continue;
      }
      encode_text(text.substr(start, i - start), start, out);
      out.ids.push_back(hit->id);
      out.offsets.push_back({i, i + hit->content.size()});
      i += hit->content.size();
      start = i;
    }
  }
  encode_text(text.substr(start), start, out);
  if (opt.add_special)
    for (TokenId id : suffix_) {
      out.ids.push_back(id);
      out.offsets.push_back({0, 0});
    }
  return out;
}

size_t Tokenizer::vocab_size() const {
  size_t n = model_->vocab_size();
  for (const Added& a : added_) n = std::max(n, static_cast<size_t>(a.id) + 1);
  return n;
}

std::string_view Tokenizer::piece(TokenId id) const {
  if (auto it = added_by_id_.find(id); it != added_by_id_.end()) return added_[it->second].content;
  if (id < 0 || static_cast<size_t>(id) >= model_->vocab_size())
    throw input_error(fmt::format("token id {} is out of range (vocabulary of {})", id, vocab_size()));
  return model_->piece(id);
}

std::string Tokenizer::decode(const std::vector<TokenId>& ids, bool skip_special) const {
  std::vector<std::string> pieces;
  for (TokenId id : ids) {
    if (auto it = added_by_id_.find(id); it != added_by_id_.end() && skip_special && added_[it->second].special) continue;
    pieces.emplace_back(piece(id));
  }
  if (decoder_) return decoder_->decode(pieces);
  std::string out;
  for (auto& p : pieces) out += p;
  return out;
}

}  // namespace loom::tok
