#include "loom/model/models_dir.h"

#include <cstdlib>
#include <filesystem>

#include <fmt/format.h>

#include "loom/core/error.h"

namespace loom::model {

namespace fs = std::filesystem;

std::string models_dir() {
  const char* env = std::getenv("LOOM_MODELS");
  const char* home = std::getenv("HOME");
  return env && *env ? std::string(env) : (fs::path(home ? home : ".") / ".cache/loom/models").string();
}

std::optional<std::string> find_model(const std::string& m) {
  std::error_code ec;
  if (m.empty()) return std::nullopt;
  if (fs::is_regular_file(m, ec) || fs::is_directory(m, ec)) return m;
  if (m.find('/') != std::string::npos) return std::nullopt;
  fs::path root = models_dir();
  if (fs::is_directory(root / m, ec)) return (root / m).string();
  if (fs::is_regular_file(root / (m + ".gguf"), ec)) return (root / (m + ".gguf")).string();
  return std::nullopt;
}

std::string find_gguf(const std::string& m, const char* what) {
  std::error_code ec;
  auto p = find_model(m);
  if (p && fs::is_regular_file(*p, ec)) return *p;
  throw usage_error(fmt::format("no {} '{}': not a .gguf file or a model name under {}", what, m, models_dir()));
}

}  // namespace loom::model
