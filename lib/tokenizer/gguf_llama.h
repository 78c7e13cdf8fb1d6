// Internal to the GGUF vocabulary loader: a vocabulary as llama.cpp holds it (token texts,
// scores, attributes, merges, flags) and the tokenizer parts that reproduce llama.cpp's
// tokenization of it (src/llama-vocab.cpp, src/unicode.cpp). Not a public header: include
// loom/tokenizer/tokenizer.h and call Tokenizer::from_gguf_file().
//
// How the work is split with Tokenizer::encode():
//   - control and unknown tokens are the Tokenizer's special added tokens, cut out of the text only
//     with parse_special (as llama.cpp does with parse_special = true);
//   - everything else happens in the Model (LlamaModel::encode_word gets each segment between
//     those cuts): user-defined tokens cut out in llama.cpp's order (longest first), then per
//     raw fragment the SPM / BPE / WPM tokenizer with its space handling and pre-tokenizer.
// The two give llama.cpp's partition exactly as long as no control token can overlap another
// special token in a text (true for the vocabularies checked; see gguf_vocab.cpp).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <atomic>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "loom/tokenizer/tokenizer.h"

namespace loom::tok::llamacpp {

// Token attributes, as llama.cpp's llama_token_attr bits.
enum Attr : uint32_t {
  kUndefined = 0,
  kUnknown = 1u << 0,
  kUnused = 1u << 1,
  kNormal = 1u << 2,
  kControl = 1u << 3,
  kUserDefined = 1u << 4,
  kByte = 1u << 5,
  kLstrip = 1u << 7,
  kRstrip = 1u << 8,
};

enum class Kind { Spm, Bpe, Wpm };

// BPE pre-tokenizers (llama.cpp's regex lists), by the words they make.
enum class Pre {
  Default,  // [\p{P}$+<=>^~|]+ , GPT-2's regex, \p{N}+ , [0-9][0-9][0-9]
  Gpt2,     // GPT-2's regex
  Smollm,   // \p{N} , GPT-2's regex  (StarCoder, SmolLM, ...)
  Llama3,   // Llama 3's regex, numbers in runs of up to 3 digits
  Qwen2,    // Llama 3's regex with single digits
};

constexpr TokenId kNull = -1;

// Hash maps keyed by std::string that are looked up with a std::string_view (no allocation).
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};
template <class V>
using StringMap = std::unordered_map<std::string, V, StringHash, std::equal_to<>>;

inline uint64_t next_vocab_serial() {
  static std::atomic<uint64_t> n{0};
  return ++n;
}

struct Vocab {
  uint64_t serial = next_vocab_serial();  // tells per-thread caches which vocabulary they hold
  Kind kind = Kind::Spm;
  Pre pre = Pre::Default;
  std::vector<std::string> text;    // token texts (an empty one becomes "[EMPTY_<id>]")
  std::vector<float> score;
  std::vector<uint32_t> attr;       // Attr bits
  StringMap<TokenId> ids;
  StringMap<int32_t> ranks;         // BPE: "left right" -> merge rank (the first of duplicates)
  size_t max_token_len = 0;

  TokenId bos = kNull, eos = kNull, unk = kNull, sep = kNull;
  bool add_space_prefix = false, add_bos = false, add_eos = false, add_sep = false;
  bool ignore_merges = false, clean_spaces = false;
  bool lowercase = true, strip_accents = true;  // WPM normalizer

  // User-defined tokens in the order llama.cpp cuts special tokens out of text (longest first,
  // ties as its std::sort leaves them); control and unknown tokens are left to the Tokenizer.
  std::vector<TokenId> cut_order;
  // llama_token_to_piece(id, special = true) of every token: the bytes it decodes to.
  std::vector<std::string> piece;

  TokenId byte_token[256] = {};
  // SPM: the characters (UTF-8) that some token has right before a U+2581
  std::unordered_set<std::string> before_marker;     // SPM: <0xXX> (or the byte as a one-character token), kNull if none

  TokenId find(std::string_view s) const {
    auto it = ids.find(s);
    return it == ids.end() ? kNull : it->second;
  }
};

// The tokenizer model: llama.cpp's tokenization of one segment of text (see above).
std::unique_ptr<Model> make_model(std::shared_ptr<const Vocab> vocab);
// llama.cpp's detokenization (llama_detokenize with remove_special = false): each token's piece,
// one leading space of the first piece dropped when add_space_prefix, clean-up of spaces before
// punctuation where the vocabulary asks for it, then invalid UTF-8 replaced by U+FFFD (one per
// maximal invalid subpart, as Python's errors="replace"). Tokenizer::decode(ids, false) is
// llama_detokenize(unparse_special = true) exactly. With skip_special the control tokens are
// gone before the decoder sees the pieces, so the space is dropped from the first visible piece;
// llama.cpp (unparse_special = false) spends the drop on an invisible leading control token.
std::unique_ptr<Decoder> make_decoder(std::shared_ptr<const Vocab> vocab);

// llama_token_to_piece(id, special = true) for the vocabulary's kind (before the piece cache).
std::string token_piece(const Vocab& v, TokenId id);

}  // namespace loom::tok::llamacpp
