// loom::eval perplexity: llama-perplexity's windowing and arithmetic over loom's decoder (see
// perplexity.h for what is computed and why each choice is llama.cpp's).
#include "loom/eval/perplexity.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include <fmt/format.h>

#include "loom/core/error.h"
#include "loom/core/parallel.h"
#include "loom/model/decoder.h"
#include "loom/tokenizer/tokenizer.h"

namespace loom::eval {

namespace {

constexpr uint32_t kUbatch = 512;               // llama.cpp's default n_ubatch
constexpr size_t kLogitFloats = size_t{1} << 25;  // at most this many logits per decoder call

// -ln p(tok) of one row of logits, as llama.cpp's log_softmax (chunks mode): the maximum in
// float, the sum of expf in double, the difference of the logits in float.
double nll_chunks(const float* logits, size_t V, int32_t tok) {
  float max = logits[0];
  for (size_t i = 1; i < V; ++i) max = std::max(max, logits[i]);
  double sum = 0.0;
  for (size_t i = 0; i < V; ++i) sum += expf(logits[i] - max);
  return -((logits[tok] - max) - std::log(sum));
}

// The same as perplexity_v2 computes it: a float probability from its softmax, its float log.
double nll_stride(const float* logits, size_t V, int32_t tok) {
  float max = logits[0];
  for (size_t i = 1; i < V; ++i) max = std::max(max, logits[i]);
  double sum = 0.0;
  for (size_t i = 0; i < V; ++i) sum += expf(logits[i] - max);
  const float p = static_cast<float>(expf(logits[tok] - max) / sum);
  return -std::log(p);
}

}  // namespace

std::vector<PerplexityWindow> perplexity_windows(size_t n_tokens, bool add_bos, const PerplexityOptions& opt) {
  const uint32_t n = opt.n_ctx, s = opt.stride;
  if (n < 3) throw usage_error(fmt::format("a context of {} tokens is too small for perplexity (at least 3)", n));
  if (s >= n) throw usage_error(fmt::format("the stride ({}) must be smaller than the context ({})", s, n));
  if (opt.chunks == 0) throw usage_error("the number of chunks must be at least 1 (or negative: all)");
  if (n_tokens < 2 * size_t{n})
    throw input_error(fmt::format("the text is {} tokens long; perplexity with a context of {} needs at least {} "
                                  "(twice the context)", n_tokens, n, 2 * size_t{n}));
  const size_t most = s == 0 ? n_tokens / n : (n_tokens - n + s - 1) / s;
  const size_t count = opt.chunks < 0 ? most : std::min(most, static_cast<size_t>(opt.chunks));
  std::vector<PerplexityWindow> out(count);
  for (size_t i = 0; i < count; ++i) {
    if (s == 0)
      out[i] = {.start = i * n, .first = n / 2, .count = n - n / 2 - 1, .bos = add_bos};
    else
      out[i] = {.start = i * s, .first = n - s - 1, .count = s, .bos = false};
  }
  return out;
}

uint32_t llama_stride_window(uint32_t c, uint32_t stride) { return (c + stride / 2 + 255) / 256 * 256; }

namespace {

// Per scored row of the compared models (compare_models): P = softmax of the first model's logits,
// Q = the second's, both as log-probabilities in double.
struct RowCompare {
  double kl = 0;
  bool same_top1 = false;
};

RowCompare compare_row(const float* a, const float* b, size_t V) {
  float ma = a[0], mb = b[0];
  size_t ia = 0, ib = 0;
  for (size_t i = 1; i < V; ++i) {
    if (a[i] > ma) ma = a[i], ia = i;
    if (b[i] > mb) mb = b[i], ib = i;
  }
  double sa = 0, sb = 0;
  for (size_t i = 0; i < V; ++i) {
    sa += std::exp(static_cast<double>(a[i]) - ma);
    sb += std::exp(static_cast<double>(b[i]) - mb);
  }
  const double la = std::log(sa), lb = std::log(sb);
  double kl = 0;
  for (size_t i = 0; i < V; ++i) {
    const double lp = (static_cast<double>(a[i]) - ma) - la, lq = (static_cast<double>(b[i]) - mb) - lb;
    kl += std::exp(lp) * (lp - lq);
  }
  return {std::max(kl, 0.0), ia == ib};
}

// The windows of perplexity() through one or two decoders (the same batches to each); with two,
// `cmp` accumulates the comparison of their rows.
std::vector<PerplexityResult> run_windows(const std::vector<model::Decoder*>& decoders, const tok::Tokenizer& tokenizer,
                                          std::string_view text, const PerplexityOptions& opt,
                                          const PerplexityProgress& progress, ModelComparison* cmp) {
  if (opt.n_batch == 0) throw usage_error("the batch size must be at least 1");
  if (!tokenizer.special_suffix().empty())
    throw usage_error("the vocabulary appends an end token to every text; perplexity needs one that does not");
  const std::vector<tok::TokenId>& prefix = tokenizer.special_prefix();
  if (prefix.size() > 1)
    throw usage_error("the vocabulary puts more than one token before a text; perplexity needs BOS or none");

  const tok::Encoding enc = tokenizer.encode(text, {.add_special = true, .parse_special = false});
  const std::vector<int32_t>& ids = enc.ids;
  const bool add_bos = !prefix.empty();
  const std::vector<PerplexityWindow> windows = perplexity_windows(ids.size(), add_bos, opt);
  const uint32_t n = opt.n_ctx;
  const size_t V = decoders[0]->config().n_vocab;
  for (model::Decoder* d : decoders) {
    if (d->n_ctx() < n)
      throw usage_error(fmt::format("the decoder holds {} positions, fewer than the window of {}", d->n_ctx(), n));
    if (d->config().n_vocab != V)
      throw usage_error(fmt::format("the models' vocabularies differ in size ({} and {})", V, d->config().n_vocab));
  }

  const size_t M = decoders.size();
  const uint32_t ubatch = std::min(opt.n_batch, kUbatch);
  const uint32_t row_cap = static_cast<uint32_t>(std::max<size_t>(16, kLogitFloats / V));
  auto nll_of = opt.stride == 0 ? nll_chunks : nll_stride;

  std::vector<PerplexityResult> res(M);
  for (PerplexityResult& r : res) {
    r.tokens = ids.size();
    r.n_ctx = n;
    r.stride = opt.stride;
  }
  std::vector<model::BatchToken> batch;
  std::vector<std::vector<float>> logits(M);
  std::vector<double> nll;
  std::vector<RowCompare> rc;
  for (const PerplexityWindow& w : windows) {
    std::vector<double> window_nll(M, 0.0);
    const uint32_t lo = w.first, hi = w.first + w.count;  // positions whose logits are read
    auto rows_in = [&](uint32_t a, uint32_t b) {           // of those, how many lie in [a, b)
      const uint32_t x = std::max(a, lo), y = std::min(b, hi);
      return y > x ? y - x : 0u;
    };
    for (uint32_t b0 = 0; b0 < n; b0 += ubatch) {
      const uint32_t b1 = std::min(n, b0 + ubatch);
      for (uint32_t p = b0; p < b1;) {
        // one call: up to b1, or fewer positions when that would return more than row_cap rows
        uint32_t e = b1;
        if (rows_in(p, e) > row_cap) e = std::max(p, lo) + row_cap;
        batch.clear();
        for (uint32_t q = p; q < e; ++q) {
          const int32_t t = q == 0 && w.bos ? prefix[0] : ids[w.start + q];
          batch.push_back({.token = t, .pos = q, .seq = 0, .logits = q >= lo && q < hi});
        }
        for (size_t m = 0; m < M; ++m) logits[m] = decoders[m]->decode(batch);
        const uint32_t r0 = std::max(p, lo), rows = rows_in(p, e);
        nll.resize(size_t{rows} * M);
        if (cmp) rc.resize(rows);
        parallel_for(rows, opt.threads, [&](size_t k) {
          for (size_t m = 0; m < M; ++m) nll[k * M + m] = nll_of(logits[m].data() + k * V, V, ids[w.start + r0 + k + 1]);
          if (cmp) rc[k] = compare_row(logits[0].data() + k * V, logits[1].data() + k * V, V);
        });
        for (size_t k = 0; k < rows; ++k) {  // in text order
          for (size_t m = 0; m < M; ++m) {
            const double x = nll[k * M + m];
            window_nll[m] += x;
            res[m].nll_sum += x;
            res[m].nll2_sum += x * x;
          }
          if (cmp) {
            cmp->kl_sum += rc[k].kl;
            cmp->kl_max = std::max(cmp->kl_max, rc[k].kl);
            cmp->top1_same += rc[k].same_top1;
          }
        }
        p = e;
      }
    }
    for (size_t m = 0; m < M; ++m) {
      PerplexityResult& r = res[m];
      r.scored_tokens += w.count;
      r.window_nll.push_back(window_nll[m] / w.count);
      r.bytes += enc.offsets[w.start + hi].e - std::min(enc.offsets[w.start + lo + 1].b, enc.offsets[w.start + hi].e);
      r.running.push_back(std::exp(r.nll_sum / static_cast<double>(r.scored_tokens)));
      ++r.chunks;
    }
    if (progress) progress(res.back().chunks, windows.size(), res.back().running.back());
  }

  for (PerplexityResult& r : res) {
    const double N = static_cast<double>(r.scored_tokens);
    const double mean = r.nll_sum / N;
    r.ppl = std::exp(mean);
    const double var = r.nll2_sum / N - mean * mean;
    r.uncertainty = var > 0 && r.scored_tokens > 1 ? std::sqrt(var / (N - 1)) * r.ppl : 0.0;
    r.bits_per_byte = r.bytes > 0 ? r.nll_sum / std::numbers::ln2 / static_cast<double>(r.bytes) : 0.0;
  }
  return res;
}

}  // namespace

PerplexityResult perplexity(model::Decoder& decoder, const tok::Tokenizer& tokenizer, std::string_view text,
                            const PerplexityOptions& opt, const PerplexityProgress& progress) {
  return run_windows({&decoder}, tokenizer, text, opt, progress, nullptr)[0];
}

ModelComparison compare_models(model::Decoder& a, model::Decoder& b, const tok::Tokenizer& tokenizer,
                               std::string_view text, const PerplexityOptions& opt, const PerplexityProgress& progress) {
  ModelComparison c;
  std::vector<PerplexityResult> r = run_windows({&a, &b}, tokenizer, text, opt, progress, &c);
  c.a = std::move(r[0]);
  c.b = std::move(r[1]);
  const double N = static_cast<double>(c.a.scored_tokens);
  c.kl_mean = c.kl_sum / N;
  c.top1_agreement = static_cast<double>(c.top1_same) / N;
  return c;
}

}  // namespace loom::eval
