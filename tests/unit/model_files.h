// Where the tests find the models scripts/fetch-models installs: $LOOM_MODELS, else
// ~/.cache/loom/models. Tests that need one skip, saying which file is missing, when it is absent.
#pragma once
#include <cstdlib>
#include <filesystem>
#include <string>

namespace model_files {

inline std::filesystem::path dir() {
  const char* env = std::getenv("LOOM_MODELS");
  const char* home = std::getenv("HOME");
  return env && *env ? std::filesystem::path(env) : std::filesystem::path(home ? home : ".") / ".cache/loom/models";
}

// A GGUF model by the name `-m` takes ("smollm2", "gemma3").
inline std::filesystem::path gguf(const std::string& name) { return dir() / (name + ".gguf"); }

}  // namespace model_files
