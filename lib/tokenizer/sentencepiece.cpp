// SentencePiece .model files (placeholder until the loader lands).
#include <fmt/format.h>

#include "loom/core/error.h"
#include "loom/tokenizer/tokenizer.h"

namespace loom::tok {
Tokenizer Tokenizer::from_sentencepiece_file(const std::string& path) {
  throw usage_error(fmt::format("{}: SentencePiece models are not supported yet", path));
}
}  // namespace loom::tok
