// SentencePiece .model files, tokenized by the sentencepiece library itself (libsentencepiece).
//
// A .model file is a serialized ModelProto: the pieces (with scores and types), the trainer spec
// (model type, special ids) and the normalizer spec (NFKC tables, dummy prefix, whitespace
// rules). Rather than re-implement Unigram/BPE and the normalizer, the Tokenizer is assembled
// from parts that call SentencePieceProcessor, so ids are sentencepiece's by construction:
//
//   model     SentencePieceProcessor::Encode on the whole text (its normalizer included); token
//             offsets are the byte spans sentencepiece reports in SentencePieceText
//   decoder   pieces -> ids (PieceToId) -> SentencePieceProcessor::Decode
//   added     the model's control pieces (<s>, </s>, ...) as special tokens
//   prefix    BOS when the model has one (Llama, Gemma, Mistral); for a model without BOS but with
//   suffix    EOS (T5), EOS after the sequence. That is what `add_special` adds.
//
// Special tokens, mapped onto sentencepiece:
//   - user_defined pieces are always cut out of the text, by sentencepiece itself (as spm_encode).
//   - control pieces are never produced from text by sentencepiece. With parse_special their
//     strings become their ids (cut out before sentencepiece, like any loom added token; each
//     stretch of text between them is then encoded as a text of its own, so it gains the dummy
//     prefix "▁" as in Hugging Face's Llama tokenizer and llama.cpp). Without parse_special (the
//     default) "<s>" typed in user text stays text, so it cannot inject control tokens.
//   - decode(skip_special = true) drops control tokens, as sentencepiece does; with
//     skip_special = false they are kept as their text, each stretch between them decoded by
//     sentencepiece on its own (so decode(encode(x, parse_special)) == x for "<s>hello").
//
// Offsets: sentencepiece gives each piece the byte span of the original text it came from. A
// piece with an empty span (the dummy prefix "▁" on its own, the leading bytes of a byte-fallback
// character) gets the span of the next piece that has one (so every byte of a character shares
// the character's span, as in Hugging Face), or of the previous one at the end of the text.
//
// Errors: a file that is not a whole ModelProto (corrupt, truncated, not protobuf) is BadInput
// naming the file. Besides the library's own parse, the top level of the protobuf is walked to
// insist on the trainer and normalizer specs, since a file truncated between two pieces still
// parses and would otherwise load as a different tokenizer (default normalizer, Unigram).
#include <sentencepiece_processor.h>

#include <fmt/format.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "loom/core/error.h"
#include "loom/io/stream.h"
#include "loom/tokenizer/tokenizer.h"

namespace loom::tok {

namespace {

using Processor = sentencepiece::SentencePieceProcessor;

// ---- protobuf wire format: the top level of a ModelProto ---------------------------------------

// ModelProto field numbers (sentencepiece_model.proto).
enum : uint32_t { kPieces = 1, kTrainerSpec = 2, kNormalizerSpec = 3 };

bool read_varint(std::string_view d, size_t& i, uint64_t& v) {
  v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (i >= d.size()) return false;
    auto b = static_cast<unsigned char>(d[i++]);
    v |= static_cast<uint64_t>(b & 0x7f) << shift;
    if (!(b & 0x80)) return true;
  }
  return false;
}

// Walks the top-level fields; throws input_error naming `file` when the structure is broken or a
// required part is missing.
void check_wire(std::string_view d, const std::string& file) {
  auto bad = [&](std::string what) { return input_error("not a valid SentencePiece model: " + what, file); };
  if (d.empty()) throw bad("the file is empty");
  size_t pieces = 0;
  bool trainer = false, normalizer = false;
  for (size_t i = 0; i < d.size();) {
    size_t at = i;
    uint64_t tag, len;
    if (!read_varint(d, i, tag)) throw bad(fmt::format("truncated field tag at byte {}", at));
    uint64_t field = tag >> 3;
    switch (tag & 7) {
      case 0:
        if (!read_varint(d, i, len)) throw bad(fmt::format("truncated varint at byte {}", at));
        break;
      case 1: i += 8; break;
      case 5: i += 4; break;
      case 2:
        if (!read_varint(d, i, len) || len > d.size() - i)
          throw bad(fmt::format("field {} at byte {} runs past the end of the file (truncated?)", field, at));
        i += len;
        break;
      default: throw bad(fmt::format("unknown wire type {} at byte {}", tag & 7, at));
    }
    if (i > d.size()) throw bad(fmt::format("field {} at byte {} runs past the end of the file (truncated?)", field, at));
    pieces += field == kPieces;
    trainer |= field == kTrainerSpec;
    normalizer |= field == kNormalizerSpec;
  }
  if (!pieces) throw bad("it has no pieces");
  if (!trainer || !normalizer)
    throw bad(fmt::format("it has no {} (truncated?)", !trainer ? "trainer_spec" : "normalizer_spec"));
}

// ---- the parts ---------------------------------------------------------------------------------

class SpmModel final : public Model {
 public:
  explicit SpmModel(std::shared_ptr<const Processor> sp) : sp_(std::move(sp)) {
    pieces_.reserve(static_cast<size_t>(sp_->GetPieceSize()));
    for (int id = 0; id < sp_->GetPieceSize(); ++id) pieces_.push_back(sp_->IdToPiece(id));
  }

  void encode_word(std::string_view text, Span word, std::vector<TokenId>& ids, std::vector<Span>& spans) const override {
    std::string_view w = text.substr(word.b, word.e - word.b);
    sentencepiece::ImmutableSentencePieceText spt;
    sentencepiece::util::Status st;
    try {
      st = sp_->Encode(w, spt.mutable_proto());
    } catch (const std::exception& e) {
      st = {sentencepiece::util::StatusCode::kInternal, e.what()};
    }
    if (!st.ok()) throw input_error(fmt::format("sentencepiece could not encode the text: {}", st.ToString()));
    size_t n = spt.pieces_size(), first = ids.size();
    for (size_t i = 0; i < n; ++i) {
      auto p = spt.pieces(static_cast<int>(i));
      ids.push_back(static_cast<TokenId>(p.id()));
      spans.push_back({word.b + p.begin(), word.b + p.end()});
    }
    // Empty spans take the next non-empty one (dummy prefix, leading bytes of a byte-fallback
    // character), then, at the end, the previous one.
    Span carry{};
    bool have = false;
    for (size_t i = spans.size(); i-- > first;) {
      if (spans[i].e > spans[i].b) {
        carry = spans[i];
        have = true;
      } else if (have) {
        spans[i] = carry;
      }
    }
    have = false;
    for (size_t i = first; i < spans.size(); ++i) {
      if (spans[i].e > spans[i].b) {
        carry = spans[i];
        have = true;
      } else {
        spans[i] = have ? carry : word;  // no piece has a surface: the whole word
      }
    }
  }

  size_t vocab_size() const override { return pieces_.size(); }
  const std::string& piece(TokenId id) const override { return pieces_[static_cast<size_t>(id)]; }

 private:
  std::shared_ptr<const Processor> sp_;
  std::vector<std::string> pieces_;
};

class SpmDecoder final : public Decoder {
 public:
  explicit SpmDecoder(std::shared_ptr<const Processor> sp) : sp_(std::move(sp)) {}

  std::string decode(const std::vector<std::string>& pieces) const override {
    std::string out;
    std::vector<int> run;
    auto flush = [&] {
      if (run.empty()) return;
      std::string text;
      sentencepiece::util::Status st;
      try {
        st = sp_->Decode(run, &text);
      } catch (const std::exception& e) {
        st = {sentencepiece::util::StatusCode::kInternal, e.what()};
      }
      if (!st.ok()) throw input_error(fmt::format("sentencepiece could not decode the tokens: {}", st.ToString()));
      out += text;
      run.clear();
    };
    for (const auto& p : pieces) {
      int id = sp_->PieceToId(p);
      if (sp_->IsControl(id)) {  // only reaches here when special tokens are kept: as their text
        flush();
        out += p;
      } else {
        run.push_back(id);
      }
    }
    flush();
    return out;
  }

 private:
  std::shared_ptr<const Processor> sp_;
};

}  // namespace

Tokenizer Tokenizer::from_sentencepiece_file(const std::string& path) {
  io::FileBytes bytes = io::FileBytes::load(path);  // missing file: usage error; zstd: decompressed
  std::string_view data = bytes.view();
  check_wire(data, path);
  auto sp = std::make_shared<Processor>();
  sentencepiece::util::Status st;
  try {
    st = sp->LoadFromSerializedProto(data);
  } catch (const std::exception& e) {  // darts-clone throws for some malformed vocabularies (an empty piece)
    throw input_error(fmt::format("not a valid SentencePiece model: {}", e.what()), path);
  }
  if (!st.ok()) throw input_error(fmt::format("not a valid SentencePiece model: {}", st.ToString()), path);
  if (sp->GetPieceSize() <= 0) throw input_error("not a valid SentencePiece model: it has no pieces", path);

  Parts p;
  for (int id = 0; id < sp->GetPieceSize(); ++id)
    if (sp->IsControl(id)) p.added.push_back({sp->IdToPiece(id), static_cast<TokenId>(id), true});
  if (sp->bos_id() >= 0)
    p.prefix.push_back(sp->bos_id());
  else if (sp->eos_id() >= 0)
    p.suffix.push_back(sp->eos_id());
  std::shared_ptr<const Processor> shared = sp;
  p.model = std::make_unique<SpmModel>(shared);
  p.decoder = std::make_unique<SpmDecoder>(shared);
  return from_parts(std::move(p));
}

}  // namespace loom::tok
