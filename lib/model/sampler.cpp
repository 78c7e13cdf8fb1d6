#include "loom/model/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <unordered_map>

namespace loom::model {

Sampler::Sampler(SamplerOptions opt) : opt_(opt), rng_(opt.seed) {}

int32_t Sampler::sample(std::span<float> logits, std::span<const int32_t> history) {
  const size_t V = logits.size();
  // penalties over the last penalty_last_n tokens (llama.cpp's "penalties" sampler)
  if (opt_.repeat_penalty != 1.0f || opt_.frequency_penalty != 0.0f || opt_.presence_penalty != 0.0f) {
    std::unordered_map<int32_t, int> count;
    const size_t last = static_cast<size_t>(std::max(0, opt_.penalty_last_n));
    for (size_t i = history.size() > last ? history.size() - last : 0; i < history.size(); ++i) ++count[history[i]];
    for (auto [id, n] : count) {
      if (id < 0 || static_cast<size_t>(id) >= V) continue;
      float& l = logits[static_cast<size_t>(id)];
      l = l <= 0 ? l * opt_.repeat_penalty : l / opt_.repeat_penalty;
      l -= static_cast<float>(n) * opt_.frequency_penalty + opt_.presence_penalty;
    }
  }
  if (opt_.temperature <= 0.0f) return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());

  // top-k: the candidates (all tokens when top_k is 0)
  auto by_logit = [&](int32_t a, int32_t b) { return logits[a] != logits[b] ? logits[a] > logits[b] : a < b; };
  std::vector<int32_t> ids(V);
  std::iota(ids.begin(), ids.end(), 0);
  if (opt_.top_k > 0 && static_cast<size_t>(opt_.top_k) < V) {
    std::nth_element(ids.begin(), ids.begin() + opt_.top_k, ids.end(), by_logit);
    ids.resize(static_cast<size_t>(opt_.top_k));
  }
  const int32_t best = *std::min_element(ids.begin(), ids.end(), by_logit);
  const float max_logit = logits[best];
  // the candidates' probabilities at temperature 1 (what top-p and min-p look at)
  double total = 0;
  for (int32_t id : ids) total += std::exp(static_cast<double>(logits[id]) - max_logit);
  // min-p keeps logits >= max + log(min_p); top-p keeps the most likely tokens until their
  // probability reaches p. Both keep a prefix of the candidates by logit, so min-p may go first
  // and leave fewer to sort.
  if (opt_.min_p > 0.0f) {
    const double floor = max_logit + std::log(static_cast<double>(opt_.min_p));
    std::erase_if(ids, [&](int32_t id) { return id != best && logits[id] < floor; });
  }
  std::sort(ids.begin(), ids.end(), by_logit);
  if (opt_.top_p < 1.0f) {
    double acc = 0;
    for (size_t i = 0; i < ids.size(); ++i) {
      acc += std::exp(static_cast<double>(logits[ids[i]]) - max_logit) / total;
      if (acc >= opt_.top_p) {
        ids.resize(i + 1);
        break;
      }
    }
  }
  // the temperature, then a draw
  std::vector<double> w(ids.size());
  double sum = 0;
  for (size_t i = 0; i < ids.size(); ++i) sum += w[i] = std::exp((static_cast<double>(logits[ids[i]]) - max_logit) / opt_.temperature);
  double r = std::uniform_real_distribution<double>(0.0, sum)(rng_);
  for (size_t i = 0; i < ids.size(); ++i) {
    r -= w[i];
    if (r < 0) return ids[i];
  }
  return ids.back();
}

double log_sum_exp(std::span<const float> logits) {
  if (logits.empty()) return -std::numeric_limits<double>::infinity();
  const double mx = *std::max_element(logits.begin(), logits.end());
  double s = 0;
  for (float l : logits) s += std::exp(static_cast<double>(l) - mx);
  return mx + std::log(s);
}

std::vector<int32_t> top_ids(std::span<const float> logits, size_t k) {
  k = std::min(k, logits.size());
  std::vector<int32_t> ids(logits.size());
  std::iota(ids.begin(), ids.end(), 0);
  auto by_logit = [&](int32_t a, int32_t b) { return logits[a] != logits[b] ? logits[a] > logits[b] : a < b; };
  std::partial_sort(ids.begin(), ids.begin() + static_cast<long>(k), ids.end(), by_logit);
  ids.resize(k);
  return ids;
}

}  // namespace loom::model
