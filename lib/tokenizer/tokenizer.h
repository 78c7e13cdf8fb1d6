// Tokenizers: text <-> token ids, exact to the reference implementations.
//
// A tokenizer is a pipeline of four replaceable parts (as in Hugging Face `tokenizers` and
// SentencePiece):
//
//   text ──normalizer──▶ normalized text ──pre-tokenizer──▶ words ──model──▶ ids ──post-processor──▶ ids
//                                                                                (special tokens)
//   ids  ──decoder──▶ text
//
// Alignment: the normalized text remembers, for each of its bytes, the byte range of the
// original character it came from, so every token maps back to a byte span of the input
// (Encoding::offsets) even after lowercasing, accent stripping or padding CJK characters.
//
// Loading (Tokenizer::load picks by file or folder):
//   tokenizer.json        Hugging Face: models WordPiece, BPE (byte-level, or SentencePiece-style
//                         with byte fallback), Unigram; normalizers BertNormalizer, NFC, NFKC,
//                         Lowercase, Strip, Precompiled, Prepend, Replace, Sequence; pre-tokenizers
//                         BertPreTokenizer, ByteLevel, Split (the GPT-2/Llama 3/Qwen regexes),
//                         Metaspace, WhitespaceSplit, Sequence; TemplateProcessing; decoders.
//   GGUF                  the vocabulary in a model file, tokenized as llama.cpp does
//                         (gguf_vocab.cpp, gguf_models.cpp)
//   SentencePiece .model  through the sentencepiece library (sentencepiece.cpp)
//   encoder.json+vocab.bpe  GPT-2's original files
// Any other component type is a clear error naming it (loom::Error, BadInput) — never a silent
// approximation. Other loaders assemble a Tokenizer from parts (parts.h, Tokenizer::from_parts).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "loom/tokenizer/flat_map.h"

namespace loom::gguf {
class File;
}

namespace loom::tok {

using TokenId = int32_t;

// Text after normalization, aligned to the original: bytes [src_begin[i], src_end[i]) of the
// original text produced byte i of `text`.
struct Normalized {
  std::string text;
  std::vector<uint32_t> src_begin, src_end;

  static Normalized identity(std::string_view original);
  // Appends the UTF-8 of code point cp, produced by original bytes [b, e).
  void push(char32_t cp, uint32_t b, uint32_t e);
};

// A span of bytes [b, e).
struct Span {
  size_t b = 0, e = 0;
};

struct Encoding {
  std::vector<TokenId> ids;
  std::vector<Span> offsets;  // byte span of each token in the original text ({0,0} for added specials)
};

struct EncodeOptions {
  bool add_special = true;    // apply the post-processor's template ([CLS] ... [SEP])
  bool parse_special = false; // special-token strings in the text become special tokens (ordinary
                              // added tokens, such as Gemma's whitespace runs, always do)
};

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual Normalized normalize(std::string_view text) const = 0;
  // The same for a stretch of the input that starts at byte `base` (text between added tokens is
  // normalized stretch by stretch); normalizers that treat the input's start specially override it.
  virtual Normalized normalize_at(std::string_view text, size_t base) const {
    (void)base;
    return normalize(text);
  }
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Appends the words of n.text (byte spans of the normalized text) to out.
  virtual void split(const Normalized& n, Span within, std::vector<Span>& out) const = 0;
};

class Model {
 public:
  virtual ~Model() = default;
  // Appends the tokens of one word (bytes `word` of `text`) to ids, and their spans in `text` to
  // spans (the two vectors need not be the same length on entry).
  virtual void encode_word(std::string_view text, Span word, std::vector<TokenId>& ids, std::vector<Span>& spans) const = 0;
  virtual size_t vocab_size() const = 0;
  virtual const std::string& piece(TokenId id) const = 0;  // id must be < vocab_size()
};

class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual std::string decode(const std::vector<std::string>& pieces) const = 0;
};

// A token cut out of the text before pre-tokenization (Hugging Face "added tokens", GGUF
// control and user-defined tokens). Special ones are only recognized with parse_special.
struct AddedToken {
  std::string content;
  TokenId id;
  bool special;
};

class Tokenizer {
 public:
  // Everything a tokenizer is made of; loaders of other formats (GGUF, SentencePiece, GPT-2's
  // files) fill one and call from_parts(). `model` is required, the rest optional.
  struct Parts {
    std::unique_ptr<Normalizer> normalizer;
    std::unique_ptr<PreTokenizer> pre;
    std::unique_ptr<Model> model;
    std::unique_ptr<Decoder> decoder;
    std::vector<AddedToken> added;
    std::vector<TokenId> prefix, suffix;  // added around the sequence when add_special
  };
  static Tokenizer from_parts(Parts parts);

  // Reads a Hugging Face tokenizer.json. Throws loom::Error naming the file and what is wrong.
  static Tokenizer from_json_file(const std::string& path);
  // The tokenizer of -m MODEL: a file (tokenizer.json, .gguf, SentencePiece .model), a folder
  // holding one (tokenizer.json, tokenizer.model, encoder.json + vocab.bpe), or a model name
  // under $LOOM_MODELS (default ~/.cache/loom/models): a folder or NAME.gguf. Usage error when
  // none is found.
  static Tokenizer load(const std::string& model);
  static Tokenizer from_json(std::string_view json, const std::string& name = "tokenizer.json");
  // The vocabulary stored in a GGUF model file (tokenizer.ggml.*), tokenizing as llama.cpp does.
  static Tokenizer from_gguf_file(const std::string& path);
  // The same from a GGUF file already open (`name` names it in errors).
  static Tokenizer from_gguf(const gguf::File& file, const std::string& name);
  // A SentencePiece .model file, through the sentencepiece library.
  static Tokenizer from_sentencepiece_file(const std::string& path);
  // GPT-2's original files: encoder.json (piece -> id) and vocab.bpe (merges in rank order).
  static Tokenizer from_gpt2_files(const std::string& encoder_json, const std::string& vocab_bpe);

  Encoding encode(std::string_view text, const EncodeOptions& opt = {}) const;
  // Throws loom::Error (BadInput) for an id out of range.
  std::string decode(const std::vector<TokenId>& ids, bool skip_special = false) const;

  size_t vocab_size() const;
  std::string_view piece(TokenId id) const;
  // The tokens add_special puts before and after a sequence ([CLS] and [SEP] for BERT); pairs of
  // sequences (cross-encoders) are laid out as prefix A suffix B suffix.
  const std::vector<TokenId>& special_prefix() const { return prefix_; }
  const std::vector<TokenId>& special_suffix() const { return suffix_; }

 private:
  using Added = AddedToken;
  void encode_text(std::string_view text, size_t base, Encoding& out) const;

  std::unique_ptr<Normalizer> normalizer_;
  std::unique_ptr<PreTokenizer> pre_;
  std::unique_ptr<Model> model_;
  std::unique_ptr<Decoder> decoder_;
  std::vector<Added> added_;                      // longest first (matching prefers longer tokens)
  std::unordered_map<TokenId, size_t> added_by_id_;
  // a byte trie of the added tokens: (node << 8 | byte) -> child; trie_end_[node] = added_ index or -1
  U64Map trie_;
  std::vector<int32_t> trie_end_ = {-1};
  bool trie_first_[256] = {};  // bytes that start an added token
  std::vector<TokenId> prefix_, suffix_;          // template: tokens before and after the sequence
};

}  // namespace loom::tok
