// Choosing the next token from logits, as llama.cpp's default sampler chain does: repetition /
// frequency / presence penalties over the recent tokens, then top-k, top-p and min-p (on the
// model's probabilities, temperature 1), then the temperature, then a draw. Temperature 0 is
// greedy. The same seed gives the same choices.
//
//   model::Sampler s({.temperature = 0.7f, .top_p = 0.9f, .seed = 42});
//   int32_t next = s.sample(logits, history);      // logits: n_vocab floats (modified)
//
// Helpers for log-probabilities (--logprobs, beam search, scoring):
//
//   double lse = model::log_sum_exp(logits);        // log-probability of t: logits[t] - lse
//   std::vector<int32_t> best = model::top_ids(logits, 5);
#pragma once
#include <cstdint>
#include <random>
#include <span>
#include <vector>

namespace loom::model {

struct SamplerOptions {
  float temperature = 0.0f;        // 0: greedy (the highest logit; the lowest id on a tie)
  int top_k = 0;                   // keep the k most likely (0: all)
  float top_p = 1.0f;              // keep the smallest set whose probability reaches p
  float min_p = 0.0f;              // drop tokens under min_p times the most likely one's probability
  float repeat_penalty = 1.0f;     // logits of tokens already seen: divided (positive) or multiplied
  float frequency_penalty = 0.0f;  // minus this times the token's count so far
  float presence_penalty = 0.0f;   // minus this once a token has appeared
  int penalty_last_n = 64;         // how many recent tokens the penalties look at
  uint64_t seed = 0;
};

class Sampler {
 public:
  explicit Sampler(SamplerOptions opt);
  // The next token; `history` is the prompt and what was generated so far. logits are modified.
  int32_t sample(std::span<float> logits, std::span<const int32_t> history);

 private:
  SamplerOptions opt_;
  std::mt19937_64 rng_;
};

// log(sum(exp(logits))), accumulated in double with the maximum subtracted.
double log_sum_exp(std::span<const float> logits);

// The ids of the k highest logits, highest first (ties: the lower id first).
std::vector<int32_t> top_ids(std::span<const float> logits, size_t k);

}  // namespace loom::model
