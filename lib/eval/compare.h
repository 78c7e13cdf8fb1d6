// Comparing two evaluations and gating on them: what `loom eval compare` and `--fail-under`
// compute.
//
// An evaluation file is what loom-eval writes: one summary line {"eval": ..., "metrics": {name:
// value, ...}, ...}, preceded with --per-item by one line per item {"id": ..., "metrics": {...}}.
// Two evaluations of the same items are compared metric by metric: the difference of the
// summaries and, where both files hold the items and the metric is a mean of item values, a paired
// test over the items both hold:
//   t-test     Student's paired t-test, two-sided (scipy.stats.ttest_rel): t = mean(d) / (sd(d) /
//              sqrt(n)), sd with n - 1 degrees of freedom; p from Student's t with n - 1 degrees.
//              All differences equal (sd 0): t = ±inf and p = 0, or both undefined (null) when
//              the differences are all 0, as scipy gives them.
//   bootstrap  paired bootstrap of the mean difference: `samples` resamples of the items with
//              replacement (a fixed seed: the same files give the same p), p two-sided as the share
//              of resampled means at least as far from the observed mean as the observed mean is
//              from 0 ((1 + count) / (1 + samples): never 0), and the 2.5/97.5 percentile interval.
// A metric that is not the mean of its item values (BLEU, chrF: corpus statistics), or held by
// fewer than 2 items of both files, gets the difference only.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace loom::eval {

// An evaluation read back from a file.
struct EvalFile {
  std::string file;
  std::string kind;                                        // "retrieval", "text", ... (the "eval" field)
  std::vector<std::pair<std::string, double>> metrics;     // the summary, in file order
  std::vector<std::string> ids;                            // items, in file order
  std::vector<std::vector<std::optional<double>>> values;  // values[metric][item] (null: none)
};

// Reads an evaluation file (loom::Error BadInput naming file and line when it is not one, or an
// item id appears twice; a file of items without a summary gets the means of its items).
EvalFile read_evaluation(const std::string& path);

struct PairedTest {
  size_t n = 0;                       // items in both
  std::optional<double> t, p;         // t-test (nullopt: undefined)
  double mean_diff = 0;
};
PairedTest paired_ttest(const std::vector<double>& base, const std::vector<double>& next);

struct Bootstrap {
  double p = 1, low = 0, high = 0;  // two-sided p; 95% interval of the mean difference
};
// (fewer than 2 pairs: p = 1 and an empty interval; the caller reports no test)
Bootstrap paired_bootstrap(const std::vector<double>& base, const std::vector<double>& next, uint32_t samples,
                           uint64_t seed);

// Student's t distribution: P(T > t) with `df` degrees of freedom.
double student_t_sf(double t, double df);

// "METRIC=VALUE" (as --fail-under takes it). loom::Error (Usage) when malformed.
std::pair<std::string, double> parse_threshold(std::string_view spec);

// The metrics of `metrics` that fall below (`under`) or rise above their threshold, or are
// undefined (nullopt: no item had a value), as messages "ndcg_cut_10 is 0.41, under 0.45"; a
// threshold naming a metric that is not there is a usage error listing those that are.
std::vector<std::string> check_thresholds(const std::vector<std::pair<std::string, std::optional<double>>>& metrics,
                                          const std::vector<std::string>& under, const std::vector<std::string>& over);

}  // namespace loom::eval
