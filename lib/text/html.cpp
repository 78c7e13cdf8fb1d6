// HTML to text in one forward pass. See html.h for the rendering rules.
//
// Structure: a Converter walks the input once. Text between tags goes through scan_text(), which
// decodes references, validates UTF-8 and hands whitespace and content runs to a sink. Markup is
// classified by its lowercase tag name (kElements) and changes a little layout state: a pending
// line break count, a pending space, a pending list marker or cell separator, a list stack and a
// table-row stack. Nothing is written until real content arrives (begin_content()), which is
// what keeps the output free of leading, trailing and doubled whitespace.
//
// Every scan moves forward: comments, raw text and quoted attribute values are each searched for
// their end once, and an unterminated construct runs to the end of the input, so the whole pass
// is linear in the input size.
#include "loom/text/html.h"
#include "loom/text/utf8.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdint>
#include <cstring>

namespace loom::text {

namespace {

// ---------------------------------------------------------------------------------------------
// Named character references (generated table)

struct NamedRef {
  std::string_view name;  // "amp;" or, for legacy references, also "amp"
  std::string_view utf8;  // replacement text
};

#include "html_entities.inc"

constexpr bool named_refs_sorted() {
  for (size_t k = 1; k < std::size(kNamedRefs); ++k)
    if (!(kNamedRefs[k - 1].name < kNamedRefs[k].name)) return false;
  return true;
}
static_assert(named_refs_sorted(), "html_entities.inc must be sorted by name");

const NamedRef* find_named_ref(std::string_view name) {
  const auto* end = std::end(kNamedRefs);
  const auto* it = std::lower_bound(std::begin(kNamedRefs), end, name,
                                    [](const NamedRef& r, std::string_view n) { return r.name < n; });
  return (it != end && it->name == name) ? it : nullptr;
}

// ---------------------------------------------------------------------------------------------
// Bytes and code points

using uchar = unsigned char;

constexpr bool is_ws(uchar c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f'; }
constexpr bool is_alpha(uchar c) { return (c | 0x20) >= 'a' && (c | 0x20) <= 'z'; }
constexpr bool is_digit(uchar c) { return c >= '0' && c <= '9'; }
constexpr bool is_alnum(uchar c) { return is_alpha(c) || is_digit(c); }
constexpr uchar to_lower(uchar c) { return (c >= 'A' && c <= 'Z') ? uchar(c | 0x20) : c; }

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

// Length of the valid UTF-8 sequence at p[0..n) (n >= 1, p[0] >= 0x80), or 0 when it is invalid;
// then *bad is the length of the maximal invalid subpart, which becomes one U+FFFD (WHATWG).
size_t utf8_sequence(const uchar* p, size_t n, size_t* bad) {
  const uchar c = p[0];
  size_t len = 0;
  uchar lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
  } else if (c == 0xE0) {
    len = 3, lo = 0xA0;
  } else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) {
    len = 3;
  } else if (c == 0xED) {
    len = 3, hi = 0x9F;  // no surrogates
  } else if (c == 0xF0) {
    len = 4, lo = 0x90;
  } else if (c >= 0xF1 && c <= 0xF3) {
    len = 4;
  } else if (c == 0xF4) {
    len = 4, hi = 0x8F;  // nothing above U+10FFFF
  } else {
    *bad = 1;
    return 0;
  }
  for (size_t k = 1; k < len; ++k) {
    const uchar b = k < n ? p[k] : 0;
    const bool ok = k == 1 ? (b >= lo && b <= hi) : (b >= 0x80 && b <= 0xBF);
    if (k >= n || !ok) {
      *bad = k;
      return 0;
    }
  }
  return len;
}


// HTML5 "numeric character reference end state": C1 controls are read as Windows-1252, and
// code points that cannot be characters become U+FFFD. (0 marks the five unassigned 1252 bytes,
// which keep their C1 code point.)
constexpr uint16_t kWindows1252[32] = {
    0x20AC, 0,      0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021,  // 80..87
    0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0,      0x017D, 0,       // 88..8F
    0,      0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014,  // 90..97
    0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0,      0x017E, 0x0178,  // 98..9F
};

uint32_t fix_numeric_reference(uint32_t v) {
  if (v == 0 || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0xFFFD;
  if (v >= 0x80 && v <= 0x9F && kWindows1252[v - 0x80] != 0) return kWindows1252[v - 0x80];
  return v;
}

// Decodes the character reference at s[i] == '&'. Returns the bytes it spans (0: not a
// reference, the '&' is literal text) and sets `rep` to the replacement (in `buf` or the table).
size_t decode_reference(std::string_view s, size_t i, char* buf, std::string_view* rep) {
  const size_t n = s.size();
  size_t p = i + 1;
  if (p >= n) return 0;
  if (s[p] == '#') {
    ++p;
    const bool hex = p < n && (s[p] == 'x' || s[p] == 'X');
    if (hex) ++p;
    const size_t digits = p;
    uint32_t v = 0;
    for (; p < n; ++p) {
      const uchar c = uchar(s[p]);
      uint32_t d;
      if (is_digit(c)) {
        d = c - '0';
      } else if (hex && (c | 0x20) >= 'a' && (c | 0x20) <= 'f') {
        d = (c | 0x20) - 'a' + 10;
      } else {
        break;
      }
      v = v * (hex ? 16 : 10) + d;
      if (v > 0x10FFFF) v = 0x110000;  // saturate: stays invalid, never overflows
    }
    if (p == digits) return 0;  // "&#" or "&#x" with no digits: literal text
    if (p < n && s[p] == ';') ++p;
    *rep = std::string_view(buf, utf8::encode(fix_numeric_reference(v), buf));
    return p - i;
  }
  size_t q = p;
  while (q < n && q - p < kNamedRefMaxName && is_alnum(uchar(s[q]))) ++q;
  if (q == p) return 0;
  if (q < n && s[q] == ';') {
    if (const NamedRef* r = find_named_ref(s.substr(p, q + 1 - p))) {
      *rep = r->utf8;
      return q + 1 - i;
    }
  }
  // Longest legacy name (valid without ';') that prefixes the run: "&notit;" reads as "&not" "it;".
  for (size_t len = std::min(q - p, kNamedRefMaxLegacy); len > 0; --len) {
    if (const NamedRef* r = find_named_ref(s.substr(p, len))) {
      *rep = r->utf8;
      return p + len - i;
    }
  }
  return 0;
}

// ---------------------------------------------------------------------------------------------
// Text scanning

// Byte classes for scan_text(): plain ASCII is copied as is; '&', ASCII whitespace and NUL end a
// plain run; bytes >= 0x80 are checked as UTF-8.
enum ByteClass : uint8_t { kPlain, kSpecial, kHigh };

constexpr auto kByteClass = [] {
  std::array<uint8_t, 256> t{};
  for (int c = 0; c < 256; ++c)
    t[size_t(c)] = c >= 0x80 ? kHigh : (c == '&' || c == 0 || is_ws(uchar(c))) ? kSpecial : kPlain;
  return t;
}();

// Feeds already-decoded, valid UTF-8 to a sink, splitting whitespace from content.
template <class Sink>
void feed_decoded(std::string_view s, Sink& sink) {
  size_t i = 0;
  const size_t n = s.size();
  while (i < n) {
    const size_t start = i;
    while (i < n && !is_ws(uchar(s[i])) && !(uchar(s[i]) == 0xC2 && i + 1 < n && uchar(s[i + 1]) == 0xA0))
      ++i;
    if (i > start) sink.content(s.data() + start, i - start);
    if (i >= n) break;
    if (uchar(s[i]) == 0xC2) {  // U+00A0
      sink.space(' ');
      i += 2;
    } else {
      sink.space(s[i] == '\r' ? '\n' : s[i]);
      ++i;
    }
  }
}

// Splits raw text into content runs and whitespace for `sink` (space(char), content(ptr, len)):
// references are decoded when `decode`, invalid UTF-8 becomes U+FFFD, NUL is dropped, CR LF and
// CR become LF, and U+00A0 counts as a space (' ').
template <class Sink>
void scan_text(std::string_view s, bool decode, Sink& sink) {
  const auto* p = reinterpret_cast<const uchar*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    const size_t start = i;
    size_t bad = 1;
    while (i < n) {
      const uchar c = p[i];
      const uint8_t cls = kByteClass[c];
      if (cls == kPlain) {
        ++i;
      } else if (c == ' ' && i > start && i + 1 < n && kByteClass[p[i + 1]] == kPlain) {
        i += 2;  // a single space between words stays in the run: same output, fewer calls
      } else if (cls == kSpecial) {
        break;
      } else {
        if (c == 0xC2 && i + 1 < n && p[i + 1] == 0xA0) break;
        const size_t len = utf8_sequence(p + i, n - i, &bad);
        if (len == 0) break;
        i += len;
      }
    }
    if (i > start) sink.content(s.data() + start, i - start);
    if (i >= n) break;
    const uchar c = p[i];
    if (c == '&') {
      if (decode) {
        char buf[4];
        std::string_view rep;
        if (const size_t used = decode_reference(s, i, buf, &rep)) {
          feed_decoded(rep, sink);
          i += used;
          continue;
        }
      }
      sink.content("&", 1);
      ++i;
    } else if (c == '\r') {
      sink.space('\n');
      i += (i + 1 < n && p[i + 1] == '\n') ? 2 : 1;
    } else if (is_ws(c)) {
      sink.space(char(c));
      ++i;
    } else if (c == 0) {
      ++i;
    } else if (c == 0xC2 && i + 1 < n && p[i + 1] == 0xA0) {
      sink.space(' ');
      i += 2;
    } else {  // invalid UTF-8: `bad` was set by the failed utf8_sequence() above
      sink.content(kReplacement.data(), kReplacement.size());
      i += bad;
    }
  }
}

// Collects text with whitespace collapsed and trimmed (the <title>).
struct CollapsingSink {
  std::string* out;
  bool pending_space = false;
  void space(char) { pending_space = true; }
  void content(const char* p, size_t len) {
    if (pending_space && !out->empty()) out->push_back(' ');
    pending_space = false;
    out->append(p, len);
  }
};

// ---------------------------------------------------------------------------------------------
// Elements

enum class Kind : uint8_t {
  kInline,     // not in the table: no effect on layout
  kBlock,      // paragraph break before and after
  kLine,       // line break before and after
  kBr,         // one line break (</br> too)
  kList,       // ul, menu, dir
  kOrderedList,
  kItem,       // li
  kTable,
  kRow,        // tr
  kCell,       // td, th
  kHeading,    // h1..h6
  kPre,        // pre, listing: whitespace kept
  kTextarea,   // RCDATA shown with whitespace kept
  kXmp,        // raw text shown with whitespace kept, no references
  kPlaintext,  // raw text to the end of the input
  kTitle,      // RCDATA into HtmlDocument::title
  kRawDrop,    // raw text dropped: script, style, ...
  kDrop,       // element content dropped: template, svg, ...
};

struct Element {
  std::string_view name;
  Kind kind;
};

constexpr Element kElements[] = {
    {"address", Kind::kBlock},    {"applet", Kind::kDrop},       {"article", Kind::kBlock},
    {"aside", Kind::kBlock},      {"audio", Kind::kDrop},        {"blockquote", Kind::kBlock},
    {"br", Kind::kBr},            {"canvas", Kind::kDrop},       {"caption", Kind::kBlock},
    {"center", Kind::kBlock},     {"datalist", Kind::kDrop},     {"dd", Kind::kLine},
    {"details", Kind::kBlock},    {"dialog", Kind::kBlock},      {"dir", Kind::kList},
    {"div", Kind::kBlock},        {"dl", Kind::kBlock},          {"dt", Kind::kLine},
    {"fieldset", Kind::kBlock},   {"figcaption", Kind::kBlock},  {"figure", Kind::kBlock},
    {"footer", Kind::kBlock},     {"form", Kind::kBlock},        {"frameset", Kind::kBlock},
    {"h1", Kind::kHeading},       {"h2", Kind::kHeading},        {"h3", Kind::kHeading},
    {"h4", Kind::kHeading},       {"h5", Kind::kHeading},        {"h6", Kind::kHeading},
    {"header", Kind::kBlock},     {"hgroup", Kind::kBlock},      {"hr", Kind::kBlock},
    {"iframe", Kind::kRawDrop},   {"legend", Kind::kBlock},      {"li", Kind::kItem},
    {"listing", Kind::kPre},      {"main", Kind::kBlock},        {"math", Kind::kDrop},
    {"menu", Kind::kList},        {"nav", Kind::kBlock},         {"noembed", Kind::kRawDrop},
    {"noframes", Kind::kRawDrop}, {"noscript", Kind::kRawDrop},  {"object", Kind::kDrop},
    {"ol", Kind::kOrderedList},   {"optgroup", Kind::kLine},     {"option", Kind::kLine},
    {"p", Kind::kBlock},          {"plaintext", Kind::kPlaintext}, {"pre", Kind::kPre},
    {"script", Kind::kRawDrop},   {"search", Kind::kBlock},      {"section", Kind::kBlock},
    {"style", Kind::kRawDrop},    {"summary", Kind::kBlock},     {"svg", Kind::kDrop},
    {"table", Kind::kTable},      {"td", Kind::kCell},           {"template", Kind::kDrop},
    {"textarea", Kind::kTextarea}, {"th", Kind::kCell},          {"title", Kind::kTitle},
    {"tr", Kind::kRow},           {"ul", Kind::kList},           {"video", Kind::kDrop},
    {"xmp", Kind::kXmp},
};

constexpr bool elements_sorted() {
  for (size_t k = 1; k < std::size(kElements); ++k)
    if (!(kElements[k - 1].name < kElements[k].name)) return false;
  return true;
}
static_assert(elements_sorted(), "kElements must be sorted by name");

Kind element_kind(std::string_view name) {
  const auto* end = std::end(kElements);
  const auto* it = std::lower_bound(std::begin(kElements), end, name,
                                    [](const Element& e, std::string_view n) { return e.name < n; });
  return (it != end && it->name == name) ? it->kind : Kind::kInline;
}

struct Tag {
  static constexpr size_t kMaxName = 15;  // longer names are no element we know
  char name_buf[kMaxName] = {};
  size_t name_len = 0;
  bool name_too_long = false;
  bool end = false;
  bool self_closing = false;
  bool has_start = false;  // <ol start=N>
  bool has_value = false;  // <li value=N>
  long long start = 0;
  long long value = 0;

  std::string_view name() const { return name_too_long ? std::string_view() : std::string_view(name_buf, name_len); }
};

bool equals_ignore_case(std::string_view a, std::string_view lower) {
  if (a.size() != lower.size()) return false;
  for (size_t k = 0; k < a.size(); ++k)
    if (to_lower(uchar(a[k])) != uchar(lower[k])) return false;
  return true;
}

// An attribute's integer value ("3", " -2 "); false when it is not one. Clamped to +-1e9.
bool parse_integer(std::string_view v, long long* out) {
  while (!v.empty() && is_ws(uchar(v.front()))) v.remove_prefix(1);
  const bool negative = !v.empty() && v.front() == '-';
  if (!v.empty() && (v.front() == '-' || v.front() == '+')) v.remove_prefix(1);
  if (v.empty() || !is_digit(uchar(v.front()))) return false;
  long long x = 0;
  for (size_t k = 0; k < v.size() && is_digit(uchar(v[k])); ++k) x = std::min(x * 10 + (v[k] - '0'), 1000000000LL);
  *out = negative ? -x : x;
  return true;
}

// ---------------------------------------------------------------------------------------------
// The converter

constexpr size_t kMaxIndent = 16;      // list indentation stops growing here
constexpr size_t kMaxNesting = 64;     // list and table stack depth kept; deeper levels are counted
constexpr size_t kNoOffset = size_t(-1);

class Converter {
 public:
  explicit Converter(std::string_view html) : in_(html), n_(html.size()) {}

  HtmlDocument run() {
    out_.reserve(n_ / 2);
    if (in_.substr(0, 3) == "\xEF\xBB\xBF") i_ = 3;  // byte order mark
    while (i_ < n_) {
      if (in_[i_] == '<') {
        markup();
        continue;
      }
      const size_t end = find_byte('<', i_);
      if (drop_depth_ == 0) text(in_.substr(i_, end - i_), /*decode=*/true, preserve());
      i_ = end;
    }
    finish();
    return HtmlDocument{std::move(out_), std::move(headings_), std::move(title_)};
  }

  // Sink for scan_text(): writes into the document text.
  struct TextSink {
    Converter* c;
    bool preserve;
    void space(char ch) {
      if (!preserve) {
        c->pending_space_ = true;
        return;
      }
      c->begin_content();
      c->out_.push_back(ch);
    }
    void content(const char* p, size_t len) {
      c->begin_content();
      c->out_.append(p, len);
    }
  };

 private:
  struct ListLevel {
    bool ordered = false;
    long long next = 1;         // next <ol> item number
    size_t base = 0;            // indentation of this list's markers
    size_t content_indent = 0;  // indentation of the current item's continuation lines
  };

  // -- scanning helpers -------------------------------------------------------------------------

  size_t find_byte(char c, size_t from) const {
    if (from >= n_) return n_;
    const void* hit = std::memchr(in_.data() + from, c, n_ - from);
    return hit ? size_t(static_cast<const char*>(hit) - in_.data()) : n_;
  }

  size_t skip_ws(size_t p) const {
    while (p < n_ && is_ws(uchar(in_[p]))) ++p;
    return p;
  }

  // Start of the end tag "</name" (followed by whitespace, '/', '>' or the end) at or after
  // `from`, or n_. Raw text (script, style, textarea, ...) ends there.
  size_t find_end_tag(size_t from, std::string_view name) const {
    for (size_t p = find_byte('<', from); p < n_; p = find_byte('<', p + 1)) {
      const size_t after = p + 2 + name.size();
      if (after > n_ || in_[p + 1] != '/' || !equals_ignore_case(in_.substr(p + 2, name.size()), name))
        continue;
      if (after == n_ || is_ws(uchar(in_[after])) || in_[after] == '/' || in_[after] == '>') return p;
    }
    return n_;
  }

  // End of a comment whose text starts at `p` (just after "<!--"): past "-->", "--!>", or the
  // abrupt "<!-->" / "<!--->"; n_ when unterminated.
  size_t comment_end(size_t p) const {
    if (p < n_ && in_[p] == '>') return p + 1;
    if (p + 1 < n_ && in_[p] == '-' && in_[p + 1] == '>') return p + 2;
    while (true) {
      const size_t k = in_.find("--", p);
      if (k == std::string_view::npos) return n_;
      size_t m = k + 2;
      while (m < n_ && in_[m] == '-') ++m;
      if (m < n_ && in_[m] == '>') return m + 1;
      if (m + 1 < n_ && in_[m] == '!' && in_[m + 1] == '>') return m + 2;
      p = m;
    }
  }

  // -- markup -----------------------------------------------------------------------------------

  void markup() {
    const size_t j = i_ + 1;
    const uchar c = j < n_ ? uchar(in_[j]) : 0;
    if (c == '!') {
      if (in_.substr(j, 3) == "!--") {
        i_ = comment_end(j + 3);
      } else if (in_.substr(j, 8) == "![CDATA[") {
        const size_t k = in_.find("]]>", j + 8);
        i_ = k == std::string_view::npos ? n_ : k + 3;
      } else {  // doctype and other bogus comments end at the first '>'
        i_ = std::min(find_byte('>', j), n_ - 1) + 1;
      }
    } else if (c == '?') {  // processing instruction: a bogus comment
      i_ = std::min(find_byte('>', j), n_ - 1) + 1;
    } else if (c == '/' && j + 1 < n_ && is_alpha(uchar(in_[j + 1]))) {
      Tag tag;
      tag.end = true;
      if (parse_tag(j + 1, &tag)) end_tag(tag);
    } else if (c == '/' && j + 1 < n_) {  // "</>" is ignored; "</3" and the like are comments
      i_ = in_[j + 1] == '>' ? j + 2 : std::min(find_byte('>', j), n_ - 1) + 1;
    } else if (is_alpha(c)) {
      Tag tag;
      if (parse_tag(j, &tag)) start_tag(tag);
    } else {  // a '<' that starts no markup ("a < b", "<<<", "</" at the end) is text
      if (drop_depth_ == 0) TextSink{this, false}.content("<", 1);
      ++i_;
    }
  }

  // Parses a tag from its name at `p` to its '>'; sets i_ past it. A tag cut off by the end of
  // the input is dropped (false), as HTML5 does.
  bool parse_tag(size_t p, Tag* tag) {
    const size_t name_start = p;
    while (p < n_ && !is_ws(uchar(in_[p])) && in_[p] != '/' && in_[p] != '>') ++p;
    if (p - name_start > Tag::kMaxName) {
      tag->name_too_long = true;
    } else {
      for (size_t k = name_start; k < p; ++k) tag->name_buf[k - name_start] = char(to_lower(uchar(in_[k])));
      tag->name_len = p - name_start;
    }
    while (p < n_) {
      const char c = in_[p];
      if (is_ws(uchar(c))) {
        ++p;
      } else if (c == '>') {
        i_ = p + 1;
        return true;
      } else if (c == '/') {
        ++p;
        if (p < n_ && in_[p] == '>') {
          tag->self_closing = true;
          i_ = p + 1;
          return true;
        }
      } else {  // an attribute: name [= value]
        const size_t attr_start = p++;  // the first character may be '='
        while (p < n_ && !is_ws(uchar(in_[p])) && in_[p] != '/' && in_[p] != '>' && in_[p] != '=') ++p;
        const std::string_view attr = in_.substr(attr_start, p - attr_start);
        p = skip_ws(p);
        if (p >= n_ || in_[p] != '=') continue;
        p = skip_ws(p + 1);
        if (p >= n_) break;
        std::string_view value;
        if (in_[p] == '"' || in_[p] == '\'') {
          const size_t close = find_byte(in_[p], p + 1);
          if (close >= n_) break;  // unterminated quote: the tag runs to the end
          value = in_.substr(p + 1, close - p - 1);
          p = close + 1;
        } else {
          const size_t value_start = p;
          while (p < n_ && !is_ws(uchar(in_[p])) && in_[p] != '>') ++p;
          value = in_.substr(value_start, p - value_start);
        }
        if (equals_ignore_case(attr, "start")) tag->has_start = parse_integer(value, &tag->start);
        if (equals_ignore_case(attr, "value")) tag->has_value = parse_integer(value, &tag->value);
      }
    }
    i_ = n_;
    return false;
  }

  void start_tag(const Tag& tag) {
    const Kind kind = element_kind(tag.name());
    if (drop_depth_ > 0) {  // inside dropped content: only nesting and raw text matter
      if (!tag.self_closing && tag.name() == std::string_view(drop_name_, drop_name_len_)) ++drop_depth_;
      if (kind == Kind::kRawDrop || kind == Kind::kTitle || kind == Kind::kTextarea || kind == Kind::kXmp)
        i_ = find_end_tag(i_, tag.name());
      return;
    }
    switch (kind) {
      case Kind::kInline:
        break;
      case Kind::kBlock:
        request_break(2);
        break;
      case Kind::kLine:
        request_break(1);
        break;
      case Kind::kBr:
        line_break();
        break;
      case Kind::kList:
      case Kind::kOrderedList:
        request_break(2);
        push_list(kind == Kind::kOrderedList, tag.has_start ? tag.start : 1);
        break;
      case Kind::kItem:
        start_item(tag);
        break;
      case Kind::kTable:
        request_break(2);
        if (rows_.size() < kMaxNesting) rows_.push_back(false); else ++rows_overflow_;
        break;
      case Kind::kRow:
        request_break(1);
        if (!rows_.empty()) rows_.back() = false;
        break;
      case Kind::kCell:
        pending_space_ = true;  // cells never glue together, even outside a table
        if (!rows_.empty() && rows_.back() && heading_level_ == 0) pending_sep_ = true;
        break;
      case Kind::kHeading:
        open_heading(tag.name_buf[1] - '0');
        break;
      case Kind::kPre:
        request_break(2);
        ++pre_depth_;
        skip_leading_newline();
        break;
      case Kind::kTextarea:
      case Kind::kXmp: {
        request_break(2);
        if (kind == Kind::kTextarea) skip_leading_newline();
        const size_t end = find_end_tag(i_, tag.name());
        text(in_.substr(i_, end - i_), kind == Kind::kTextarea, heading_level_ == 0);
        i_ = end;
        request_break(2);
        break;
      }
      case Kind::kPlaintext:
        request_break(2);
        text(in_.substr(i_), false, heading_level_ == 0);
        i_ = n_;
        break;
      case Kind::kTitle: {
        const size_t end = find_end_tag(i_, "title");
        if (!have_title_) {
          CollapsingSink sink{&title_};
          scan_text(in_.substr(i_, end - i_), true, sink);
          have_title_ = true;
        }
        i_ = end;
        break;
      }
      case Kind::kRawDrop:
        i_ = find_end_tag(i_, tag.name());
        break;
      case Kind::kDrop:
        if (!tag.self_closing) {
          drop_depth_ = 1;
          drop_name_len_ = tag.name_len;
          std::memcpy(drop_name_, tag.name_buf, tag.name_len);
        }
        break;
    }
  }

  void end_tag(const Tag& tag) {
    if (drop_depth_ > 0) {
      if (tag.name() == std::string_view(drop_name_, drop_name_len_)) --drop_depth_;
      return;
    }
    switch (element_kind(tag.name())) {
      case Kind::kBlock:
      case Kind::kTextarea:
      case Kind::kXmp:
      case Kind::kPlaintext:
        request_break(2);
        break;
      case Kind::kLine:
      case Kind::kRow:
        request_break(1);
        break;
      case Kind::kBr:  // </br> is read as <br>
        line_break();
        break;
      case Kind::kList:
      case Kind::kOrderedList:
        pop_list();
        request_break(2);
        break;
      case Kind::kItem:
        marker_len_ = 0;  // an item that ends empty shows nothing
        request_break(1);
        break;
      case Kind::kTable:
        if (rows_overflow_ > 0) --rows_overflow_; else if (!rows_.empty()) rows_.pop_back();
        request_break(2);
        break;
      case Kind::kHeading:
        if (heading_level_ > 0) close_heading(); else request_break(2);
        break;
      case Kind::kPre:
        if (pre_depth_ > 0) --pre_depth_;
        request_break(2);
        break;
      default:
        break;
    }
  }

  void skip_leading_newline() {
    if (i_ < n_ && in_[i_] == '\n') {
      ++i_;
    } else if (i_ < n_ && in_[i_] == '\r') {
      i_ += (i_ + 1 < n_ && in_[i_ + 1] == '\n') ? 2 : 1;
    }
  }

  // -- layout -----------------------------------------------------------------------------------

  bool in_list() const { return !lists_.empty(); }
  bool preserve() const { return pre_depth_ > 0 && heading_level_ == 0; }

  void text(std::string_view s, bool decode, bool keep_whitespace) {
    TextSink sink{this, keep_whitespace};
    scan_text(s, decode, sink);
  }

  // A block boundary: n = 2 a paragraph break, n = 1 a line break. Inside a list item breaks are
  // single; inside a heading they are spaces (a heading stays on one line).
  void request_break(int n) {
    if (heading_level_ > 0) {
      pending_space_ = true;
      return;
    }
    if (in_list()) n = 1;
    pending_nl_ = std::max(pending_nl_, n);
  }

  void line_break() {  // <br>: each adds a newline, up to one blank line
    if (heading_level_ > 0) {
      pending_space_ = true;
      return;
    }
    pending_nl_ = std::min(pending_nl_ + 1, 2);
  }

  // Called before any content is written: settles the pending break, indentation, list marker,
  // cell separator or space, and notes where an open heading's text starts.
  void begin_content() {
    if (pending_nl_ > 0) {
      while (!out_.empty() && is_ws(uchar(out_.back()))) out_.pop_back();  // trailing <pre> space
      if (!out_.empty()) out_.append(size_t(pending_nl_), '\n');
      pending_nl_ = 0;
      at_line_start_ = true;
    }
    if (at_line_start_) {
      if (marker_len_ > 0) {
        out_.append(marker_indent_, ' ');
        out_.append(marker_, marker_len_);
      } else if (in_list()) {
        out_.append(lists_.back().content_indent, ' ');
      }
    } else if (pending_sep_) {
      out_ += " | ";
    } else if (pending_space_) {
      out_ += ' ';
    }
    marker_len_ = 0;
    at_line_start_ = pending_space_ = pending_sep_ = false;
    if (!rows_.empty()) rows_.back() = true;
    if (heading_level_ > 0 && heading_offset_ == kNoOffset) heading_offset_ = out_.size();
  }

  void push_list(bool ordered, long long start) {
    if (lists_.size() >= kMaxNesting) {
      ++lists_overflow_;
      return;
    }
    ListLevel level;
    level.ordered = ordered;
    level.next = start;
    level.base = lists_.empty() ? 0 : std::min(lists_.back().content_indent, kMaxIndent);
    level.content_indent = level.base;
    lists_.push_back(level);
  }

  void pop_list() {
    marker_len_ = 0;
    if (lists_overflow_ > 0) {
      --lists_overflow_;
    } else if (!lists_.empty()) {
      lists_.pop_back();
    }
  }

  void start_item(const Tag& tag) {
    request_break(1);
    if (heading_level_ > 0) return;  // no markers inside a heading
    ListLevel* level = in_list() ? &lists_.back() : nullptr;
    if (level != nullptr && level->ordered) {
      if (tag.has_value) level->next = tag.value;
      auto [end, ec] = std::to_chars(marker_, marker_ + sizeof(marker_) - 2, level->next);
      (void)ec;  // cannot fail: |next| <= 1e9 + items, at most 20 characters
      *end++ = '.';
      *end++ = ' ';
      marker_len_ = size_t(end - marker_);
      ++level->next;
    } else {
      marker_[0] = '-';
      marker_[1] = ' ';
      marker_len_ = 2;
    }
    marker_indent_ = level != nullptr ? level->base : 0;
    if (level != nullptr) level->content_indent = level->base + marker_len_;
  }

  void open_heading(int level) {
    if (heading_level_ > 0) close_heading();
    request_break(2);
    heading_level_ = level;
    heading_offset_ = kNoOffset;
  }

  void close_heading() {
    if (heading_offset_ != kNoOffset && heading_offset_ < out_.size())
      headings_.push_back(Heading{heading_offset_, heading_level_, out_.substr(heading_offset_)});
    heading_level_ = 0;
    heading_offset_ = kNoOffset;
    request_break(2);
  }

  void finish() {
    if (heading_level_ > 0) close_heading();
    while (!out_.empty() && is_ws(uchar(out_.back()))) out_.pop_back();
    size_t lead = 0;
    while (lead < out_.size() && is_ws(uchar(out_[lead]))) ++lead;
    if (lead > 0) {
      out_.erase(0, lead);
      for (Heading& h : headings_) h.offset -= lead;  // heading text never starts with a space
    }
  }

  std::string_view in_;
  size_t n_;
  size_t i_ = 0;

  std::string out_;
  std::vector<Heading> headings_;
  std::string title_;
  bool have_title_ = false;

  int pending_nl_ = 0;          // newlines owed before the next content (0..2)
  bool pending_space_ = false;  // a space owed, unless a line starts
  bool pending_sep_ = false;    // a " | " owed, unless a line starts
  bool at_line_start_ = true;
  char marker_[24] = {};        // pending list marker ("- ", "12. ")
  size_t marker_len_ = 0;
  size_t marker_indent_ = 0;

  std::vector<ListLevel> lists_;
  size_t lists_overflow_ = 0;
  std::vector<bool> rows_;      // per open table: has the current row shown content yet
  size_t rows_overflow_ = 0;
  int pre_depth_ = 0;
  int heading_level_ = 0;       // 1..6 while a heading is open
  size_t heading_offset_ = kNoOffset;

  int drop_depth_ = 0;          // > 0 inside dropped content (svg, template, ...)
  char drop_name_[Tag::kMaxName] = {};
  size_t drop_name_len_ = 0;
};

}  // namespace

HtmlDocument html_to_text(std::string_view html) { return Converter(html).run(); }

}  // namespace loom::text
