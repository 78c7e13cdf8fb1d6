// A small JSON reader for the unit tests' golden files (what the reference scripts in
// tests/reference/ write): enough JSON for trusted files, no error recovery.
//
//   golden::J g = golden::parse(text);   g["field"][0].num, g["name"].str, g["list"].strings()
#pragma once
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "loom/io/json.h"

namespace golden {

struct J {
  enum Kind { Null, Bool, Num, Str, Arr, Obj } kind = Null;
  double num = 0;
  std::string str;
  std::vector<J> arr;
  std::vector<std::pair<std::string, J>> obj;
  const J& operator[](std::string_view key) const {
    for (const auto& [k, v] : obj)
      if (k == key) return v;
    throw std::runtime_error("golden: no field " + std::string(key));
  }
  const J& operator[](size_t i) const { return arr.at(i); }
  std::vector<std::string> strings() const {
    std::vector<std::string> out;
    for (const auto& v : arr) out.push_back(v.str);
    return out;
  }
};

struct JParser {
  std::string_view s;
  size_t i = 0;
  void ws() {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\n' || s[i] == '\t' || s[i] == '\r')) ++i;
  }
  J value() {
    ws();
    J v;
    if (i >= s.size()) throw std::runtime_error("golden: bad JSON");
    char c = s[i];
    if (c == '{' || c == '[') {
      bool obj = c == '{';
      v.kind = obj ? J::Obj : J::Arr;
      ++i;
      ws();
      if (s[i] == (obj ? '}' : ']')) return ++i, v;
      for (;;) {
        if (obj) {
          J key = value();
          ws();
          ++i;  // ':'
          v.obj.emplace_back(key.str, value());
        } else {
          v.arr.push_back(value());
        }
        ws();
        if (s[i++] == (obj ? '}' : ']')) return v;
      }
    }
    if (c == '"') {
      size_t b = i++;
      while (s[i] != '"') i += s[i] == '\\' ? 2 : 1;
      ++i;
      v.kind = J::Str;
      loom::json::unescape_string(s.substr(b, i - b), v.str);
      return v;
    }
    if (s.substr(i, 4) == "null") return i += 4, v;
    if (s.substr(i, 4) == "true") return i += 4, v.kind = J::Bool, v.num = 1, v;
    if (s.substr(i, 5) == "false") return i += 5, v.kind = J::Bool, v;
    size_t b = i;
    while (i < s.size() && std::strchr("+-0123456789.eE", s[i])) ++i;
    v.kind = J::Num;
    v.num = std::strtod(std::string(s.substr(b, i - b)).c_str(), nullptr);
    return v;
  }
};

inline J parse(std::string_view s) { return JParser{s}.value(); }

}  // namespace golden
