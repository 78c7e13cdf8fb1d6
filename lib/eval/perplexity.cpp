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

PerplexityResult perplexity(model::Decoder& decoder, const tok::Tokenizer& tokenizer, std::string_view text,
                            const PerplexityOptions& opt, const PerplexityProgress& progress) {
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
  if (decoder.n_ctx() < n)
    throw usage_error(fmt::format("the decoder holds {} positions, fewer than the window of {}", decoder.n_ctx(), n));

  const size_t V = decoder.config().n_vocab;
  const uint32_t ubatch = std::min(opt.n_batch, kUbatch);
  const uint32_t row_cap = static_cast<uint32_t>(std::max<size_t>(16, kLogitFloats / V));
  auto nll_of = opt.stride == 0 ? nll_chunks : nll_stride;

  PerplexityResult r;
  r.tokens = ids.size();
  r.n_ctx = n;
  r.stride = opt.stride;
  std::vector<model::BatchToken> batch;
  std::vector<double> nll;
  for (const PerplexityWindow& w : windows) {
    double window_nll = 0;
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
        const std::vector<float> logits = decoder.decode(batch);
        const uint32_t r0 = std::max(p, lo), rows = rows_in(p, e);
        nll.resize(rows);
        parallel_for(rows, opt.threads, [&](size_t k) {
          nll[k] = nll_of(logits.data() + k * V, V, ids[w.start + r0 + k + 1]);
        });
        for (double x : nll) {  // in text order
          window_nll += x;
          r.nll_sum += x;
          r.nll2_sum += x * x;
        }
        p = e;
      }
    }
    r.scored_tokens += w.count;
    r.window_nll.push_back(window_nll / w.count);
    r.bytes += enc.offsets[w.start + hi].e - std::min(enc.offsets[w.start + lo + 1].b, enc.offsets[w.start + hi].e);
    r.running.push_back(std::exp(r.nll_sum / static_cast<double>(r.scored_tokens)));
    ++r.chunks;
    if (progress) progress(r.chunks, windows.size(), r.running.back());
  }

  const double N = static_cast<double>(r.scored_tokens);
  const double mean = r.nll_sum / N;
  r.ppl = std::exp(mean);
  const double var = r.nll2_sum / N - mean * mean;
  r.uncertainty = var > 0 && r.scored_tokens > 1 ? std::sqrt(var / (N - 1)) * r.ppl : 0.0;
  r.bits_per_byte = r.bytes > 0 ? r.nll_sum / std::numbers::ln2 / static_cast<double>(r.bytes) : 0.0;
  return r;
}

}  // namespace loom::eval
