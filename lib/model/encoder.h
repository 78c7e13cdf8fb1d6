// BERT-family encoders (BERT, MiniLM, BGE, E5 shapes): sentence embeddings and cross-encoder
// scores, computed as transformers' BertModel computes them (float32; post-layer-norm blocks,
// exact-erf GELU, bidirectional attention).
//
//   model::Encoder enc = model::Encoder::load("minilm", {.threads = 2});
//   std::vector<model::EncoderInput> batch = {enc.encode_text("a sentence"), ...};
//   std::vector<float> v(batch.size() * enc.dims());
//   enc.embed(batch, enc.config().pooling, v.data());     // pooled, not yet normalized
//   model::l2_normalize(v.data(), enc.dims());             // when enc.config().normalize
//
// Model files:
//   a Hugging Face folder   config.json (model_type "bert"), model.safetensors (F32/F16/BF16),
//                           tokenizer.json (or vocab.txt), and the sentence-transformers files
//                           when present: modules.json, its Pooling folder's config.json (mean,
//                           cls, max, last token, mean/sqrt(len)), Normalize, Dense modules,
//                           sentence_bert_config.json (max_seq_length) and
//                           config_sentence_transformers.json (named prompts).
//                           BertForSequenceClassification checkpoints (classifier.weight) are
//                           cross-encoders: classify() gives their logits.
//   a GGUF file             general.architecture "bert" as llama.cpp's converter writes it:
//                           bert.pooling_type (1 mean, 2 cls, 3 last), vectors normalized (as
//                           llama.cpp's embedding example does), the WordPiece vocabulary in the
//                           file (tokenized as llama.cpp does).
//   a decoder GGUF          (llama, qwen2, qwen3, gemma3) that declares {arch}.pooling_type, as
//                           llama.cpp's converter writes it for embedding models: the decoder's
//                           hidden states after its output norm, pooled (1 mean, 2 first token,
//                           3 last token) and normalized, as llama.cpp's embeddings are.
// Anything else is a loom::Error saying what is missing or unsupported.
//
// Batches: the tokens of all sequences are laid one after another (no padding); the dense layers
// run once over all of them, attention per sequence and head. Work is spread over `threads`.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "loom/tokenizer/tokenizer.h"

namespace loom::model {

enum class Pooling { Mean, Cls, Last, Max, MeanSqrtLen };
const char* pooling_name(Pooling p);

struct EncoderConfig {
  std::string arch = "bert";
  uint32_t n_vocab = 0, n_embd = 0, n_ff = 0, n_layer = 0, n_head = 0;
  uint32_t n_pos = 0;    // position embeddings (the longest input)
  uint32_t n_types = 0;  // token type embeddings
  float ln_eps = 1e-12f;
  uint32_t n_labels = 0;  // outputs of the sequence-classification head (0: none)
  // As the model's files say (sentence-transformers modules, GGUF metadata):
  Pooling pooling = Pooling::Mean;
  bool normalize = false;
  uint32_t max_tokens = 0;  // inputs are cut to this many tokens, specials included
  std::vector<std::pair<std::string, std::string>> prompts;  // named prefixes ("query" -> "query: ")
  uint32_t out_dims = 0;    // vector size after the Dense modules (n_embd when none)
};

// One input sequence: token ids (specials included) and their token types (empty: all 0).
struct EncoderInput {
  std::vector<int32_t> ids;
  std::vector<int32_t> types;
  bool truncated = false;  // tokens were cut to fit max_tokens
};

struct EncoderOptions {
  unsigned threads = 1;
};

class Encoder {
 public:
  // `model`: a folder, a .gguf file, or a name under $LOOM_MODELS. loom::Error (Usage) when not
  // found; (BadInput) for a model it cannot read, naming the file and what is wrong.
  static Encoder load(const std::string& model, const EncoderOptions& opt);
  Encoder(Encoder&&) noexcept;
  Encoder& operator=(Encoder&&) noexcept;
  ~Encoder();

  const EncoderConfig& config() const;
  const tok::Tokenizer& tokenizer() const;
  const std::string& path() const;
  uint32_t dims() const { return config().out_dims; }

  // [CLS] text [SEP], cut to max_tokens (0: the model's) keeping the final [SEP].
  EncoderInput encode_text(std::string_view text, uint32_t max_tokens = 0) const;
  // [CLS] a [SEP] b [SEP] with token types 0 then 1; over max_tokens, the parts are cut at their
  // ends as Hugging Face tokenizers' "longest_first" cuts them (the longer part first; when both
  // must be cut, the shorter keeps half the room).
  EncoderInput encode_pair(std::string_view a, std::string_view b, uint32_t max_tokens = 0) const;

  // Pooled vectors (dims() floats per input, Dense modules applied, not normalized) into out,
  // in the order of `batch`. loom::Error (BadInput) for an empty input or a token id or type
  // outside the model's tables.
  void embed(const std::vector<EncoderInput>& batch, Pooling pooling, float* out);
  // The classification head's logits (n_labels floats per input). loom::Error (Usage) when the
  // model has no such head.
  void classify(const std::vector<EncoderInput>& batch, float* out);

 private:
  struct Impl;
  explicit Encoder(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// v[0..n) /= max(|v|, 1e-12), as torch.nn.functional.normalize.
void l2_normalize(float* v, size_t n);

}  // namespace loom::model
