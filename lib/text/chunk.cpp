#include "loom/text/chunk.h"

#include <algorithm>
#include <stdexcept>

#include "loom/text/utf8.h"

namespace loom::text {

namespace {

struct Span {
  size_t b, e;
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

// The recursive splitter (LangChain's algorithm) over byte spans of one text.
class Recursive {
 public:
  Recursive(std::string_view text, const ChunkParams& p, std::vector<Sep> seps, std::vector<Span> protect = {})
      : t_(text), p_(p), seps_(std::move(seps)), protect_(std::move(protect)) {}

  size_t len(size_t b, size_t e) const {
    std::string_view s = t_.substr(b, e - b);
    return p_.length ? p_.length(s) : utf8::count(s);
  }

  // Splits [b, e) with separators from index `from` on, appending chunk spans to out.
  void split(size_t b, size_t e, size_t from, std::vector<Span>& out) const {
    size_t chosen = seps_.size() - 1, next = seps_.size();
    for (size_t i = from; i < seps_.size(); ++i) {
      size_t mb, me;
      if (seps_[i].kind == Sep::Chars) {
        chosen = i;
        break;
      }
      if (find(seps_[i], b, e, mb, me)) {
        chosen = i;
        next = i + 1;
        break;
      }
    }
    std::vector<Span> pieces;
    pieces_of(seps_[chosen], b, e, pieces);

    std::vector<Span> good;
    std::vector<size_t> good_len;
    for (const Span& s : pieces) {
      size_t l = len(s.b, s.e);
      if (l < p_.size) {
        good.push_back(s);
        good_len.push_back(l);
        continue;
      }
      if (!good.empty()) {
        merge(good, good_len, out);
        good.clear();
        good_len.clear();
      }
      if (next >= seps_.size())
        out.push_back(s);  // nothing finer to split with: kept as it is (LangChain does the same)
      else
        split(s.b, s.e, next, out);
    }
    if (!good.empty()) merge(good, good_len, out);
  }

  // Merges consecutive pieces into chunks of at most size, sharing at most overlap (LangChain's
  // _merge_splits with an empty joiner, since separators stay attached to their pieces).
  void merge(const std::vector<Span>& s, const std::vector<size_t>& l, std::vector<Span>& out) const {
    size_t lo = 0, total = 0;
    for (size_t i = 0; i < s.size(); ++i) {
      if (total + l[i] > p_.size && i > lo) {
        emit(s[lo].b, s[i - 1].e, out);
        while (total > p_.overlap || (total + l[i] > p_.size && total > 0)) {
          total -= l[lo];
          ++lo;
        }
      }
      total += l[i];
    }
    if (lo < s.size()) emit(s[lo].b, s.back().e, out);
  }

  // Appends [b, e) trimmed of whitespace, unless nothing is left.
  void emit(size_t b, size_t e, std::vector<Span>& out) const {
    while (b < e) {
      size_t j = b;
      if (!utf8::is_space(utf8::next(t_, j))) break;
      b = j;
    }
    while (e > b) {
      size_t j = e;
      if (!utf8::is_space(utf8::prev(t_, j))) break;
      e = j;
    }
    if (b < e) out.push_back({b, e});
  }

 private:
  // Is byte offset x strictly inside a protected span?
  const Span* inside(size_t x) const {
    auto it = std::upper_bound(protect_.begin(), protect_.end(), x, [](size_t v, const Span& s) { return v < s.e; });
    if (it != protect_.end() && it->b < x && x < it->e) return &*it;
    return nullptr;
  }

  // First match of sep in [from, e) whose end is not inside a protected span.
  bool find(const Sep& sep, size_t from, size_t e, size_t& mb, size_t& me) const {
    while (from < e) {
      if (sep.kind == Sep::Literal) {
        size_t at = t_.substr(0, e).find(sep.lit, from);
        if (at == std::string_view::npos) return false;
        mb = at;
        me = at + sep.lit.size();
      } else {  // SentenceEnd: [.!?] followed by one or more whitespace characters (Python's \s)
        size_t i = from;
        bool found = false;
        while (i < e) {
          size_t k = i;  // the next terminal punctuation
          while (k < e && t_[k] != '.' && t_[k] != '!' && t_[k] != '?') ++k;
          if (k >= e) break;
          size_t j = k + 1, w = j;
          while (w < e) {
            size_t n = w;
            if (!utf8::is_space(utf8::next(t_, n))) break;
            w = n;
          }
          if (w > j && w <= e) {
            mb = k;
            me = w;
            found = true;
            break;
          }
          i = k + 1;
        }
        if (!found) return false;
      }
      if (const Span* p = inside(me)) {
        // the split would cut a protected block: look again for a match ending at or after its end
        from = mb + 1;
        if (sep.kind == Sep::Literal && p->e >= sep.lit.size()) from = std::max(from, p->e - sep.lit.size());
        continue;
      }
      return true;
    }
    return false;
  }

  void pieces_of(const Sep& sep, size_t b, size_t e, std::vector<Span>& out) const {
    if (sep.kind == Sep::Chars) {
      size_t i = b;
      while (i < e) {
        size_t j = i + utf8::sequence_length(static_cast<unsigned char>(t_[i]));
        if (const Span* p = inside(j)) j = std::min(p->e, e);  // a protected block stays whole
        out.push_back({i, j});
        i = j;
      }
      return;
    }
    size_t pos = b, mb, me;
    while (pos < e && find(sep, pos, e, mb, me)) {
      if (me > pos) out.push_back({pos, me});
      pos = me;
    }
    if (pos < e) out.push_back({pos, e});
  }

  std::string_view t_;
  const ChunkParams& p_;
  std::vector<Sep> seps_;
  std::vector<Span> protect_;  // sorted, disjoint
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

std::string clean_title(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '`' || c == '*') continue;
    if (c == ']' && i + 1 < s.size() && s[i + 1] == '(') {  // [text](url) -> text
      size_t close = s.find(')', i + 2);
      if (close != std::string_view::npos) {
        i = close;
        continue;
      }
    }
    if (c == '[' && s.find("](", i) != std::string_view::npos) continue;
    out += c;
  }
  size_t a = out.find_first_not_of(" \t"), z = out.find_last_not_of(" \t");
  return a == std::string::npos ? "" : out.substr(a, z - a + 1);
}

// Scans markdown for headings and fenced code blocks.
void scan_markdown(std::string_view t, std::vector<Heading>* headings, std::vector<Span>* fences) {
  bool in_fence = false;
  char fence_char = 0;
  size_t fence_len = 0, fence_start = 0;
  bool para = false;
  size_t para_start = 0;
  std::string para_text;
  size_t ls = 0;
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
    if (para && ind < 4 && !body.empty() && (body[0] == '=' || body[0] == '-')) {
      size_t n = run_of(body, body[0]);
      if (body.substr(n).find_first_not_of(" \t") == std::string_view::npos) {
        if (headings) headings->push_back({para_start, body[0] == '=' ? 1 : 2, clean_title(para_text)});
        para = false;
        ls = next;
        continue;
      }
    }
    if (blank) {
      para = false;
    } else if (!para) {
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
      std::vector<Span> good;
      std::vector<size_t> good_len;
      for (const Span& s : sentences(text, 0, text.size())) {
        size_t l = r.len(s.b, s.e);
        if (l < p.size) {
          good.push_back(s);
          good_len.push_back(l);
          continue;
        }
        if (!good.empty()) r.merge(good, good_len, spans);
        good.clear();
        good_len.clear();
        r.split(s.b, s.e, 0, spans);
      }
      if (!good.empty()) r.merge(good, good_len, spans);
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

  std::vector<Chunk> chunks;
  chunks.reserve(spans.size());
  for (const Span& s : spans) chunks.push_back({s.b, s.e, {}});
  assign_sections(chunks, *headings);
  return chunks;
}

}  // namespace loom::text
