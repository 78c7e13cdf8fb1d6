// loom::cli::Tool — the conventions every loom program follows, in one place.
//
// A program's main() is thin:
//
//   int main(int argc, char** argv) {
//     loom::cli::Tool tool("chunk", "Split documents into chunks for retrieval.");
//     Options opt;                                        // the program's own defaults
//     tool.app().add_option("--size", opt.size, "...");   // one declarative table of options
//     return tool.run(argc, argv, [&] { chunk_main(tool, opt); });
//   }
//
// Tool adds the common flags (--version, -q/--quiet, --progress, -t/--threads and, when the
// program opts in, --on-error and --device), and run() implements the rules of DESIGN.md:
//   --help                 usage on stdout, exit 0
//   usage error            "loom-<tool>: error: <what>" + a hint on stderr, exit 2
//   loom::Error            "loom-<tool>: error: <file>:<line>: <what>", exit 1 or 2 by kind
//   loom::BrokenPipe       stdout closed by the reader (`| head`): quiet exit 0
//   std::bad_alloc         "out of memory", exit 1
//   at exit                stdout is flushed and checked: a failed write (full disk) is exit 1
#pragma once
#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "loom/core/error.h"
#include "loom/io/stream.h"

namespace loom::io {
class Record;
}

namespace loom::cli {

// "a|b|c"
std::string join_words(const std::vector<std::string>& words);

enum class ProgressMode { Auto, Always, Never };
enum class OnError { Stop, Skip };

struct Common {
  unsigned threads = 0;  // 0 on the command line = all cores; resolved before the body runs
  bool quiet = false;
  ProgressMode progress = ProgressMode::Auto;
  OnError on_error = OnError::Stop;
  std::string device = "auto";
  std::string output = "-";  // -o/--output: "-" = stdout; a file is written atomically, .zst compressed
};

class Tool {
 public:
  // `name` is the tool's short name ("chunk"); the program is "loom-<name>".
  Tool(std::string name, std::string description);
  ~Tool();

  CLI::App& app() { return app_; }
  const Common& common() const { return common_; }
  const std::string& program() const { return program_; }

  // An option taking one of a fixed set of words, stored as the matching enum value; a wrong word
  // is a usage error listing the choices. The first choice is the default shown in --help.
  template <typename E>
  CLI::Option* add_choice(const std::string& name, E& target, std::vector<std::pair<std::string, E>> choices,
                          const std::string& description) {
    std::vector<std::string> words;
    std::string def;
    for (auto& [w, v] : choices) {
      words.push_back(w);
      if (v == target) def = w;
    }
    return app_.add_option_function<std::string>(
                   name,
                   [&target, choices](const std::string& w) {
                     for (auto& [word, v] : choices)
                       if (word == w) target = v;
                   },
                   description)
        ->check(CLI::IsMember(words).description(""))
        ->default_str(def)
        ->type_name(join_words(words));
  }

  // Opt-in conventions.
  void add_on_error();  // --on-error stop|skip
  void add_device();    // --device auto|cpu|cuda
  void add_output();    // -o/--output FILE

  // Parses argv and runs `body`, mapping every outcome to an exit status (see the header comment).
  int run(int argc, char** argv, const std::function<void()>& body);

  // The program's output: stdout, or the -o/--output file (buffered; flushed when input would
  // block and at exit; a file appears only when the program succeeds).
  io::Output& out();

  // Diagnostics on stderr, prefixed with the program name. warn() is silenced by --quiet.
  template <typename... Args>
  void warn(fmt::format_string<Args...> f, Args&&... args) {
    if (!common_.quiet) message("warning", fmt::format(f, std::forward<Args>(args)...));
  }
  template <typename... Args>
  void note(fmt::format_string<Args...> f, Args&&... args) {
    if (!common_.quiet) message(nullptr, fmt::format(f, std::forward<Args>(args)...));
  }

  // A bad record or document: with --on-error skip it is reported, counted and true is returned
  // (the caller goes on); otherwise false (the caller rethrows).
  bool skip(const Error& e);
  uint64_t skipped() const { return skipped_; }
  // The same for a failure kept while its record's batch ran: rethrown with the record's place,
  // or (--on-error skip) reported and counted, and true is returned.
  bool skip_failed(std::exception_ptr error, const std::string& file, size_t line);

  // The streaming loop of the record programs: each JSONL record of `input` goes to
  // add(record, file, line); flush() runs every `chunk` records, when the input would block (a
  // slow producer: what is queued is finished and written first), at the end, and before a bad
  // line's error is thrown (the records before it are still written). With --on-error skip a bad
  // line is reported, counted and passed over.
  void read_records(const std::string& input, size_t chunk,
                    const std::function<void(io::Record&&, const std::string&, size_t)>& add,
                    const std::function<void()>& flush);

  // Whether progress should be drawn on stderr.
  bool progress_enabled() const;

 private:
  void message(const char* level, const std::string& text);
  void print_version() const;
  void print_man_options() const;

  std::string name_, program_;
  CLI::App app_;
  Common common_;
  std::unique_ptr<io::Output> out_;
  uint64_t skipped_ = 0;
};

// A throttled one-line progress display on stderr (only drawn when enabled).
class Progress {
 public:
  Progress(const Tool& tool, std::string label);
  ~Progress();
  // Redraws at most ~8 times a second. `status` is called only when a redraw is due.
  void tick(const std::function<std::string()>& status);
  void done();

 private:
  bool enabled_;
  std::string label_;
  std::chrono::steady_clock::time_point start_, last_;
  bool drawn_ = false;
};

// Summary of the build: version, commit, build type, SIMD, CUDA (what --version prints).
std::string build_summary(std::string_view program);

}  // namespace loom::cli
