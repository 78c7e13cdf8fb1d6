// Choosing the next token from logits: greedy, or temperature with top-k, top-p and min-p
// filtering, and repetition / frequency / presence penalties over the tokens so far. The same
// seed gives the same choices.
//
//   model::Sampler s({.temperature = 0.7f, .top_p = 0.9f, .seed = 42});
//   int32_t next = s.sample(logits, history);
#pragma once
#include <cstdint>
#include <random>
#include <vector>

namespace loom::model {

struct SamplerOptions {
  float temperature = 0.0f;   // 0: greedy (the highest logit; the lowest id on a tie)
  int top_k = 0;              // keep the k most likely (0: all)
  float top_p = 1.0f;         // keep the smallest set whose probability reaches p
  float min_p = 0.0f;         // drop tokens under min_p times the most likely one's probability
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
  int32_t sample(std::vector<float>& logits, const std::vector<int32_t>& history);

 private:
  SamplerOptions opt_;
  std::mt19937_64 rng_;
};

}  // namespace loom::model
