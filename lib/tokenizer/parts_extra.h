// Tokenizer components of SentencePiece-converted Hugging Face tokenizers (T5, ALBERT, XLM-R, any
// `tokenizer.json` with a Unigram model), for tokenizer.cpp's loader and other loaders. To be
// folded into parts.h.
//
//   unigram.cpp         Unigram model: Viterbi over the lattice of vocabulary pieces
//   spm_normalizers.cpp Precompiled (SentencePiece's precompiled_charsmap), Strip, Lowercase,
//                       NFKC, Replace of a regex character run
//   metaspace.cpp       Metaspace pre-tokenizer and decoder, WhitespaceSplit
//
// Alignment follows Hugging Face's NormalizedString::transform exactly (see apply_changes), so
// offsets map back to the original text as the reference's do, quirks included.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "loom/tokenizer/tokenizer.h"

namespace loom::tok {

// ---- Unigram -------------------------------------------------------------------------------

// vocab: (piece, score) by id. unk: the id unknown characters become (consecutive ones fused into
// one token); none means such a character is an error at encode time. byte_fallback: an unknown
// run becomes its bytes as <0xXX> tokens when all of them are in the vocabulary.
// Throws loom::Error (naming `file`) for an unk id outside the vocabulary.
std::unique_ptr<Model> make_unigram(std::vector<std::pair<std::string, double>> vocab, std::optional<TokenId> unk,
                                    bool byte_fallback, const std::string& file);

// The score Hugging Face holds for a tokenizer.json number that loom parsed as `parsed`: serde_json
// (without its float_roundtrip feature) reads decimals inexactly, often one unit in the last place
// off, and Viterbi ties between equal-looking paths follow those bits. Assumes the file has the
// shortest round-trip digits, as serde_json and Python write them.
double as_serde_json_reads(double parsed);

// ---- normalizers -----------------------------------------------------------------------------

// One output character of a Hugging Face transform and how it relates to the input: 0 replaces
// the next input character, +1 is inserted (aligned with the character before), -n replaces the
// next one and removes n more.
struct Change {
  char32_t c;
  int64_t change;
};
// Applies changes to `input` (the first `initial_offset` characters removed) with the reference's
// alignment rules: each output byte aligned with an input character's byte range.
Normalized apply_changes(std::string_view input, const std::vector<Change>& changes, size_t initial_offset);

// SentencePiece's precompiled_charsmap (the bytes, already base64-decoded): a little-endian u32
// trie size, a double-array trie of that many bytes, then the NUL-separated replacement strings.
// Throws loom::Error (naming `file`) for a truncated or malformed map.
std::unique_ptr<Normalizer> make_precompiled_normalizer(std::string charsmap, const std::string& file);

std::unique_ptr<Normalizer> make_strip_normalizer(bool left, bool right);  // Unicode White_Space
std::unique_ptr<Normalizer> make_lowercase_normalizer();                   // Unicode lowercase mapping
std::unique_ptr<Normalizer> make_nfkc_normalizer();
// Replace every match of a regex by `content`. Only runs of one character are supported:
// "C{n,}", "C+" (C a literal or escaped character); anything else throws loom::Error naming `file`.
std::unique_ptr<Normalizer> make_regex_replace_normalizer(const std::string& regex, std::string content, const std::string& file);

// ---- Metaspace, WhitespaceSplit ------------------------------------------------------------------

struct MetaspaceConfig {
  enum Prepend { Always, First, Never };
  std::string replacement = "\xE2\x96\x81";  // one character, U+2581 by default
  Prepend prepend = Always;
  bool split = true;
};

// Hugging Face's Metaspace pre-tokenizer both rewrites the text (each ' ' becomes the replacement,
// which is also prepended to each piece per the scheme) and splits it (before each replacement
// character). loom's pre-tokenizers only split, so the rewrite runs after the normalizer `inner`
// (may be null) as a normalizer (make_metaspace_rewrite) and the split as the pre-tokenizer
// (make_metaspace_split). after_whitespace_split: the Metaspace follows a WhitespaceSplit (T5), so
// its pieces are the text's whitespace-separated words. Scheme First prepends to a piece that
// starts at offset 0 of the text being normalized; the reference means offset 0 of the whole
// input, which differs for the text after an added token (loom normalizes each stretch between
// added tokens on its own and does not know where it starts).
std::unique_ptr<Normalizer> make_metaspace_rewrite(const MetaspaceConfig& cfg, bool after_whitespace_split,
                                                   std::unique_ptr<Normalizer> inner);
std::unique_ptr<PreTokenizer> make_metaspace_split(const MetaspaceConfig& cfg);
// Replacement characters become spaces; in the first piece they are dropped unless scheme Never.
std::unique_ptr<Decoder> make_metaspace_decoder(const MetaspaceConfig& cfg);
// Splits on Unicode White_Space, which is dropped.
std::unique_ptr<PreTokenizer> make_whitespace_split_pre_tokenizer();

}  // namespace loom::tok
