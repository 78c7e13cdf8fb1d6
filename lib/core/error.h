// loom::Error — the one error type of the library.
//
// Library code throws loom::Error (never prints, never exits). Only a program's main(), through
// loom::cli::Tool, turns it into a message and an exit status:
//
//   Kind::Usage     bad flags or arguments            exit 2
//   Kind::BadInput  malformed input data (a record,   exit 2
//                   a file's contents)
//   Kind::Runtime   I/O failure, model load failure,  exit 1
//                   out of memory
//
// An error may name where it happened: `file` (a path, or "<stdin>") and `line` (1-based; 0 when
// not applicable). The message is formatted as
//   loom-<tool>: error: <file>:<line>: <what>
#pragma once
#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>

namespace loom {

class Error : public std::runtime_error {
 public:
  enum class Kind { Usage, BadInput, Runtime };

  Error(Kind kind, std::string what, std::string file = {}, size_t line = 0)
      : std::runtime_error(std::move(what)), kind_(kind), file_(std::move(file)), line_(line) {}

  Kind kind() const noexcept { return kind_; }
  const std::string& file() const noexcept { return file_; }
  size_t line() const noexcept { return line_; }
  int exit_status() const noexcept { return kind_ == Kind::Runtime ? 1 : 2; }

  // "<file>:<line>: <what>", "<file>: <what>" or "<what>"
  std::string located() const;

  // Attach a location to an error thrown without one (keeps an existing location).
  Error& at(std::string file, size_t line = 0) {
    if (file_.empty()) {
      file_ = std::move(file);
      line_ = line;
    }
    return *this;
  }

 private:
  Kind kind_;
  std::string file_;
  size_t line_;
};

inline Error usage_error(std::string what) { return Error(Error::Kind::Usage, std::move(what)); }
inline Error input_error(std::string what, std::string file = {}, size_t line = 0) {
  return Error(Error::Kind::BadInput, std::move(what), std::move(file), line);
}
inline Error runtime_error(std::string what, std::string file = {}) {
  return Error(Error::Kind::Runtime, std::move(what), std::move(file));
}

// Thrown by an output stream when its reader has gone away (EPIPE): a quiet, successful exit.
struct BrokenPipe {};

}  // namespace loom
