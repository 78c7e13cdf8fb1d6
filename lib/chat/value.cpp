// chat::Value: storage, and a small validating JSON reader (messages arrive as JSON text).
#include "loom/chat/value.h"

#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdlib>

#include "loom/core/error.h"
#include "loom/io/json.h"

namespace loom::chat {

namespace {
const std::string kEmpty;
const List kEmptyList;
const Dict kEmptyDict;
}  // namespace

Value Value::dict(Dict d) {
  Value v;
  v.kind_ = Kind::Dict;
  v.d_ = std::make_shared<Dict>(std::move(d));
  return v;
}

Value Value::namespace_(Dict d) {
  Value v = dict(std::move(d));
  v.kind_ = Kind::Namespace;
  return v;
}

Value Value::callable(std::string name, Fn fn) {
  Value v;
  v.kind_ = Kind::Callable;
  v.s_ = std::make_shared<std::string>(std::move(name));
  v.fn_ = std::make_shared<Fn>(std::move(fn));
  return v;
}

Value Value::undefined(std::string hint) {
  Value v;
  v.s_ = std::make_shared<std::string>(std::move(hint));
  return v;
}

const std::string& Value::undefined_hint() const {
  return kind_ == Kind::Undefined && s_ ? *s_ : kEmpty;
}

const std::string& Value::str() const { return kind_ == Kind::String ? *s_ : kEmpty; }
const List& Value::items() const { return kind_ == Kind::List ? *l_ : kEmptyList; }
const Dict& Value::entries() const { return is_dict() ? *d_ : kEmptyDict; }
const std::string& Value::callable_name() const { return kind_ == Kind::Callable ? *s_ : kEmpty; }
const Value::Fn& Value::fn() const { return *fn_; }

size_t Value::size() const {
  if (kind_ == Kind::List) return l_->size();
  if (is_dict()) return d_->size();
  return 0;
}

const Value* Value::get(std::string_view key) const {
  if (!is_dict()) return nullptr;
  for (const auto& [k, v] : *d_)
    if (k == key) return &v;
  return nullptr;
}

void Value::set(std::string_view key, Value v) {
  if (!is_dict()) return;
  if (kind_ == Kind::Dict && d_.use_count() > 1) d_ = std::make_shared<Dict>(*d_);
  for (auto& [k, old] : *d_)
    if (k == key) {
      old = std::move(v);
      return;
    }
  d_->emplace_back(std::string(key), std::move(v));
}

void Value::push_back(Value v) {
  if (kind_ != Kind::List) return;
  if (l_.use_count() > 1) l_ = std::make_shared<List>(*l_);
  l_->push_back(std::move(v));
}

bool Value::truthy() const {
  switch (kind_) {
    case Kind::Undefined:
    case Kind::None: return false;
    case Kind::Bool:
    case Kind::Int: return i_ != 0;
    case Kind::Float: return f_ != 0;
    case Kind::String: return !s_->empty();
    case Kind::List: return !l_->empty();
    case Kind::Dict: return !d_->empty();
    case Kind::Namespace:
    case Kind::Callable: return true;
  }
  return false;
}

// ---------------------------------------------------------------------------------------------
// JSON reader: recursive descent with a depth limit.

namespace {

class JsonReader {
 public:
  explicit JsonReader(std::string_view s) : s_(s) {}

  Value document() {
    Value v = value(0);
    ws();
    if (p_ != s_.size()) fail("unexpected text after the JSON value");
    return v;
  }

 private:
  [[noreturn]] void fail(const std::string& what) {
    throw input_error("invalid JSON at byte " + std::to_string(p_) + ": " + what);
  }
  void ws() {
    while (p_ < s_.size() && (s_[p_] == ' ' || s_[p_] == '\t' || s_[p_] == '\n' || s_[p_] == '\r')) ++p_;
  }
  bool eat(char c) {
    ws();
    if (p_ < s_.size() && s_[p_] == c) {
      ++p_;
      return true;
    }
    return false;
  }
  void expect(char c) {
    if (!eat(c)) fail(std::string("expected '") + c + "'");
  }
  bool word(std::string_view w) {
    if (s_.substr(p_, w.size()) == w) {
      p_ += w.size();
      return true;
    }
    return false;
  }

  Value value(int depth) {
    if (depth > 512) fail("nested too deeply");
    ws();
    if (p_ >= s_.size()) fail("unexpected end of input");
    char c = s_[p_];
    if (c == '{') {
      ++p_;
      Value d = Value::dict();
      if (eat('}')) return d;
      do {
        ws();
        if (p_ >= s_.size() || s_[p_] != '"') fail("expected a string key");
        std::string k = string();
        expect(':');
        d.set(k, value(depth + 1));
      } while (eat(','));
      expect('}');
      return d;
    }
    if (c == '[') {
      ++p_;
      List l;
      if (eat(']')) return Value(std::move(l));
      do l.push_back(value(depth + 1));
      while (eat(','));
      expect(']');
      return Value(std::move(l));
    }
    if (c == '"') return Value(string());
    if (word("true")) return Value(true);
    if (word("false")) return Value(false);
    if (word("null")) return Value::none();
    return number();
  }

  std::string string() {
    size_t start = p_++;
    bool escaped = false;
    while (true) {
      if (p_ >= s_.size()) fail("unterminated string");
      unsigned char c = static_cast<unsigned char>(s_[p_]);
      if (c < 0x20) fail("control character in string");
      if (c == '\\') {
        escaped = true;
        if (++p_ >= s_.size()) fail("unterminated string");
        char e = s_[p_];
        if (e == 'u') {
          for (int k = 1; k <= 4; ++k)
            if (p_ + k >= s_.size() || !std::isxdigit(static_cast<unsigned char>(s_[p_ + k]))) fail("bad \\u escape");
          p_ += 4;
        } else if (std::string_view("\"\\/bfnrt").find(e) == std::string_view::npos) {
          fail("bad escape");
        }
      } else if (c == '"') {
        break;
      }
      ++p_;
    }
    std::string_view raw = s_.substr(start, p_ - start + 1);
    ++p_;
    std::string out;
    if (escaped) {
      json::unescape_string(raw, out);
    } else {
      out.assign(raw.substr(1, raw.size() - 2));
    }
    if (!json::valid_utf8(out)) fail("string is not valid UTF-8");
    return out;
  }

  Value number() {
    size_t start = p_;
    if (p_ < s_.size() && s_[p_] == '-') ++p_;
    auto digits = [&] {
      size_t b = p_;
      while (p_ < s_.size() && s_[p_] >= '0' && s_[p_] <= '9') ++p_;
      return p_ - b;
    };
    size_t nd = digits();
    if (nd == 0) fail("unexpected character");
    if (nd > 1 && s_[p_ - nd] == '0') fail("leading zero in number");
    bool is_float = false;
    if (p_ < s_.size() && s_[p_] == '.') {
      ++p_;
      is_float = true;
      if (digits() == 0) fail("digits expected after '.'");
    }
    if (p_ < s_.size() && (s_[p_] == 'e' || s_[p_] == 'E')) {
      ++p_;
      is_float = true;
      if (p_ < s_.size() && (s_[p_] == '+' || s_[p_] == '-')) ++p_;
      if (digits() == 0) fail("digits expected in exponent");
    }
    std::string_view text = s_.substr(start, p_ - start);
    if (!is_float) {
      int64_t v = 0;
      auto r = std::from_chars(text.data(), text.data() + text.size(), v);
      if (r.ec == std::errc()) return Value(v);
    }
    std::string tmp(text);
    return Value(std::strtod(tmp.c_str(), nullptr));
  }

  std::string_view s_;
  size_t p_ = 0;
};

}  // namespace

Value Value::parse_json(std::string_view json) { return JsonReader(json).document(); }

}  // namespace loom::chat
