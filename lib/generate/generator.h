// The engine of loom-generate: requests (token ids) share one model::Decoder, continuously
// batched. What it will not do: read records, render prompts, or write JSON (tools/generate/main.cpp, prompt.h).
//
//   generate::Generator g(file, tokenizer, settings);
//   g.run(next, done, &interrupted);   // next(): the next Request, or nullopt at the end
//                                      // done(Result&&): each result, in the order of the requests
//
// Scheduling. The decoder holds `parallel` groups of `width` sequences (KV caches of n_ctx
// positions each; width = --n samples, or --beams, else 1). A request takes a free group when
// there is one; every step is ONE decode() call carrying the next token of every decoding
// sequence, then whole chunks of the prompts still being read (up to `n_batch` tokens in all,
// at least one chunk). A request that finishes frees its group for the next. Results wait until the requests before them are
// done (at most 4 x parallel requests are held), so output keeps the input order.
//
// Exactness. The decoder gives each sequence the logits llama.cpp computes for it alone from the
// same chunks of tokens, whatever shares its batch. Prompts are read in chunks of n_batch tokens
// from their start (the last one the rest), as llama.cpp reads them, and decoding goes one token
// at a time. So greedy output does not depend on `parallel`, and sampled output depends only on
// each request's seed. (n_batch can matter, as in llama.cpp: its kernels for K-quant weights sum
// in other orders for chunks under 8 tokens, and in groups of 4.)
//
// Tasks:
//   Generate  sample `samples` continuations of the prompt (it is read once, its cache copied),
//             or beam search with `beams` beams: candidates are ranked by the sum of their
//             tokens' log-probabilities, finished hypotheses by that sum divided by their length
//             (generated tokens, the end token included), and the search ends when no running
//             beam can beat the `beams` best finished ones (transformers' num_beams with
//             length_penalty=1.0, early_stopping=False).
//   Score     the log-likelihood of the tokens: log softmax (in double) of each token given those
//             before it, in consecutive windows of n_ctx tokens whose first token is not scored
//             (as llama.cpp's perplexity evaluates a long text).
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "loom/model/sampler.h"

namespace loom::gguf {
class File;
}
namespace loom::tok {
class Tokenizer;
}
namespace loom::model {
class Decoder;
}

namespace loom::generate {

struct Settings {
  uint32_t n_ctx = 4096;  // positions per sequence: prompt + completion (Score: window size)
  unsigned threads = 1;
  uint32_t parallel = 1;           // requests in flight at once
  uint32_t n_batch = 512;          // tokens per forward pass (decoding tokens go first; prompts fill the rest)
  size_t max_tokens = 256;         // per completion
  uint32_t samples = 1;            // completions per prompt (--n)
  uint32_t beams = 1;              // > 1: beam search instead of sampling
  bool logprobs = false;           // record each generated token's log-probability
  uint32_t top_logprobs = 0;       // ... and this many most likely alternatives
  bool ignore_eos = false;         // never choose an end-of-generation token
  std::vector<std::string> stop;   // a completion ends before the first of these strings
  model::SamplerOptions sampling;  // seed: see Request::seed
  std::vector<std::string> loras;  // LoRA adapters (model::DecoderOptions::loras) and their scales
  std::vector<float> lora_scales;
};

enum class Task { Generate, Score };

struct Request {
  Task task = Task::Generate;
  std::vector<int32_t> tokens;  // the prompt (Generate; shorter than n_ctx) or the text (Score)
  size_t max_tokens = 0;        // 0: Settings::max_tokens
  uint64_t seed = 0;            // the sampler of sample j is seeded with seed + j
  // Receives the completion's text as it becomes final (one sample: piece by piece; beams: all
  // at the end). May be empty.
  std::function<void(std::string_view)> stream;
};

struct TokenLogprob {
  int32_t id = 0;
  double logprob = 0;                           // natural log, the model's own distribution
  std::vector<std::pair<int32_t, double>> top;  // the most likely tokens there, best first
};

struct Completion {
  std::string text;
  std::string finish_reason;  // "stop" (end token or stop string), "length", "interrupted"
  size_t tokens = 0;          // generated tokens (an end token is not counted)
  std::vector<int32_t> ids;   // ... their ids (after a stop string: up to the token that made it)
  std::vector<TokenLogprob> logprobs;
};

struct Result {
  bool interrupted = false;             // cut short by the stop flag
  std::vector<Completion> completions;  // Generate: one per sample (beams: the best)
  size_t prompt_tokens = 0;
  double ttft_ms = 0, prompt_tokens_per_s = 0, decode_tokens_per_s = 0;
  double score_sum = 0;     // Score: sum of log-probabilities ...
  size_t score_tokens = 0;  // ... of this many tokens
};

class Generator {
 public:
  Generator(std::shared_ptr<const gguf::File> file, const tok::Tokenizer& tokenizer, Settings settings);
  ~Generator();
  Generator(const Generator&) = delete;
  Generator& operator=(const Generator&) = delete;

  // Runs requests until `next` returns nullopt and every request has finished, or `*stop` turns
  // true: requests in flight then end (finish_reason "interrupted", Result::interrupted) and no
  // more are taken. `next` is called only when a request can start; `done` gets the results in
  // the order of the requests. Exceptions from the callbacks propagate.
  void run(const std::function<std::optional<Request>()>& next, const std::function<void(Result&&)>& done,
           const std::atomic<bool>* stop = nullptr);

  size_t n_vocab() const;
  // The bytes a token stands for in text (a byte-level or SentencePiece piece turned back into
  // bytes; a control token as its own text).
  std::string token_bytes(int32_t id) const;

 private:
  struct Seq;
  struct Job;
  std::unique_ptr<Job> start(Request r, uint32_t group) const;
  void step(const std::vector<Job*>& running);
  void prompt_read(Job& j, const float* logits);
  void choose(Job& j, Seq& s, const float* logits);
  void beam_step(Job& j, const std::vector<const float*>& rows);
  void score_rows(Job& j, size_t first, const float* logits, size_t n);
  bool update_text(Job& j, Seq& s);
  void drop_unfinished(const std::vector<int32_t>& out, std::string& text) const;
  void end_seq(Job& j, Seq& s, const char* reason);
  void end_beams(Job& j, const char* reason);
  void end_job(Job& j);
  void interrupt(Job& j);

  std::shared_ptr<const gguf::File> file_;
  const tok::Tokenizer& tok_;
  Settings s_;
  uint32_t width_ = 1;
  std::unique_ptr<model::Decoder> model_;
  std::vector<int32_t> eog_;  // end-of-generation tokens
  std::vector<char> is_eog_;  // by id
  bool byte_level_ = false;   // pieces are GPT-2 byte-level text (else SentencePiece)
  size_t max_stop_ = 0;       // longest stop string
  size_t row_cap_ = 0;        // logits rows per forward pass while scoring (bounds memory)
  std::vector<float> work_;   // a row of logits being sampled
};

}  // namespace loom::generate
