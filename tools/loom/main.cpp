// loom — the front program: `loom <tool> args...` runs `loom-<tool> args...` (git-style).
//
// The tool is looked up next to this executable first (a build tree or an install prefix), then on
// PATH. `loom --help` lists the tools that are present, one line each.
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "loom/cli/tool.h"

namespace fs = std::filesystem;

namespace {

// The programs of the toolkit and what each does (shown by `loom --help` when installed).
const std::map<std::string, std::string> kTools = {
    {"chunk", "split documents (files, folders, doc records) into chunk records"},
    {"tokenize", "count, encode and decode tokens"},
    {"embed", "add an embedding to each record"},
    {"index", "build and update a vector + BM25 index directory"},
    {"retrieve", "add the best hits from one or more indexes to query records"},
    {"rerank", "re-score and reorder hits with a cross-encoder or an LLM"},
    {"generate", "generate text from prompts, chats or retrieved context"},
    {"quantize", "convert and quantize models to GGUF"},
    {"eval", "retrieval, text, perplexity and RAG metrics"},
    {"finetune", "LoRA fine-tuning; adapters llama.cpp can load"},
};

std::string self_dir() {
  char buf[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return "";
  buf[n] = 0;
  return fs::path(buf).parent_path().string();
}

bool is_executable(const fs::path& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(p.c_str(), X_OK) == 0;
}

std::vector<std::string> search_dirs() {
  std::vector<std::string> dirs;
  if (auto d = self_dir(); !d.empty()) dirs.push_back(d);
  if (const char* path = std::getenv("PATH")) {
    std::string p = path;
    size_t start = 0;
    while (start <= p.size()) {
      size_t colon = p.find(':', start);
      if (colon == std::string::npos) colon = p.size();
      dirs.push_back(colon > start ? p.substr(start, colon - start) : ".");
      start = colon + 1;
    }
  }
  return dirs;
}

std::string find_tool(const std::string& tool) {
  for (const auto& d : search_dirs()) {
    fs::path p = fs::path(d) / ("loom-" + tool);
    if (is_executable(p)) return p.string();
  }
  return "";
}

// Every loom-<name> executable present (known or not), name -> path.
std::map<std::string, std::string> installed_tools() {
  std::map<std::string, std::string> found;
  for (const auto& d : search_dirs()) {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(d, ec)) {
      std::string f = e.path().filename().string();
      if (f.rfind("loom-", 0) != 0 || f.size() <= 5) continue;
      std::string name = f.substr(5);
      if (!found.count(name) && is_executable(e.path())) found[name] = e.path().string();
    }
  }
  return found;
}

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string usage() {
  std::string s =
      "loom: small programs for language-model work, talking JSON Lines on pipes.\n"
      "\n"
      "Usage: loom <tool> [args...]     runs loom-<tool>\n"
      "       loom help <tool>          shows a tool's --help\n"
      "       loom --help | --version\n"
      "\n"
      "Tools:\n";
  auto found = installed_tools();
  for (const auto& [name, path] : found) {
    auto it = kTools.find(name);
    s += fmt::format("  {:<10} {}\n", name, it != kTools.end() ? it->second : "(not part of loom: " + path + ")");
  }
  if (found.empty()) s += "  (none found next to loom or on PATH)\n";
  s += "\nRecords: see loom(7). Each tool: loom-<tool>(1), or `loom <tool> --help`.\n";
  return s;
}

int fail(const std::string& msg) {
  std::string line = "loom: error: " + msg + "\nTry 'loom --help' for more information.\n";
  std::fwrite(line.data(), 1, line.size(), stderr);
  return 2;
}

int write_stdout(const std::string& s) {
  std::fwrite(s.data(), 1, s.size(), stdout);
  return std::fflush(stdout) == 0 && !std::ferror(stdout) ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::string u = usage();
    std::fwrite(u.data(), 1, u.size(), stderr);
    return 2;
  }
  std::string tool = argv[1];
  if (tool == "-h" || tool == "--help") return write_stdout(usage());
  if (tool == "--version") return write_stdout(loom::cli::build_summary("loom"));
  int first_arg = 2;
  std::vector<std::string> extra;
  if (tool == "help") {
    if (argc < 3) return write_stdout(usage());
    tool = argv[2];
    first_arg = 3;
    extra.push_back("--help");
  }
  if (!tool.empty() && tool[0] == '-') return fail(fmt::format("unknown option '{}'", tool));

  std::string path = tool.find('/') == std::string::npos ? find_tool(tool) : "";
  if (path.empty()) {
    if (kTools.count(tool)) return fail(fmt::format("'{}' is a loom tool but loom-{} is not installed (not next to loom, not on PATH)", tool, tool));
    std::string best;
    size_t best_d = 3;
    for (const auto& [name, _] : kTools) {
      size_t d = edit_distance(tool, name);
      if (d < best_d || (name.rfind(tool, 0) == 0 && !tool.empty() && d < 99)) {
        best_d = std::min(d, best_d);
        best = name;
      }
    }
    if (!best.empty()) return fail(fmt::format("unknown tool '{}'; did you mean '{}'?", tool, best));
    return fail(fmt::format("unknown tool '{}'", tool));
  }

  std::vector<char*> args;
  std::string argv0 = "loom-" + tool;
  args.push_back(argv0.data());
  for (int i = first_arg; i < argc; ++i) args.push_back(argv[i]);
  for (auto& e : extra) args.push_back(e.data());
  args.push_back(nullptr);
  ::execv(path.c_str(), args.data());
  std::string msg = fmt::format("loom: error: cannot run {}: {}\n", path, std::strerror(errno));
  std::fwrite(msg.data(), 1, msg.size(), stderr);
  return 1;
}
