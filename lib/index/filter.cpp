// The filter language of lib/index/filter.h: a hand-written lexer and recursive-descent parser
// that build a flat expression tree, and an evaluator that reads a record's fields as raw JSON
// text, stepping through nested objects and arrays without building any DOM (values that are not
// asked for are skipped, not decoded).
#include "loom/index/filter.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "loom/core/error.h"
#include "loom/io/json.h"
#include "loom/io/jsonl.h"
#include "loom/text/utf8.h"

namespace loom::index {

namespace {

using sv = std::string_view;
constexpr size_t npos = sv::npos;
constexpr int kMaxDepth = 64;

// ---- JSON text, read in place --------------------------------------------------------------
// Values are views of JSON text (a record's field, or a literal's canonical text). An empty
// view is an absent value. The text is normally compact and valid (io::Record validates it),
// but every step is bounds-checked so that malformed text gives "absent", never a bad read.

enum class T { Absent, Null, False, True, Num, Str, Arr, Obj };

inline bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
inline bool is_digit(char c) { return c >= '0' && c <= '9'; }

T type_of(sv v) {
  if (v.empty()) return T::Absent;
  switch (v[0]) {
    case 'n': return T::Null;
    case 't': return T::True;
    case 'f': return T::False;
    case '"': return T::Str;
    case '[': return T::Arr;
    case '{': return T::Obj;
    default: return T::Num;
  }
}
// For comparisons an absent value is null.
inline T ctype(sv v) { T t = type_of(v); return t == T::Absent ? T::Null : t; }

size_t skip_ws(sv s, size_t i) {
  while (i < s.size() && is_ws(s[i])) ++i;
  return i;
}

// s[i] == '"': the index after the closing quote, or npos.
size_t skip_string(sv s, size_t i) {
  const char* p = s.data();
  size_t n = s.size(), j = i + 1;
#if defined(__SSE2__)
  const __m128i quote = _mm_set1_epi8('"'), backslash = _mm_set1_epi8('\\');
  while (j + 16 <= n) {
    __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + j));
    unsigned m = static_cast<unsigned>(
        _mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash))));
    if (m == 0) {
      j += 16;
      continue;
    }
    j += static_cast<size_t>(__builtin_ctz(m));
    if (p[j] == '"') return j + 1;
    j += 2;  // an escape: the backslash and the character after it
  }
#endif
  while (j < n) {
    char c = p[j];
    if (c == '"') return j + 1;
    j += c == '\\' ? 2 : 1;
  }
  return npos;
}

// The index after the value starting at s[i], or npos.
size_t skip_value(sv s, size_t i) {
  if (i >= s.size()) return npos;
  char c = s[i];
  if (c == '"') return skip_string(s, i);
  if (c == '{' || c == '[') {
    size_t depth = 0;
    while (i < s.size()) {
      c = s[i];
      if (c == '"') {
        i = skip_string(s, i);
        if (i == npos) return npos;
        continue;
      }
      if (c == '{' || c == '[') {
        ++depth;
      } else if (c == '}' || c == ']') {
        if (--depth == 0) return i + 1;
      }
      ++i;
    }
    return npos;
  }
  size_t j = i;
  while (j < s.size() && s[j] != ',' && s[j] != ']' && s[j] != '}' && s[j] != ':' && !is_ws(s[j])) ++j;
  return j == i ? npos : j;
}

int hex_val(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Four hex digits at s[i..i+4), or -1.
long hex4(sv s, size_t i) {
  if (i + 4 > s.size()) return -1;
  long v = 0;
  for (size_t k = 0; k < 4; ++k) {
    int h = hex_val(s[i + k]);
    if (h < 0) return -1;
    v = v * 16 + h;
  }
  return v;
}

// The content of a JSON string literal (`raw` with its quotes), escapes decoded. Lenient: a lone
// surrogate becomes U+FFFD and a malformed escape is kept as written (valid record text has
// neither). Returns a view of `raw` itself when there is nothing to decode.
sv string_content(sv raw, std::string& scratch) {
  if (raw.size() < 2) return {};
  sv in = raw.substr(1, raw.size() - 2);
  size_t bs = in.find('\\');
  if (bs == npos) return in;
  scratch.assign(in.data(), bs);
  size_t i = bs;
  while (i < in.size()) {
    char c = in[i];
    if (c != '\\' || i + 1 >= in.size()) {
      scratch += c;
      ++i;
      continue;
    }
    char e = in[i + 1];
    i += 2;
    switch (e) {
      case 'n': scratch += '\n'; break;
      case 't': scratch += '\t'; break;
      case 'r': scratch += '\r'; break;
      case 'b': scratch += '\b'; break;
      case 'f': scratch += '\f'; break;
      case 'u': {
        long cp = hex4(in, i);
        if (cp < 0) {
          scratch += "\\u";
          break;
        }
        i += 4;
        if (cp >= 0xD800 && cp <= 0xDBFF && i + 6 <= in.size() && in[i] == '\\' && in[i + 1] == 'u') {
          long lo = hex4(in, i + 2);
          if (lo >= 0xDC00 && lo <= 0xDFFF) {
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            i += 6;
          }
        }
        if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0xFFFD;
        text::utf8::append(scratch, static_cast<char32_t>(cp));
        break;
      }
      default: scratch += e; break;  // '"', '\\', '/'
    }
  }
  return scratch;
}

// Calls f(element) for each element of an array (text starting with '['); stops early when f
// returns true, and then returns true.
template <typename F>
bool any_element(sv arr, F&& f) {
  size_t i = skip_ws(arr, 1);
  if (i >= arr.size() || arr[i] == ']') return false;
  for (;;) {
    size_t e = skip_value(arr, i);
    if (e == npos) return false;
    if (f(arr.substr(i, e - i))) return true;
    i = skip_ws(arr, e);
    if (i < arr.size() && arr[i] == ',') {
      i = skip_ws(arr, i + 1);
    } else {
      return false;
    }
  }
}

// Calls f(raw_key, value) for each member of an object (text starting with '{'); stops early when
// f returns true, and then returns true.
template <typename F>
bool any_member(sv obj, F&& f) {
  size_t i = skip_ws(obj, 1);
  while (i < obj.size() && obj[i] == '"') {
    size_t ke = skip_string(obj, i);
    if (ke == npos) return false;
    sv key = obj.substr(i, ke - i);
    i = skip_ws(obj, ke);
    if (i >= obj.size() || obj[i] != ':') return false;
    i = skip_ws(obj, i + 1);
    size_t ve = skip_value(obj, i);
    if (ve == npos) return false;
    if (f(key, obj.substr(i, ve - i))) return true;
    i = skip_ws(obj, ve);
    if (i >= obj.size() || obj[i] != ',') return false;
    i = skip_ws(obj, i + 1);
  }
  return false;
}

bool key_is(sv raw_key, sv key, std::string& scratch) {
  if (raw_key.size() < 2) return false;
  sv inner = raw_key.substr(1, raw_key.size() - 2);
  // Escapes make the decoded key shorter than its text: same length means no escapes.
  if (inner.size() == key.size()) return inner == key && key.find('\\') == npos;
  if (inner.size() < key.size()) return false;
  bool escaped = false;
  for (char c : inner) escaped |= c == '\\';
  return escaped && string_content(raw_key, scratch) == key;
}

// The value of `key` in an object (the first member of that name), or absent.
sv member(sv obj, sv key) {
  std::string scratch;
  sv found;
  any_member(obj, [&](sv k, sv v) {
    if (!key_is(k, key, scratch)) return false;
    found = v;
    return true;
  });
  return found;
}

size_t count_elements(sv arr) {
  size_t n = 0;
  any_element(arr, [&](sv) { ++n; return false; });
  return n;
}

sv element(sv arr, int64_t idx) {
  if (idx < 0) {
    idx += static_cast<int64_t>(count_elements(arr));
    if (idx < 0) return {};
  }
  sv found;
  int64_t k = 0;
  any_element(arr, [&](sv v) {
    if (k++ != idx) return false;
    found = v;
    return true;
  });
  return found;
}

// ---- Numbers: exact decimal comparison ------------------------------------------------------
// value = 0.D x 10^pos, D the significant digits (no leading or trailing zeros), kept as two views
// of the text: the part before the decimal point (a) and the part after it (b).
struct Dec {
  bool neg = false;
  int64_t pos = 0;
  sv a, b;
  bool zero() const { return a.empty() && b.empty(); }
  size_t size() const { return a.size() + b.size(); }
  char at(size_t k) const { return k < a.size() ? a[k] : b[k - a.size()]; }
};

Dec parse_dec(sv t) {
  constexpr int64_t kExpCap = 1'000'000'000'000'000;  // exponents beyond this all compare alike
  Dec d;
  size_t i = 0, n = t.size();
  if (i < n && t[i] == '-') {
    d.neg = true;
    ++i;
  }
  size_t s = i;
  while (i < n && is_digit(t[i])) ++i;
  sv ip = t.substr(s, i - s), fp;
  if (i < n && t[i] == '.') {
    s = ++i;
    while (i < n && is_digit(t[i])) ++i;
    fp = t.substr(s, i - s);
  }
  int64_t e = 0;
  if (i < n && (t[i] == 'e' || t[i] == 'E')) {
    ++i;
    bool eneg = false;
    if (i < n && (t[i] == '+' || t[i] == '-')) eneg = t[i++] == '-';
    while (i < n && is_digit(t[i])) {
      if (e < kExpCap) e = e * 10 + (t[i] - '0');
      ++i;
    }
    if (e > kExpCap) e = kExpCap;
    if (eneg) e = -e;
  }
  while (!ip.empty() && ip.front() == '0') ip.remove_prefix(1);
  int64_t lead = 0;
  if (ip.empty()) {
    while (!fp.empty() && fp.front() == '0') {
      fp.remove_prefix(1);
      ++lead;
    }
  }
  if (ip.empty() && fp.empty()) {
    d.neg = false;  // -0 == 0
    return d;
  }
  d.pos = ip.empty() ? e - lead : static_cast<int64_t>(ip.size()) + e;
  while (!fp.empty() && fp.back() == '0') fp.remove_suffix(1);
  if (fp.empty()) {
    while (!ip.empty() && ip.back() == '0') ip.remove_suffix(1);
  }
  d.a = ip;
  d.b = fp;
  return d;
}

int cmp_dec(const Dec& x, const Dec& y) {
  if (x.zero() || y.zero()) {
    if (x.zero() && y.zero()) return 0;
    if (x.zero()) return y.neg ? 1 : -1;
    return x.neg ? -1 : 1;
  }
  if (x.neg != y.neg) return x.neg ? -1 : 1;
  int m = 0;
  if (x.pos != y.pos) {
    m = x.pos < y.pos ? -1 : 1;
  } else {
    size_t n = std::min(x.size(), y.size());
    for (size_t k = 0; k < n && m == 0; ++k) {
      char cx = x.at(k), cy = y.at(k);
      if (cx != cy) m = cx < cy ? -1 : 1;
    }
    if (m == 0 && x.size() != y.size()) m = x.size() < y.size() ? -1 : 1;
  }
  return x.neg ? -m : m;
}

// A text equal for equal numbers, for hashing: "0", or sign, digits, "e", pos.
std::string dec_key(const Dec& d) {
  if (d.zero()) return "0";
  std::string k(1, d.neg ? '-' : '+');
  k.append(d.a);
  k.append(d.b);
  k += 'e';
  k += std::to_string(d.pos);
  return k;
}

// ---- Value operations ------------------------------------------------------------------------

bool equal(sv x, sv y, int depth = 0);

bool str_equal(sv x, sv y) {
  std::string s1, s2;
  return string_content(x, s1) == string_content(y, s2);
}

bool obj_equal(sv x, sv y, int depth) {
  size_t nx = 0, ny = 0;
  any_member(x, [&](sv, sv) { ++nx; return false; });
  any_member(y, [&](sv, sv) { ++ny; return false; });
  if (nx != ny) return false;
  std::string scratch;
  bool differ = any_member(x, [&](sv k, sv v) {
    sv other = member(y, string_content(k, scratch));
    return other.empty() || !equal(v, other, depth + 1);
  });
  return !differ;
}

bool arr_equal(sv x, sv y, int depth) {
  size_t i = skip_ws(x, 1), j = skip_ws(y, 1);
  for (;;) {
    bool endx = i >= x.size() || x[i] == ']', endy = j >= y.size() || y[j] == ']';
    if (endx || endy) return endx && endy;
    size_t ex = skip_value(x, i), ey = skip_value(y, j);
    if (ex == npos || ey == npos) return false;
    if (!equal(x.substr(i, ex - i), y.substr(j, ey - j), depth + 1)) return false;
    i = skip_ws(x, ex);
    j = skip_ws(y, ey);
    if (i < x.size() && x[i] == ',') i = skip_ws(x, i + 1);
    if (j < y.size() && y[j] == ',') j = skip_ws(y, j + 1);
  }
}

bool equal(sv x, sv y, int depth) {
  T tx = ctype(x), ty = ctype(y);
  if (tx != ty) return false;
  switch (tx) {
    case T::Num: return cmp_dec(parse_dec(x), parse_dec(y)) == 0;
    case T::Str: return x == y || str_equal(x, y);
    case T::Arr: return depth < 4096 && arr_equal(x, y, depth);
    case T::Obj: return depth < 4096 && obj_equal(x, y, depth);
    default: return true;  // null, true, false
  }
}

// <0, 0, >0 for ordered pairs (two numbers, two strings, two booleans); nullopt otherwise.
std::optional<int> order(sv x, sv y) {
  T tx = ctype(x), ty = ctype(y);
  if (tx == T::Num && ty == T::Num) return cmp_dec(parse_dec(x), parse_dec(y));
  if (tx == T::Str && ty == T::Str) {
    std::string s1, s2;
    int c = string_content(x, s1).compare(string_content(y, s2));  // bytewise, unsigned
    return c < 0 ? -1 : c > 0 ? 1 : 0;
  }
  bool bx = tx == T::True || tx == T::False, by = ty == T::True || ty == T::False;
  if (bx && by) return static_cast<int>(tx == T::True) - static_cast<int>(ty == T::True);
  return std::nullopt;
}

bool contains(sv hay, sv needle) {
  T th = ctype(hay), tn = ctype(needle);
  if (th == T::Str && tn == T::Str) {
    std::string s1, s2;
    return string_content(hay, s1).find(string_content(needle, s2)) != npos;
  }
  if (th == T::Arr) return any_element(hay, [&](sv e) { return equal(e, needle); });
  return false;
}

inline bool truthy(sv v) {
  T t = type_of(v);
  return t != T::Absent && t != T::Null && t != T::False;
}

// A literal list on the right of `in` (left of `contains`): hashed strings and numbers.
struct StrHash {
  using is_transparent = void;
  size_t operator()(sv s) const noexcept { return std::hash<sv>{}(s); }
};
using StrSet = std::unordered_set<std::string, StrHash, std::equal_to<>>;

struct ListIndex {
  StrSet strings, numbers;
  std::vector<sv> others;  // views into the literal's text

  explicit ListIndex(sv list) {
    std::string scratch;
    any_element(list, [&](sv e) {
      T t = type_of(e);
      if (t == T::Str) {
        strings.emplace(string_content(e, scratch));
      } else if (t == T::Num) {
        numbers.insert(dec_key(parse_dec(e)));
      } else {
        others.push_back(e);
      }
      return false;
    });
  }

  bool has(sv needle) const {
    T t = ctype(needle);
    if (t == T::Str) {
      std::string scratch;
      return strings.find(string_content(needle, scratch)) != strings.end();
    }
    if (t == T::Num) return numbers.count(dec_key(parse_dec(needle))) != 0;
    for (sv o : others) {
      if (equal(o, needle)) return true;
    }
    return false;
  }
};

// ---- The expression tree ---------------------------------------------------------------------

enum class Op : uint8_t { Or, And, Not, Truthy, Exists, Eq, Ne, Lt, Le, Gt, Ge, Contains };

struct Operand {
  enum Kind : uint8_t { Path, Literal, Bool } kind = Literal;
  uint32_t index = 0;  // into paths, literals or nodes
};

struct Node {
  Op op;
  Operand a, b;                 // Truthy: a; comparisons: a op b (Contains: a contains b)
  std::vector<uint32_t> kids;  // Or, And, Not
  uint32_t path = 0;            // Exists
};

struct Step {
  bool is_index = false;
  int64_t index = 0;
  std::string key;
};

struct Path {
  uint32_t root;  // into fields
  std::vector<Step> steps;
};

struct Literal {
  std::string json;  // canonical JSON text
  bool want_list = false;           // a list that is the haystack of `contains` (`in`)
  std::unique_ptr<ListIndex> list;  // built once parsing is over (it holds views of `json`)
};

const sv kTrue = "true", kFalse = "false";

const char* const kKeywords[] = {"and", "or", "not", "in", "contains", "exists", "true", "false", "null"};

bool is_keyword(sv w) {
  for (const char* k : kKeywords) {
    if (w == k) return true;
  }
  return false;
}

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

std::string lowered(sv w) {
  std::string s(w);
  for (char& c : s) c = lower(c);
  return s;
}

// Optimal string alignment distance (edits, with adjacent swaps), for "did you mean".
size_t edit_distance(sv a, sv b) {
  if (a.size() > 16 || b.size() > 16) return 99;
  size_t d[17][17];
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.size()][b.size()];
}

// " (did you mean 'and'?)" when `word` is close to one of `candidates`, else "".
std::string suggest(sv word, std::initializer_list<const char*> candidates) {
  std::string w = lowered(word);
  const char* best = nullptr;
  size_t best_d = 99;
  for (const char* c : candidates) {
    size_t d = edit_distance(w, c);
    size_t limit = std::strlen(c) <= 3 ? 1 : 2;
    if (d <= limit && d < best_d) {
      best = c;
      best_d = d;
    }
  }
  if (!best) return {};
  return std::string(" (did you mean '") + best + "'?)";
}

// ---- The parsed filter and its evaluation ----------------------------------------------------

struct Program {
  std::string text;
  std::vector<std::string> fields;  // path roots
  std::vector<Path> paths;
  std::vector<Literal> literals;
  std::vector<Node> nodes;
  uint32_t root = 0;

  struct Slot {  // a value read once per record
    bool done;
    sv value;
  };
  struct Ctx {
    const io::Record& rec;
    Slot* roots;
    Slot* paths;
  };

  sv field(uint32_t i, Ctx& c) const {
    Slot& s = c.roots[i];
    if (!s.done) {
      s.done = true;
      s.value = {};
      try {
        auto v = c.rec.raw(fields[i]);
        if (v) s.value = *v;
      } catch (const Error&) {  // a key with a lone surrogate escape: not the field asked for
      }
    }
    return s.value;
  }

  sv resolve(uint32_t i, Ctx& c) const {
    Slot& s = c.paths[i];
    if (s.done) return s.value;
    const Path& p = paths[i];
    sv v = field(p.root, c);
    for (const Step& st : p.steps) {
      if (v.empty()) break;
      if (st.is_index) {
        v = v[0] == '[' ? element(v, st.index) : sv{};
      } else {
        v = v[0] == '{' ? member(v, st.key) : sv{};
      }
    }
    s.done = true;
    s.value = v;
    return v;
  }

  sv value(const Operand& o, Ctx& c) const {
    switch (o.kind) {
      case Operand::Path: return resolve(o.index, c);
      case Operand::Literal: return literals[o.index].json;
      default: return eval(o.index, c) ? kTrue : kFalse;
    }
  }

  bool eval(uint32_t id, Ctx& c) const {
    const Node& n = nodes[id];
    switch (n.op) {
      case Op::Or:
        for (uint32_t k : n.kids) {
          if (eval(k, c)) return true;
        }
        return false;
      case Op::And:
        for (uint32_t k : n.kids) {
          if (!eval(k, c)) return false;
        }
        return true;
      case Op::Not: return !eval(n.kids[0], c);
      case Op::Truthy: return truthy(value(n.a, c));
      case Op::Exists: return !resolve(n.path, c).empty();
      case Op::Eq: return equal(value(n.a, c), value(n.b, c));
      case Op::Ne: return !equal(value(n.a, c), value(n.b, c));
      case Op::Contains: {
        if (n.a.kind == Operand::Literal && literals[n.a.index].list) return literals[n.a.index].list->has(value(n.b, c));
        sv hay = value(n.a, c);
        return contains(hay, value(n.b, c));
      }
      default: {
        sv x = value(n.a, c);
        auto o = order(x, value(n.b, c));
        if (!o) return false;
        switch (n.op) {
          case Op::Lt: return *o < 0;
          case Op::Le: return *o <= 0;
          case Op::Gt: return *o > 0;
          default: return *o >= 0;
        }
      }
    }
  }
};

// ---- Lexer and parser -------------------------------------------------------------------------

struct Token {
  enum Kind { End, Word, String, Number, LParen, RParen, LBrack, RBrack, Comma, Dot, Eq, Ne, Lt, Le, Gt, Ge };
  Kind kind = End;
  size_t off = 0, len = 0;  // bytes of the expression
  std::string str;          // String: the decoded content
};

class Parser {
 public:
  Parser(sv src, Program& out) : src_(src), out_(out) {}

  void parse() {
    size_t bad = json::first_invalid_utf8(src_);
    if (bad < src_.size()) fail(bad, "invalid UTF-8 in the expression");
    advance();
    out_.root = parse_or();
    if (tok_.kind != Token::End) fail(tok_.off, "expected " + continuation() + "or end of expression, found " + found() + hint());
    for (Literal& lit : out_.literals) {
      if (lit.want_list) lit.list = std::make_unique<ListIndex>(lit.json);
    }
  }

 private:
  sv src_;
  Program& out_;
  size_t pos_ = 0;       // lexer position
  Token tok_;            // the current token
  size_t prev_off_ = 0;  // the token before it
  size_t prev_len_ = 0;
  int depth_ = 0;
  bool last_bare_ = false;  // the last comparison was a lone operand (an operator could follow)
  std::unordered_map<std::string, uint32_t> path_ids_;

  // -- errors

  size_t column(size_t off) const {
    size_t col = 1;
    for (size_t i = 0; i < off && i < src_.size(); ++i) col += (static_cast<unsigned char>(src_[i]) & 0xC0) != 0x80;
    return col;
  }

  [[noreturn]] void fail(size_t off, const std::string& what) const {
    throw usage_error("--filter: column " + std::to_string(column(off)) + ": " + what);
  }

  static std::string quote(sv text) {
    if (text.size() > 32) {
      size_t cut = 29;
      while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
      return "'" + std::string(text.substr(0, cut)) + "...'";
    }
    return "'" + std::string(text) + "'";
  }

  std::string found() const {
    if (tok_.kind == Token::End) return "end of expression";
    return quote(src_.substr(tok_.off, tok_.len));
  }
  std::string prev() const { return quote(src_.substr(prev_off_, prev_len_)); }
  sv word() const { return tok_.kind == Token::Word ? src_.substr(tok_.off, tok_.len) : sv{}; }
  bool at_word(sv w) const { return tok_.kind == Token::Word && word() == w; }

  // What may follow a complete condition: "a comparison operator, 'and', 'or' " etc.
  std::string continuation() const {
    return last_bare_ ? "a comparison operator, 'and', 'or' " : "'and', 'or' ";
  }
  std::string hint() const {
    if (tok_.kind == Token::Word) {
      if (last_bare_) return suggest(word(), {"and", "or", "in", "contains"});
      return suggest(word(), {"and", "or"});
    }
    return {};
  }

  // -- lexer

  void advance() {
    prev_off_ = tok_.off;
    prev_len_ = tok_.len;
    lex(tok_);
  }

  void lex(Token& t) {
    while (pos_ < src_.size() && is_ws(src_[pos_])) ++pos_;
    t.off = pos_;
    t.str.clear();
    if (pos_ >= src_.size()) {
      t.kind = Token::End;
      t.len = 0;
      return;
    }
    char c = src_[pos_];
    auto single = [&](Token::Kind k, size_t n = 1) {
      t.kind = k;
      t.len = n;
      pos_ += n;
    };
    char next = pos_ + 1 < src_.size() ? src_[pos_ + 1] : '\0';
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_') {
      size_t e = pos_ + 1;
      while (e < src_.size() && ((src_[e] >= 'A' && src_[e] <= 'Z') || (src_[e] >= 'a' && src_[e] <= 'z') ||
                                 is_digit(src_[e]) || src_[e] == '_'))
        ++e;
      return single(Token::Word, e - pos_);
    }
    if (is_digit(c) || c == '-') return lex_number(t);
    switch (c) {
      case '"': return lex_string(t);
      case '(': return single(Token::LParen);
      case ')': return single(Token::RParen);
      case '[': return single(Token::LBrack);
      case ']': return single(Token::RBrack);
      case ',': return single(Token::Comma);
      case '.': return single(Token::Dot);
      case '<': return next == '=' ? single(Token::Le, 2) : single(Token::Lt);
      case '>': return next == '=' ? single(Token::Ge, 2) : single(Token::Gt);
      case '=':
        if (next == '=') return single(Token::Eq, 2);
        fail(pos_, "'=' is not an operator: use '==' to compare");
      case '!':
        if (next == '=') return single(Token::Ne, 2);
        fail(pos_, "'!' is not an operator: use 'not' (or '!=')");
      case '&': fail(pos_, std::string(next == '&' ? "'&&'" : "'&'") + " is not an operator: use 'and'");
      case '|': fail(pos_, std::string(next == '|' ? "'||'" : "'|'") + " is not an operator: use 'or'");
      case '\'': fail(pos_, "strings are written in double quotes (\"...\"), not single quotes");
      default: break;
    }
    unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7F) {
      static const char hex[] = "0123456789ABCDEF";
      fail(pos_, std::string("unexpected character U+00") + hex[u >> 4] + hex[u & 15]);
    }
    size_t n = u < 0x80 ? 1 : u < 0xE0 ? 2 : u < 0xF0 ? 3 : 4;
    fail(pos_, "unexpected character '" + std::string(src_.substr(pos_, n)) + "'" +
                   (u >= 0x80 ? " (a key that is not a plain word is written in brackets: [\"...\"])" : ""));
  }

  // JSON numbers: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
  void lex_number(Token& t) {
    size_t i = pos_, n = src_.size();
    auto digits = [&](const char* what) {
      if (i >= n || !is_digit(src_[i])) fail(i, std::string("expected a digit ") + what + ", found " + (i >= n ? "end of expression" : quote(src_.substr(i, 1))));
      while (i < n && is_digit(src_[i])) ++i;
    };
    if (src_[i] == '-') {
      ++i;
      bool after_word = i >= 2 && (std::isalnum(static_cast<unsigned char>(src_[i - 2])) || src_[i - 2] == '_');
      bool before_word = i < n && (std::isalpha(static_cast<unsigned char>(src_[i])) || src_[i] == '_');
      if (after_word && before_word)
        fail(i - 1, "'-' in a key: a key that is not a plain word is written in brackets (meta[\"odd-key\"])");
    }
    if (i < n && src_[i] == '0' && i + 1 < n && is_digit(src_[i + 1])) fail(i, "numbers do not start with 0 followed by a digit");
    digits(src_[pos_] == '-' ? "after '-'" : "");
    if (i < n && src_[i] == '.') {
      ++i;
      digits("after '.' in a number");
    }
    if (i < n && (src_[i] == 'e' || src_[i] == 'E')) {
      ++i;
      if (i < n && (src_[i] == '+' || src_[i] == '-')) ++i;
      digits("in the exponent of a number");
    }
    t.kind = Token::Number;
    t.len = i - pos_;
    pos_ = i;
  }

  void lex_string(Token& t) {
    size_t open = pos_, i = pos_ + 1, n = src_.size();
    std::string& out = t.str;
    for (;;) {
      if (i >= n) fail(open, "unterminated string");
      char c = src_[i];
      if (c == '"') break;
      unsigned char u = static_cast<unsigned char>(c);
      if (u < 0x20) {
        static const char hex[] = "0123456789ABCDEF";
        fail(i, std::string("control character U+00") + hex[u >> 4] + hex[u & 15] +
                    " in a string: write it as an escape (\\n, \\t, \\u00XX)");
      }
      if (c != '\\') {
        out += c;
        ++i;
        continue;
      }
      if (i + 1 >= n) fail(open, "unterminated string");
      char e = src_[i + 1];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          long cp = hex4(src_, i + 2);
          if (cp < 0) fail(i, "invalid escape: \\u needs four hex digits");
          size_t len = 6;
          if (cp >= 0xD800 && cp <= 0xDBFF && i + 12 <= n && src_[i + 6] == '\\' && src_[i + 7] == 'u') {
            long lo = hex4(src_, i + 8);
            if (lo >= 0xDC00 && lo <= 0xDFFF) {
              cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
              len = 12;
            }
          }
          if (cp >= 0xD800 && cp <= 0xDFFF) fail(i, "invalid escape: '" + std::string(src_.substr(i, 6)) + "' is a lone UTF-16 surrogate");
          text::utf8::append(out, static_cast<char32_t>(cp));
          i += len;
          continue;
        }
        default: {
          unsigned char ue = static_cast<unsigned char>(e);
          size_t len = ue < 0x80 ? 1 : ue < 0xE0 ? 2 : ue < 0xF0 ? 3 : 4;
          fail(i, "invalid escape '\\" + std::string(src_.substr(i + 1, len)) +
                      "' in a string (valid: \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)");
        }
      }
      i += 2;
    }
    t.kind = Token::String;
    t.len = i + 1 - open;
    pos_ = i + 1;
  }

  // -- parser

  void enter() {
    if (++depth_ > kMaxDepth) fail(tok_.off, "expression nested too deeply (more than " + std::to_string(kMaxDepth) + " levels)");
  }

  uint32_t add(Node n) {
    out_.nodes.push_back(std::move(n));
    return static_cast<uint32_t>(out_.nodes.size() - 1);
  }

  uint32_t parse_or() {
    uint32_t first = parse_and();
    if (!at_word("or")) return first;
    Node n{Op::Or, {}, {}, {first}, 0};
    while (at_word("or")) {
      advance();
      n.kids.push_back(parse_and());
    }
    return add(std::move(n));
  }

  uint32_t parse_and() {
    uint32_t first = parse_not();
    if (!at_word("and")) return first;
    Node n{Op::And, {}, {}, {first}, 0};
    while (at_word("and")) {
      advance();
      n.kids.push_back(parse_not());
    }
    return add(std::move(n));
  }

  uint32_t parse_not() {
    if (!at_word("not")) return parse_comparison();
    enter();
    advance();
    uint32_t kid = parse_not();
    --depth_;
    return add(Node{Op::Not, {}, {}, {kid}, 0});
  }

  static bool is_comparison(const Token& t, sv w) {
    return (t.kind >= Token::Eq && t.kind <= Token::Ge) || (t.kind == Token::Word && (w == "in" || w == "contains"));
  }

  uint32_t parse_comparison() {
    Operand a = parse_operand(false);
    if (!is_comparison(tok_, word())) {
      last_bare_ = true;
      if (a.kind == Operand::Bool) return a.index;
      return add(Node{Op::Truthy, a, {}, {}, 0});
    }
    Op op;
    switch (tok_.kind) {
      case Token::Eq: op = Op::Eq; break;
      case Token::Ne: op = Op::Ne; break;
      case Token::Lt: op = Op::Lt; break;
      case Token::Le: op = Op::Le; break;
      case Token::Gt: op = Op::Gt; break;
      case Token::Ge: op = Op::Ge; break;
      default: op = Op::Contains; break;
    }
    bool in = at_word("in");
    advance();
    Operand b = parse_operand(true);
    if (is_comparison(tok_, word()))
      fail(tok_.off, "comparisons do not chain: join them with 'and' (1 < x and x < 5), found " + found());
    last_bare_ = false;
    if (in) std::swap(a, b);  // a in b == b contains a
    if (op == Op::Contains && a.kind == Operand::Literal) {
      Literal& lit = out_.literals[a.index];
      if (type_of(lit.json) == T::Arr) lit.want_list = true;
    }
    return add(Node{op, a, b, {}, 0});
  }

  std::string expected_operand(bool value) const {
    std::string what = value ? "a value" : "an expression";
    if (prev_len_ == 0) return "expected " + what + ", found " + found();
    return "expected " + what + " after " + prev() + ", found " + found();
  }

  Operand literal(std::string json) {
    out_.literals.push_back(Literal{std::move(json), false, nullptr});
    return Operand{Operand::Literal, static_cast<uint32_t>(out_.literals.size() - 1)};
  }

  Operand parse_operand(bool value) {
    switch (tok_.kind) {
      case Token::String: {
        std::string json;
        json::append_string_unchecked(json, tok_.str);
        advance();
        return literal(std::move(json));
      }
      case Token::Number: {
        std::string json(src_.substr(tok_.off, tok_.len));
        advance();
        return literal(std::move(json));
      }
      case Token::LBrack: {
        std::string json;
        parse_list(json);
        return literal(std::move(json));
      }
      case Token::Dot: return Operand{Operand::Path, parse_path()};
      case Token::LParen: {
        size_t open = tok_.off;
        enter();
        advance();
        uint32_t node = parse_or();
        if (tok_.kind != Token::RParen) {
          std::string where = "')' to close the '(' at column " + std::to_string(column(open));
          if (tok_.kind == Token::End) fail(tok_.off, "expected " + where + ", found end of expression");
          std::string extra = hint();
          if (tok_.kind == Token::Comma) extra = " (lists are written in brackets: [\"a\", \"b\"])";
          fail(tok_.off, "expected " + continuation() + "or " + where + ", found " + found() + extra);
        }
        --depth_;
        advance();
        const Node& n = out_.nodes[node];
        if (n.op == Op::Truthy) return n.a;  // (meta.x) is the value of meta.x
        return Operand{Operand::Bool, node};
      }
      case Token::Word: {
        sv w = word();
        if (w == "true" || w == "false" || w == "null") {
          advance();
          return literal(std::string(w));
        }
        if (w == "exists") {
          size_t at = tok_.off;
          advance();
          if (tok_.kind != Token::LParen) fail(tok_.off, "expected '(' after 'exists', found " + found());
          advance();
          if (tok_.kind != Token::Dot && !(tok_.kind == Token::Word && !is_keyword(word())))
            fail(tok_.off, "exists() takes a path, found " + found());
          uint32_t path = parse_path();
          if (tok_.kind != Token::RParen)
            fail(tok_.off, "expected ')' to close the 'exists(' at column " + std::to_string(column(at)) + ", found " + found());
          advance();
          uint32_t node = add(Node{Op::Exists, {}, {}, {}, path});
          return Operand{Operand::Bool, node};
        }
        if (is_keyword(w)) fail(tok_.off, expected_operand(value));
        return Operand{Operand::Path, parse_path()};
      }
      default: fail(tok_.off, expected_operand(value));
    }
  }

  // A list literal at '[': appends its canonical JSON text.
  void parse_list(std::string& json) {
    size_t open = tok_.off;
    enter();
    advance();
    json += '[';
    if (tok_.kind == Token::RBrack) {
      advance();
      json += ']';
      --depth_;
      return;
    }
    for (bool first = true;; first = false) {
      if (!first) json += ',';
      switch (tok_.kind) {
        case Token::String:
          json::append_string_unchecked(json, tok_.str);
          advance();
          break;
        case Token::Number:
          json.append(src_.substr(tok_.off, tok_.len));
          advance();
          break;
        case Token::LBrack: parse_list(json); break;
        default:
          if (at_word("true") || at_word("false") || at_word("null")) {
            json.append(word());
            advance();
            break;
          }
          fail(tok_.off, "expected a literal in the list (a string, number, true, false, null or list), found " + found());
      }
      if (tok_.kind == Token::Comma) {
        advance();
        continue;
      }
      if (tok_.kind == Token::RBrack) break;
      fail(tok_.off, "expected ',' or ']' to close the '[' at column " + std::to_string(column(open)) + ", found " + found());
    }
    advance();
    json += ']';
    --depth_;
  }

  // A path at its first token (a word or '.'); returns its id (equal paths share one).
  uint32_t parse_path() {
    std::string root;
    if (tok_.kind == Token::Dot) {
      advance();
      if (tok_.kind == Token::Word) {
        root = word();
        advance();
      } else if (tok_.kind == Token::String) {
        root = tok_.str;
        advance();
      } else if (tok_.kind == Token::LBrack) {
        advance();
        if (tok_.kind != Token::String) fail(tok_.off, "expected a string key after '.[', found " + found());
        root = tok_.str;
        advance();
        if (tok_.kind != Token::RBrack) fail(tok_.off, "expected ']' after the key, found " + found());
        advance();
      } else {
        fail(tok_.off, "expected a field name after '.', found " + found());
      }
    } else {
      sv w = word();
      size_t at = tok_.off;
      std::string low = lowered(w);
      if (is_keyword(low))
        fail(at, "'" + std::string(w) + "' is not a keyword: keywords are lowercase ('" + low + "'); write ." +
                     std::string(w) + " for a field of that name");
      root = w;
      advance();
      if (tok_.kind == Token::LParen) fail(at, "unknown function '" + std::string(w) + "'" + suggest(w, {"exists"}) +
                                                   "; the only function is exists(path)");
    }
    Path p;
    std::string key = std::to_string(root.size()) + ':' + root;
    for (;;) {
      Step st;
      if (tok_.kind == Token::Dot) {
        advance();
        if (tok_.kind == Token::Word) {
          st.key = word();
        } else if (tok_.kind == Token::String) {
          st.key = tok_.str;
        } else {
          fail(tok_.off, "expected a field name after '.', found " + found());
        }
        advance();
      } else if (tok_.kind == Token::LBrack) {
        advance();
        if (tok_.kind == Token::String) {
          st.key = tok_.str;
        } else if (tok_.kind == Token::Number) {
          sv num = src_.substr(tok_.off, tok_.len);
          if (num.find_first_of(".eE") != npos) fail(tok_.off, "an array index must be an integer, found " + found());
          st.is_index = true;
          bool neg = num[0] == '-';
          int64_t v = 0;
          for (char c : num.substr(neg ? 1 : 0)) {
            if (v < 100'000'000'000'000'000) v = v * 10 + (c - '0');  // larger: never an element
          }
          st.index = neg ? -v : v;
        } else {
          fail(tok_.off, "expected a string key or an integer index after '[', found " + found());
        }
        advance();
        if (tok_.kind != Token::RBrack) fail(tok_.off, "expected ']', found " + found());
        advance();
      } else {
        break;
      }
      if (st.is_index) {
        key += 'i' + std::to_string(st.index) + ';';
      } else {
        key += 'k' + std::to_string(st.key.size()) + ':' + st.key;
      }
      p.steps.push_back(std::move(st));
    }
    auto it = path_ids_.find(key);
    if (it != path_ids_.end()) return it->second;
    uint32_t r = 0;
    while (r < out_.fields.size() && out_.fields[r] != root) ++r;
    if (r == out_.fields.size()) out_.fields.push_back(root);
    p.root = r;
    out_.paths.push_back(std::move(p));
    uint32_t id = static_cast<uint32_t>(out_.paths.size() - 1);
    path_ids_.emplace(std::move(key), id);
    return id;
  }
};

}  // namespace

struct Filter::Impl : Program {};

// ---- Filter -----------------------------------------------------------------------------------

Filter::Filter() : impl_(std::make_unique<Impl>()) {}
Filter::~Filter() = default;
Filter::Filter(Filter&&) noexcept = default;
Filter& Filter::operator=(Filter&&) noexcept = default;

Filter Filter::parse(std::string_view expr) {
  Filter f;
  f.impl_->text = std::string(expr);
  Parser(f.impl_->text, *f.impl_).parse();
  return f;
}

bool Filter::matches(const io::Record& rec) const {
  const Impl& m = *impl_;
  size_t nf = m.fields.size(), np = m.paths.size();
  std::array<Program::Slot, 32> local;
  std::vector<Program::Slot> heap;
  Program::Slot* slots = local.data();
  if (nf + np > local.size()) {
    heap.resize(nf + np);
    slots = heap.data();
  }
  for (size_t i = 0; i < nf + np; ++i) slots[i] = Program::Slot{false, {}};
  Program::Ctx c{rec, slots, slots + nf};
  return m.eval(m.root, c);
}

const std::string& Filter::text() const { return impl_->text; }
const std::vector<std::string>& Filter::fields() const { return impl_->fields; }

}  // namespace loom::index
