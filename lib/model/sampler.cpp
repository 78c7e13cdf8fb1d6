#include "loom/model/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <unordered_map>

namespace loom::model {

Sampler::Sampler(SamplerOptions opt) : opt_(opt), rng_(opt.seed) {}

int32_t Sampler::sample(std::vector<float>& logits, const std::vector<int32_t>& history) {
  const size_t V = logits.size();
  // penalties over the last penalty_last_n tokens
  if (opt_.repeat_penalty != 1.0f || opt_.frequency_penalty != 0.0f || opt_.presence_penalty != 0.0f) {
    std::unordered_map<int32_t, int> count;
    size_t from = history.size() > static_cast<size_t>(std::max(0, opt_.penalty_last_n)) ? history.size() - static_cast<size_t>(opt_.penalty_last_n) : 0;
    for (size_t i = from; i < history.size(); ++i) ++count[history[i]];
    for (auto [id, n] : count) {
      if (id < 0 || static_cast<size_t>(id) >= V) continue;
      float& l = logits[static_cast<size_t>(id)];
      if (opt_.repeat_penalty != 1.0f) l = l > 0 ? l / opt_.repeat_penalty : l * opt_.repeat_penalty;
      l -= static_cast<float>(n) * opt_.frequency_penalty + opt_.presence_penalty;
    }
  }
  if (opt_.temperature <= 0.0f) return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
  // candidates by logit, highest first (ties: lower id first)
  std::vector<int32_t> ids(V);
  std::iota(ids.begin(), ids.end(), 0);
  size_t keep = opt_.top_k > 0 ? std::min<size_t>(V, static_cast<size_t>(opt_.top_k)) : V;
  auto by_logit = [&](int32_t a, int32_t b) { return logits[a] != logits[b] ? logits[a] > logits[b] : a < b; };
  std::partial_sort(ids.begin(), ids.begin() + static_cast<long>(keep), ids.end(), by_logit);
  ids.resize(keep);
  // softmax at the temperature
  std::vector<double> p(keep);
  double mx = logits[ids[0]] / opt_.temperature, sum = 0;
  for (size_t i = 0; i < keep; ++i) sum += p[i] = std::exp(logits[ids[i]] / opt_.temperature - mx);
  for (double& x : p) x /= sum;
  // min-p, then top-p (the smallest prefix reaching p)
  size_t n = keep;
  if (opt_.min_p > 0)
    while (n > 1 && p[n - 1] < opt_.min_p * p[0]) --n;
  if (opt_.top_p < 1.0f) {
    double acc = 0;
    for (size_t i = 0; i < n; ++i) {
      acc += p[i];
      if (acc >= opt_.top_p) {
        n = i + 1;
        break;
      }
    }
  }
  double total = std::accumulate(p.begin(), p.begin() + static_cast<long>(n), 0.0);
  double r = std::uniform_real_distribution<double>(0.0, total)(rng_);
  for (size_t i = 0; i < n; ++i) {
    r -= p[i];
    if (r < 0) return ids[i];
  }
  return ids[n - 1];
}

}  // namespace loom::model
