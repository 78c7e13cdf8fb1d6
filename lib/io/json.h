// Writing JSON text: escaping, numbers, UTF-8 validation. No DOM: values are appended to a
// std::string, which keeps the hot path (one record per line) free of allocations.
//
//   std::string out;
//   json::append_string(out, "caf\xc3\xa9");   // "café"  (throws loom::Error on invalid UTF-8)
//   json::append_number(out, 0.1);            // 0.1     (shortest text that reads back exactly)
//
//   json::Writer w;                            // comma bookkeeping for nested values
//   w.begin_object(); w.key("n"); w.value(3); w.key("v"); w.begin_array(); w.value(1.5f);
//   w.end_array(); w.end_object();             // w.str() == {"n":3,"v":[1.5]}
#pragma once
#include <cstdint>
#include <type_traits>
#include <string>
#include <string_view>
#include <vector>

namespace loom::json {

// True when `s` is well-formed UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF).
bool valid_utf8(std::string_view s);
// Byte offset of the first invalid UTF-8 sequence in `s`, or s.size() when valid.
size_t first_invalid_utf8(std::string_view s);
// Bytes as text: each maximal invalid UTF-8 subpart becomes U+FFFD (what Python's
// decode("utf-8", errors="replace") and Rust's from_utf8_lossy do).
std::string lossy_utf8(std::string_view in);

// Appends `s` as a JSON string literal. Control characters become \n, \t, ... or \u00XX; '"' and
// '\\' are escaped; everything else (including non-ASCII) is written as UTF-8. Throws
// loom::Error(BadInput) when `s` is not valid UTF-8.
void append_string(std::string& out, std::string_view s);
// Same, for text already known to be valid UTF-8 (skips the check).
void append_string_unchecked(std::string& out, std::string_view s);

// Numbers. Doubles and floats use the shortest decimal that parses back to the same value
// (std::to_chars); integral doubles keep a ".0"-free form (3 not 3.0) as JavaScript does.
// NaN and infinities have no JSON form: they throw loom::Error(BadInput).
void append_number(std::string& out, double v);
void append_number(std::string& out, float v);
void append_number(std::string& out, int64_t v);
void append_number(std::string& out, uint64_t v);
inline void append_number(std::string& out, int v) { append_number(out, static_cast<int64_t>(v)); }
inline void append_number(std::string& out, long long v) { append_number(out, static_cast<int64_t>(v)); }
inline void append_number(std::string& out, unsigned long long v) { append_number(out, static_cast<uint64_t>(v)); }

// Decodes the body of a JSON string literal (`raw` includes the quotes) that a validating parser
// has already accepted. Appends the decoded UTF-8 to `out`. A lone surrogate escape (\uD800 not
// followed by a low surrogate, or a stray \uDC00) is valid JSON but not Unicode text: loom::Error
// (BadInput) naming it.
void unescape_string(std::string_view raw, std::string& out);

// Incremental writer of one JSON value with comma bookkeeping.
class Writer {
 public:
  void begin_object() { sep(); out_ += '{'; first_.push_back(true); }
  void end_object() { out_ += '}'; first_.pop_back(); }
  void begin_array() { sep(); out_ += '['; first_.push_back(true); }
  void end_array() { out_ += ']'; first_.pop_back(); }
  void key(std::string_view k) {
    sep();
    append_string(out_, k);
    out_ += ':';
    after_key_ = true;
  }
  void value(std::string_view s) { sep(); append_string(out_, s); }
  void value(const char* s) { value(std::string_view(s)); }
  void value(bool b) { sep(); out_ += b ? "true" : "false"; }
  template <typename Num>
  void value(Num n) requires std::is_arithmetic_v<Num> { sep(); append_number(out_, n); }
  void null() { sep(); out_ += "null"; }
  // A value that is already JSON text.
  void raw(std::string_view json) { sep(); out_ += json; }

  const std::string& str() const { return out_; }
  std::string take() { return std::move(out_); }
  void clear() { out_.clear(); first_.clear(); after_key_ = false; }

 private:
  void sep() {
    if (after_key_) { after_key_ = false; return; }
    if (!first_.empty()) {
      if (!first_.back()) out_ += ',';
      first_.back() = false;
    }
  }
  std::string out_;
  std::vector<bool> first_;
  bool after_key_ = false;
};

}  // namespace loom::json
