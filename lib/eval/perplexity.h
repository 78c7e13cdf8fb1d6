// loom::eval perplexity — the perplexity of a causal language model on a text, computed exactly as
// llama.cpp's `llama-perplexity` computes it (tools/perplexity/perplexity.cpp of the llama.cpp
// vendored in llama_cpp_python 0.3.36), so that the two programs' numbers can be compared.
//
//   model::Decoder m(file, {.n_ctx = 512, .threads = 2});
//   eval::PerplexityResult r = eval::perplexity(m, tokenizer, text, {.n_ctx = 512});
//   // r.ppl, r.uncertainty, r.running (the "[1]12.3456,[2]..." values), r.bits_per_byte
//
// Windowing (perplexity_windows() computes it; nothing else decides which tokens are scored).
// The whole text is tokenized once, as llama.cpp's common_tokenize(ctx, text, add_special=true)
// does: BOS first when the vocabulary adds one, special-token strings in the text read as plain
// text. T tokens, window n = n_ctx. (llama-perplexity -f FILE drops one final '\n' of the file
// before tokenizing; perplexity() takes the text as given, so a caller reproducing a -f run drops
// it too.)
//
//   chunks (stride = 0, llama-perplexity's default): window i covers tokens [i*n, (i+1)*n) for
//     i < T/n (at most `chunks` of them). Its first token is replaced by BOS when the vocabulary
//     adds one. The logits of positions n/2 .. n-2 score the tokens at n/2+1 .. n-1: n - n/2 - 1
//     tokens per window, each read with the whole first half of the window as context.
//
//   stride S (llama-perplexity --ppl-stride S, its perplexity_v2): window i covers tokens
//     [i*S, i*S + n) for i < ceil((T - n) / S) (llama.cpp's count: one window fewer than would
//     fit when S divides T - n), at most `chunks`. Positions n-S-1 .. n-2 score the last S tokens
//     of the window, so consecutive windows score consecutive runs of the text. Tokens are used as
//     they are: llama.cpp's v2 puts BOS in place of a window's first token only after that batch
//     has been decoded (it restores it right after), so BOS never reaches the model there; loom
//     does the same. Requires 0 < S < n.
//
//   Both need T >= 2 * n_ctx (llama.cpp's check); a shorter text is an input error that says how
//   many tokens the text has and how many are needed.
//
// Window size in stride mode. llama-perplexity --ppl-stride S does not use -c as its window: it
// asks for a context of c + S/2 positions (with -b < 2c; a larger -b multiplies c by b/c, and the
// windows then overflow a sequence's cache), llama.cpp rounds every context up to a multiple of
// 256, and perplexity_v2 takes that context as the window, decoded in batches of min(b, c).
// llama_stride_window() gives that number; pass it as n_ctx (and min(b, c) as n_batch) to
// reproduce such a run: -c 224 -b 224 --ppl-stride 64 has windows of 256, and so has -c 128
// -b 128 --ppl-stride 32. loom's own n_ctx is always the window itself.
//
// Arithmetic, as llama.cpp's: per scored row, the maximum logit in float, sum of expf(l - max) in
// double; chunks mode takes -log p = -((l_tok - max) - log(sum)) in double, stride mode
// -logf(float(expf(l_tok - max) / sum)) (the float softmax of v2). Sums of nll and nll^2 in double,
// row by row in text order.
//
//   ppl         = exp(nll_sum / scored_tokens)
//   uncertainty = ppl * sqrt((nll2_sum/N - (nll_sum/N)^2) / (N - 1)),  N = scored_tokens
//                 (the "+/-" of llama.cpp's "Final estimate"; 0 when the variance is not positive.
//                 llama.cpp prints none in stride mode: there it is loom's, by the same formula)
//   running[i]  = exp(nll / count) after window i (llama.cpp's "[i+1]value," progress line)
//   bits_per_byte = nll_sum / ln 2 / bytes, where bytes counts the bytes of the input text that
//                 the scored tokens cover (for each window's run of scored tokens, from the start
//                 of the first one's span in the text to the end of the last one's: Encoding
//                 offsets, so normalization and byte-fallback pieces count the original bytes)
//
// Batching. Each window is decoded from position 0 of sequence 0 (the decoder's n_ctx must be at
// least the window) in calls of up to n_batch tokens, as llama.cpp decodes a window in batches
// of n_batch (its n_ubatch of 512 splits larger ones: so does loom). Logits are requested only for
// the positions that score a token; with a large vocabulary (Gemma 3's 262144) the calls are made
// smaller, so that one call returns at most max(16, 2^25 / n_vocab) rows of logits (128 MiB).
// The decoder computes what llama.cpp computes for the same batches, bit for bit, as llama.cpp's
// portable x86 build (AVX2; tests/reference/build-llama-perplexity) runs without flash attention
// (-fa off). Small models amplify float-order differences through the f16 rounding of attention
// inputs: an AVX-512 build, or flash attention, moves a 63-token perplexity by 0.3-3%. Smaller
// calls could change some quantized kernels' sums in the last bits (Gemma 3 at n_ctx 512, decoded
// 384 + 128, still agrees with llama.cpp to every printed digit).
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string_view>
#include <vector>

namespace loom::model {
class Decoder;
}
namespace loom::tok {
class Tokenizer;
}

namespace loom::eval {

struct PerplexityOptions {
  uint32_t n_ctx = 512;   // the window, in tokens (llama-perplexity's default -c, 512)
  uint32_t stride = 0;    // 0: chunks mode; S > 0: a window every S tokens (--ppl-stride S)
  int64_t chunks = -1;    // at most this many windows; < 0: all (--chunks)
  uint32_t n_batch = 512; // tokens per decoder call (llama.cpp's n_ubatch, 512, caps its batches)
  unsigned threads = 1;   // for the log-softmax of the logit rows
};

// One window of the text: tokens [start, start + n_ctx) at positions 0 .. n_ctx-1. The logits of
// positions first .. first+count-1 score the tokens at positions first+1 .. first+count.
struct PerplexityWindow {
  size_t start = 0;
  uint32_t first = 0;
  uint32_t count = 0;
  bool bos = false;  // the window's first token is replaced by BOS
};

// The windows llama-perplexity evaluates for a text of n_tokens tokens (add_bos: the vocabulary
// adds BOS). loom::Error (Usage) for n_ctx < 3, stride >= n_ctx or chunks == 0; (BadInput) when
// n_tokens < 2 * n_ctx, saying how many tokens there are and how many are needed.
std::vector<PerplexityWindow> perplexity_windows(size_t n_tokens, bool add_bos, const PerplexityOptions& opt);

// The window llama-perplexity -c c -b b --ppl-stride s uses when b < 2c: c + s/2 rounded up to a
// multiple of 256 (see above).
uint32_t llama_stride_window(uint32_t c, uint32_t stride);

struct PerplexityResult {
  double ppl = 0;
  double uncertainty = 0;     // ± of ppl (one standard error)
  double nll_sum = 0;         // sum of -ln p over the scored tokens
  double nll2_sum = 0;        // sum of (-ln p)^2
  size_t tokens = 0;          // the text's tokens (BOS included)
  size_t scored_tokens = 0;
  size_t chunks = 0;          // windows evaluated
  uint32_t n_ctx = 0, stride = 0;
  size_t bytes = 0;           // bytes of the text the scored tokens cover
  double bits_per_byte = 0;
  std::vector<double> running;  // ppl after each window
  std::vector<double> window_nll;  // mean -ln p of each window's scored tokens
};

// Called after each window: (windows done, windows in all, running ppl).
using PerplexityProgress = std::function<void(size_t done, size_t total, double ppl)>;

// Tokenizes `text` and evaluates it (see above). Errors as perplexity_windows(); the caller
// attaches the file name (loom::Error::at). loom::Error (Usage) when the decoder's n_ctx is
// smaller than the window, n_batch is 0, or the vocabulary appends EOS (llama.cpp refuses it too).
PerplexityResult perplexity(model::Decoder& decoder, const tok::Tokenizer& tokenizer, std::string_view text,
                            const PerplexityOptions& opt = {}, const PerplexityProgress& progress = nullptr);

// Two models on the same windows (a quantized model against its original): the windows of
// perplexity() with the same options, every decoder call made with the same batch to both, and
// per scored row (position) both models' -ln p of the next token (as perplexity() computes it: `a`
// and `b` are exactly perplexity(a, ...) and perplexity(b, ...)) and the divergence of their
// full next-token distributions, as llama-perplexity --kl-divergence defines it:
//   KL(P || Q) = sum_i p_i (ln p_i - ln q_i),  P = softmax(logits of a), Q = softmax(logits of b)
// all in double (log-softmax with the maximum subtracted; unlike llama.cpp, which stores the base
// model's log-probabilities as 16-bit values, nothing is rounded: a model against itself gives 0
// exactly), and whether both argmaxes are the same token (the first maximum of each row).
// Sums in text order. Memory: two decoders' logit rows of one call (at most 128 MiB each).
struct ModelComparison {
  PerplexityResult a, b;       // each model's perplexity, as perplexity() gives it
  double kl_sum = 0;           // sum over the scored rows of KL(P_a || P_b)
  double kl_mean = 0;          // kl_sum / scored rows
  double kl_max = 0;           // the largest row's KL
  size_t top1_same = 0;        // rows whose argmaxes agree
  double top1_agreement = 0;   // top1_same / scored rows
};

// Errors as perplexity(); also loom::Error (Usage) when the two vocabularies differ in size.
// The progress reports the running perplexity of `b`.
ModelComparison compare_models(model::Decoder& a, model::Decoder& b, const tok::Tokenizer& tokenizer,
                               std::string_view text, const PerplexityOptions& opt = {},
                               const PerplexityProgress& progress = nullptr);

}  // namespace loom::eval
