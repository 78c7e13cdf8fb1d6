// GGUF vocabularies (placeholder until the loader lands).
#include <fmt/format.h>

#include "loom/core/error.h"
#include "loom/tokenizer/tokenizer.h"

namespace loom::tok {
Tokenizer Tokenizer::from_gguf_file(const std::string& path) {
  throw usage_error(fmt::format("{}: GGUF vocabularies are not supported yet", path));
}
}  // namespace loom::tok
