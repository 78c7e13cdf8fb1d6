#include "loom/io/jsonl.h"

#include <cctype>
#include <charconv>
#include <cstring>

#include <fmt/format.h>
#include <simdjson.h>

#include "loom/core/error.h"

namespace loom::io {

namespace {

inline bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// End of the string literal starting at p (p points at the opening quote); returns the position
// after the closing quote. Input is validated JSON.
const char* skip_string(const char* p, const char* end) {
  ++p;
  for (;;) {
    const char* q = static_cast<const char*>(std::memchr(p, '"', end - p));
    // count backslashes immediately before the quote
    const char* b = q;
    while (b > p && b[-1] == '\\') --b;
    if (((q - b) & 1) == 0) return q + 1;
    p = q + 1;
  }
}

std::string_view json_kind(std::string_view v) {
  if (v.empty()) return "nothing";
  switch (v[0]) {
    case '"': return "a string";
    case '{': return "an object";
    case '[': return "an array";
    case 't': case 'f': return "a boolean";
    case 'n': return "null";
    default: return "a number";
  }
}

Error wrong_type(std::string_view key, std::string_view want, std::string_view v) {
  return input_error(fmt::format("field \"{}\" must be {}, not {}", key, want, json_kind(v)));
}


// A plain RFC 8259 checker, used only when simdjson rejects a line: it finds the column and cause
// of the error for the message, and accepts what simdjson cannot represent but JSON allows
// (integers beyond 64 bits), which records then carry through untouched.
class StrictJson {
 public:
  explicit StrictJson(std::string_view s) : s_(s) {}
  // Empty string when `s` is one valid JSON value; otherwise what is wrong. pos() says where.
  std::string check() {
    ws();
    if (!value(0)) return err_;
    ws();
    if (i_ != s_.size()) return fail("unexpected text after the JSON value");
    return "";
  }
  size_t pos() const { return i_; }

 private:
  bool fail_b(const char* what) { err_ = what; return false; }
  std::string fail(const char* what) { err_ = what; return err_; }
  bool eof() const { return i_ >= s_.size(); }
  char peek() const { return eof() ? '\0' : s_[i_]; }
  static bool digit(char c) { return c >= '0' && c <= '9'; }
  void ws() { while (!eof() && is_ws(s_[i_])) ++i_; }
  bool lit(std::string_view w) {
    if (s_.substr(i_, w.size()) != w) return fail_b("invalid literal (expected true, false or null)");
    i_ += w.size();
    return true;
  }
  bool digits() {
    if (!digit(peek())) return fail_b("invalid number");
    while (digit(peek())) ++i_;
    return true;
  }
  bool number() {
    if (peek() == '-') ++i_;
    if (peek() == '0') {
      ++i_;
      if (digit(peek())) return fail_b("invalid number (leading zero)");
    } else if (!digits()) {
      return false;
    }
    if (peek() == '.') { ++i_; if (!digits()) return false; }
    if (peek() == 'e' || peek() == 'E') {
      ++i_;
      if (peek() == '+' || peek() == '-') ++i_;
      if (!digits()) return false;
    }
    return true;
  }
  bool string() {
    ++i_;  // opening quote
    for (;;) {
      if (eof()) return fail_b("unclosed string");
      unsigned char c = static_cast<unsigned char>(s_[i_]);
      if (c == '"') { ++i_; return true; }
      if (c < 0x20) return fail_b("control character in a string (must be escaped)");
      if (c == '\\') {
        ++i_;
        char e = peek();
        if (e == 'u') {
          for (size_t k = 1; k <= 4; ++k)
            if (i_ + k >= s_.size() || !std::isxdigit(static_cast<unsigned char>(s_[i_ + k]))) return fail_b("invalid \\u escape");
          i_ += 5;
          continue;
        }
        if (!e || !std::strchr("\"\\/bfnrt", e)) return fail_b("invalid escape in a string");
      }
      ++i_;
    }
  }
  bool value(int depth) {
    if (depth > 1024) return fail_b("nesting too deep");
    ws();
    char c = peek();
    if (c == '{' || c == '[') {
      char close = c == '{' ? '}' : ']';
      ++i_;
      ws();
      if (peek() == close) { ++i_; return true; }
      for (;;) {
        if (c == '{') {
          ws();
          if (peek() != '"') return fail_b("expected a string key");
          if (!string()) return false;
          ws();
          if (peek() != ':') return fail_b("expected ':' after a key");
          ++i_;
        }
        if (!value(depth + 1)) return false;
        ws();
        if (peek() == ',') {
          ++i_;
          ws();
          if (peek() == close) return fail_b("trailing comma");
          continue;
        }
        if (peek() == close) { ++i_; return true; }
        return fail_b(c == '{' ? "expected ',' or '}'" : "expected ',' or ']'");
      }
    }
    if (c == '"') return string();
    if (c == 't') return lit("true");
    if (c == 'f') return lit("false");
    if (c == 'n') return lit("null");
    if (c == '-' || digit(c)) return number();
    return fail_b(eof() ? "unexpected end of line" : "expected a JSON value");
  }

  std::string_view s_;
  size_t i_ = 0;
  std::string err_;
};

// Validates `json` (followed by at least SIMDJSON_PADDING readable bytes) as one JSON object.
void validate_object(simdjson::dom::parser& parser, std::string_view json) {
  simdjson::dom::element el;
  auto err = parser.parse(reinterpret_cast<const uint8_t*>(json.data()), json.size(), false).get(el);
  if (err) {
    if (err == simdjson::UTF8_ERROR) {
      size_t at = json::first_invalid_utf8(json);
      throw input_error(fmt::format("invalid UTF-8 at column {}", at + 1));
    }
    StrictJson strict(json);
    std::string why = strict.check();
    if (!why.empty()) throw input_error(fmt::format("not valid JSON at column {}: {}", strict.pos() + 1, why));
    // Valid JSON that simdjson cannot hold (a very large integer): accepted as it is.
    size_t i = 0;
    while (i < json.size() && is_ws(json[i])) ++i;
    if (i == json.size() || json[i] != '{')
      throw input_error("expected a JSON object per line (a record), found another JSON value");
    return;
  }
  if (el.type() != simdjson::dom::element_type::OBJECT)
    throw input_error("expected a JSON object per line (a record), found another JSON value");
}

}  // namespace

// ------------------------------------------------------------------------------------------------
// Record
// ------------------------------------------------------------------------------------------------

Record Record::parse(std::string_view json) {
  static thread_local simdjson::dom::parser parser;
  std::string padded;
  padded.reserve(json.size() + simdjson::SIMDJSON_PADDING);
  padded.assign(json);
  validate_object(parser, padded);
  Record r;
  r.split_validated(padded);
  return r;
}

void Record::split_validated(std::string_view json) {
  buf_.clear();
  fields_.clear();
  const char* p = json.data();
  const char* end = p + json.size();
  while (is_ws(*p)) ++p;
  ++p;  // '{'
  for (;;) {
    while (is_ws(*p)) ++p;
    if (*p == '}') return;
    if (*p == ',') { ++p; continue; }
    const char* k = p;
    p = skip_string(p, end);
    Field f;
    f.koff = static_cast<uint32_t>(buf_.size());
    f.klen = static_cast<uint32_t>(p - k);
    // A key must be Unicode text: one with a lone surrogate escape is refused here, with the
    // line, rather than later by whatever looks a field up.
    if (std::string_view(k, p - k).find('\\') != std::string_view::npos) {
      std::string decoded;
      json::unescape_string(std::string_view(k, p - k), decoded);
    }
    buf_.append(k, p);
    while (is_ws(*p) || *p == ':') ++p;
    f.voff = static_cast<uint32_t>(buf_.size());
    if (*p == '"') {
      const char* v = p;
      p = skip_string(p, end);
      buf_.append(v, p);
    } else if (*p == '{' || *p == '[') {
      int depth = 0;
      const char* run = p;
      for (;;) {
        char c = *p;
        if (c == '"') {
          p = skip_string(p, end);
          continue;
        }
        if (c == '{' || c == '[') {
          ++depth;
        } else if (c == '}' || c == ']') {
          if (--depth == 0) { ++p; break; }
        } else if (is_ws(c)) {
          buf_.append(run, p);
          while (is_ws(*p)) ++p;
          run = p;
          continue;
        }
        ++p;
      }
      buf_.append(run, p);
    } else {
      const char* v = p;
      while (*p != ',' && *p != '}' && !is_ws(*p)) ++p;
      buf_.append(v, p);
    }
    f.vlen = static_cast<uint32_t>(buf_.size() - f.voff);
    fields_.push_back(f);
  }
}

std::string Record::key(size_t i) const {
  std::string out;
  json::unescape_string(raw_key(i), out);
  return out;
}

long Record::find(std::string_view key) const {
  for (size_t i = 0; i < fields_.size(); ++i) {
    std::string_view rk = raw_key(i);
    std::string_view inner = rk.substr(1, rk.size() - 2);
    if (inner.find('\\') == std::string_view::npos) {
      if (inner == key) return static_cast<long>(i);
    } else {
      std::string decoded;
      json::unescape_string(rk, decoded);
      if (decoded == key) return static_cast<long>(i);
    }
  }
  return -1;
}

std::optional<std::string_view> Record::raw(std::string_view key) const {
  long i = find(key);
  if (i < 0) return std::nullopt;
  return raw_value(static_cast<size_t>(i));
}

std::optional<std::string> Record::get_string(std::string_view key) const {
  auto v = raw(key);
  if (!v || *v == "null") return std::nullopt;
  if ((*v)[0] != '"') throw wrong_type(key, "a string", *v);
  std::string out;
  try {
    json::unescape_string(*v, out);
  } catch (const Error& e) {
    throw input_error(fmt::format("field \"{}\": {}", key, e.what()));
  }
  return out;
}

std::optional<double> Record::get_number(std::string_view key) const {
  auto v = raw(key);
  if (!v || *v == "null") return std::nullopt;
  double d = 0;
  auto r = std::from_chars(v->data(), v->data() + v->size(), d);
  if (r.ec != std::errc() || r.ptr != v->data() + v->size()) throw wrong_type(key, "a number", *v);
  return d;
}

std::optional<int64_t> Record::get_int(std::string_view key) const {
  auto v = raw(key);
  if (!v || *v == "null") return std::nullopt;
  int64_t n = 0;
  auto r = std::from_chars(v->data(), v->data() + v->size(), n);
  if (r.ec != std::errc() || r.ptr != v->data() + v->size()) throw wrong_type(key, "an integer", *v);
  return n;
}

std::optional<bool> Record::get_bool(std::string_view key) const {
  auto v = raw(key);
  if (!v || *v == "null") return std::nullopt;
  if (*v == "true") return true;
  if (*v == "false") return false;
  throw wrong_type(key, "a boolean", *v);
}

void Record::set_raw(std::string_view key, std::string_view json) {
  long i = find(key);
  if (i >= 0) {
    Field& f = fields_[static_cast<size_t>(i)];
    f.voff = static_cast<uint32_t>(buf_.size());
    f.vlen = static_cast<uint32_t>(json.size());
    buf_.append(json);
    return;
  }
  Field f;
  f.koff = static_cast<uint32_t>(buf_.size());
  json::append_string(buf_, key);
  f.klen = static_cast<uint32_t>(buf_.size() - f.koff);
  f.voff = static_cast<uint32_t>(buf_.size());
  f.vlen = static_cast<uint32_t>(json.size());
  buf_.append(json);
  fields_.push_back(f);
}

void Record::set(std::string_view key, std::string_view s) {
  scratch_.clear();
  json::append_string(scratch_, s);
  set_raw(key, scratch_);
}

void Record::append_raw(std::string_view raw_key, std::string_view raw_value) {
  Field f;
  f.koff = static_cast<uint32_t>(buf_.size());
  f.klen = static_cast<uint32_t>(raw_key.size());
  buf_.append(raw_key);
  f.voff = static_cast<uint32_t>(buf_.size());
  f.vlen = static_cast<uint32_t>(raw_value.size());
  buf_.append(raw_value);
  fields_.push_back(f);
}

bool Record::erase(std::string_view key) {
  long i = find(key);
  if (i < 0) return false;
  fields_.erase(fields_.begin() + i);
  return true;
}

void Record::append_to(std::string& out) const {
  out += '{';
  for (size_t i = 0; i < fields_.size(); ++i) {
    if (i) out += ',';
    out += raw_key(i);
    out += ':';
    out += raw_value(i);
  }
  out += '}';
}

// ------------------------------------------------------------------------------------------------
// LineReader
// ------------------------------------------------------------------------------------------------

LineReader::LineReader(Input& in) : in_(in) { buf_.resize((256 << 10) + kPadding); }

bool LineReader::fill() {
  if (eof_) return false;
  size_t cap = buf_.size() - kPadding;
  if (begin_ > 0) {  // move the partial line to the front
    std::memmove(buf_.data(), buf_.data() + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
  }
  if (end_ == cap) {  // a line longer than the buffer: grow
    buf_.resize(cap * 2 + kPadding);
    cap = buf_.size() - kPadding;
  }
  size_t got = in_.read(buf_.data() + end_, cap - end_);
  if (got == 0) {
    eof_ = true;
    return false;
  }
  end_ += got;
  return true;
}

bool LineReader::next(std::string_view& line) {
  size_t scan = begin_;
  for (;;) {
    const char* nl = static_cast<const char*>(std::memchr(buf_.data() + scan, '\n', end_ - scan));
    if (nl || (eof_ && begin_ < end_)) {
      size_t stop = nl ? static_cast<size_t>(nl - buf_.data()) : end_;
      const char* s = buf_.data() + begin_;
      size_t len = stop - begin_;
      begin_ = nl ? stop + 1 : end_;
      ++line_no_;
      if (len && s[len - 1] == '\r') --len;
      if (line_no_ == 1 && len >= 3 && std::memcmp(s, "\xEF\xBB\xBF", 3) == 0) {
        s += 3;
        len -= 3;
      }
      line = std::string_view(s, len);
      return true;
    }
    size_t seen = end_ - begin_;
    bool more = fill();  // may move the pending bytes to the front of the buffer
    scan = begin_ + seen;
    if (!more && begin_ == end_) return false;
  }
}

// ------------------------------------------------------------------------------------------------
// JsonlReader
// ------------------------------------------------------------------------------------------------

struct JsonlReader::Parser {
  simdjson::dom::parser dom;
};

static_assert(LineReader::kPadding >= simdjson::SIMDJSON_PADDING, "line padding must cover simdjson's");

JsonlReader::JsonlReader(Input& in) : in_(in), lines_(in), parser_(std::make_unique<Parser>()) {}
JsonlReader::~JsonlReader() = default;

bool JsonlReader::next(Record& rec) {
  if (failed_) return false;
  std::string_view line;
  for (;;) {
    try {
      if (!lines_.next(line)) return false;
    } catch (...) {
      failed_ = true;  // the stream itself is broken (corrupt zstd, read error): nothing follows
      throw;
    }
    size_t i = 0;
    while (i < line.size() && is_ws(line[i])) ++i;
    if (i < line.size()) break;  // not blank
  }
  try {
    validate_object(parser_->dom, line);
    rec.split_validated(line);
  } catch (Error& e) {
    throw e.at(in_.name(), lines_.line_number());
  }
  return true;
}

}  // namespace loom::io
