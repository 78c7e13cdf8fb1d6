// loom::index::Filter — the metadata filter language of `loom retrieve --filter`.
//
//   meta.lang == "en" and meta.year >= 2020
//   (meta.source == "man" or meta.source == "faq") and not meta.draft
//   id in ["a", "b"] and meta.tags contains "linux" and exists(meta.author)
//
// A filter is parsed once into a small expression tree and evaluated against each candidate
// record (its stored JSON: id, text, meta and the other fields). It never becomes SQL or shell
// text: in meta.x == "'; DROP TABLE t" the right side is only a string to compare with.
//
// Grammar, loosest binding first. Keywords are lowercase; spaces between tokens are free.
//
//   expr       := and-expr { "or" and-expr }
//   and-expr   := not-expr { "and" not-expr }
//   not-expr   := "not" not-expr | comparison
//   comparison := operand [ op operand ]         op: == != < <= > >= in contains
//   operand    := path | literal | "exists" "(" path ")" | "(" expr ")"
//   path       := [ "." ] name { "." name | "[" string "]" | "[" integer "]" }
//   name       := word | string                  word: [A-Za-z_][A-Za-z0-9_]*
//   literal    := string | number | "true" | "false" | "null" | "[" [ literal { "," literal } ] "]"
//
// So `not a == 1 and b or c` means `((not (a == 1)) and b) or c`, as in SQL and Python.
// Comparisons do not chain: write `1 < x and x < 5`, not `1 < x < 5`.
//
// Paths. The first name is a top-level field of the record (id, text, meta or any other: `lang`
// reads the top-level field "lang"). .name steps into an object, [n] into an array (0 is the
// first element, -1 the last), ["key"] or ."key" into an object by a key that is not a plain
// word (meta["x-y"]). A leading dot, as in jq, is optional (.meta.lang); it is needed for a
// top-level field named like a keyword or not a plain word (.in, .["odd key"]). A path that is
// absent (a missing field, an index past the end, a step into a value of another type) is null.
//
// Literals are JSON: strings in double quotes with JSON escapes (\" \\ \/ \b \f \n \r \t \uXXXX),
// numbers (7, -0.5, 1e3, 2.5E-2), true, false, null, and lists in brackets (["a", 1, [true]]).
//
// Semantics:
//   == !=       structural equality of any two JSON values: arrays element by element, objects
//               by their set of keys in any order. a != b is exactly not (a == b), so
//               meta.x != 1 is true when meta.x is absent. null == null, and absent == null.
//   numbers     compare by exact decimal value: 1 == 1.0 == 1e0, -0 == 0, and big integers stay
//               exact (12345678901234567891 != 12345678901234567890).
//   strings     compare byte by byte in UTF-8 (code point order; no case folding or Unicode
//               normalization), after decoding escapes ("\u00e9" == "é").
//   < <= > >=   only between two numbers, two strings or two booleans (false < true). For any
//               other pair (a number and a string, or null/absent on either side) they are false,
//               so not (a < b) and a >= b differ when the types differ.
//   a contains b  a string and b a string: b is a substring of a ("" is in every string);
//               a an array: some element of a == b; otherwise false.
//   a in b      the same as b contains a: meta.lang in ["en", "fr"], "linux" in meta.tags.
//   exists(p)   true when the path is present, even with the value null.
//   truth       an operand standing alone (not meta.draft) is true unless it is absent, null or
//               false (0, "" and [] are true, as in jq). A parenthesized condition used as an
//               operand is the value true or false: (meta.a == 1) == false.
//
// Errors are loom::Error(Usage): "--filter: column N: <what was expected>, found <what was
// there>", N counting characters from 1. Nesting of parentheses, not and lists is limited to 64
// levels. A word that differs from a keyword only in case (AND, True) is an error, not a field
// name (write .True for a field of that name).
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace loom::io {
class Record;
}

namespace loom::index {

class Filter {
 public:
  // Throws loom::Error (usage) naming the column of a syntax error: "--filter: column 12: ...".
  static Filter parse(std::string_view expr);
  ~Filter();
  Filter(Filter&&) noexcept;
  Filter& operator=(Filter&&) noexcept;

  // Reads only the top-level fields the filter names. Never throws; safe to call from several
  // threads at once.
  bool matches(const io::Record& rec) const;
  const std::string& text() const;
  // The top-level field names the filter reads (each once, in order of first use): a store may
  // load only these.
  const std::vector<std::string>& fields() const;

 private:
  Filter();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace loom::index
