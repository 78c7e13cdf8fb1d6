// The tokenizer components implemented in tokenizer.cpp, for loaders of other file formats
// (GGUF vocabularies, SentencePiece models, GPT-2's encoder.json + vocab.bpe) that assemble a
// Tokenizer through Tokenizer::from_parts().
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "loom/tokenizer/tokenizer.h"

namespace loom::tok {

// BPE. Byte-level (GPT-2 family): symbols are bytes as GPT-2's printable stand-ins. Otherwise
// (SentencePiece style): symbols are characters; a character missing from the vocabulary becomes
// <0xXX> byte tokens (byte_fallback) or `unk` (consecutive unknowns fused when fuse_unk).
struct BpeConfig {
  bool byte_level = true, ignore_merges = false, byte_fallback = false, fuse_unk = false;
  TokenId unk = -1;
};
// merges in rank order; `file` names the source in errors (a merge using a missing token).
std::unique_ptr<Model> make_bpe(std::vector<std::string> pieces, const std::vector<std::pair<std::string_view, std::string_view>>& merges,
                                BpeConfig cfg, const std::string& file);
std::unique_ptr<Model> make_bpe(std::vector<std::string> pieces, const std::vector<std::pair<std::string, std::string>>& merges,
                                BpeConfig cfg, const std::string& file);

// GPT-2's regex  's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
std::unique_ptr<PreTokenizer> make_gpt2_pre_tokenizer();
// Llama 3 (max_digits 3) / Qwen (max_digits 1) regex.
std::unique_ptr<PreTokenizer> make_llama3_pre_tokenizer(size_t max_digits);
// Each pre-tokenizer applied to the pieces of the one before.
std::unique_ptr<PreTokenizer> make_sequence_pre_tokenizer(std::vector<std::unique_ptr<PreTokenizer>> parts);

// GPT-2's byte-to-character mapping undone, invalid UTF-8 replaced as the reference does.
std::unique_ptr<Decoder> make_byte_level_decoder();

// GPT-2's printable stand-in (UTF-8) for a byte.
const std::string& byte_level_char(unsigned char byte);

}  // namespace loom::tok
