// Where -m MODEL points: a path as given, or a name under $LOOM_MODELS (default
// ~/.cache/loom/models) — a folder NAME/ or a file NAME.gguf.
//
//   model::find_model("minilm")  -> "/root/.cache/loom/models/minilm"  (nullopt when absent)
#pragma once
#include <optional>
#include <string>

namespace loom::model {

// $LOOM_MODELS, or ~/.cache/loom/models.
std::string models_dir();
// `m` itself when it is an existing file or folder; else, for a bare name, models_dir()/m (a
// folder) or models_dir()/m.gguf; nullopt when none exists.
std::optional<std::string> find_model(const std::string& m);
// The GGUF file -m names (a path, or NAME.gguf under models_dir()); loom::Error (Usage) "no
// <what> 'm': ..." when there is none.
std::string find_gguf(const std::string& m, const char* what = "model");

}  // namespace loom::model
