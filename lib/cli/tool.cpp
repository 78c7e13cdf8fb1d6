#include "loom/cli/tool.h"

#include <malloc.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <new>
#include <thread>

#include "kernels/cpu/cpu_features.h"
#include "kernels/cuda/device.cuh"
#include "loom/build_info.h"
#include "loom/io/jsonl.h"

namespace loom::cli {

namespace {

// roff-escape a help string: backslashes and leading dots/quotes.
std::string roff(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '\\') out += "\\e";
    else if (c == '-') out += "\\-";
    else out += c;
  }
  if (!out.empty() && (out[0] == '.' || out[0] == '\'')) out.insert(0, "\\&");
  return out;
}

}  // namespace

std::string join_words(const std::vector<std::string>& words) {
  std::string s;
  for (const auto& w : words) s += (s.empty() ? "" : "|") + w;
  return s;
}

std::string build_summary(std::string_view program) {
  std::string cuda = kernels::cuda::compiled() ? fmt::format("yes ({})", kernels::cuda::architectures()) : "no";
  return fmt::format(
      "{} {}\n"
      "commit: {}\n"
      "build: {}\n"
      "simd: {} (cpu: {})\n"
      "cuda: {}\n",
      program, LOOM_VERSION, LOOM_GIT_COMMIT, LOOM_BUILD_TYPE, kernels::simd_compiled(),
      kernels::simd_available(), cuda);
}

Tool::Tool(std::string name, std::string description)
    : name_(std::move(name)), program_("loom-" + name_), app_(std::move(description), program_) {
  app_.option_defaults()->always_capture_default();
  app_.set_version_flag("--version", [this] { return build_summary(program_); }, "Print version and build information and exit");
  app_.add_flag("-q,--quiet", common_.quiet, "Print no warnings or statistics on stderr (errors still)");
  add_choice("--progress", common_.progress,
             {{"auto", ProgressMode::Auto}, {"always", ProgressMode::Always}, {"never", ProgressMode::Never}},
             "Progress display on stderr (auto: when it is a terminal)");
  app_.add_option("-t,--threads", common_.threads, "Worker threads (0 = all cores)")->check(CLI::Range(0u, 4096u).description(""))->type_name("N");
  app_.add_flag("--help-man")->group("");  // prints the OPTIONS section of the man page (kept in step by tests)
}

Tool::~Tool() = default;

void Tool::add_on_error() {
  add_choice("--on-error", common_.on_error, {{"stop", OnError::Stop}, {"skip", OnError::Skip}},
             "A bad record or document: stop (exit 2), or skip it (reported, counted) and go on");
}

void Tool::add_device() {
  app_.add_option("--device", common_.device, "Where to compute")->check(CLI::IsMember({"auto", "cpu", "cuda"}).description(""))->type_name("auto|cpu|cuda");
}

void Tool::add_output() {
  app_.add_option("-o,--output", common_.output, "Write records to FILE instead of stdout (atomically; .zst compresses)")
      ->type_name("FILE");
}

io::Output& Tool::out() {
  if (!out_) out_ = io::Output::open(common_.output);
  return *out_;
}

bool Tool::progress_enabled() const {
  if (common_.quiet) return false;
  if (common_.progress == ProgressMode::Always) return true;
  if (common_.progress == ProgressMode::Never) return false;
  return ::isatty(2);
}

void Tool::message(const char* level, const std::string& text) {
  std::string line = program_ + ": ";
  if (level) {
    line += level;
    line += ": ";
  }
  line += text;
  line += '\n';
  std::fflush(stdout);
  std::fwrite(line.data(), 1, line.size(), stderr);
}

bool Tool::skip(const Error& e) {
  if (common_.on_error != OnError::Skip) return false;
  ++skipped_;
  if (!common_.quiet) message("warning", "skipped: " + e.located());
  return true;
}

bool Tool::skip_failed(std::exception_ptr error, const std::string& file, size_t line) {
  try {
    std::rethrow_exception(error);
  } catch (Error& e) {
    e.at(file, line);
    if (!skip(e)) throw;
  }
  return true;
}

void Tool::read_records(const std::string& input, size_t chunk,
                        const std::function<void(io::Record&&, const std::string&, size_t)>& add,
                        const std::function<void()>& flush) {
  size_t held = 0;
  auto flush_held = [&] {
    held = 0;
    flush();
  };
  auto in = io::Input::open(input);
  io::set_before_block([&] {
    flush_held();
    out().flush();
  });
  io::JsonlReader reader(*in);
  io::Record rec;
  for (;;) {
    try {
      if (!reader.next(rec)) break;
    } catch (Error& e) {
      e.at(reader.name(), reader.line());
      if (reader.failed() || !skip(e)) {
        flush_held();
        throw;
      }
      continue;
    }
    add(std::move(rec), reader.name(), reader.line());
    rec = io::Record();
    if (++held >= chunk) flush_held();
  }
  flush_held();
}

void Tool::print_man_options() const {
  // One .TP entry per visible option, in the order of --help.
  std::string s;
  for (const CLI::Option* o : app_.get_options()) {
    if (o->get_group().empty()) continue;
    std::string names;
    if (o->get_positional()) {
      names = "\\fI" + o->get_name(true) + "\\fR";
    } else {
      for (auto& n : o->get_snames()) names += (names.empty() ? "" : ", ") + std::string("\\fB\\-") + n + "\\fR";
      for (auto& n : o->get_lnames()) names += (names.empty() ? "" : ", ") + std::string("\\fB\\-\\-") + n + "\\fR";
      if (o->get_type_size() != 0 && o->get_items_expected_max() != 0 && !o->get_type_name().empty())
        names += " \\fI" + roff(o->get_type_name()) + "\\fR";
    }
    s += ".TP\n" + names + "\n" + roff(o->get_description());
    std::string def = o->get_default_str();
    if (!def.empty() && !o->get_positional() && o->get_type_size() != 0) s += " (default: " + roff(def) + ")";
    s += "\n";
  }
  std::fwrite(s.data(), 1, s.size(), stdout);
}

int Tool::run(int argc, char** argv, const std::function<void()>& body) {
  ::signal(SIGPIPE, SIG_IGN);
  // Batches of documents and records come and go all the time: keep freed memory in the process
  // instead of returning it to the kernel and faulting it back in for the next batch.
  ::mallopt(M_MMAP_THRESHOLD, 32 << 20);
  ::mallopt(M_TRIM_THRESHOLD, 256 << 20);
  try {
    try {
      app_.parse(argc, argv);
    } catch (const CLI::CallForHelp&) {
      std::cout << app_.help();
      std::cout.flush();
      return std::cout ? 0 : 1;
    } catch (const CLI::CallForAllHelp&) {
      std::cout << app_.help("", CLI::AppFormatMode::All);
      std::cout.flush();
      return std::cout ? 0 : 1;
    } catch (const CLI::CallForVersion& v) {
      std::cout << v.what();
      std::cout.flush();
      return std::cout ? 0 : 1;
    } catch (const CLI::RequiredError& e) {
      // --help-man needs none of the program's required arguments
      if (!app_.get_option("--help-man")->count()) throw usage_error(e.what());
    } catch (const CLI::ParseError& e) {
      throw usage_error(e.what());
    }
    if (app_.get_option("--help-man")->count()) {
      print_man_options();
      return 0;
    }
    if (common_.threads == 0) common_.threads = std::max(1u, std::thread::hardware_concurrency());

    io::set_before_block([this] {
      if (out_) out_->flush();
    });
    body();
    if (out_) out_->close();
    io::set_before_block(nullptr);
    if (skipped_ && !common_.quiet) message(nullptr, fmt::format("{} bad record{} skipped", skipped_, skipped_ == 1 ? "" : "s"));
    return 0;
  } catch (const BrokenPipe&) {
    io::set_before_block(nullptr);
    return 0;
  } catch (const Error& e) {
    io::set_before_block(nullptr);
    try {
      // Records already produced reach stdout; a file output is not put in place (it would look
      // whole), its temporary is removed.
      if (out_ && common_.output == "-") out_->close();
      out_.reset();
    } catch (...) {
    }
    message("error", e.located());
    if (e.kind() == Error::Kind::Usage) {
      std::string hint = fmt::format("Try '{} --help' for more information.\n", program_);
      std::fwrite(hint.data(), 1, hint.size(), stderr);
    }
    return e.exit_status();
  } catch (const std::bad_alloc&) {
    message("error", "out of memory");
    return 1;
  } catch (const std::exception& e) {
    // a library's own exception (FAISS, the filesystem) that no loom code turned into an Error
    io::set_before_block(nullptr);
    message("error", e.what());
    return 1;
  }
}

// ------------------------------------------------------------------------------------------------

Progress::Progress(const Tool& tool, std::string label)
    : enabled_(tool.progress_enabled()), label_(std::move(label)), start_(std::chrono::steady_clock::now()), last_(start_) {}

Progress::~Progress() { done(); }

void Progress::tick(const std::function<std::string()>& status) {
  if (!enabled_) return;
  auto now = std::chrono::steady_clock::now();
  if (now - last_ < std::chrono::milliseconds(125)) return;
  last_ = now;
  double secs = std::chrono::duration<double>(now - start_).count();
  std::string line = fmt::format("\r\x1b[2K{}: {} [{:.1f}s]", label_, status(), secs);
  std::fwrite(line.data(), 1, line.size(), stderr);
  drawn_ = true;
}

void Progress::done() {
  if (drawn_) {
    std::fwrite("\r\x1b[2K", 1, 5, stderr);
    drawn_ = false;
  }
}

}  // namespace loom::cli
