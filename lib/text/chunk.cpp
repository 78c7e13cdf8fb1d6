#include "loom/text/chunk.h"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstring>
#include <stdexcept>

#include "loom/text/utf8.h"

namespace loom::text {

namespace {

constexpr size_t npos = std::string_view::npos;

struct Span {
  size_t b, e;
};

// A piece of the text as a separator cut it, with its length (code points, or params.length).
struct Piece {
  size_t b, e, len;
};

// A separator of the recursive splitter.
struct Sep {
  enum Kind { Literal, SentenceEnd, Chars } kind;
  std::string lit;
};

std::vector<Sep> make_separators(const std::vector<std::string>& user) {
  std::vector<Sep> seps;
  if (user.empty()) {
    seps = {{Sep::Literal, "\n\n"}, {Sep::Literal, "\n"}, {Sep::SentenceEnd, ""}, {Sep::Literal, " "}, {Sep::Chars, ""}};
  } else {
    for (const auto& s : user) seps.push_back(s.empty() ? Sep{Sep::Chars, ""} : Sep{Sep::Literal, s});
  }
  return seps;
}

bool is_terminal(uint32_t cp) { return cp == '.' || cp == '!' || cp == '?'; }

// The recursive splitter: LangChain's RecursiveCharacterTextSplitter (_split_text, _merge_splits,
// _join_docs with keep_separator="end" and strip_whitespace=True) over byte offsets of one text.
// Nothing is copied: pieces and chunks are [b, e) ranges, kept in per-depth scratch vectors.
//
// `protect` (sorted, disjoint) are ranges no cut may fall strictly inside (markdown fences): a
// separator match ending inside one is skipped, and in character mode the range is one piece.
class Recursive {
 public:
  Recursive(std::string_view text, const ChunkParams& p, std::vector<Sep> seps, std::vector<Span> protect = {})
      : t_(text), p_(p), seps_(std::move(seps)), protect_(std::move(protect)), scratch_(seps_.size() + 2) {
    if (!p_.length) index_code_points();
  }

  size_t len(size_t b, size_t e) const {
    if (p_.length) return p_.length(t_.substr(b, e - b));
    if (ascii_ || b == e || ascii_range(b, e)) return e - b;
    return utf8::count(t_.substr(b, e - b));
  }

  // _split_text on [b, e): cut with the first separator (index `from` on) that occurs in it, then
  // process() the pieces. `depth` picks the scratch vector (one per recursion level).
  void split(size_t b, size_t e, size_t from, std::vector<Span>& out, size_t depth = 1) {
    size_t chosen = seps_.size() - 1, next = seps_.size();
    Span first{e, e};  // the chosen separator's first match; {e, e}: none
    for (size_t i = from; i < seps_.size(); ++i) {
      if (seps_[i].kind == Sep::Chars) {
        chosen = i;
        break;
      }
      if (find(seps_[i], b, e, first)) {
        chosen = i;
        next = i + 1;
        break;
      }
    }
    std::vector<Piece>& pieces = scratch_[depth];
    pieces.clear();
    pieces_of(seps_[chosen], b, e, first, pieces);
    process(pieces, next, out, depth);
  }

  // The second half of _split_text: runs of pieces shorter than size are merged; a piece of size
  // or more is split again with the separators from `next` on, or kept whole when there are none.
  void process(const std::vector<Piece>& pieces, size_t next, std::vector<Span>& out, size_t depth = 0) {
    size_t g = 0;  // first piece of the current run of short ones
    for (size_t i = 0; i < pieces.size(); ++i) {
      if (pieces[i].len < p_.size) continue;
      if (g < i) merge(&pieces[g], i - g, out);
      const Piece s = pieces[i];
      if (next >= seps_.size())
        out.push_back({s.b, s.e});  // nothing finer to split with: kept as it is, untrimmed
      else
        split(s.b, s.e, next, out, depth + 1);
      g = i + 1;
    }
    if (g < pieces.size()) merge(&pieces[g], pieces.size() - g, out);
  }

  // _merge_splits with an empty joiner (separators stay attached to their pieces): consecutive
  // pieces up to size; after each chunk, pieces are dropped from the front until what is kept is
  // at most overlap and leaves room for the next piece.
  void merge(const Piece* s, size_t n, std::vector<Span>& out) const {
    size_t lo = 0, total = 0;
    for (size_t i = 0; i < n; ++i) {
      if (total + s[i].len > p_.size && i > lo) {
        emit(s[lo].b, s[i - 1].e, out);
        while (lo < i && (total > p_.overlap || (total + s[i].len > p_.size && total > 0))) {
          total -= s[lo].len;
          ++lo;
        }
      }
      total += s[i].len;
    }
    if (lo < n) emit(s[lo].b, s[n - 1].e, out);
  }

  // _join_docs: appends [b, e) trimmed of whitespace (str.strip()), unless nothing is left.
  void emit(size_t b, size_t e, std::vector<Span>& out) const {
    utf8::Range r = utf8::strip(t_, b, e);
    if (r.begin < r.end) out.push_back({r.begin, r.end});
  }

 private:
  // The protected range x lies strictly inside, if any.
  const Span* inside(size_t x) const {
    auto it = std::upper_bound(protect_.begin(), protect_.end(), x, [](size_t v, const Span& s) { return v < s.e; });
    if (it != protect_.end() && it->b < x && x < it->e) return &*it;
    return nullptr;
  }

  // ---- lengths in code points ----------------------------------------------------------
  // Most text is ASCII, where code points = bytes. The text is indexed once: one bit per 64-byte
  // block that holds a non-ASCII byte. A piece over ASCII blocks only is measured in bytes;
  // others are counted.
  void index_code_points() {
    const auto* p = reinterpret_cast<const unsigned char*>(t_.data());
    const size_t n = t_.size(), blocks = (n + 63) / 64;
    wide_.assign((blocks + 63) / 64, 0);
    bool any = false;
    for (size_t k = 0; k < blocks; ++k) {
      unsigned char high = 0;
      if (64 * k + 64 <= n) {
        for (size_t i = 0; i < 64; ++i) high |= p[64 * k + i];
      } else {
        for (size_t i = 64 * k; i < n; ++i) high |= p[i];
      }
      if (high >= 0x80) {
        wide_[k / 64] |= uint64_t{1} << (k % 64);
        any = true;
      }
    }
    ascii_ = !any;
  }

  // Whether [b, e) (non-empty) lies in blocks without non-ASCII bytes.
  bool ascii_range(size_t b, size_t e) const {
    size_t kb = b / 64, ke = (e - 1) / 64;  // first and last block
    for (size_t w = kb / 64; w <= ke / 64; ++w) {
      uint64_t bits = wide_[w];
      if (w == kb / 64) bits &= ~uint64_t{0} << (kb % 64);
      if (w == ke / 64 && ke % 64 != 63) bits &= (uint64_t{1} << (ke % 64 + 1)) - 1;
      if (bits) return false;
    }
    return true;
  }

  // ---- separator search -------------------------------------------------------------------
  // First occurrence of lit in [from, e), or npos. Separators of two bytes or more ("\n\n")
  // are looked for 16 positions at a time (both leading bytes compared at once, with GCC/Clang
  // vector extensions: SSE2, NEON or better); one-byte separators with memchr.
  size_t find_literal(std::string_view lit, size_t from, size_t e) const {
    const size_t n = lit.size();
    if (from > e || e - from < n) return npos;
    const char* base = t_.data();
    const size_t last = e - n;  // the last position a match can start at
    if (n >= 2) {
      constexpr size_t kLanes = 16;  // (32 with AVX2 measured no faster)
      using vec = unsigned char __attribute__((vector_size(kLanes)));
      const vec c0 = vec{} + static_cast<unsigned char>(lit[0]);
      const vec c1 = vec{} + static_cast<unsigned char>(lit[1]);
      for (; from + kLanes <= last; from += kLanes) {  // positions from.., bytes up to from+kLanes
        vec a, b;
        std::memcpy(&a, base + from, kLanes);
        std::memcpy(&b, base + from + 1, kLanes);
        const vec m = (a == c0) & (b == c1);
        uint64_t any[kLanes / 8], bits = 0;
        std::memcpy(any, &m, kLanes);
        for (uint64_t w : any) bits |= w;
        if (bits == 0) continue;
        for (size_t k = 0; k < kLanes; ++k) {
          if (!m[k]) continue;
          size_t j = 2;
          while (j < n && base[from + k + j] == lit[j]) ++j;
          if (j == n) return from + k;
        }
      }
    }
    while (from <= last) {
      const void* q = std::memchr(base + from, lit[0], last + 1 - from);
      if (!q) return npos;
      size_t at = static_cast<size_t>(static_cast<const char*>(q) - base);
      size_t k = 1;
      while (k < n && base[at + k] == lit[k]) ++k;
      if (k == n) return at;
      from = at + 1;
    }
    return npos;
  }

  // Length of the run of whitespace (Python's \s) starting at i, in bytes, up to e.
  size_t space_run(size_t i, size_t e) const {
    size_t j = i;
    while (j < e) {
      unsigned char c = static_cast<unsigned char>(t_[j]);
      if (c < 0x80) {
        if (!utf8::is_space(c)) break;
        ++j;
      } else {
        if (c != 0xC2 && (c < 0xE1 || c > 0xE3)) break;  // no space starts with another byte
        size_t k = j;
        if (!utf8::is_space(utf8::next(t_, k)) || k > e) break;
        j = k;
      }
    }
    return j - i;
  }

  // First match in [from, e) of the regex [.!?]\s+ (greedy, as Python's re finds it).
  bool find_sentence_end(size_t from, size_t e, Span& m) const {
    const char* base = t_.data();
    using vec = unsigned char __attribute__((vector_size(16)));
    const vec dot = vec{} + '.', bang = vec{} + '!', qm = vec{} + '?';
    for (size_t k = from; k < e; ++k) {
      while (k + 16 <= e) {  // skip 16 bytes at a time while none is terminal punctuation
        vec a;
        std::memcpy(&a, base + k, 16);
        const vec hit = (a == dot) | (a == bang) | (a == qm);
        uint64_t w[2];
        std::memcpy(w, &hit, 16);
        if (w[0] | w[1]) {
          k += w[0] ? static_cast<size_t>(__builtin_ctzll(w[0])) / 8 : 8 + static_cast<size_t>(__builtin_ctzll(w[1])) / 8;
          break;
        }
        k += 16;
      }
      if (k >= e) break;
      char c = base[k];
      if (c != '.' && c != '!' && c != '?') continue;
      size_t w = space_run(k + 1, e);
      if (w > 0) {
        m = {k, k + 1 + w};
        return true;
      }
    }
    return false;
  }

  // First match of sep in [from, e) whose end is not strictly inside a protected range.
  bool find(const Sep& sep, size_t from, size_t e, Span& m) const {
    while (from < e) {
      if (sep.kind == Sep::Literal) {
        size_t at = find_literal(sep.lit, from, e);
        if (at == npos) return false;
        m = {at, at + sep.lit.size()};
      } else if (!find_sentence_end(from, e, m)) {
        return false;
      }
      if (protect_.empty()) return true;
      const Span* p = inside(m.e);
      if (!p) return true;
      // the cut would fall inside a protected range: look for a match ending at or after its end
      from = m.b + 1;
      if (sep.kind == Sep::Literal && p->e >= sep.lit.size()) from = std::max(from, p->e - sep.lit.size());
    }
    return false;
  }

  // _split_text_with_regex with keep_separator="end": each piece runs up to the end of a match
  // (the text after the last match is the last piece); `first` is the first match, if any. The
  // "" separator gives one piece per code point (a protected range stays one piece).
  void pieces_of(const Sep& sep, size_t b, size_t e, Span first, std::vector<Piece>& out) const {
    if (sep.kind == Sep::Chars) {
      size_t i = b;
      while (i < e) {
        size_t j = std::min(e, i + utf8::sequence_length(static_cast<unsigned char>(t_[i])));
        bool whole = false;
        if (!protect_.empty())
          if (const Span* p = inside(j)) j = std::min(p->e, e), whole = true;
        out.push_back({i, j, p_.length || whole ? len(i, j) : 1});
        i = j;
      }
      return;
    }
    size_t pos = b;
    Span m = first;
    while (m.b < e) {
      out.push_back({pos, m.e, len(pos, m.e)});
      pos = m.e;
      if (!find(sep, pos, e, m)) break;
    }
    if (pos < e) out.push_back({pos, e, len(pos, e)});
  }

  std::string_view t_;
  const ChunkParams& p_;
  std::vector<Sep> seps_;
  std::vector<Span> protect_;                // sorted, disjoint
  std::vector<std::vector<Piece>> scratch_;  // pieces per recursion depth (depth <= seps + 1)
  bool ascii_ = false;                       // the text is all ASCII (and no length function)
  std::vector<uint64_t> wide_;               // bit k: 64-byte block k holds a non-ASCII byte
};

// ---- sentences -------------------------------------------------------------------------------

bool is_closer(uint32_t cp) {
  return cp == '"' || cp == '\'' || cp == ')' || cp == ']' || cp == 0x201D || cp == 0x2019 || cp == 0xBB;
}

bool is_cjk_terminal(uint32_t cp) { return cp == 0x3002 || cp == 0xFF01 || cp == 0xFF1F; }

// Whether a period at byte p (followed by whitespace up to ws_end) ends a sentence.
bool period_ends_sentence(std::string_view t, size_t start, size_t p, size_t ws_end) {
  // the word before the period: letters and inner periods ("e.g", "Dr", "J")
  size_t w = p;
  while (w > start && (std::isalpha(static_cast<unsigned char>(t[w - 1])) || t[w - 1] == '.')) --w;
  std::string word(t.substr(w, p - w));
  for (auto& c : word) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  static const char* const kAbbrev[] = {"e.g", "i.e", "dr", "mr", "mrs", "ms", "prof", "st", "jr", "sr", "vs",
                                        "etc", "fig", "no", "cf", "approx", "inc", "ltd", "co", "mt", "gen", "sen", "rep"};
  if (word.size() == 1 && std::isupper(static_cast<unsigned char>(t[w]))) return false;  // an initial
  for (const char* a : kAbbrev)
    if (word == a) {
      // "etc." and "Inc." end sentences too: only when the next word starts in upper case
      if (word == "etc" || word == "inc" || word == "ltd" || word == "co")
        return ws_end < t.size() && std::isupper(static_cast<unsigned char>(t[ws_end]));
      return false;
    }
  // "... e.g. the" style: a lowercase word after the period continues the sentence
  if (ws_end < t.size() && std::islower(static_cast<unsigned char>(t[ws_end]))) return false;
  return true;
}

// Contiguous sentence spans covering [b, e); each sentence keeps its trailing whitespace.
std::vector<Span> sentences(std::string_view t, size_t b, size_t e) {
  std::vector<Span> out;
  size_t start = b, i = b;
  auto skip_space = [&](size_t k, bool* newline) {
    while (k < e) {
      size_t n = k;
      uint32_t c = utf8::next(t, n);
      if (!utf8::is_space(c)) break;
      if (c == '\n' && newline) *newline = true;
      k = n;
    }
    return k;
  };
  while (i < e) {
    size_t j = i;
    uint32_t cp = utf8::next(t, j);
    bool cjk = is_cjk_terminal(cp);
    if (is_terminal(cp) || cp == 0x2026 || cjk) {
      size_t k = j;
      while (k < e) {  // "?!", "...", closing quotes and brackets
        size_t n = k;
        uint32_t c = utf8::next(t, n);
        if (!(is_terminal(c) || c == 0x2026 || is_cjk_terminal(c) || is_closer(c))) break;
        k = n;
      }
      size_t ws = skip_space(k, nullptr);
      bool ends = (ws > k || ws == e || cjk) && !(cp == '.' && k == j && !period_ends_sentence(t, start, i, ws));
      if (ends) {
        out.push_back({start, ws});
        start = i = ws;
        continue;
      }
      i = k;
      continue;
    }
    if (cp == '\n') {  // a blank line ends a sentence
      bool newline = false;
      size_t ws = skip_space(j, &newline);
      if (newline) {
        out.push_back({start, ws});
        start = i = ws;
        continue;
      }
    }
    i = j;
  }
  if (start < e) out.push_back({start, e});
  return out;
}

// ---- markdown --------------------------------------------------------------------------------

// A link or image at s[i] == '[': "[text](destination)" or "[text][label]". Returns the offsets
// of the closing ']' and of the end of the destination or label, or {0, 0} when it is not one.
std::pair<size_t, size_t> link_at(std::string_view s, size_t i) {
  auto matching = [&](size_t from, char open, char close) -> size_t {
    int depth = 0;
    for (size_t k = from; k < s.size(); ++k) {
      if (s[k] == '\\') {
        ++k;
      } else if (s[k] == open) {
        ++depth;
      } else if (s[k] == close && --depth == 0) {
        return k;
      }
    }
    return npos;
  };
  size_t close = matching(i, '[', ']');
  if (close == npos || close + 1 >= s.size()) return {0, 0};
  char next = s[close + 1];
  if (next != '(' && next != '[') return {0, 0};
  size_t end = matching(close + 1, next, next == '(' ? ')' : ']');
  if (end == npos) return {0, 0};
  return {close, end + 1};
}

// Heading text without inline markup: `code` keeps its content, *emphasis* and _emphasis_
// markers go (an underscore inside a word stays: snake_case), [links](url) and ![images](url)
// keep their text, <tags> go (an autolink <https://x> keeps its address), backslash escapes
// give the character. Trimmed, inner runs of spaces and tabs collapsed to one space.
std::string clean_title(std::string_view s) {
  std::string out;
  std::vector<std::pair<size_t, size_t>> skips;  // link destinations still to leave out, innermost last
  auto word = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || static_cast<unsigned char>(c) >= 0x80; };
  for (size_t i = 0; i < s.size(); ++i) {
    if (!skips.empty() && i == skips.back().first) {
      i = skips.back().second - 1;
      skips.pop_back();
      continue;
    }
    char c = s[i];
    if (c == '\\' && i + 1 < s.size() && std::ispunct(static_cast<unsigned char>(s[i + 1]))) {
      out += s[++i];
      continue;
    }
    if (c == '`') {
      size_t n = 0;
      while (i + n < s.size() && s[i + n] == '`') ++n;
      size_t close = i + n;  // a closing run of exactly n backticks
      while ((close = s.find(std::string(n, '`'), close)) != npos && close + n < s.size() && s[close + n] == '`') {
        while (close < s.size() && s[close] == '`') ++close;
      }
      if (close == npos) {
        out.append(n, '`');
      } else {
        out += s.substr(i + n, close - i - n);
        n = close + n - i;
      }
      i += n - 1;
      continue;
    }
    if (c == '*') continue;
    if (c == '_' && !(i > 0 && i + 1 < s.size() && word(s[i - 1]) && word(s[i + 1]))) continue;
    if (c == '!' && i + 1 < s.size() && s[i + 1] == '[' && link_at(s, i + 1).second) continue;
    if (c == '[') {
      auto [close, end] = link_at(s, i);
      if (end) {
        skips.push_back({close, end});
        continue;
      }
    }
    if (c == '<' && i + 1 < s.size() && (std::isalpha(static_cast<unsigned char>(s[i + 1])) || s[i + 1] == '/')) {
      size_t close = s.find('>', i);
      if (close != npos) {
        std::string_view inner = s.substr(i + 1, close - i - 1);
        if (inner.find(':') != npos && inner.find_first_of(" \t") == npos) out += inner;  // autolink
        i = close;
        continue;
      }
    }
    out += c;
  }
  std::string t;  // trimmed, whitespace runs collapsed
  for (char c : out) {
    bool space = c == ' ' || c == '\t';
    if (space && (t.empty() || t.back() == ' ')) continue;
    t += space ? ' ' : c;
  }
  if (!t.empty() && t.back() == ' ') t.pop_back();
  return t;
}

// A thematic break ("---", "* * *", "___"): three or more of one of - * _, spaces between.
bool thematic_break(std::string_view body) {
  if (body.empty() || (body[0] != '-' && body[0] != '*' && body[0] != '_')) return false;
  size_t n = 0;
  for (char c : body) {
    if (c == body[0]) ++n;
    else if (c != ' ' && c != '\t') return false;
  }
  return n >= 3;
}

// A line that opens a list item ("- x", "* x", "+ x", "1. x", "2) x") or a block quote ("> x").
// Inside a paragraph only those that may interrupt one count: an ordered item must start at 1.
bool list_or_quote(std::string_view body, bool in_paragraph) {
  if (body.empty()) return false;
  if (body[0] == '>') return true;
  size_t k = 0;
  if (body[0] == '-' || body[0] == '*' || body[0] == '+') {
    k = 1;
  } else {
    while (k < body.size() && k < 9 && std::isdigit(static_cast<unsigned char>(body[k]))) ++k;
    if (k == 0 || k >= body.size() || (body[k] != '.' && body[k] != ')')) return false;
    if (in_paragraph && body.substr(0, k) != "1") return false;
    ++k;
  }
  return k == body.size() || body[k] == ' ' || body[k] == '\t';
}

// Where the text after a YAML front matter block starts ("---" on the first line, up to a line
// "---" or "..."), or 0 when there is none.
size_t front_matter_end(std::string_view t) {
  auto line_at = [&](size_t ls, size_t* next) {
    size_t nl = t.find('\n', ls);
    *next = nl == npos ? t.size() : nl + 1;
    std::string_view line = t.substr(ls, (nl == npos ? t.size() : nl) - ls);
    size_t z = line.find_last_not_of(" \t\r");
    return z == npos ? std::string_view() : line.substr(0, z + 1);
  };
  size_t ls;
  if (line_at(0, &ls) != "---") return 0;
  while (ls < t.size()) {
    size_t next;
    std::string_view line = line_at(ls, &next);
    if (line == "---" || line == "...") return next;
    ls = next;
  }
  return 0;
}

// Scans markdown for headings and fenced code blocks, in one pass over the lines. A subset of
// CommonMark's block rules: enough to tell headings from text that looks like one (lines inside
// fences, "# x" indented four spaces, "---" under a list item, front matter).
void scan_markdown(std::string_view t, std::vector<Heading>* headings, std::vector<Span>* fences) {
  bool in_fence = false;
  char fence_char = 0;
  size_t fence_len = 0, fence_start = 0;
  bool para = false;       // inside a paragraph (a setext underline may follow)
  bool para_plain = false;  // ... that is not in a list item or block quote
  size_t para_start = 0;
  std::string para_text;
  size_t ls = front_matter_end(t);
  while (ls < t.size()) {
    size_t nl = t.find('\n', ls);
    size_t le = nl == std::string_view::npos ? t.size() : nl;
    size_t next = nl == std::string_view::npos ? t.size() : nl + 1;
    std::string_view line = t.substr(ls, le - ls);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    size_t ind = 0;
    while (ind < line.size() && ind < 4 && line[ind] == ' ') ++ind;
    std::string_view body = line.substr(ind);
    bool blank = line.find_first_not_of(" \t") == std::string_view::npos;

    auto run_of = [](std::string_view s, char c) {
      size_t n = 0;
      while (n < s.size() && s[n] == c) ++n;
      return n;
    };
    if (in_fence) {
      size_t n = run_of(body, fence_char);
      if (ind < 4 && n >= fence_len && body.substr(n).find_first_not_of(" \t") == std::string_view::npos) {
        in_fence = false;
        if (fences) fences->push_back({fence_start, next});
      }
      ls = next;
      continue;
    }
    if (ind < 4 && !body.empty() && (body[0] == '`' || body[0] == '~')) {
      size_t n = run_of(body, body[0]);
      if (n >= 3 && !(body[0] == '`' && body.substr(n).find('`') != std::string_view::npos)) {
        in_fence = true;
        fence_char = body[0];
        fence_len = n;
        fence_start = ls;
        para = false;
        ls = next;
        continue;
      }
    }
    if (ind < 4 && !body.empty() && body[0] == '#') {
      size_t n = run_of(body, '#');
      if (n <= 6 && (n == body.size() || body[n] == ' ' || body[n] == '\t')) {
        std::string_view title = body.substr(n);
        size_t z = title.find_last_not_of(" \t");
        title = z == std::string_view::npos ? std::string_view() : title.substr(0, z + 1);
        size_t h = title.size();
        while (h > 0 && title[h - 1] == '#') --h;
        if (h == 0 || title[h - 1] == ' ' || title[h - 1] == '\t') title = title.substr(0, h);
        if (headings) headings->push_back({ls, static_cast<int>(n), clean_title(title)});
        para = false;
        ls = next;
        continue;
      }
    }
    if (para && para_plain && ind < 4 && !body.empty() && (body[0] == '=' || body[0] == '-')) {
      size_t n = run_of(body, body[0]);
      if (body.substr(n).find_first_not_of(" \t") == std::string_view::npos) {
        if (headings) headings->push_back({para_start, body[0] == '=' ? 1 : 2, clean_title(para_text)});
        para = false;
        ls = next;
        continue;
      }
    }
    if (ind < 4 && thematic_break(body)) {
      para = false;
      ls = next;
      continue;
    }
    bool indented = ind >= 4 || (!line.empty() && line[0] == '\t');
    if (blank) {
      para = false;
    } else if (!para && indented) {
      // indented code: no paragraph, so no setext heading
    } else if (!para || (!indented && list_or_quote(body, true))) {
      para_plain = !list_or_quote(body, para);
      para = true;
      para_start = ls;
      para_text = std::string(line.substr(line.find_first_not_of(" \t")));
    } else {
      para_text += ' ';
      para_text += line.substr(line.find_first_not_of(" \t"));
    }
    ls = next;
  }
  if (in_fence && fences) fences->push_back({fence_start, t.size()});
}

// ---- fixed windows ---------------------------------------------------------------------------

void fixed_windows(std::string_view t, const ChunkParams& p, std::vector<Span>& out) {
  size_t step = p.size - p.overlap;
  size_t b = 0;
  auto only_space = [&](size_t x, size_t y) {
    while (x < y) {
      if (!utf8::is_space(utf8::next(t, x))) return false;
    }
    return true;
  };
  while (b < t.size()) {
    size_t e = utf8::advance(t, b, p.size);
    if (!only_space(b, e)) out.push_back({b, e});
    if (e >= t.size()) break;
    b = utf8::advance(t, b, step);
  }
}

void assign_sections(std::vector<Chunk>& chunks, const std::vector<Heading>& headings) {
  std::vector<const Heading*> stack;
  size_t h = 0;
  std::string path;
  for (Chunk& c : chunks) {
    bool changed = false;
    while (h < headings.size() && headings[h].offset <= c.start) {
      while (!stack.empty() && stack.back()->level >= headings[h].level) stack.pop_back();
      stack.push_back(&headings[h]);
      ++h;
      changed = true;
    }
    if (changed) {
      path.clear();
      for (const Heading* s : stack) {
        if (!path.empty()) path += " > ";
        path += s->title;
      }
    }
    c.section = path;
  }
}

}  // namespace

std::vector<Heading> markdown_headings(std::string_view text) {
  std::vector<Heading> out;
  scan_markdown(text, &out, nullptr);
  return out;
}

std::vector<Chunk> chunk_text(std::string_view text, const ChunkParams& p, const std::vector<Heading>& given) {
  if (p.size == 0) throw std::invalid_argument("chunk size must be at least 1");
  if (p.overlap >= p.size) throw std::invalid_argument("chunk overlap must be smaller than the size");
  std::vector<Span> spans;
  std::vector<Heading> found;
  const std::vector<Heading>* headings = &given;

  switch (p.strategy) {
    case ChunkStrategy::Recursive: {
      Recursive r(text, p, make_separators(p.separators));
      if (!text.empty()) r.split(0, text.size(), 0, spans);
      break;
    }
    case ChunkStrategy::Fixed:
      fixed_windows(text, p, spans);
      break;
    case ChunkStrategy::Sentence: {
      Recursive r(text, p, {{Sep::Literal, "\n"}, {Sep::Literal, " "}, {Sep::Chars, ""}});
      std::vector<Piece> pieces;
      for (const Span& s : sentences(text, 0, text.size())) pieces.push_back({s.b, s.e, r.len(s.b, s.e)});
      r.process(pieces, 0, spans);
      break;
    }
    case ChunkStrategy::Markdown: {
      std::vector<Span> fences;
      scan_markdown(text, given.empty() ? &found : nullptr, &fences);
      if (given.empty()) headings = &found;
      std::vector<Span> protect;
      for (const Span& f : fences) {
        size_t e = f.e;
        if (e > f.b && text[e - 1] == '\n') --e;  // the closing newline is not part of the block
        if (utf8::count(text.substr(f.b, e - f.b)) <= p.size) protect.push_back({f.b, e});
      }
      Recursive r(text, p, make_separators({}), protect);
      std::vector<size_t> cuts = {0};
      for (const Heading& h : *headings)
        if (h.offset > cuts.back() && h.offset < text.size()) cuts.push_back(h.offset);
      cuts.push_back(text.size());
      for (size_t i = 0; i + 1 < cuts.size(); ++i) {
        std::vector<Span> whole;
        r.emit(cuts[i], cuts[i + 1], whole);
        if (whole.empty()) continue;
        if (r.len(whole[0].b, whole[0].e) <= p.size)
          spans.push_back(whole[0]);
        else
          r.split(cuts[i], cuts[i + 1], 0, spans);
      }
      break;
    }
  }

  // A chunk inside its neighbour adds nothing: it happens when a merge window gains or loses only
  // a whitespace piece, which trimming then removes. Keep the larger one.
  std::vector<Chunk> chunks;
  chunks.reserve(spans.size());
  for (const Span& s : spans) {
    if (!chunks.empty() && chunks.back().start <= s.b && s.e <= chunks.back().end) continue;
    while (!chunks.empty() && s.b <= chunks.back().start && chunks.back().end <= s.e) chunks.pop_back();
    chunks.push_back({s.b, s.e, {}});
  }
  assign_sections(chunks, *headings);
  return chunks;
}

}  // namespace loom::text
