// The chat-template interpreter: lexer (with jinja2's whitespace control), parser to a small AST,
// and a tree-walking evaluator with Python value semantics. See template.h for what it promises.
//
// It will not: autoescape, load other templates ({% include %}, {% extends %}, {% import %}),
// run {% call %} blocks or filter blocks, or format strings with `%`. Those never appear in the
// chat templates it is for; a template using them gets a clear parse error.
#include "loom/chat/template.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstring>
#include <ctime>
#include <map>
#include <set>
#include <unordered_map>

#include <utf8proc.h>

#include "loom/core/error.h"
#include "loom/io/json.h"
#include "loom/text/utf8.h"

namespace loom::chat {

namespace utf8 = text::utf8;

// =============================================================================================
// Errors
// =============================================================================================

namespace {

[[noreturn]] void fail_at(const std::string& name, int line, int col, const std::string& what) {
  throw Error(Error::Kind::BadInput, "column " + std::to_string(col) + ": " + what, name,
              static_cast<size_t>(line));
}

// Thrown inside evaluation; converted to loom::Error with the node's line at the statement.
struct RenderError {
  std::string what;
};
[[noreturn]] void fail(std::string what) { throw RenderError{std::move(what)}; }

// Size budget for text built outside the renderer's own checks (repr, tojson); set per render.
thread_local size_t g_max_text = SIZE_MAX;
constexpr int kMaxValueDepth = 200;  // nesting of lists/dicts that repr, ==, < and tojson walk
void check_text(const std::string& s) {
  if (s.size() > g_max_text) fail("template output exceeded " + std::to_string(g_max_text) + " bytes");
}

// =============================================================================================
// Python-like helpers on values
// =============================================================================================

const char* type_name(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::Undefined: return "Undefined";
    case Value::Kind::None: return "NoneType";
    case Value::Kind::Bool: return "bool";
    case Value::Kind::Int: return "int";
    case Value::Kind::Float: return "float";
    case Value::Kind::String: return "str";
    case Value::Kind::List: return "list";
    case Value::Kind::Dict: return "dict";
    case Value::Kind::Namespace: return "Namespace";
    case Value::Kind::Callable: return "builtin_function_or_method";
  }
  return "object";
}

// jinja2's object_type_repr: "None", "dict object", ...
std::string object_type_repr(const Value& v) {
  if (v.is_none()) return "None";
  return std::string(type_name(v)) + " object";
}

std::string py_float_repr(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  if (d == 0) return std::signbit(d) ? "-0.0" : "0.0";
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
  std::string sci(buf, r.ptr);  // like "-1.2345e+02" (shortest round-trip digits)
  size_t e = sci.find('e');
  std::string mant = sci.substr(0, e);
  int exp = std::stoi(sci.substr(e + 1));
  bool neg = mant[0] == '-';
  if (neg) mant.erase(0, 1);
  std::string digits;
  for (char c : mant)
    if (c != '.') digits += c;
  std::string out;
  if (exp < -4 || exp >= 16) {
    out = digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    char eb[16];
    std::snprintf(eb, sizeof eb, "e%c%02d", exp < 0 ? '-' : '+', std::abs(exp));
    out += eb;
  } else if (exp < 0) {
    out = "0." + std::string(static_cast<size_t>(-exp - 1), '0') + digits;
  } else {
    size_t int_len = static_cast<size_t>(exp) + 1;
    if (digits.size() <= int_len) {
      out = digits + std::string(int_len - digits.size(), '0') + ".0";
    } else {
      out = digits.substr(0, int_len) + "." + digits.substr(int_len);
    }
  }
  return neg ? "-" + out : out;
}

std::string py_repr(const Value& v, int depth = 0);

std::string py_str(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::Undefined: return "";
    case Value::Kind::None: return "None";
    case Value::Kind::Bool: return v.as_bool() ? "True" : "False";
    case Value::Kind::Int: return std::to_string(v.as_int());
    case Value::Kind::Float: return py_float_repr(v.as_float());
    case Value::Kind::String: return v.str();
    default: return py_repr(v);
  }
}

std::string py_string_repr(std::string_view s) {
  bool has_sq = s.find('\'') != std::string_view::npos;
  bool has_dq = s.find('"') != std::string_view::npos;
  char q = has_sq && !has_dq ? '"' : '\'';
  std::string out(1, q);
  for (unsigned char c : s) {
    if (c == q || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7f) {
      char b[8];
      std::snprintf(b, sizeof b, "\\x%02x", c);
      out += b;
    } else {
      out += static_cast<char>(c);
    }
  }
  out += q;
  return out;
}

std::string py_repr(const Value& v, int depth) {
  if (depth > kMaxValueDepth) fail("value nested too deeply to print");
  switch (v.kind()) {
    case Value::Kind::String: return py_string_repr(v.str());
    case Value::Kind::List: {
      std::string out = v.is_tuple() ? "(" : "[";
      for (size_t i = 0; i < v.size(); ++i) {
        if (i) out += ", ";
        out += py_repr(v[i], depth + 1);
        check_text(out);
      }
      if (v.is_tuple() && v.size() == 1) out += ",";
      return out + (v.is_tuple() ? ")" : "]");
    }
    case Value::Kind::Dict:
    case Value::Kind::Namespace: {
      std::string out = v.kind() == Value::Kind::Namespace ? "<Namespace {" : "{";
      bool first = true;
      for (const auto& [k, x] : v.entries()) {
        if (!first) out += ", ";
        first = false;
        out += py_string_repr(k) + ": " + py_repr(x, depth + 1);
        check_text(out);
      }
      return out + (v.kind() == Value::Kind::Namespace ? "}>" : "}");
    }
    case Value::Kind::Callable: return "<built-in function " + v.callable_name() + ">";
    default: return py_str(v);
  }
}

bool py_eq(const Value& a, const Value& b, int depth = 0) {
  if (depth > kMaxValueDepth) fail("values nested too deeply to compare");
  auto numeric = [](const Value& v) {
    return v.kind() == Value::Kind::Int || v.kind() == Value::Kind::Float || v.kind() == Value::Kind::Bool;
  };
  if (numeric(a) && numeric(b)) {
    if (a.kind() != Value::Kind::Float && b.kind() != Value::Kind::Float) return a.as_int() == b.as_int();
    return a.as_float() == b.as_float();
  }
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case Value::Kind::Undefined:
    case Value::Kind::None: return true;
    case Value::Kind::String: return a.str() == b.str();
    case Value::Kind::List:
      if (a.size() != b.size()) return false;
      for (size_t i = 0; i < a.size(); ++i)
        if (!py_eq(a[i], b[i], depth + 1)) return false;
      return true;
    case Value::Kind::Dict:
      if (a.size() != b.size()) return false;
      for (const auto& [k, x] : a.entries()) {
        const Value* y = b.get(k);
        if (!y || !py_eq(x, *y, depth + 1)) return false;
      }
      return true;
    case Value::Kind::Namespace: return &a.entries() == &b.entries();
    default: return false;
  }
}

// -1, 0, 1; TypeError when Python would refuse to order the two.
int py_cmp(const Value& a, const Value& b, const char* op, int depth = 0) {
  if (depth > kMaxValueDepth) fail("values nested too deeply to compare");
  auto numeric = [](const Value& v) {
    return v.kind() == Value::Kind::Int || v.kind() == Value::Kind::Float || v.kind() == Value::Kind::Bool;
  };
  if (numeric(a) && numeric(b)) {
    if (a.kind() != Value::Kind::Float && b.kind() != Value::Kind::Float)
      return a.as_int() < b.as_int() ? -1 : a.as_int() > b.as_int() ? 1 : 0;
    double x = a.as_float(), y = b.as_float();
    return x < y ? -1 : x > y ? 1 : 0;
  }
  if (a.is_string() && b.is_string()) {
    int c = a.str().compare(b.str());  // UTF-8 byte order == code point order
    return c < 0 ? -1 : c > 0 ? 1 : 0;
  }
  if (a.is_list() && b.is_list()) {
    for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
      if (!py_eq(a[i], b[i])) return py_cmp(a[i], b[i], op, depth + 1);
    }
    return a.size() < b.size() ? -1 : a.size() > b.size() ? 1 : 0;
  }
  fail(std::string("'") + op + "' not supported between instances of '" + type_name(a) + "' and '" +
       type_name(b) + "'");
}

// Code points of a string, as byte offsets: offs[i] is where code point i starts; offs[n] = size.
std::vector<size_t> cp_offsets(std::string_view s) {
  std::vector<size_t> offs;
  offs.reserve(s.size() + 1);
  for (size_t i = 0; i < s.size(); i += utf8::sequence_length(static_cast<unsigned char>(s[i])))
    offs.push_back(i);
  offs.push_back(s.size());
  return offs;
}

// ---- JSON output as Python's json.dumps(ensure_ascii=False, ...) ----------------------------

struct JsonStyle {
  int indent = -1;  // -1: none
  std::string item_sep = ", ", key_sep = ": ";
  bool sort_keys = false;
};

void dump_json_string(std::string& out, std::string_view s) {
  out += '"';
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20) {
          char b[8];
          std::snprintf(b, sizeof b, "\\u%04x", c);
          out += b;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
}

void dump_json(std::string& out, const Value& v, const JsonStyle& st, int level, int depth) {
  if (depth > kMaxValueDepth) fail("tojson: value nested too deeply");
  check_text(out);
  auto newline = [&](int lvl) {
    out += '\n';
    out.append(static_cast<size_t>(st.indent) * static_cast<size_t>(lvl), ' ');
  };
  switch (v.kind()) {
    case Value::Kind::None: out += "null"; return;
    case Value::Kind::Bool: out += v.as_bool() ? "true" : "false"; return;
    case Value::Kind::Int: out += std::to_string(v.as_int()); return;
    case Value::Kind::Float: {
      double d = v.as_float();
      if (std::isnan(d)) out += "NaN";
      else if (std::isinf(d)) out += d > 0 ? "Infinity" : "-Infinity";
      else out += py_float_repr(d);
      return;
    }
    case Value::Kind::String: dump_json_string(out, v.str()); return;
    case Value::Kind::List: {
      if (v.size() == 0) {
        out += "[]";
        return;
      }
      out += '[';
      for (size_t i = 0; i < v.size(); ++i) {
        if (i) out += st.indent >= 0 ? std::string(",") : st.item_sep;
        if (st.indent >= 0) newline(level + 1);
        dump_json(out, v[i], st, level + 1, depth + 1);
      }
      if (st.indent >= 0) newline(level);
      out += ']';
      return;
    }
    case Value::Kind::Dict: {
      if (v.size() == 0) {
        out += "{}";
        return;
      }
      std::vector<const std::pair<std::string, Value>*> es;
      for (const auto& e : v.entries()) es.push_back(&e);
      if (st.sort_keys)
        std::stable_sort(es.begin(), es.end(), [](auto* a, auto* b) { return a->first < b->first; });
      out += '{';
      bool first = true;
      for (auto* e : es) {
        if (!first) out += st.indent >= 0 ? std::string(",") : st.item_sep;
        first = false;
        if (st.indent >= 0) newline(level + 1);
        dump_json_string(out, e->first);
        out += st.key_sep;
        dump_json(out, e->second, st, level + 1, depth + 1);
      }
      if (st.indent >= 0) newline(level);
      out += '}';
      return;
    }
    default:
      fail(std::string("Object of type ") +
           (v.is_undefined() ? "Undefined" : v.kind() == Value::Kind::Namespace ? "TemplateNamespace" : type_name(v)) +
           " is not JSON serializable");
  }
}

// =============================================================================================
// Lexer
// =============================================================================================

enum class Tok { Text, VarBegin, VarEnd, BlockBegin, BlockEnd, Name, String, Int, Float, Op, Eof };

struct Token {
  Tok type;
  std::string text;  // Text: the text; Name/Op: the spelling; String: the decoded value
  int line = 1, col = 1;
  int64_t ival = 0;
  double fval = 0;
};

bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

class Lexer {
 public:
  Lexer(std::string src, std::string name) : s_(std::move(src)), name_(std::move(name)) {}

  std::vector<Token> run() {
    size_t p = 0;
    bool line_starting = true;
    while (p < s_.size()) {
      size_t open = find_open(p);
      std::string text = s_.substr(p, open - p);
      if (open >= s_.size()) {
        emit_text(std::move(text), p);
        break;
      }
      char kind = s_[open + 1];  // '{', '%' or '#'
      size_t q = open + 2;
      char mod = q < s_.size() && (s_[q] == '-' || s_[q] == '+') ? s_[q] : 0;
      if (mod) ++q;
      if (mod == '-') {
        size_t e = text.size();
        while (e > 0 && is_ws(text[e - 1])) --e;
        text.resize(e);
      } else if (mod != '+' && kind != '{') {  // lstrip_blocks
        size_t l_pos = text.rfind('\n');
        l_pos = l_pos == std::string::npos ? 0 : l_pos + 1;
        if (l_pos > 0 || line_starting) {
          bool all_ws = l_pos < text.size();
          for (size_t i = l_pos; i < text.size(); ++i)
            if (!is_ws(text[i])) all_ws = false;
          if (all_ws) text.resize(l_pos);
        }
      }
      emit_text(std::move(text), p);
      size_t end;
      if (kind == '#') {
        size_t c = s_.find("#}", q);
        if (c == std::string::npos) error_at(open, "missing end of comment tag");
        bool strip = c > q && s_[c - 1] == '-';
        end = c + 2;
        end = after_tag(end, strip, true, c > q && s_[c - 1] == '+');
      } else {
        Tok begin = kind == '{' ? Tok::VarBegin : Tok::BlockBegin;
        push(begin, "", open);
        end = lex_expression(q, kind == '{' ? '}' : '%', open);
      }
      line_starting = end > 0 && s_[end - 1] == '\n';
      p = end;
    }
    push(Tok::Eof, "", s_.size());
    return std::move(toks_);
  }

 private:
  size_t find_open(size_t p) const {
    while (true) {
      size_t o = s_.find('{', p);
      if (o == std::string::npos || o + 1 >= s_.size()) return s_.size();
      char c = s_[o + 1];
      if (c == '{' || c == '%' || c == '#') return o;
      p = o + 1;
    }
  }

  void line_col(size_t pos, int& line, int& col) const {
    // positions are recorded incrementally: cache the last answer
    if (pos < cache_pos_) {
      cache_pos_ = 0;
      cache_line_ = 1;
      cache_col_ = 1;
    }
    for (size_t i = cache_pos_; i < pos && i < s_.size(); ++i) {
      if (s_[i] == '\n') {
        ++cache_line_;
        cache_col_ = 1;
      } else if (!utf8::is_continuation(static_cast<unsigned char>(s_[i]))) {
        ++cache_col_;
      }
    }
    cache_pos_ = pos;
    line = cache_line_;
    col = cache_col_;
  }

  [[noreturn]] void error_at(size_t pos, const std::string& what) const {
    int line, col;
    line_col(pos, line, col);
    fail_at(name_, line, col, what);
  }

  void push(Tok t, std::string text, size_t pos) {
    Token k;
    k.type = t;
    k.text = std::move(text);
    line_col(pos, k.line, k.col);
    toks_.push_back(std::move(k));
  }

  void emit_text(std::string text, size_t pos) {
    if (!text.empty()) push(Tok::Text, std::move(text), pos);
  }

  // After a tag's closing delimiter at `end`: "-" strips all following whitespace; trim_blocks
  // removes one newline after block and comment tags.
  size_t after_tag(size_t end, bool strip, bool block, bool plus) const {
    if (strip) {
      while (end < s_.size() && is_ws(s_[end])) ++end;
    } else if (block && !plus && end < s_.size() && s_[end] == '\n') {
      ++end;
    }
    return end;
  }

  size_t lex_expression(size_t p, char close, size_t open) {
    std::vector<char> stack;
    while (true) {
      while (p < s_.size() && is_ws(s_[p])) ++p;
      if (p >= s_.size()) error_at(open, close == '}' ? "unexpected end of template: missing '}}'" : "unexpected end of template: missing '%}'");
      char c = s_[p];
      // closing delimiter (with optional - or +)
      if (stack.empty()) {
        size_t q = p;
        char mod = 0;
        if ((c == '-' || c == '+') && p + 2 < s_.size() && s_[p + 1] == close && s_[p + 2] == '}') {
          mod = c;
          ++q;
        }
        if (q + 1 < s_.size() && s_[q] == close && s_[q + 1] == '}') {
          push(close == '}' ? Tok::VarEnd : Tok::BlockEnd, "", p);
          return after_tag(q + 2, mod == '-', close == '%', mod == '+');
        }
      }
      if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
        size_t b = p;
        while (p < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[p])) || s_[p] == '_')) ++p;
        push(Tok::Name, s_.substr(b, p - b), b);
        continue;
      }
      if (std::isdigit(static_cast<unsigned char>(c))) {
        p = lex_number(p);
        continue;
      }
      if (c == '\'' || c == '"') {
        p = lex_string(p);
        continue;
      }
      static const char* ops[] = {"//", "**", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<", ">",
                                  "=", "(", ")", "[", "]", "{", "}", ".", ",", ":", "|"};
      bool matched = false;
      for (const char* op : ops) {
        size_t n = std::strlen(op);
        if (s_.compare(p, n, op) == 0) {
          if (n == 1 && (c == '(' || c == '[' || c == '{')) stack.push_back(c == '(' ? ')' : c == '[' ? ']' : '}');
          if (n == 1 && (c == ')' || c == ']' || c == '}')) {
            if (stack.empty()) error_at(p, std::string("unexpected '") + c + "'");
            if (stack.back() != c) error_at(p, std::string("unexpected '") + c + "', expected '" + stack.back() + "'");
            stack.pop_back();
          }
          push(Tok::Op, op, p);
          p += n;
          matched = true;
          break;
        }
      }
      if (!matched) error_at(p, std::string("unexpected character '") + c + "'");
    }
  }

  size_t lex_number(size_t p) {
    size_t b = p;
    std::string digits;
    auto run = [&] {
      while (p < s_.size() && (std::isdigit(static_cast<unsigned char>(s_[p])) ||
                               (s_[p] == '_' && p + 1 < s_.size() && std::isdigit(static_cast<unsigned char>(s_[p + 1]))))) {
        if (s_[p] != '_') digits += s_[p];
        ++p;
      }
    };
    run();
    bool is_float = false;
    if (p + 1 < s_.size() && s_[p] == '.' && std::isdigit(static_cast<unsigned char>(s_[p + 1]))) {
      is_float = true;
      digits += '.';
      ++p;
      run();
    }
    if (p < s_.size() && (s_[p] == 'e' || s_[p] == 'E')) {
      size_t q = p + 1;
      if (q < s_.size() && (s_[q] == '+' || s_[q] == '-')) ++q;
      if (q < s_.size() && std::isdigit(static_cast<unsigned char>(s_[q]))) {
        is_float = true;
        digits += 'e';
        digits.append(s_, p + 1, q - p - 1);
        p = q;
        run();
      }
    }
    Token k;
    line_col(b, k.line, k.col);
    k.text = s_.substr(b, p - b);
    if (is_float) {
      k.type = Tok::Float;
      k.fval = std::strtod(digits.c_str(), nullptr);
    } else {
      k.type = Tok::Int;
      auto r = std::from_chars(digits.data(), digits.data() + digits.size(), k.ival);
      if (r.ec != std::errc()) error_at(b, "integer literal too large");
    }
    toks_.push_back(std::move(k));
    return p;
  }

  // A string literal with Python escapes (jinja2 decodes them with unicode-escape).
  size_t lex_string(size_t p) {
    size_t b = p;
    char q = s_[p++];
    std::string out;
    while (true) {
      if (p >= s_.size()) error_at(b, "unterminated string literal");
      char c = s_[p];
      if (c == q) {
        ++p;
        break;
      }
      if (c != '\\') {
        out += c;
        ++p;
        continue;
      }
      if (p + 1 >= s_.size()) error_at(b, "unterminated string literal");
      char e = s_[p + 1];
      p += 2;
      auto hex = [&](int n) -> char32_t {
        char32_t v = 0;
        for (int i = 0; i < n; ++i) {
          if (p >= s_.size() || !std::isxdigit(static_cast<unsigned char>(s_[p])))
            error_at(b, "truncated \\x/\\u escape in string literal");
          char h = s_[p++];
          v = v * 16 + static_cast<char32_t>(std::isdigit(static_cast<unsigned char>(h)) ? h - '0' : (std::tolower(h) - 'a' + 10));
        }
        return v;
      };
      switch (e) {
        case 'n': out += '\n'; break;
        case 't': out += '\t'; break;
        case 'r': out += '\r'; break;
        case '\\': out += '\\'; break;
        case '\'': out += '\''; break;
        case '"': out += '"'; break;
        case 'a': out += '\a'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'v': out += '\v'; break;
        case '\n': break;  // line continuation
        case 'x': utf8::append(out, hex(2)); break;
        case 'u': utf8::append(out, hex(4)); break;
        case 'U': {
          char32_t cp = hex(8);
          if (cp > 0x10FFFF) error_at(b, "illegal Unicode character in string literal");
          utf8::append(out, cp);
          break;
        }
        default:
          if (e >= '0' && e <= '7') {
            char32_t v = static_cast<char32_t>(e - '0');
            for (int i = 0; i < 2 && p < s_.size() && s_[p] >= '0' && s_[p] <= '7'; ++i) v = v * 8 + static_cast<char32_t>(s_[p++] - '0');
            utf8::append(out, v);
          } else {
            out += '\\';
            out += e;
          }
      }
    }
    if (!utf8::is_valid(out)) error_at(b, "string literal is not valid UTF-8");
    Token k;
    k.type = Tok::String;
    k.text = std::move(out);
    line_col(b, k.line, k.col);
    toks_.push_back(std::move(k));
    return p;
  }

  std::string s_;
  std::string name_;
  std::vector<Token> toks_;
  mutable size_t cache_pos_ = 0;
  mutable int cache_line_ = 1, cache_col_ = 1;
};

// =============================================================================================
// AST
// =============================================================================================

struct Expr;
using ExprP = std::unique_ptr<Expr>;

struct Expr {
  enum K { Lit, Name, Attr, Item, Slice, Call, Filter, Test, Neg, Pos, Not, Bin, Cmp, And, Or, Cond, ListE, DictE };
  K k;
  int line = 0;
  Value lit;
  std::string name;          // Name, Attr, Filter, Test; Bin/Cmp: operator(s) in ops
  std::vector<ExprP> args;   // operands / positional args (args[0] is the subject for Attr/Item/...)
  std::vector<std::pair<std::string, ExprP>> kwargs;
  std::vector<std::string> ops;  // Cmp operators
  bool negate = false;           // Test: `is not`
  bool tuple = false;            // ListE written as a tuple: (a, b) or a, b
  bool has[3] = {false, false, false};  // Slice: which of start/stop/step are present
};

struct Node;
using NodeP = std::unique_ptr<Node>;
using Body = std::vector<NodeP>;

struct Node {
  enum K { Text, Out, If, For, Set, SetBlock, Break, Continue, Macro };
  K k;
  int line = 0;
  std::string text;                                     // Text
  ExprP expr;                                           // Out, For (iterable), Set (value)
  std::vector<std::pair<ExprP, Body>> branches;         // If: (cond, body); else: cond null
  std::vector<std::string> targets;                     // For / Set names; Set: ns attribute in attr
  std::string attr;                                     // Set ns.attr
  ExprP filter;                                         // For ... if cond
  Body body, else_body;                                 // For, SetBlock, Macro
  std::vector<std::pair<std::string, ExprP>> params;    // Macro: name, default (may be null)
  bool recursive = false;
};

const std::set<std::string, std::less<>>& known_filters() {
  static const std::set<std::string, std::less<>> f = {
      "abs", "attr", "capitalize", "count", "d", "default", "dictsort", "e", "escape", "first", "float",
      "indent", "int", "items", "join", "last", "length", "list", "lower", "map", "max", "min", "reject",
      "rejectattr", "replace", "reverse", "round", "safe", "select", "selectattr", "sort", "string",
      "sum", "title", "tojson", "trim", "unique", "upper", "wordcount", "center", "batch"};
  return f;
}

const std::set<std::string, std::less<>>& known_tests() {
  static const std::set<std::string, std::less<>> t = {
      "boolean", "callable", "defined", "divisibleby", "eq", "equalto", "escaped", "even", "false",
      "float", "ge", "gt", "greaterthan", "in", "integer", "iterable", "le", "lower", "lessthan", "lt",
      "mapping", "ne", "none", "number", "odd", "sameas", "sequence", "string", "true", "undefined",
      "upper", "==", "!=", "<", "<=", ">", ">="};
  return t;
}

// =============================================================================================
// Parser
// =============================================================================================

class Parser {
 public:
  Parser(std::vector<Token> toks, std::string name, int max_depth)
      : t_(std::move(toks)), name_(std::move(name)), max_depth_(max_depth) {}

  Body parse_all() {
    std::string end;
    Body b = parse_body({}, end);
    return b;
  }

 private:
  const Token& cur() const { return t_[i_]; }
  const Token& peek(size_t n = 1) const { return t_[std::min(i_ + n, t_.size() - 1)]; }
  [[noreturn]] void error(const Token& at, const std::string& what) const { fail_at(name_, at.line, at.col, what); }
  bool is_op(const char* op) const { return cur().type == Tok::Op && cur().text == op; }
  bool is_name(const char* n) const { return cur().type == Tok::Name && cur().text == n; }
  void expect_op(const char* op) {
    if (!is_op(op)) error(cur(), std::string("expected '") + op + "', got " + describe(cur()));
    ++i_;
  }
  std::string expect_name() {
    if (cur().type != Tok::Name) error(cur(), "expected a name, got " + describe(cur()));
    return t_[i_++].text;
  }
  void expect_block_end() {
    if (cur().type != Tok::BlockEnd) error(cur(), "expected end of statement '%}', got " + describe(cur()));
    ++i_;
  }
  static std::string describe(const Token& t) {
    switch (t.type) {
      case Tok::Eof: return "end of template";
      case Tok::BlockEnd: return "'%}'";
      case Tok::VarEnd: return "'}}'";
      case Tok::String: return "a string";
      case Tok::Int:
      case Tok::Float: return "'" + t.text + "'";
      default: return "'" + t.text + "'";
    }
  }

  struct Depth {
    Depth(Parser& p, const Token& at) : p(p) {
      if (++p.depth_ > p.max_depth_) p.error(at, "template nested too deeply");
    }
    ~Depth() { --p.depth_; }
    Parser& p;
  };

  // Parses nodes until a block tag whose keyword is in `ends` (returned in `end`, the tag's
  // keyword consumed, its end not). At top level (`ends` empty) runs to the end of the template.
  Body parse_body(const std::vector<std::string>& ends, std::string& end) {
    Depth d(*this, cur());
    Body body;
    while (true) {
      const Token& t = cur();
      if (t.type == Tok::Eof) {
        if (!ends.empty()) {
          std::string list;
          for (auto& e : ends) list += (list.empty() ? "'" : " or '") + e + "'";
          error(t, "unexpected end of template: expected " + list);
        }
        return body;
      }
      if (t.type == Tok::Text) {
        auto n = std::make_unique<Node>();
        n->k = Node::Text;
        n->text = t.text;
        n->line = t.line;
        body.push_back(std::move(n));
        ++i_;
        continue;
      }
      if (t.type == Tok::VarBegin) {
        ++i_;
        auto n = std::make_unique<Node>();
        n->k = Node::Out;
        n->line = t.line;
        n->expr = parse_tuple();
        if (cur().type != Tok::VarEnd) error(cur(), "expected end of print statement '}}', got " + describe(cur()));
        ++i_;
        body.push_back(std::move(n));
        continue;
      }
      // block
      ++i_;
      if (cur().type != Tok::Name) error(cur(), "expected a statement keyword, got " + describe(cur()));
      const std::string kw = cur().text;
      if (std::find(ends.begin(), ends.end(), kw) != ends.end()) {
        ++i_;
        end = kw;
        return body;
      }
      body.push_back(parse_statement());
    }
  }

  NodeP parse_statement() {
    const Token kwt = cur();
    const std::string& kw = kwt.text;
    auto n = std::make_unique<Node>();
    n->line = kwt.line;
    ++i_;
    if (kw == "if") {
      n->k = Node::If;
      ExprP cond = parse_expression();
      expect_block_end();
      while (true) {
        std::string end;
        Body b = parse_body({"elif", "else", "endif"}, end);
        n->branches.emplace_back(std::move(cond), std::move(b));
        if (end == "endif") {
          expect_block_end();
          break;
        }
        if (end == "else") {
          expect_block_end();
          std::string e2;
          Body eb = parse_body({"endif"}, e2);
          n->branches.emplace_back(nullptr, std::move(eb));
          expect_block_end();
          break;
        }
        cond = parse_expression();
        expect_block_end();
      }
      return n;
    }
    if (kw == "for") {
      n->k = Node::For;
      n->targets.push_back(expect_name());
      while (is_op(",")) {
        ++i_;
        n->targets.push_back(expect_name());
      }
      if (!is_name("in")) error(cur(), "expected 'in', got " + describe(cur()));
      ++i_;
      n->expr = parse_tuple(/*no_cond=*/true);
      if (is_name("if")) {
        ++i_;
        n->filter = parse_expression();
      }
      if (is_name("recursive")) error(cur(), "recursive loops are not supported");
      expect_block_end();
      std::string end;
      n->body = parse_body({"else", "endfor"}, end);
      if (end == "else") {
        expect_block_end();
        n->else_body = parse_body({"endfor"}, end);
      }
      expect_block_end();
      return n;
    }
    if (kw == "set") {
      std::string target = expect_name();
      if (is_op(".")) {
        ++i_;
        n->attr = expect_name();
      }
      n->targets.push_back(target);
      while (n->attr.empty() && is_op(",")) {
        ++i_;
        n->targets.push_back(expect_name());
      }
      if (cur().type == Tok::BlockEnd && n->targets.size() == 1 && n->attr.empty()) {
        n->k = Node::SetBlock;
        expect_block_end();
        std::string end;
        n->body = parse_body({"endset"}, end);
        expect_block_end();
        return n;
      }
      n->k = Node::Set;
      expect_op("=");
      n->expr = parse_tuple();
      expect_block_end();
      return n;
    }
    if (kw == "break" || kw == "continue") {
      n->k = kw == "break" ? Node::Break : Node::Continue;
      expect_block_end();
      return n;
    }
    if (kw == "generation") {  // transformers' AssistantTracker block: renders its body
      expect_block_end();
      std::string end;
      n->k = Node::If;
      auto always = std::make_unique<Expr>();
      always->k = Expr::Lit;
      always->lit = Value(true);
      Body b = parse_body({"endgeneration"}, end);
      n->branches.emplace_back(std::move(always), std::move(b));
      expect_block_end();
      return n;
    }
    if (kw == "macro") {
      n->k = Node::Macro;
      n->targets.push_back(expect_name());
      expect_op("(");
      while (!is_op(")")) {
        std::string p = expect_name();
        ExprP def;
        if (is_op("=")) {
          ++i_;
          def = parse_expression();
        }
        n->params.emplace_back(p, std::move(def));
        if (!is_op(",")) break;
        ++i_;
      }
      expect_op(")");
      expect_block_end();
      std::string end;
      n->body = parse_body({"endmacro"}, end);
      expect_block_end();
      return n;
    }
    error(kwt, "unknown or unsupported statement '" + kw + "'");
  }

  ExprP make(Expr::K k, const Token& at) {
    auto e = std::make_unique<Expr>();
    e->k = k;
    e->line = at.line;
    return e;
  }

  // expr [, expr]* -> a list when there is a comma
  ExprP parse_tuple(bool no_cond = false) {
    const Token at = cur();
    ExprP first = parse_expression(!no_cond);
    if (!is_op(",")) return first;
    auto l = make(Expr::ListE, at);
    l->tuple = true;
    l->args.push_back(std::move(first));
    while (is_op(",")) {
      ++i_;
      if (cur().type == Tok::BlockEnd || cur().type == Tok::VarEnd) break;
      l->args.push_back(parse_expression(!no_cond));
    }
    return l;
  }

  ExprP parse_expression(bool with_cond = true) {
    Depth d(*this, cur());
    const Token at = cur();
    ExprP e = parse_or();
    if (with_cond && is_name("if")) {
      ++i_;
      auto c = make(Expr::Cond, at);
      ExprP cond = parse_or();
      ExprP other;
      if (is_name("else")) {
        ++i_;
        other = parse_expression();
      }
      c->args.push_back(std::move(cond));
      c->args.push_back(std::move(e));
      c->args.push_back(std::move(other));
      return c;
    }
    return e;
  }

  ExprP parse_or() {
    const Token at = cur();
    ExprP e = parse_and();
    while (is_name("or")) {
      ++i_;
      auto o = make(Expr::Or, at);
      o->args.push_back(std::move(e));
      o->args.push_back(parse_and());
      e = std::move(o);
    }
    return e;
  }
  ExprP parse_and() {
    const Token at = cur();
    ExprP e = parse_not();
    while (is_name("and")) {
      ++i_;
      auto o = make(Expr::And, at);
      o->args.push_back(std::move(e));
      o->args.push_back(parse_not());
      e = std::move(o);
    }
    return e;
  }
  ExprP parse_not() {
    const Token at = cur();
    if (is_name("not")) {
      Depth d(*this, at);
      ++i_;
      auto n = make(Expr::Not, at);
      n->args.push_back(parse_not());
      return n;
    }
    return parse_compare();
  }
  ExprP parse_compare() {
    const Token at = cur();
    ExprP e = parse_math1();
    ExprP cmp;
    while (true) {
      std::string op;
      if (cur().type == Tok::Op && (cur().text == "==" || cur().text == "!=" || cur().text == "<" ||
                                    cur().text == "<=" || cur().text == ">" || cur().text == ">=")) {
        op = cur().text;
        ++i_;
      } else if (is_name("in")) {
        op = "in";
        ++i_;
      } else if (is_name("not") && peek().type == Tok::Name && peek().text == "in") {
        op = "notin";
        i_ += 2;
      } else {
        break;
      }
      if (!cmp) {
        cmp = make(Expr::Cmp, at);
        cmp->args.push_back(std::move(e));
      }
      cmp->ops.push_back(op);
      cmp->args.push_back(parse_math1());
    }
    return cmp ? std::move(cmp) : std::move(e);
  }
  ExprP bin(const Token& at, std::string op, ExprP a, ExprP b) {
    auto e = make(Expr::Bin, at);
    e->name = std::move(op);
    e->args.push_back(std::move(a));
    e->args.push_back(std::move(b));
    return e;
  }
  ExprP parse_math1() {
    const Token at = cur();
    ExprP e = parse_concat();
    while (is_op("+") || is_op("-")) {
      std::string op = t_[i_++].text;
      e = bin(at, op, std::move(e), parse_concat());
    }
    return e;
  }
  ExprP parse_concat() {
    const Token at = cur();
    ExprP e = parse_math2();
    while (is_op("~")) {
      ++i_;
      e = bin(at, "~", std::move(e), parse_math2());
    }
    return e;
  }
  ExprP parse_math2() {
    const Token at = cur();
    ExprP e = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      std::string op = t_[i_++].text;
      e = bin(at, op, std::move(e), parse_pow());
    }
    return e;
  }
  ExprP parse_pow() {
    const Token at = cur();
    ExprP e = parse_unary();
    while (is_op("**")) {
      ++i_;
      e = bin(at, "**", std::move(e), parse_unary());
    }
    return e;
  }
  ExprP parse_unary(bool with_filter = true) {
    const Token at = cur();
    Depth d(*this, at);
    ExprP e;
    if (is_op("-") || is_op("+")) {
      bool neg = is_op("-");
      ++i_;
      e = make(neg ? Expr::Neg : Expr::Pos, at);
      e->args.push_back(parse_unary(false));
    } else {
      e = parse_primary();
    }
    e = parse_postfix(std::move(e));
    if (with_filter) e = parse_filters(std::move(e));
    return e;
  }

  ExprP parse_primary() {
    const Token at = cur();
    switch (at.type) {
      case Tok::Name: {
        ++i_;
        const std::string& n = at.text;
        auto e = make(Expr::Lit, at);
        if (n == "true" || n == "True") e->lit = Value(true);
        else if (n == "false" || n == "False") e->lit = Value(false);
        else if (n == "none" || n == "None") e->lit = Value::none();
        else {
          e->k = Expr::Name;
          e->name = n;
        }
        return e;
      }
      case Tok::String: {
        std::string s;
        while (cur().type == Tok::String) s += t_[i_++].text;  // adjacent literals concatenate
        auto e = make(Expr::Lit, at);
        e->lit = Value(std::move(s));
        return e;
      }
      case Tok::Int: {
        ++i_;
        auto e = make(Expr::Lit, at);
        e->lit = Value(at.ival);
        return e;
      }
      case Tok::Float: {
        ++i_;
        auto e = make(Expr::Lit, at);
        e->lit = Value(at.fval);
        return e;
      }
      case Tok::Op:
        if (at.text == "(") {
          ++i_;
          if (is_op(")")) {
            ++i_;
            auto empty = make(Expr::ListE, at);
            empty->tuple = true;
            return empty;
          }
          ExprP e = parse_expression();
          if (is_op(",")) {
            auto l = make(Expr::ListE, at);
            l->tuple = true;
            l->args.push_back(std::move(e));
            while (is_op(",")) {
              ++i_;
              if (is_op(")")) break;
              l->args.push_back(parse_expression());
            }
            e = std::move(l);
          }
          expect_op(")");
          return e;
        }
        if (at.text == "[") {
          ++i_;
          auto l = make(Expr::ListE, at);
          while (!is_op("]")) {
            l->args.push_back(parse_expression());
            if (!is_op(",")) break;
            ++i_;
          }
          expect_op("]");
          return l;
        }
        if (at.text == "{") {
          ++i_;
          auto d = make(Expr::DictE, at);
          while (!is_op("}")) {
            d->args.push_back(parse_expression());
            expect_op(":");
            d->args.push_back(parse_expression());
            if (!is_op(",")) break;
            ++i_;
          }
          expect_op("}");
          return d;
        }
        break;
      default: break;
    }
    error(at, "unexpected " + describe(at));
  }

  void parse_call_args(Expr& e) {
    expect_op("(");
    while (!is_op(")")) {
      if (cur().type == Tok::Name && peek().type == Tok::Op && peek().text == "=") {
        std::string k = t_[i_].text;
        i_ += 2;
        e.kwargs.emplace_back(k, parse_expression());
      } else {
        if (!e.kwargs.empty()) error(cur(), "positional argument follows keyword argument");
        e.args.push_back(parse_expression());
      }
      if (!is_op(",")) break;
      ++i_;
    }
    expect_op(")");
  }

  ExprP parse_postfix(ExprP e) {
    while (true) {
      const Token at = cur();
      if (is_op(".")) {
        ++i_;
        auto a = make(Expr::Attr, at);
        if (cur().type == Tok::Int) {  // x.0 means x[0]
          a->k = Expr::Item;
          auto idx = make(Expr::Lit, cur());
          idx->lit = Value(cur().ival);
          ++i_;
          a->args.push_back(std::move(e));
          a->args.push_back(std::move(idx));
        } else {
          a->name = expect_name();
          a->args.push_back(std::move(e));
        }
        e = std::move(a);
      } else if (is_op("[")) {
        ++i_;
        ExprP parts[3];
        bool has[3] = {false, false, false};
        bool slice = false;
        for (int k = 0; k < 3; ++k) {
          if (!is_op(":") && !is_op("]")) {
            parts[k] = parse_expression();
            has[k] = true;
          }
          if (k < 2 && is_op(":")) {
            slice = true;
            ++i_;
          } else {
            break;
          }
        }
        expect_op("]");
        if (!slice) {
          if (!has[0]) error(at, "expected a subscript");
          auto it = make(Expr::Item, at);
          it->args.push_back(std::move(e));
          it->args.push_back(std::move(parts[0]));
          e = std::move(it);
        } else {
          auto s = make(Expr::Slice, at);
          s->args.push_back(std::move(e));
          for (int k = 0; k < 3; ++k) {
            s->has[k] = has[k];
            s->args.push_back(std::move(parts[k]));
          }
          e = std::move(s);
        }
      } else if (is_op("(")) {
        auto c = make(Expr::Call, at);
        c->args.push_back(std::move(e));
        parse_call_args(*c);
        e = std::move(c);
      } else {
        return e;
      }
    }
  }

  ExprP parse_filters(ExprP e) {
    while (true) {
      const Token at = cur();
      if (is_op("|")) {
        ++i_;
        const Token nt = cur();
        std::string name = expect_name();
        while (is_op(".")) {  // dotted filter names
          ++i_;
          name += "." + expect_name();
        }
        if (!known_filters().count(name)) error(nt, "no filter named '" + name + "'");
        auto f = make(Expr::Filter, at);
        f->name = name;
        f->args.push_back(std::move(e));
        if (is_op("(")) parse_call_args(*f);
        e = std::move(f);
      } else if (is_name("is")) {
        ++i_;
        auto t = make(Expr::Test, at);
        if (is_name("not")) {
          ++i_;
          t->negate = true;
        }
        const Token nt = cur();
        std::string name;
        if (cur().type == Tok::Name) name = t_[i_++].text;
        else if (cur().type == Tok::Op && known_tests().count(cur().text)) name = t_[i_++].text;
        else error(nt, "expected a test name, got " + describe(nt));
        if (!known_tests().count(name)) error(nt, "no test named '" + name + "'");
        t->name = name;
        t->args.push_back(std::move(e));
        if (is_op("(")) {
          parse_call_args(*t);
        } else if (cur().type == Tok::String || cur().type == Tok::Int || cur().type == Tok::Float ||
                   (cur().type == Tok::Name && cur().text != "and" && cur().text != "or" && cur().text != "if" &&
                    cur().text != "else" && cur().text != "is" && cur().text != "in" && cur().text != "not" &&
                    cur().text != "recursive")) {
          t->args.push_back(parse_postfix(parse_primary()));
        }
        e = std::move(t);
      } else {
        return e;
      }
    }
  }

  std::vector<Token> t_;
  size_t i_ = 0;
  std::string name_;
  int depth_ = 0;
  int max_depth_;
};

}  // namespace

// =============================================================================================
// Evaluator
// =============================================================================================

struct Template::Impl {
  std::string name;
  Body body;
};

namespace {

struct BreakSignal {};
struct ContinueSignal {};

class Renderer {
 public:
  Renderer(const Template::Impl& t, const Limits& lim) : t_(t), lim_(lim) {}

  std::string run(const Value& vars) {
    struct Budget {
      size_t saved = g_max_text;
      ~Budget() { g_max_text = saved; }
    } budget;
    g_max_text = lim_.max_output_bytes;
    scopes_.emplace_back();
    for (const auto& [k, v] : vars.entries()) scopes_.back()[k] = v;
    std::string out;
    exec(t_.body, out);
    return out;
  }

 private:
  using Scope = std::unordered_map<std::string, Value>;

  void step() {
    if (++steps_ > lim_.max_steps) fail("template exceeded the step limit (" + std::to_string(lim_.max_steps) + ")");
  }
  void check_size(size_t n) {
    if (n > lim_.max_output_bytes) fail("template output exceeded " + std::to_string(lim_.max_output_bytes) + " bytes");
  }
  void append(std::string& out, std::string_view s) {
    check_size(out.size() + s.size());
    out += s;
  }

  Value lookup(const std::string& n) {
    for (auto it = scopes_.rbegin(); it != scopes_.rend(); ++it) {
      auto f = it->find(n);
      if (f != it->end()) return f->second;
    }
    Value g = global(n);
    if (!g.is_undefined()) return g;
    return Value::undefined("'" + n + "' is undefined");
  }

  // ---- statements ---------------------------------------------------------------------------

  void exec(const Body& body, std::string& out) {
    for (const auto& n : body) {
      try {
        exec_node(*n, out);
      } catch (const RenderError& e) {
        throw Error(Error::Kind::BadInput, e.what, t_.name, static_cast<size_t>(n->line));
      }
    }
  }

  void exec_node(const Node& n, std::string& out) {
    step();
    switch (n.k) {
      case Node::Text: append(out, n.text); return;
      case Node::Out: {
        Value v = eval(*n.expr);
        append(out, py_str(v));
        return;
      }
      case Node::If:
        for (const auto& [cond, body] : n.branches) {
          if (!cond || eval(*cond).truthy()) {
            exec_in_place(body, out);
            return;
          }
        }
        return;
      case Node::For: exec_for(n, out); return;
      case Node::Set: {
        Value v = eval(*n.expr);
        if (!n.attr.empty()) {
          Value ns = lookup(n.targets[0]);
          if (ns.kind() != Value::Kind::Namespace)
            fail("can only set attributes on a namespace object (" + n.targets[0] + "." + n.attr + ")");
          ns.set(n.attr, std::move(v));
        } else {
          assign(n.targets, v);
        }
        return;
      }
      case Node::SetBlock: {
        std::string s;
        exec_in_place(n.body, s);
        scopes_.back()[n.targets[0]] = Value(std::move(s));
        return;
      }
      case Node::Break: throw BreakSignal{};
      case Node::Continue: throw ContinueSignal{};
      case Node::Macro: {
        const Node* def = &n;
        scopes_.back()[n.targets[0]] = Value::callable(n.targets[0], [this, def](const List& args, const Dict& kw) {
          return call_macro(*def, args, kw);
        });
        return;
      }
    }
  }

  // Bodies of if/set-block share the enclosing scope (jinja2 scoping); errors inside keep their
  // own line.
  void exec_in_place(const Body& body, std::string& out) {
    if (++depth_ > lim_.max_depth) fail("template nested too deeply");
    exec(body, out);
    --depth_;
  }

  void assign(const std::vector<std::string>& targets, const Value& v) {
    if (targets.size() == 1) {
      scopes_.back()[targets[0]] = v;
      return;
    }
    std::vector<Value> items = iterate(v);
    if (items.size() != targets.size())
      fail(items.size() < targets.size() ? "not enough values to unpack (expected " + std::to_string(targets.size()) +
                                               ", got " + std::to_string(items.size()) + ")"
                                         : "too many values to unpack (expected " + std::to_string(targets.size()) + ")");
    for (size_t i = 0; i < targets.size(); ++i) scopes_.back()[targets[i]] = items[i];
  }

  void exec_for(const Node& n, std::string& out) {
    std::vector<Value> items = iterate(eval(*n.expr));
    if (n.filter) {
      // the loop's filter sees the target names in a scope of its own
      std::vector<Value> kept;
      scopes_.emplace_back();
      for (auto& it : items) {
        step();
        assign(n.targets, it);
        if (eval(*n.filter).truthy()) kept.push_back(it);
      }
      scopes_.pop_back();
      items = std::move(kept);
    }
    if (items.empty()) {
      exec_in_place(n.else_body, out);
      return;
    }
    if (++depth_ > lim_.max_depth) fail("template nested too deeply");
    const int64_t len = static_cast<int64_t>(items.size());
    for (int64_t i = 0; i < len; ++i) {
      step();
      scopes_.emplace_back();
      assign(n.targets, items[static_cast<size_t>(i)]);
      Value loop = Value::dict();
      loop.set("index0", Value(i));
      loop.set("index", Value(i + 1));
      loop.set("revindex", Value(len - i));
      loop.set("revindex0", Value(len - i - 1));
      loop.set("first", Value(i == 0));
      loop.set("last", Value(i == len - 1));
      loop.set("length", Value(len));
      loop.set("depth", Value(1));
      loop.set("depth0", Value(0));
      loop.set("previtem", i > 0 ? items[static_cast<size_t>(i - 1)] : Value::undefined("there is no previous item"));
      loop.set("nextitem", i + 1 < len ? items[static_cast<size_t>(i + 1)] : Value::undefined("there is no next item"));
      loop.set("cycle", Value::callable("cycle", [i](const List& args, const Dict&) {
                 if (args.empty()) fail("no items for cycling given");
                 return args[static_cast<size_t>(i) % args.size()];
               }));
      scopes_.back()["loop"] = loop;
      bool stop = false;
      try {
        exec(n.body, out);
      } catch (const BreakSignal&) {
        stop = true;
      } catch (const ContinueSignal&) {
      }
      scopes_.pop_back();
      if (stop) break;
    }
    --depth_;
  }

  Value call_macro(const Node& def, const List& args, const Dict& kw) {
    if (++depth_ > lim_.max_depth) fail("macro calls nested too deeply");
    if (args.size() > def.params.size())
      fail("macro '" + def.targets[0] + "' takes not more than " + std::to_string(def.params.size()) + " argument(s)");
    Scope s;
    for (size_t i = 0; i < def.params.size(); ++i) {
      const auto& [pname, pdef] = def.params[i];
      if (i < args.size()) {
        s[pname] = args[i];
        continue;
      }
      const Value* k = nullptr;
      for (const auto& [kn, kv] : kw)
        if (kn == pname) k = &kv;
      if (k) s[pname] = *k;
      else if (pdef) s[pname] = eval(*pdef);
      else s[pname] = Value::undefined("parameter '" + pname + "' was not provided");
    }
    // a macro sees the template's globals, not its caller's locals
    std::vector<Scope> saved;
    saved.swap(scopes_);
    scopes_.push_back(saved.front());
    scopes_.push_back(std::move(s));
    std::string out;
    try {
      exec(def.body, out);
    } catch (...) {
      scopes_.swap(saved);
      --depth_;
      throw;
    }
    scopes_.swap(saved);
    --depth_;
    return Value(std::move(out));
  }

  // ---- iteration ------------------------------------------------------------------------------

  std::vector<Value> iterate(const Value& v) {
    switch (v.kind()) {
      case Value::Kind::Undefined: return {};
      case Value::Kind::List: return v.items();
      case Value::Kind::Dict: {
        std::vector<Value> keys;
        for (const auto& [k, x] : v.entries()) keys.emplace_back(k);
        return keys;
      }
      case Value::Kind::String: {
        std::vector<Value> chars;
        auto offs = cp_offsets(v.str());
        for (size_t i = 0; i + 1 < offs.size(); ++i) chars.emplace_back(v.str().substr(offs[i], offs[i + 1] - offs[i]));
        return chars;
      }
      default: fail(std::string("'") + type_name(v) + "' object is not iterable");
    }
  }

  // ---- expressions ----------------------------------------------------------------------------

  [[noreturn]] void undefined_error(const Value& v) {
    fail(v.undefined_hint().empty() ? "value is undefined" : v.undefined_hint());
  }

  Value eval(const Expr& e) {
    step();
    if (++depth_ > lim_.max_depth + 64) fail("expression nested too deeply");
    Value v = eval_inner(e);
    --depth_;
    return v;
  }

  Value eval_inner(const Expr& e) {
    switch (e.k) {
      case Expr::Lit: return e.lit;
      case Expr::Name: return lookup(e.name);
      case Expr::Attr: return get_attr(eval(*e.args[0]), e.name);
      case Expr::Item: return get_item(eval(*e.args[0]), eval(*e.args[1]));
      case Expr::Slice: {
        Value obj = eval(*e.args[0]);
        Value parts[3];
        for (int k = 0; k < 3; ++k)
          if (e.has[k]) parts[k] = eval(*e.args[static_cast<size_t>(k) + 1]);
        return slice(obj, parts);
      }
      case Expr::Call: return eval_call(e);
      case Expr::Filter: return eval_filter(e);
      case Expr::Test: {
        bool r = eval_test(e);
        return Value(e.negate ? !r : r);
      }
      case Expr::Neg:
      case Expr::Pos: {
        Value v = eval(*e.args[0]);
        if (v.is_undefined()) undefined_error(v);
        if (v.kind() == Value::Kind::Float) return Value(e.k == Expr::Neg ? -v.as_float() : v.as_float());
        if (v.kind() == Value::Kind::Int || v.kind() == Value::Kind::Bool)
          return Value(e.k == Expr::Neg ? -v.as_int() : v.as_int());
        fail(std::string("bad operand type for unary ") + (e.k == Expr::Neg ? "-" : "+") + ": '" + type_name(v) + "'");
      }
      case Expr::Not: return Value(!eval(*e.args[0]).truthy());
      case Expr::And: {
        Value a = eval(*e.args[0]);
        return a.truthy() ? eval(*e.args[1]) : a;
      }
      case Expr::Or: {
        Value a = eval(*e.args[0]);
        return a.truthy() ? a : eval(*e.args[1]);
      }
      case Expr::Cond: {
        if (eval(*e.args[0]).truthy()) return eval(*e.args[1]);
        if (e.args[2]) return eval(*e.args[2]);
        return Value::undefined("the inline if-expression evaluated to false and no else section was defined.");
      }
      case Expr::ListE: {
        List l;
        for (const auto& a : e.args) l.push_back(eval(*a));
        return e.tuple ? Value::tuple(std::move(l)) : Value(std::move(l));
      }
      case Expr::DictE: {
        Value d = Value::dict();
        for (size_t i = 0; i + 1 < e.args.size(); i += 2) {
          Value k = eval(*e.args[i]);
          d.set(k.is_string() ? k.str() : py_str(k), eval(*e.args[i + 1]));
        }
        return d;
      }
      case Expr::Bin: return binary(e.name, eval(*e.args[0]), eval(*e.args[1]));
      case Expr::Cmp: {
        Value left = eval(*e.args[0]);
        for (size_t i = 0; i < e.ops.size(); ++i) {
          Value right = eval(*e.args[i + 1]);
          if (!compare(e.ops[i], left, right)) return Value(false);
          left = std::move(right);
        }
        return Value(true);
      }
    }
    fail("internal error: unknown expression");
  }

  bool compare(const std::string& op, const Value& a, const Value& b) {
    if (op == "==") return py_eq(a, b);
    if (op == "!=") return !py_eq(a, b);
    if (op == "in") return contains(b, a);
    if (op == "notin") return !contains(b, a);
    for (const Value* v : {&a, &b})
      if (v->is_undefined()) undefined_error(*v);
    int c = py_cmp(a, b, op.c_str());
    if (op == "<") return c < 0;
    if (op == "<=") return c <= 0;
    if (op == ">") return c > 0;
    return c >= 0;
  }

  bool contains(const Value& container, const Value& item) {
    switch (container.kind()) {
      case Value::Kind::String:
        if (!item.is_string())
          fail(std::string("'in <string>' requires string as left operand, not ") + type_name(item));
        return container.str().find(item.str()) != std::string::npos;
      case Value::Kind::List:
        for (const auto& x : container.items())
          if (py_eq(x, item)) return true;
        return false;
      case Value::Kind::Dict:
      case Value::Kind::Namespace:
        return item.is_string() && container.get(item.str()) != nullptr;
      case Value::Kind::Undefined: undefined_error(container);
      default: fail(std::string("argument of type '") + type_name(container) + "' is not iterable");
    }
  }

  Value binary(const std::string& op, const Value& a, const Value& b) {
    if (op == "~") {
      std::string s = py_str(a);
      std::string t = py_str(b);
      check_size(s.size() + t.size());
      return Value(s + t);
    }
    if (a.is_undefined()) undefined_error(a);
    if (b.is_undefined()) undefined_error(b);
    auto numeric = [](const Value& v) {
      return v.kind() == Value::Kind::Int || v.kind() == Value::Kind::Float || v.kind() == Value::Kind::Bool;
    };
    auto unsupported = [&]() -> Value {
      if (op == "+" && a.is_string())
        fail(std::string("can only concatenate str (not \"") + type_name(b) + "\") to str");
      if (op == "+" && a.is_list())
        fail(std::string("can only concatenate list (not \"") + type_name(b) + "\") to list");
      fail("unsupported operand type(s) for " + op + ": '" + type_name(a) + "' and '" + type_name(b) + "'");
    };
    if (numeric(a) && numeric(b)) {
      bool flt = a.kind() == Value::Kind::Float || b.kind() == Value::Kind::Float;
      if (op == "/") {
        if (b.as_float() == 0) fail("division by zero");
        return Value(a.as_float() / b.as_float());
      }
      if (op == "**") {
        if (!flt && b.as_int() >= 0) {
          int64_t r = 1, base = a.as_int();
          for (int64_t i = 0; i < b.as_int() && i < 64; ++i) r *= base;
          return Value(r);
        }
        return Value(std::pow(a.as_float(), b.as_float()));
      }
      if (flt) {
        double x = a.as_float(), y = b.as_float();
        if (op == "+") return Value(x + y);
        if (op == "-") return Value(x - y);
        if (op == "*") return Value(x * y);
        if (y == 0) fail("float division by zero");
        if (op == "//") return Value(std::floor(x / y));
        if (op == "%") {
          double m = std::fmod(x, y);
          if (m != 0 && ((m < 0) != (y < 0))) m += y;
          return Value(m);
        }
      } else {
        int64_t x = a.as_int(), y = b.as_int();
        if (op == "+") return Value(static_cast<int64_t>(static_cast<uint64_t>(x) + static_cast<uint64_t>(y)));
        if (op == "-") return Value(static_cast<int64_t>(static_cast<uint64_t>(x) - static_cast<uint64_t>(y)));
        if (op == "*") return Value(static_cast<int64_t>(static_cast<uint64_t>(x) * static_cast<uint64_t>(y)));
        if (y == 0) fail("integer division or modulo by zero");
        if (y == -1) return op == "//" ? Value(static_cast<int64_t>(0 - static_cast<uint64_t>(x))) : Value(int64_t(0));
        int64_t q = x / y, m = x % y;
        if (m != 0 && ((m < 0) != (y < 0))) {
          --q;
          m += y;
        }
        if (op == "//") return Value(q);
        if (op == "%") return Value(m);
      }
      return unsupported();
    }
    if (op == "+") {
      if (a.is_string() && b.is_string()) {
        check_size(a.str().size() + b.str().size());
        return Value(a.str() + b.str());
      }
      if (a.is_list() && b.is_list()) {
        check_size((a.size() + b.size()) * sizeof(Value));
        List l = a.items();
        l.insert(l.end(), b.items().begin(), b.items().end());
        return Value(std::move(l));
      }
      return unsupported();
    }
    if (op == "*") {
      const Value* seq = a.is_string() || a.is_list() ? &a : &b;
      const Value* cnt = seq == &a ? &b : &a;
      if ((seq->is_string() || seq->is_list()) &&
          (cnt->kind() == Value::Kind::Int || cnt->kind() == Value::Kind::Bool)) {
        int64_t n = std::max<int64_t>(0, cnt->as_int());
        if (seq->is_string()) {
          if (n > 0 && seq->str().size() > lim_.max_output_bytes / static_cast<uint64_t>(n)) check_size(SIZE_MAX);
          std::string s;
          for (int64_t i = 0; i < n; ++i) s += seq->str();
          return Value(std::move(s));
        }
        if (n > 0 && seq->size() * sizeof(Value) > lim_.max_output_bytes / static_cast<uint64_t>(n)) check_size(SIZE_MAX);
        List l;
        for (int64_t i = 0; i < n; ++i) l.insert(l.end(), seq->items().begin(), seq->items().end());
        return Value(std::move(l));
      }
    }
    return unsupported();
  }

  Value get_item(const Value& obj, const Value& key) {
    switch (obj.kind()) {
      case Value::Kind::Undefined: undefined_error(obj);
      case Value::Kind::List:
      case Value::Kind::String: {
        if (key.kind() != Value::Kind::Int && key.kind() != Value::Kind::Bool) {
          if (key.is_string()) return get_attr(obj, key.str(), /*item_first=*/false);
          return Value::undefined(object_type_repr(obj) + " has no element " + py_repr(key));
        }
        int64_t n = obj.is_list() ? static_cast<int64_t>(obj.size()) : 0;
        std::vector<size_t> offs;
        if (obj.is_string()) {
          offs = cp_offsets(obj.str());
          n = static_cast<int64_t>(offs.size()) - 1;
        }
        int64_t i = key.as_int();
        if (i < 0) i += n;
        if (i < 0 || i >= n) return Value::undefined(object_type_repr(obj) + " has no element " + py_repr(key));
        if (obj.is_list()) return obj[static_cast<size_t>(i)];
        return Value(obj.str().substr(offs[static_cast<size_t>(i)], offs[static_cast<size_t>(i) + 1] - offs[static_cast<size_t>(i)]));
      }
      case Value::Kind::Dict:
      case Value::Kind::Namespace: {
        std::string k = key.is_string() ? key.str() : py_str(key);
        if (key.is_string() || key.is_number()) {
          if (const Value* v = obj.get(k)) return *v;
        }
        if (key.is_string()) return get_attr(obj, k, /*item_first=*/false);
        return Value::undefined(object_type_repr(obj) + " has no element " + py_repr(key));
      }
      default:
        if (key.is_string()) return get_attr(obj, key.str(), false);
        return Value::undefined(object_type_repr(obj) + " has no element " + py_repr(key));
    }
  }

  Value slice(const Value& obj, Value parts[3]) {
    if (obj.is_undefined()) undefined_error(obj);
    if (!obj.is_list() && !obj.is_string()) fail(std::string("'") + type_name(obj) + "' object is not subscriptable");
    std::vector<size_t> offs;
    int64_t n;
    if (obj.is_string()) {
      offs = cp_offsets(obj.str());
      n = static_cast<int64_t>(offs.size()) - 1;
    } else {
      n = static_cast<int64_t>(obj.size());
    }
    auto as_index = [&](const Value& v, bool& present) -> int64_t {
      present = !(v.is_undefined() || v.is_none());
      if (!present) return 0;
      if (v.kind() != Value::Kind::Int && v.kind() != Value::Kind::Bool)
        fail("slice indices must be integers or None");
      return v.as_int();
    };
    bool hs, he, hst;
    int64_t step = as_index(parts[2], hst);
    if (!hst) step = 1;
    if (step == 0) fail("slice step cannot be zero");
    int64_t start = as_index(parts[0], hs), stop = as_index(parts[1], he);
    auto clamp = [&](int64_t v, bool present, int64_t dflt_pos, int64_t dflt_neg) -> int64_t {
      if (!present) return step > 0 ? dflt_pos : dflt_neg;
      if (v < 0) v += n;
      if (step > 0) return std::clamp<int64_t>(v, 0, n);
      return std::clamp<int64_t>(v, -1, n - 1);
    };
    start = clamp(start, hs, 0, n - 1);
    stop = clamp(stop, he, n, -1);
    std::vector<int64_t> idx;
    if (step > 0)
      for (int64_t i = start; i < stop; i += step) idx.push_back(i);
    else
      for (int64_t i = start; i > stop; i += step) idx.push_back(i);
    if (obj.is_list()) {
      List l;
      for (auto i : idx) l.push_back(obj[static_cast<size_t>(i)]);
      return Value(std::move(l));
    }
    std::string s;
    for (auto i : idx) s.append(obj.str(), offs[static_cast<size_t>(i)], offs[static_cast<size_t>(i) + 1] - offs[static_cast<size_t>(i)]);
    return Value(std::move(s));
  }

  // jinja2's getattr: the object's attribute (a method) first, then its item.
  Value get_attr(const Value& obj, const std::string& name, bool item_first = true) {
    (void)item_first;
    if (obj.is_undefined()) undefined_error(obj);
    if (obj.kind() == Value::Kind::Namespace) {
      if (const Value* v = obj.get(name)) return *v;
      return Value::undefined("'" + object_type_repr(obj) + "' has no attribute '" + name + "'");
    }
    Value m = method(obj, name);
    if (!m.is_undefined()) return m;
    if (obj.kind() == Value::Kind::Dict) {
      if (const Value* v = obj.get(name)) return *v;
    }
    return Value::undefined("'" + object_type_repr(obj) + "' has no attribute '" + name + "'");
  }

  Value eval_call(const Expr& e) {
    Value fn = eval(*e.args[0]);
    List args;
    for (size_t i = 1; i < e.args.size(); ++i) args.push_back(eval(*e.args[i]));
    Dict kw;
    for (const auto& [k, x] : e.kwargs) kw.emplace_back(k, eval(*x));
    if (fn.is_undefined()) undefined_error(fn);
    if (fn.kind() != Value::Kind::Callable) fail(std::string("'") + type_name(fn) + "' object is not callable");
    return fn.fn()(args, kw);
  }

  // ---- globals --------------------------------------------------------------------------------

  Value global(const std::string& n) {
    if (n == "raise_exception")
      return Value::callable(n, [](const List& args, const Dict&) -> Value {
        fail(args.empty() ? std::string() : py_str(args[0]));
      });
    if (n == "strftime_now")
      return Value::callable(n, [](const List& args, const Dict&) -> Value {
        return Value(strftime_now(args.empty() ? std::string() : py_str(args[0])));
      });
    if (n == "namespace" || n == "dict")
      return Value::callable(n, [n](const List& args, const Dict& kw) -> Value {
        Dict d;
        Value out = n == "dict" ? Value::dict() : Value::namespace_();
        if (!args.empty()) {
          if (!args[0].is_dict()) fail(n + "() argument must be a mapping");
          for (const auto& [k, v] : args[0].entries()) out.set(k, v);
        }
        for (const auto& [k, v] : kw) out.set(k, v);
        return out;
      });
    if (n == "range")
      return Value::callable(n, [this](const List& args, const Dict&) -> Value {
        int64_t a = 0, b = 0, s = 1;
        for (const auto& x : args)
          if (x.kind() != Value::Kind::Int && x.kind() != Value::Kind::Bool) fail("range() arguments must be integers");
        if (args.size() == 1) b = args[0].as_int();
        else if (args.size() >= 2) {
          a = args[0].as_int();
          b = args[1].as_int();
          if (args.size() >= 3) s = args[2].as_int();
        } else {
          fail("range expected at least 1 argument, got 0");
        }
        if (s == 0) fail("range() arg 3 must not be zero");
        List l;
        for (int64_t i = a; s > 0 ? i < b : i > b; i += s) {
          step();
          if (l.size() >= 100000) fail("range too big");
          l.emplace_back(i);
        }
        return Value(std::move(l));
      });
    return {};
  }

  // ---- methods of str, dict, list -------------------------------------------------------------

  static std::string strip_chars(const std::string& s, const Value* chars, bool left, bool right) {
    if (!chars || chars->is_none() || chars->is_undefined()) {
      auto r = utf8::strip(s, 0, s.size());
      if (r.begin == r.end) return std::string();
      if (left && right) return s.substr(r.begin, r.end - r.begin);
      if (left) return s.substr(r.begin);
      return s.substr(0, r.end);
    }
    if (!chars->is_string()) fail("strip arg must be None or str");
    auto set = cp_offsets(chars->str());
    std::set<std::string> cs;
    for (size_t i = 0; i + 1 < set.size(); ++i) cs.insert(chars->str().substr(set[i], set[i + 1] - set[i]));
    auto offs = cp_offsets(s);
    size_t n = offs.size() - 1, b = 0, e = n;
    auto cp = [&](size_t i) { return s.substr(offs[i], offs[i + 1] - offs[i]); };
    if (left)
      while (b < e && cs.count(cp(b))) ++b;
    if (right)
      while (e > b && cs.count(cp(e - 1))) --e;
    return s.substr(offs[b], offs[e] - offs[b]);
  }

  static std::string map_case(const std::string& s, int mode) {  // 0 lower, 1 upper
    std::string out;
    size_t i = 0;
    while (i < s.size()) {
      char32_t c = utf8::next(s, i);
      utf8proc_int32_t m = mode ? utf8proc_toupper(static_cast<utf8proc_int32_t>(c)) : utf8proc_tolower(static_cast<utf8proc_int32_t>(c));
      utf8::append(out, static_cast<char32_t>(m));
    }
    return out;
  }

  static std::string capitalize(const std::string& s) {
    if (s.empty()) return s;
    size_t i = 0;
    char32_t c = utf8::next(s, i);
    std::string out;
    utf8::append(out, static_cast<char32_t>(utf8proc_toupper(static_cast<utf8proc_int32_t>(c))));
    return out + map_case(s.substr(i), 0);
  }

  static std::string title(const std::string& s) {
    std::string out;
    size_t i = 0;
    bool prev_cased = false;
    while (i < s.size()) {
      char32_t c = utf8::next(s, i);
      auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(c));
      bool cased = cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LL || cat == UTF8PROC_CATEGORY_LT;
      utf8proc_int32_t m = prev_cased ? utf8proc_tolower(static_cast<utf8proc_int32_t>(c)) : utf8proc_toupper(static_cast<utf8proc_int32_t>(c));
      utf8::append(out, static_cast<char32_t>(m));
      prev_cased = cased;
    }
    return out;
  }

  static std::vector<std::string> split(const std::string& s, const Value* sep, int64_t maxsplit) {
    std::vector<std::string> out;
    if (!sep || sep->is_none() || sep->is_undefined()) {
      size_t i = 0;
      while (true) {
        // skip whitespace
        while (i < s.size()) {
          size_t k = i;
          if (!utf8::is_space(utf8::next(s, k))) break;
          i = k;
        }
        if (i >= s.size()) break;
        if (maxsplit >= 0 && static_cast<int64_t>(out.size()) == maxsplit) {
          out.push_back(s.substr(i));  // Python keeps the remainder's trailing whitespace
          break;
        }
        size_t b = i;
        while (i < s.size()) {
          size_t k = i;
          if (utf8::is_space(utf8::next(s, k))) break;
          i = k;
        }
        out.push_back(s.substr(b, i - b));
      }
      return out;
    }
    if (!sep->is_string()) fail(std::string("must be str or None, not ") + type_name(*sep));
    const std::string& d = sep->str();
    if (d.empty()) fail("empty separator");
    size_t b = 0;
    while (true) {
      if (maxsplit >= 0 && static_cast<int64_t>(out.size()) == maxsplit) break;
      size_t f = s.find(d, b);
      if (f == std::string::npos) break;
      out.push_back(s.substr(b, f - b));
      b = f + d.size();
    }
    out.push_back(s.substr(b));
    return out;
  }

  static const Value* arg(const List& args, const Dict& kw, size_t i, const char* name) {
    if (i < args.size()) return &args[i];
    for (const auto& [k, v] : kw)
      if (k == name) return &v;
    return nullptr;
  }

  Value method(const Value& obj, const std::string& name) {
    if (obj.is_string()) {
      static const std::set<std::string, std::less<>> names = {
          "strip", "lstrip", "rstrip", "startswith", "endswith", "split", "upper", "lower", "title",
          "capitalize", "replace", "find", "rfind", "count", "join", "isdigit", "isalpha", "isspace",
          "islower", "isupper", "splitlines"};
      if (!names.count(name)) return {};
      std::string s = obj.str();
      return Value::callable(name, [this, s, name](const List& args, const Dict& kw) -> Value {
        const Value* a0 = arg(args, kw, 0, name == "split" ? "sep" : "chars");
        if (name == "strip") return Value(strip_chars(s, a0, true, true));
        if (name == "lstrip") return Value(strip_chars(s, a0, true, false));
        if (name == "rstrip") return Value(strip_chars(s, a0, false, true));
        if (name == "upper") return Value(map_case(s, 1));
        if (name == "lower") return Value(map_case(s, 0));
        if (name == "title") return Value(title(s));
        if (name == "capitalize") return Value(capitalize(s));
        if (name == "startswith" || name == "endswith") {
          if (!a0) fail(name + "() takes at least 1 argument (0 given)");
          std::vector<std::string> cands;
          if (a0->is_string()) cands.push_back(a0->str());
          else if (a0->is_list())
            for (const auto& x : a0->items()) {
              if (!x.is_string()) fail(name + " first arg must be str or a tuple of str");
              cands.push_back(x.str());
            }
          else fail(name + " first arg must be str or a tuple of str, not " + type_name(*a0));
          for (const auto& c : cands) {
            if (name == "startswith" ? s.compare(0, c.size(), c) == 0
                                     : (s.size() >= c.size() && s.compare(s.size() - c.size(), c.size(), c) == 0))
              return Value(true);
          }
          return Value(false);
        }
        if (name == "split") {
          const Value* ms = arg(args, kw, 1, "maxsplit");
          List l;
          for (auto& p : split(s, a0, ms && ms->kind() == Value::Kind::Int ? ms->as_int() : -1)) l.emplace_back(std::move(p));
          return Value(std::move(l));
        }
        if (name == "splitlines") {
          List l;
          size_t b = 0;
          for (size_t i = 0; i < s.size(); ++i)
            if (s[i] == '\n' || s[i] == '\r') {
              l.emplace_back(s.substr(b, i - b));
              if (s[i] == '\r' && i + 1 < s.size() && s[i + 1] == '\n') ++i;
              b = i + 1;
            }
          if (b < s.size()) l.emplace_back(s.substr(b));
          return Value(std::move(l));
        }
        if (name == "replace") {
          const Value* a1 = arg(args, kw, 1, "new");
          const Value* a2 = arg(args, kw, 2, "count");
          if (!a0 || !a1 || !a0->is_string() || !a1->is_string()) fail("replace() arguments must be str");
          return Value(replace(s, a0->str(), a1->str(), a2 && a2->kind() == Value::Kind::Int ? a2->as_int() : -1));
        }
        if (name == "find" || name == "rfind" || name == "count") {
          if (!a0 || !a0->is_string()) fail(name + "() argument must be str");
          const std::string& sub = a0->str();
          if (name == "count") {
            if (sub.empty()) return Value(static_cast<int64_t>(utf8::count(s) + 1));
            int64_t c = 0;
            for (size_t p = s.find(sub); p != std::string::npos; p = s.find(sub, p + sub.size())) ++c;
            return Value(c);
          }
          size_t p = name == "find" ? s.find(sub) : s.rfind(sub);
          if (p == std::string::npos) return Value(int64_t(-1));
          return Value(static_cast<int64_t>(utf8::count(std::string_view(s).substr(0, p))));
        }
        if (name == "join") {
          if (!a0) fail("join() takes exactly one argument (0 given)");
          std::string out;
          bool first = true;
          for (const auto& x : iterate(*a0)) {
            if (!x.is_string()) fail(std::string("sequence item: expected str instance, ") + type_name(x) + " found");
            if (!first) out += s;
            first = false;
            out += x.str();
            check_size(out.size());
          }
          return Value(std::move(out));
        }
        auto all = [&](auto pred) {
          if (s.empty()) return false;
          size_t i = 0;
          while (i < s.size())
            if (!pred(utf8::next(s, i))) return false;
          return true;
        };
        if (name == "isdigit") return Value(all([](char32_t c) { return c >= '0' && c <= '9'; }));
        if (name == "isspace") return Value(all([](char32_t c) { return utf8::is_space(c); }));
        if (name == "isalpha")
          return Value(all([](char32_t c) {
            auto k = utf8proc_category(static_cast<utf8proc_int32_t>(c));
            return k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_LO;
          }));
        if (name == "islower") return Value(map_case(s, 0) == s && map_case(s, 1) != s);
        if (name == "isupper") return Value(map_case(s, 1) == s && map_case(s, 0) != s);
        return {};
      });
    }
    if (obj.kind() == Value::Kind::Dict) {
      if (name != "items" && name != "keys" && name != "values" && name != "get") return {};
      Value d = obj;
      return Value::callable(name, [d, name](const List& args, const Dict& kw) -> Value {
        if (name == "get") {
          const Value* k = arg(args, kw, 0, "key");
          const Value* dflt = arg(args, kw, 1, "default");
          if (!k) fail("get expected at least 1 argument, got 0");
          if (k->is_string())
            if (const Value* v = d.get(k->str())) return *v;
          return dflt ? *dflt : Value::none();
        }
        List l;
        for (const auto& [k, v] : d.entries()) {
          if (name == "items") l.push_back(Value::tuple(List{Value(k), v}));
          else if (name == "keys") l.emplace_back(k);
          else l.push_back(v);
        }
        return Value(std::move(l));
      });
    }
    if (obj.is_list()) {
      if (name != "index" && name != "count") return {};
      Value l = obj;
      return Value::callable(name, [l, name](const List& args, const Dict&) -> Value {
        if (args.empty()) fail(name + "() takes exactly one argument (0 given)");
        int64_t c = 0;
        for (size_t i = 0; i < l.size(); ++i)
          if (py_eq(l[i], args[0])) {
            if (name == "index") return Value(static_cast<int64_t>(i));
            ++c;
          }
        if (name == "index") fail(py_repr(args[0]) + " is not in list");
        return Value(c);
      });
    }
    return {};
  }

  static std::string replace(const std::string& s, const std::string& from, const std::string& to, int64_t count) {
    std::string out;
    if (from.empty() && !to.empty() && (s.size() + 1) > g_max_text / to.size()) fail("template output exceeded " + std::to_string(g_max_text) + " bytes");
    if (from.empty()) {
      // Python inserts `to` between code points (and at both ends)
      auto offs = cp_offsets(s);
      int64_t n = 0;
      for (size_t i = 0; i + 1 < offs.size(); ++i) {
        if (count < 0 || n < count) {
          out += to;
          ++n;
        }
        out.append(s, offs[i], offs[i + 1] - offs[i]);
      }
      if (count < 0 || n < count) out += to;
      return out;
    }
    size_t b = 0;
    int64_t n = 0;
    while (count < 0 || n < count) {
      size_t f = s.find(from, b);
      if (f == std::string::npos) break;
      out.append(s, b, f - b);
      out += to;
      if (out.size() > g_max_text) check_text(out);
      b = f + from.size();
      ++n;
    }
    out.append(s, b);
    return out;
  }

  // ---- filters --------------------------------------------------------------------------------

  int64_t py_len(const Value& v) {
    switch (v.kind()) {
      case Value::Kind::Undefined: return 0;
      case Value::Kind::String: return static_cast<int64_t>(utf8::count(v.str()));
      case Value::Kind::List:
      case Value::Kind::Dict: return static_cast<int64_t>(v.size());
      default: fail(std::string("object of type '") + type_name(v) + "' has no len()");
    }
  }

  Value eval_filter(const Expr& e) {
    Value v = eval(*e.args[0]);
    List args;
    for (size_t i = 1; i < e.args.size(); ++i) args.push_back(eval(*e.args[i]));
    Dict kw;
    for (const auto& [k, x] : e.kwargs) kw.emplace_back(k, eval(*x));
    return apply_filter(e.name, v, args, kw);
  }

  Value apply_filter(const std::string& f, const Value& v, const List& args, const Dict& kw) {
    auto a = [&](size_t i, const char* n) { return arg(args, kw, i, n); };
    if (f == "trim") return Value(strip_chars(py_str(v), a(0, "chars"), true, true));
    if (f == "length" || f == "count") return Value(py_len(v));
    if (f == "tojson") {
      JsonStyle st;
      const Value* ind = a(0, "indent");
      if (ind && ind->kind() == Value::Kind::Int) {
        st.indent = static_cast<int>(std::clamp<int64_t>(ind->as_int(), 0, 64));
        st.item_sep = ",";
      }
      const Value* seps = a(2, "separators");
      if (seps && seps->is_list() && seps->size() == 2 && seps->items()[0].is_string() && seps->items()[1].is_string()) {
        st.item_sep = seps->items()[0].str();
        st.key_sep = seps->items()[1].str();
      }
      const Value* sk = a(3, "sort_keys");
      st.sort_keys = sk && sk->truthy();
      std::string out;
      dump_json(out, v, st, 0, 0);
      check_size(out.size());
      return Value(std::move(out));
    }
    if (f == "default" || f == "d") {
      const Value* dv = a(0, "default_value");
      const Value* boolean = a(1, "boolean");
      bool use = v.is_undefined() || (boolean && boolean->truthy() && !v.truthy());
      if (use) return dv ? *dv : Value(std::string());
      return v;
    }
    if (f == "upper") return Value(map_case(py_str(v), 1));
    if (f == "lower") return Value(map_case(py_str(v), 0));
    if (f == "capitalize") return Value(capitalize(py_str(v)));
    if (f == "title") return Value(title(py_str(v)));
    if (f == "string") return Value(py_str(v));
    if (f == "safe") return v;
    if (f == "escape" || f == "e") {
      std::string out;
      for (char c : py_str(v)) {
        switch (c) {
          case '&': out += "&amp;"; break;
          case '<': out += "&lt;"; break;
          case '>': out += "&gt;"; break;
          case '"': out += "&#34;"; break;
          case '\'': out += "&#39;"; break;
          default: out += c;
        }
      }
      return Value(std::move(out));
    }
    if (f == "replace") {
      const Value* from = a(0, "old");
      const Value* to = a(1, "new");
      const Value* cnt = a(2, "count");
      if (!from || !to) fail("replace filter needs old and new");
      std::string r = replace(py_str(v), py_str(*from), py_str(*to), cnt && cnt->kind() == Value::Kind::Int ? cnt->as_int() : -1);
      check_size(r.size());
      return Value(std::move(r));
    }
    if (f == "join") {
      const Value* d = a(0, "d");
      const Value* attr = a(1, "attribute");
      std::string sep = d ? py_str(*d) : std::string();
      std::string out;
      bool first = true;
      for (const auto& x : iterate(v)) {
        if (!first) out += sep;
        first = false;
        out += py_str(attr ? get_attr_path(x, *attr) : x);
        check_size(out.size());
      }
      return Value(std::move(out));
    }
    if (f == "first" || f == "last") {
      if (v.is_undefined()) return Value::undefined("No first item, sequence was empty.");
      auto items = iterate(v);
      if (items.empty()) return Value::undefined(std::string("No ") + f + " item, sequence was empty.");
      return f == "first" ? items.front() : items.back();
    }
    if (f == "list") return Value(List(iterate(v)));
    if (f == "reverse") {
      if (v.is_string()) {
        Value parts[3] = {Value(), Value(), Value(int64_t(-1))};
        return slice(v, parts);
      }
      auto items = iterate(v);
      std::reverse(items.begin(), items.end());
      return Value(List(std::move(items)));
    }
    if (f == "int") {
      const Value* dflt = a(0, "default");
      Value d = dflt ? *dflt : Value(int64_t(0));
      if (v.kind() == Value::Kind::Int || v.kind() == Value::Kind::Bool) return Value(v.as_int());
      if (v.kind() == Value::Kind::Float) {
        double x = v.as_float();
        if (!std::isfinite(x) || std::fabs(x) > 9e18) return d;
        return Value(static_cast<int64_t>(x));
      }
      if (v.is_string()) {
        auto r = utf8::strip(v.str(), 0, v.str().size());
        std::string t = v.str().substr(r.begin, r.end - r.begin);
        int64_t x;
        auto res = std::from_chars(t.data(), t.data() + t.size(), x);
        if (res.ec == std::errc() && res.ptr == t.data() + t.size()) return Value(x);
        char* endp = nullptr;
        double dd = std::strtod(t.c_str(), &endp);
        if (!t.empty() && endp == t.c_str() + t.size() && std::isfinite(dd) && std::fabs(dd) < 9e18)
          return Value(static_cast<int64_t>(dd));
      }
      return d;
    }
    if (f == "float") {
      const Value* dflt = a(0, "default");
      Value d = dflt ? *dflt : Value(0.0);
      if (v.is_number() || v.kind() == Value::Kind::Bool) return Value(v.as_float());
      if (v.is_string()) {
        auto r = utf8::strip(v.str(), 0, v.str().size());
        std::string t = v.str().substr(r.begin, r.end - r.begin);
        char* endp = nullptr;
        double dd = std::strtod(t.c_str(), &endp);
        if (!t.empty() && endp == t.c_str() + t.size()) return Value(dd);
      }
      return d;
    }
    if (f == "abs") {
      if (v.kind() == Value::Kind::Float) return Value(std::fabs(v.as_float()));
      if (v.kind() == Value::Kind::Int || v.kind() == Value::Kind::Bool) {
        int64_t x = v.as_int();
        return Value(x < 0 ? static_cast<int64_t>(0 - static_cast<uint64_t>(x)) : x);
      }
      fail(std::string("bad operand type for abs(): '") + type_name(v) + "'");
    }
    if (f == "round") {
      const Value* p = a(0, "precision");
      const Value* m = a(1, "method");
      int64_t prec = p && p->kind() == Value::Kind::Int ? std::clamp<int64_t>(p->as_int(), -30, 30) : 0;
      std::string method = m ? py_str(*m) : "common";
      double x = v.as_float(), scale = std::pow(10.0, static_cast<double>(prec));
      double r = method == "ceil" ? std::ceil(x * scale) / scale
                 : method == "floor" ? std::floor(x * scale) / scale
                                     : std::round(x * scale) / scale;
      return Value(r);
    }
    if (f == "items") {
      if (v.is_undefined()) return Value::list();
      if (!v.is_dict()) fail("Can only get item pairs from a mapping.");
      List l;
      for (const auto& [k, x] : v.entries()) l.push_back(Value::tuple(List{Value(k), x}));
      return Value(std::move(l));
    }
    if (f == "dictsort") {
      if (!v.is_dict()) fail("dictsort filter needs a mapping");
      const Value* by = a(1, "by");
      const Value* rev = a(2, "reverse");
      bool by_value = by && py_str(*by) == "value";
      List l;
      for (const auto& [k, x] : v.entries()) l.push_back(Value::tuple(List{Value(k), x}));
      std::stable_sort(l.begin(), l.end(), [&](const Value& p, const Value& q) {
        const Value& x = p[by_value ? 1 : 0];
        const Value& y = q[by_value ? 1 : 0];
        if (x.is_string() && y.is_string()) return map_case(x.str(), 0) < map_case(y.str(), 0);
        return py_cmp(x, y, "<") < 0;
      });
      if (rev && rev->truthy()) std::reverse(l.begin(), l.end());
      return Value(std::move(l));
    }
    if (f == "select" || f == "reject" || f == "selectattr" || f == "rejectattr") {
      bool attr = f == "selectattr" || f == "rejectattr";
      bool want = f == "select" || f == "selectattr";
      size_t ti = attr ? 1 : 0;
      List out;
      for (const auto& x : iterate(v)) {
        step();
        Value subject = attr ? (args.empty() ? Value() : get_attr_path(x, args[0])) : x;
        bool r;
        if (ti < args.size()) {
          List targs(args.begin() + static_cast<std::ptrdiff_t>(ti) + 1, args.end());
          std::string tn = py_str(args[ti]);
          if (!known_tests().count(tn)) fail("no test named '" + tn + "'");
          r = run_test(tn, subject, targs);
        } else {
          r = subject.truthy();
        }
        if (r == want) out.push_back(x);
      }
      return Value(std::move(out));
    }
    if (f == "map") {
      List out;
      const Value* attr = nullptr;
      for (const auto& [k, x] : kw)
        if (k == "attribute") attr = &x;
      const Value* dflt = nullptr;
      for (const auto& [k, x] : kw)
        if (k == "default") dflt = &x;
      for (const auto& x : iterate(v)) {
        step();
        if (attr) {
          Value r = get_attr_path(x, *attr);
          out.push_back(r.is_undefined() && dflt ? *dflt : r);
        } else if (!args.empty()) {
          std::string fn = py_str(args[0]);
          if (!known_filters().count(fn)) fail("no filter named '" + fn + "'");
          out.push_back(apply_filter(fn, x, List(args.begin() + 1, args.end()), {}));
        } else {
          out.push_back(x);
        }
      }
      return Value(std::move(out));
    }
    if (f == "attr") {
      if (args.empty()) fail("attr filter needs a name");
      return get_attr(v, py_str(args[0]));
    }
    if (f == "unique") {
      List out;
      for (const auto& x : iterate(v)) {
        bool seen = false;
        for (const auto& y : out)
          if ((step(), py_eq(x, y)) || (x.is_string() && y.is_string() && map_case(x.str(), 0) == map_case(y.str(), 0))) seen = true;
        if (!seen) out.push_back(x);
      }
      return Value(std::move(out));
    }
    if (f == "sort") {
      const Value* rev = a(0, "reverse");
      const Value* cs = a(1, "case_sensitive");
      const Value* attr = a(2, "attribute");
      auto items = iterate(v);
      bool case_sensitive = cs && cs->truthy();
      std::stable_sort(items.begin(), items.end(), [&](const Value& p, const Value& q) {
        Value x = attr ? get_attr_path(p, *attr) : p;
        Value y = attr ? get_attr_path(q, *attr) : q;
        if (!case_sensitive && x.is_string() && y.is_string()) return map_case(x.str(), 0) < map_case(y.str(), 0);
        return py_cmp(x, y, "<") < 0;
      });
      if (rev && rev->truthy()) std::reverse(items.begin(), items.end());
      return Value(List(std::move(items)));
    }
    if (f == "sum" || f == "min" || f == "max") {
      auto items = iterate(v);
      if (f == "sum") {
        const Value* start = a(1, "start");
        Value acc = start ? *start : Value(int64_t(0));
        for (const auto& x : items) acc = binary("+", acc, x);
        return acc;
      }
      if (items.empty()) return Value::undefined("No aggregated item, sequence was empty.");
      Value best = items[0];
      for (const auto& x : items) {
        int c = py_cmp(x, best, "<");
        if (f == "min" ? c < 0 : c > 0) best = x;
      }
      return best;
    }
    if (f == "wordcount") return Value(static_cast<int64_t>(split(py_str(v), nullptr, -1).size()));
    if (f == "indent") {
      const Value* w = a(0, "width");
      const Value* first = a(1, "first");
      const Value* blank = a(2, "blank");
      std::string pad = w && w->is_string() ? w->str() : std::string(static_cast<size_t>(w && w->kind() == Value::Kind::Int ? std::clamp<int64_t>(w->as_int(), 0, 256) : 4), ' ');
      std::string s = py_str(v), out;
      size_t b = 0;
      bool first_line = true;
      while (b <= s.size()) {
        size_t nl = s.find('\n', b);
        std::string line = s.substr(b, nl == std::string::npos ? std::string::npos : nl - b);
        bool is_blank = line.find_first_not_of(" \t\r") == std::string::npos;
        if (!first_line || (first && first->truthy())) {
          if (!is_blank || (blank && blank->truthy())) out += pad;
        }
        out += line;
        check_size(out.size());
        if (nl == std::string::npos) break;
        out += '\n';
        b = nl + 1;
        first_line = false;
      }
      return Value(std::move(out));
    }
    if (f == "center") {
      const Value* w = a(0, "width");
      std::string s = py_str(v);
      int64_t width = w && w->kind() == Value::Kind::Int ? std::min<int64_t>(w->as_int(), 4096) : 80;
      int64_t n = static_cast<int64_t>(utf8::count(s));
      if (width <= n) return Value(s);
      int64_t total = width - n, left = total / 2 + (total & width & 1);
      return Value(std::string(static_cast<size_t>(left), ' ') + s + std::string(static_cast<size_t>(total - left), ' '));
    }
    if (f == "batch") {
      const Value* n = a(0, "linecount");
      int64_t k = n && n->kind() == Value::Kind::Int ? n->as_int() : 0;
      if (k <= 0) fail("batch size must be positive");
      List out, cur;
      for (const auto& x : iterate(v)) {
        cur.push_back(x);
        if (static_cast<int64_t>(cur.size()) == k) {
          out.emplace_back(std::move(cur));
          cur.clear();
        }
      }
      if (!cur.empty()) out.emplace_back(std::move(cur));
      return Value(std::move(out));
    }
    fail("no filter named '" + f + "'");
  }

  // "a.b.0" attribute paths, as jinja2's make_attrgetter
  Value get_attr_path(const Value& x, const Value& path) {
    if (!path.is_string()) return get_item(x, path);
    Value cur = x;
    std::string p = path.str();
    size_t b = 0;
    while (true) {
      size_t d = p.find('.', b);
      std::string part = p.substr(b, d == std::string::npos ? std::string::npos : d - b);
      bool digits = !part.empty() && std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; });
      if (cur.is_undefined()) return cur;
      cur = digits ? get_item(cur, Value(static_cast<int64_t>(std::stoll(part.substr(0, 18))))) : get_item(cur, Value(part));
      if (d == std::string::npos) break;
      b = d + 1;
    }
    return cur;
  }

  // ---- tests ----------------------------------------------------------------------------------

  bool eval_test(const Expr& e) {
    const std::string& t = e.name;
    if (t == "defined" || t == "undefined") {
      Value v = eval(*e.args[0]);
      return (t == "defined") != v.is_undefined();
    }
    Value v = eval(*e.args[0]);
    List args;
    for (size_t i = 1; i < e.args.size(); ++i) args.push_back(eval(*e.args[i]));
    for (const auto& [k, x] : e.kwargs) args.push_back(eval(*x));
    return run_test(t, v, args);
  }

  bool run_test(const std::string& t, const Value& v, const List& args) {
    auto need = [&]() -> const Value& {
      if (args.empty()) fail("test '" + t + "' needs an argument");
      return args[0];
    };
    using K = Value::Kind;
    if (t == "defined") return !v.is_undefined();
    if (t == "undefined") return v.is_undefined();
    if (t == "none") return v.is_none();
    if (t == "string") return v.is_string();
    if (t == "number") return v.kind() == K::Int || v.kind() == K::Float || v.kind() == K::Bool;
    if (t == "integer") return v.kind() == K::Int;
    if (t == "float") return v.kind() == K::Float;
    if (t == "boolean") return v.kind() == K::Bool;
    if (t == "true") return v.kind() == K::Bool && v.as_bool();
    if (t == "false") return v.kind() == K::Bool && !v.as_bool();
    if (t == "mapping") return v.kind() == K::Dict;
    if (t == "iterable") return v.is_undefined() || v.is_string() || v.is_list() || v.kind() == K::Dict;
    if (t == "sequence") return v.is_undefined() || v.is_string() || v.is_list() || v.kind() == K::Dict;
    if (t == "callable") return v.kind() == K::Callable;
    if (t == "escaped") return false;
    if (t == "lower") return v.is_string() && map_case(v.str(), 0) == v.str();
    if (t == "upper") return v.is_string() && map_case(v.str(), 1) == v.str();
    if (t == "odd" || t == "even" || t == "divisibleby") {
      if (v.kind() != K::Int && v.kind() != K::Bool) fail("test '" + t + "' needs an integer");
      int64_t x = v.as_int();
      if (t == "odd") return x % 2 != 0;
      if (t == "even") return x % 2 == 0;
      const Value& d = need();
      if (d.kind() != K::Int || d.as_int() == 0) fail("divisibleby needs a non-zero integer");
      return x % d.as_int() == 0;
    }
    if (t == "eq" || t == "equalto" || t == "==") return py_eq(v, need());
    if (t == "ne" || t == "!=") return !py_eq(v, need());
    if (t == "sameas") {
      const Value& o = need();
      if (v.kind() != o.kind()) return false;
      if (v.is_none() || v.is_undefined()) return true;
      if (v.kind() == K::Bool) return v.as_bool() == o.as_bool();
      return py_eq(v, o) && (v.kind() == K::Int);
    }
    if (t == "in") return contains(need(), v);
    if (t == "lt" || t == "lessthan" || t == "<") return compare("<", v, need());
    if (t == "le" || t == "<=") return compare("<=", v, need());
    if (t == "gt" || t == "greaterthan" || t == ">") return compare(">", v, need());
    if (t == "ge" || t == ">=") return compare(">=", v, need());
    fail("no test named '" + t + "'");
  }

  const Template::Impl& t_;
  const Limits& lim_;
  std::vector<Scope> scopes_;
  uint64_t steps_ = 0;
  int depth_ = 0;
};

}  // namespace

// =============================================================================================
// Template
// =============================================================================================

Template::Template(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Template::Template(Template&&) noexcept = default;
Template& Template::operator=(Template&&) noexcept = default;
Template::~Template() = default;

const std::string& Template::name() const { return impl_->name; }

Template Template::parse(std::string_view source, std::string name) {
  if (!utf8::is_valid(source)) throw Error(Error::Kind::BadInput, "template is not valid UTF-8", name);
  // jinja2: newlines normalized to "\n", one trailing newline dropped (keep_trailing_newline off)
  std::string src;
  src.reserve(source.size());
  for (size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\r') {
      src += '\n';
      if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
    } else {
      src += source[i];
    }
  }
  if (!src.empty() && src.back() == '\n') src.pop_back();
  Limits lim;
  auto toks = Lexer(std::move(src), name).run();
  auto impl = std::make_unique<Impl>();
  impl->name = name;
  impl->body = Parser(std::move(toks), name, lim.max_depth).parse_all();
  return Template(std::move(impl));
}

std::string Template::render(const Value& vars, const Limits& limits) const {
  Renderer r(*impl_, limits);
  try {
    return r.run(vars);
  } catch (const RenderError& e) {  // raised outside any statement (cannot happen today)
    throw Error(Error::Kind::BadInput, e.what, impl_->name);
  } catch (const BreakSignal&) {
    throw Error(Error::Kind::BadInput, "'break' outside of a loop", impl_->name);
  } catch (const ContinueSignal&) {
    throw Error(Error::Kind::BadInput, "'continue' outside of a loop", impl_->name);
  }
}

std::string strftime_now(std::string_view format) {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  localtime_r(&now, &tm);
  std::string fmt(format.substr(0, 256));
  char buf[1024];
  size_t n = fmt.empty() ? 0 : std::strftime(buf, sizeof buf, fmt.c_str(), &tm);
  return std::string(buf, n);
}

Value make_context(const Value& messages, const RenderOptions& opt) {
  if (!messages.is_list()) throw input_error("messages must be a list of message objects");
  if (messages.size() == 0)
    throw input_error("Cannot apply chat template to an empty conversation. Provide at least one message.");
  // transformers: keys whose value is None are dropped; reasoning aliases are filled in
  List msgs;
  for (const auto& m : messages.items()) {
    if (!m.is_dict()) throw input_error("Chat messages should be dicts, but got " + py_repr(m) + ".");
    Dict kept;
    for (const auto& [k, v] : m.entries())
      if (!v.is_none()) kept.emplace_back(k, v);
    Value msg = Value::dict(std::move(kept));
    const Value* reasoning = nullptr;
    for (const char* key : {"reasoning_content", "thinking", "reasoning"})
      if (!reasoning) reasoning = msg.get(key);
    if (reasoning) {
      Value r = *reasoning;
      Dict d;
      d.emplace_back("thinking", r);
      for (const auto& [k, v] : msg.entries())
        if (k != "thinking") d.emplace_back(k, v);
      Value aliased = Value::dict(std::move(d));
      if (const Value* own = msg.get("thinking")) aliased.set("thinking", *own);
      aliased.set("reasoning_content", r);
      msg = aliased;
    }
    msgs.push_back(std::move(msg));
  }
  Value ctx = Value::dict();
  // special tokens first, so that extra variables may override them (as kwargs do)
  if (!opt.bos_token.empty()) ctx.set("bos_token", opt.bos_token);
  if (!opt.eos_token.empty()) ctx.set("eos_token", opt.eos_token);
  if (!opt.unk_token.empty()) ctx.set("unk_token", opt.unk_token);
  if (!opt.pad_token.empty()) ctx.set("pad_token", opt.pad_token);
  for (const auto& [k, v] : opt.extra.entries()) ctx.set(k, v);
  ctx.set("messages", Value(std::move(msgs)));
  ctx.set("tools", opt.tools.is_undefined() ? Value::none() : opt.tools);
  ctx.set("documents", Value::none());
  ctx.set("add_generation_prompt", Value(opt.add_generation_prompt));
  return ctx;
}

std::string apply(const Template& tpl, const Value& messages, const RenderOptions& opt) {
  return tpl.render(make_context(messages, opt), opt.limits);
}

}  // namespace loom::chat
