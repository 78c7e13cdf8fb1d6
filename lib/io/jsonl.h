// JSON Lines records: the unit every loom program reads and writes.
//
// A Record is one JSON object. Each top-level field is kept as its compact JSON text, so fields a
// program does not touch pass through exactly (numbers keep their digits, strings their escapes,
// nested objects their order); only insignificant whitespace is removed. Programs read the fields
// they need with the typed getters and add or replace fields with the setters; new fields go at
// the end, replaced ones keep their place.
//
//   io::JsonlReader reader(*input);          // streaming, any line length
//   io::Record rec;
//   while (reader.next(rec)) {               // throws loom::Error naming file:line on bad JSON
//     auto text = rec.get_string("text");    // std::optional<std::string>
//     rec.set("n_chars", int64_t(text ? text->size() : 0));
//     rec.append_to(line); line += '\n';
//   }
//
// The reader accepts: a UTF-8 byte order mark at the start, CRLF line ends, blank lines (skipped),
// a last line without a newline, and zstd-compressed input (through io::Input). Every line must
// be one JSON object; anything else is a BadInput error with the 1-based line number.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "loom/io/json.h"
#include "loom/io/stream.h"

namespace loom::io {

class Record {
 public:
  // Parses one JSON object (validating it fully). Throws loom::Error(BadInput) without location.
  static Record parse(std::string_view json);

  size_t size() const { return fields_.size(); }
  bool empty() const { return fields_.empty(); }
  // Field i: key decoded, value as compact JSON text.
  std::string key(size_t i) const;
  std::string_view raw_key(size_t i) const { return {buf_.data() + fields_[i].koff, fields_[i].klen}; }
  std::string_view raw_value(size_t i) const { return {buf_.data() + fields_[i].voff, fields_[i].vlen}; }

  // Compact JSON text of a field, if present.
  std::optional<std::string_view> raw(std::string_view key) const;
  bool has(std::string_view key) const { return find(key) >= 0; }

  // Typed getters: nullopt when absent; loom::Error(BadInput) naming the field when present with
  // another type (a JSON null counts as absent).
  std::optional<std::string> get_string(std::string_view key) const;
  std::optional<double> get_number(std::string_view key) const;
  std::optional<int64_t> get_int(std::string_view key) const;
  std::optional<bool> get_bool(std::string_view key) const;

  // Setters: replace the value in place, or append the field.
  void set_raw(std::string_view key, std::string_view json);
  void set(std::string_view key, std::string_view s);
  void set(std::string_view key, const char* s) { set(key, std::string_view(s)); }
  void set(std::string_view key, const std::string& s) { set(key, std::string_view(s)); }
  void set(std::string_view key, bool b) { set_raw(key, b ? "true" : "false"); }
  template <typename Num>
  void set(std::string_view key, Num n) requires std::is_arithmetic_v<Num> {
    scratch_.clear();
    json::append_number(scratch_, n);
    set_raw(key, scratch_);
  }
  void set_null(std::string_view key) { set_raw(key, "null"); }
  // Appends a field whose key and value are already JSON text (copying between records).
  void append_raw(std::string_view raw_key, std::string_view raw_value);
  bool erase(std::string_view key);
  void clear() { buf_.clear(); fields_.clear(); }

  // Appends the record as one line of compact JSON (no newline).
  void append_to(std::string& out) const;
  std::string to_json() const { std::string s; append_to(s); return s; }

 private:
  friend class JsonlReader;
  struct Field {
    uint32_t koff, klen, voff, vlen;
  };
  long find(std::string_view key) const;
  // Splits validated JSON object text into fields, removing insignificant whitespace.
  void split_validated(std::string_view json);

  std::string buf_;
  std::vector<Field> fields_;
  std::string scratch_;
};

// Splits an Input into lines. A line is returned without its "\n" (and "\r"); the returned view
// stays valid until the next call and is followed by at least kPadding readable bytes.
class LineReader {
 public:
  static constexpr size_t kPadding = 64;
  explicit LineReader(Input& in);
  bool next(std::string_view& line);
  size_t line_number() const { return line_no_; }  // of the line last returned, 1-based

 private:
  bool fill();
  Input& in_;
  std::vector<char> buf_;
  size_t begin_ = 0, end_ = 0;
  size_t line_no_ = 0;
  bool eof_ = false;
};

class JsonlReader {
 public:
  explicit JsonlReader(Input& in);
  ~JsonlReader();
  // Next record; false at end of input. Blank lines are skipped. Throws loom::Error(BadInput)
  // with the input's name and line number for a line that is not a JSON object; the reader is
  // then positioned after that line, so a caller may count it and go on (--on-error skip).
  // An error of the stream itself (corrupt zstd data, a failed read) has no line number
  // (Error::line() == 0); the reader then returns false from every later call.
  bool next(Record& rec);
  size_t line() const { return lines_.line_number(); }
  const std::string& name() const { return in_.name(); }
  // True after an error of the stream itself (see next()): not a record to skip.
  bool failed() const { return failed_; }

 private:
  Input& in_;
  LineReader lines_;
  struct Parser;
  std::unique_ptr<Parser> parser_;
  bool failed_ = false;
};

}  // namespace loom::io
