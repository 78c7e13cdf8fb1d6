// loom::eval text metrics — generated text scored against references, as `loom eval text` reports
// them: SQuAD exact match and F1, BLEU, chrF / chrF++, ROUGE-1/2/L/Lsum.
//
// Every value is the reference implementation's, to the last digit (the same double-precision
// operations in the same order; tests/unit/test_eval_text.cpp checks ~1.6 * 10^5 values from the
// references, tests/reference/gen_eval_text_goldens.py):
//
//   SQuAD   the official evaluation scripts evaluate-v1.1.py and evaluate-v2.0.py. normalize_answer:
//           Python's str.lower(), drop the ASCII punctuation of string.punctuation, drop the words
//           a, an, the (re's \b(a|an|the)\b: \b is Unicode-aware, so "a" before a combining mark
//           is a word), join str.split()'s tokens (Unicode whitespace) with single spaces. F1 is
//           the bag-of-tokens overlap; both take the best reference. v2.0: references that
//           normalize to nothing are dropped, none left means unanswerable (the only correct
//           answer is ""), and F1 is 1 when gold and prediction both have no tokens. Corpus:
//           100 * sum / items, summed in item order.
//   BLEU    sacrebleu 2.6.0 with its defaults: smooth_method "exp", tokenize "13a", lowercase
//           off, force off (`force` only silences a warning). corpus_bleu (effective_order off,
//           statistics summed over items) and sentence_bleu (effective_order on). Tokenizers
//           13a (mteval-v13a's, the default), none, char and intl (mteval-v14's international,
//           Unicode categories from utf8proc), each after Python's str.rstrip() and, with
//           lowercase, str.lower(). Multiple references: n-gram counts clipped by the maximum
//           over references, the closest reference length (the shorter one on ties).
//   chrF    sacrebleu 2.6.0 CHRF defaults: char_order 6, word_order 0 (2 is chrF++), beta 2,
//           whitespace removed, eps_smoothing off. Per item the statistics of the reference with
//           the best f-score (the first one on ties); corpus = f-score of the summed statistics.
//   ROUGE   rouge-score 0.1.2 RougeScorer(["rouge1", "rouge2", "rougeL", "rougeLsum"]) with its
//           default tokenizer: str.lower(), every character outside [a-z0-9] a separator (so
//           non-ASCII letters vanish; only U+0130 and U+212A lower to ASCII), optionally nltk
//           3.10.4's PorterStemmer (NLTK_EXTENSIONS) on tokens longer than 3 characters.
//           rougeLsum splits on "\n" and scores the union LCS of each reference sentence
//           (an LCS table per pair of lines: time and memory grow with the product of their
//           lengths, as in the reference).
//           Multiple references: score_multi (per rouge type the reference with the best
//           fmeasure, the first one on ties). Corpus = arithmetic mean of the per-item values,
//           summed in item order. (rouge-score's BootstrapAggregator reports a resampled "mid"
//           that only converges to this mean; loom reports the mean itself.)
//
// Decisions where the references have no answer:
//   - An item without any reference is bad input (loom::Error, BadInput) for every metric but
//     SQuAD v2.0, which scores it as unanswerable. (sacrebleu, rouge-score and evaluate-v1.1.py
//     fail on it with a Python exception.)
//   - A summary of zero items has every value 0 (the references divide by zero or index past
//     the end).
//   - Python's character data is that of its Unicode version (14.0 for the Python 3.11 that made
//     the goldens); loom's comes from utf8proc. They can differ only on code points assigned
//     after Unicode 14.0. Sums are plain left-to-right double additions, which is what Python
//     3.11's sum() does (3.12 changed sum() of floats to a compensated sum, which can move the
//     last bits of sacrebleu's BLEU and of the SQuAD v2.0 script's means).
//
// Inputs are UTF-8 (callers validate it; invalid bytes give unspecified but bounded results).
// Everything is a pure function of its arguments; TextEvaluator::score is const and thread-safe.
//
//   TextEvaluator ev;                             // all four families, default options
//   for (const TextItem& it : items) {
//     TextItemScores s = ev.score(it);            // per-item values (--per-item)
//     ev.add(s);                                  // streaming corpus statistics
//   }
//   TextSummary sum = ev.summary();               // sum.bleu.score, sum.bleu_signature, ...
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace loom::eval {

struct TextItem {
  std::string prediction;
  std::vector<std::string> references;
};

// ---- SQuAD ---------------------------------------------------------------------------------------

enum class SquadVersion { V1_1, V2_0 };

// normalize_answer(answer) of the official scripts (both versions normalize alike).
std::string squad_normalize(std::string_view answer);

struct SquadScore {
  double exact = 0;  // per item 0 or 1; in a summary 100 * mean
  double f1 = 0;     // per item in [0, 1]; in a summary 100 * mean
};

// Best over the references. V1_1 with no references throws loom::Error (BadInput).
SquadScore squad_score(std::string_view prediction, std::span<const std::string> references,
                       SquadVersion version);

// ---- BLEU ----------------------------------------------------------------------------------------

enum class BleuTokenize { None, T13a, Intl, Char };

struct BleuOptions {
  BleuTokenize tokenize = BleuTokenize::T13a;
  bool lowercase = false;
};

// The tokens BLEU counts: sacrebleu's tokenizer output split on whitespace.
std::vector<std::string> bleu_tokenize(std::string_view text, const BleuOptions& options = {});

// The sufficient statistics: sums of these over items give the corpus score.
struct BleuStats {
  int64_t sys_len = 0, ref_len = 0;        // prediction tokens; closest reference's tokens
  std::array<int64_t, 4> correct{};        // clipped matching n-grams, n = 1..4
  std::array<int64_t, 4> total{};          // prediction n-grams, n = 1..4
  BleuStats& operator+=(const BleuStats& o);
};

// Throws loom::Error (BadInput) when `references` is empty.
BleuStats bleu_stats(std::string_view prediction, std::span<const std::string> references,
                     const BleuOptions& options = {});

struct BleuScore {
  double score = 0;                        // 0..100
  std::array<double, 4> precisions{};      // 0..100, smoothed ("exp") where nothing matched
  double bp = 0;                           // brevity penalty
  int64_t sys_len = 0, ref_len = 0;
  std::array<int64_t, 4> counts{}, totals{};
};

// compute_bleu with smooth_method "exp": effective_order true for sentence BLEU, false for corpus.
BleuScore bleu_score(const BleuStats& stats, bool effective_order);

// sacrebleu's signature, e.g. "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0";
// nrefs < 0 prints "var" (items with differing numbers of references).
std::string bleu_signature(const BleuOptions& options, int nrefs, bool effective_order = false);

// ---- chrF ----------------------------------------------------------------------------------------

struct ChrfOptions {
  int char_order = 6;   // 1..6
  int word_order = 0;   // 0..4; 2 is chrF++
  int beta = 2;
  bool lowercase = false;
  bool whitespace = false;     // keep whitespace in character n-grams
  bool eps_smoothing = false;  // chrF++.py-style epsilon smoothing instead of effective order
};

// [hyp n-grams, ref n-grams, matches] per order: char orders 1..char_order, then word orders.
using ChrfStats = std::vector<int64_t>;

// The statistics of the best reference. Throws loom::Error (BadInput) when `references` is
// empty, (Usage) for orders out of range.
ChrfStats chrf_stats(std::string_view prediction, std::span<const std::string> references,
                     const ChrfOptions& options = {});
// 0..100. Sums of stats over items give the corpus score.
double chrf_score(std::span<const int64_t> stats, const ChrfOptions& options = {});
// e.g. "nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|version:2.6.0"; nrefs < 0 prints "var".
std::string chrf_signature(const ChrfOptions& options, int nrefs);

// ---- ROUGE ---------------------------------------------------------------------------------------

struct RougeOptions {
  bool use_stemmer = false;
};

struct Prf {
  double precision = 0, recall = 0, fmeasure = 0;
};

struct RougeScores {
  Prf rouge1, rouge2, rougeL, rougeLsum;
};

// rouge-score's tokenizer (tokenize.tokenize with or without the Porter stemmer).
std::vector<std::string> rouge_tokenize(std::string_view text, bool stem = false);
// Throws loom::Error (BadInput) when `references` is empty.
RougeScores rouge_score(std::string_view prediction, std::span<const std::string> references,
                        const RougeOptions& options = {});

// nltk's PorterStemmer().stem(word) in its default NLTK_EXTENSIONS mode, for the lowercase
// ASCII words rouge-score gives it (ASCII letters are lowercased first; other bytes are treated
// as consonants, as nltk treats any character that is not a vowel).
std::string porter_stem(std::string_view word);

// ---- all metrics over a stream of items -----------------------------------------------------------

struct TextOptions {
  bool squad = true, bleu = true, chrf = true, rouge = true;  // which families to compute
  SquadVersion squad_version = SquadVersion::V2_0;
  BleuOptions bleu_options;
  ChrfOptions chrf_options;
  RougeOptions rouge_options;
};

// One item's values; families not computed stay zero.
struct TextItemScores {
  size_t n_references = 0;
  SquadScore squad;
  BleuStats bleu_stats;
  BleuScore bleu;       // sentence BLEU (effective order)
  ChrfStats chrf_stats;
  double chrf = 0;      // sentence chrF
  RougeScores rouge;
};

struct TextSummary {
  size_t items = 0;
  SquadScore squad;              // 100 * means
  BleuScore bleu;                // corpus BLEU
  std::string bleu_signature;
  double chrf = 0;               // corpus chrF
  std::string chrf_signature;
  RougeScores rouge;             // means
};

class TextEvaluator {
 public:
  // Throws loom::Error (Usage) for options out of range.
  explicit TextEvaluator(TextOptions options = {});
  const TextOptions& options() const { return options_; }

  // Scores one item. Const, thread-safe: score items in parallel, then add() them in order.
  TextItemScores score(const TextItem& item) const;
  // Accumulates an item's values (corpus statistics, running sums): memory stays constant.
  void add(const TextItemScores& scores);
  TextSummary summary() const;

 private:
  TextOptions options_;
  size_t items_ = 0;
  int min_refs_ = 0, max_refs_ = 0;
  double squad_exact_ = 0, squad_f1_ = 0;
  BleuStats bleu_;
  ChrfStats chrf_;
  std::array<double, 12> rouge_{};  // precision, recall, fmeasure of rouge1, rouge2, rougeL, rougeLsum
};

// ---- the Python string semantics the references depend on (exposed for tests) ---------------------

// Python's str.lower(): the simple lowercase mapping, U+0130 -> "i\u0307", and U+03A3 -> final
// sigma U+03C2 in the Final_Sigma context.
std::string python_lower(std::string_view text);
// Python re's \w on str: letters (L*), numbers (N*) and '_'.
bool python_is_word(char32_t c);

}  // namespace loom::eval
