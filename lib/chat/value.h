// chat::Value — the JSON-like data a chat template sees: none, bool, int, float, string, list,
// dict (insertion-ordered, like a Python dict), plus the few things only a template makes
// (undefined, namespace objects, callables).
//
//   chat::Value msgs = chat::Value::parse_json(R"([{"role":"user","content":"hi"}])");
//   msgs.size() == 1;  msgs[0].get("role")->str() == "user"
//   chat::Value d = chat::Value::dict();  d.set("bos_token", "<s>");
//
// Strings hold UTF-8 bytes; where Python counts characters (length, slicing, indexing) the
// template engine counts code points. Lists and dicts share their storage when copied (values are
// immutable to a template, as in transformers' ImmutableSandboxedEnvironment); a namespace() is
// the one mutable object and is shared by reference, as in Python.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace loom::chat {

class Value;
using List = std::vector<Value>;
using Dict = std::vector<std::pair<std::string, Value>>;  // insertion order, unique keys

class Value {
 public:
  enum class Kind { Undefined, None, Bool, Int, Float, String, List, Dict, Namespace, Callable };

  Value() = default;  // undefined
  Value(std::nullptr_t) : kind_(Kind::None) {}
  Value(bool b) : kind_(Kind::Bool), i_(b) {}
  Value(int v) : kind_(Kind::Int), i_(v) {}
  Value(int64_t v) : kind_(Kind::Int), i_(v) {}
  Value(double v) : kind_(Kind::Float), f_(v) {}
  Value(std::string s) : kind_(Kind::String), s_(std::make_shared<std::string>(std::move(s))) {}
  Value(std::string_view s) : Value(std::string(s)) {}
  Value(const char* s) : Value(std::string(s)) {}
  Value(List l) : kind_(Kind::List), l_(std::make_shared<List>(std::move(l))) {}

  static Value none() { return Value(nullptr); }
  // A tuple: a list that prints as Python prints a tuple, "(1, 2)" (items(), dictsort, (a, b)).
  static Value tuple(List l) {
    Value v(std::move(l));
    v.tuple_ = true;
    return v;
  }
  bool is_tuple() const { return tuple_; }
  static Value list() { return Value(List{}); }
  static Value dict(Dict d = {});
  static Value namespace_(Dict d = {});
  // A builtin function; `self` is the bound receiver (for methods), args positional then keyword.
  using Fn = std::function<Value(const List& args, const Dict& kwargs)>;
  static Value callable(std::string name, Fn fn);

  // Parses JSON text (RFC 8259). Integers that fit int64 become Int, other numbers Float.
  // Throws loom::Error(BadInput) on malformed JSON.
  static Value parse_json(std::string_view json);

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::Undefined; }
  bool is_none() const { return kind_ == Kind::None; }
  bool is_string() const { return kind_ == Kind::String; }
  bool is_number() const { return kind_ == Kind::Int || kind_ == Kind::Float; }
  bool is_list() const { return kind_ == Kind::List; }
  bool is_dict() const { return kind_ == Kind::Dict || kind_ == Kind::Namespace; }

  bool as_bool() const { return i_ != 0; }
  int64_t as_int() const { return i_; }
  double as_float() const { return kind_ == Kind::Float ? f_ : static_cast<double>(i_); }
  const std::string& str() const;           // String only
  const List& items() const;                // List only
  const Dict& entries() const;              // Dict or Namespace
  const std::string& callable_name() const; // Callable only
  const Fn& fn() const;

  size_t size() const;                       // list elements or dict entries
  const Value& operator[](size_t i) const { return items()[i]; }
  const Value* get(std::string_view key) const;  // dict lookup; nullptr when absent
  // Dict/namespace: sets (replaces in place or appends). A namespace is shared, so every copy
  // sees the change; a dict is copied first when shared (copy-on-write).
  void set(std::string_view key, Value v);
  void push_back(Value v);                   // List (copy-on-write)

  // Undefined values may carry why they are undefined (jinja2's message: "'x' is undefined").
  static Value undefined(std::string hint);
  const std::string& undefined_hint() const;

  // Python's truthiness: empty string/list/dict, 0, none, undefined are false.
  bool truthy() const;

 private:
  Kind kind_ = Kind::Undefined;
  bool tuple_ = false;
  int64_t i_ = 0;
  double f_ = 0;
  std::shared_ptr<std::string> s_;  // string, or undefined hint, or callable name
  std::shared_ptr<List> l_;
  std::shared_ptr<Dict> d_;
  std::shared_ptr<Fn> fn_;
};

}  // namespace loom::chat
