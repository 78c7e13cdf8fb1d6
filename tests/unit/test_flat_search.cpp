// The exact scan behind Flat indexes (kernels/cpu/flat_search.h): every tile shape gives each pair
// the bits flat_score gives it, the k kept are the true k best (ties by label) however the rows
// are split, and the scores are within float rounding of a double-precision reference.
#include "kernels/cpu/flat_search.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

using namespace loom::kernels;

namespace {

std::vector<float> randn(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist;
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

double ref_score(const float* q, const float* x, size_t d, FlatMetric m) {
  double s = 0;
  for (size_t i = 0; i < d; ++i)
    s += m == FlatMetric::InnerProduct ? double(q[i]) * x[i] : (double(q[i]) - x[i]) * (double(q[i]) - x[i]);
  return s;
}

struct Result {
  std::vector<int64_t> labels;
  std::vector<float> scores;
};

// n queries over rows [0, m) split into `parts` ranges of positions (a TopK per part, merged);
// one part scans the whole matrix without a position list
Result search(const std::vector<float>& q, size_t n, size_t d, const std::vector<float>& xb, const std::vector<int64_t>& labels,
              size_t k, FlatMetric metric, size_t parts) {
  const size_t m = labels.size();
  std::vector<int64_t> rows(m);
  for (size_t i = 0; i < m; ++i) rows[i] = int64_t(i);
  std::vector<TopK> tops(n, TopK(k, metric));
  for (size_t p = 0; p < parts; ++p) {
    std::vector<TopK> part(n, TopK(k, metric));
    const size_t r0 = m * p / parts, r1 = m * (p + 1) / parts;
    flat_scan(q.data(), n, d, xb.data(), parts == 1 ? nullptr : rows.data() + r0, r1 - r0, labels.data(), metric,
              part.data());
    for (size_t i = 0; i < n; ++i) tops[i].merge(part[i]);
  }
  Result r{std::vector<int64_t>(n * k), std::vector<float>(n * k)};
  for (size_t i = 0; i < n; ++i) tops[i].write(r.labels.data() + i * k, r.scores.data() + i * k);
  return r;
}

}  // namespace

TEST(FlatSearch, EveryPairScoresAsFlatScoreAndTheBestAreKept) {
  // odd dimensions and 384; 37 queries (three panels of 16, the last partial); row counts that
  // leave every tile height (1 to 6 rows) at the end of a block
  for (size_t d : {1, 7, 16, 37, 384})
    for (size_t m : {1, 2, 3, 4, 5, 6, 203})
      for (FlatMetric metric : {FlatMetric::InnerProduct, FlatMetric::L2}) {
        const size_t n = 37, k = 7;
        const auto q = randn(n * d, 1 + unsigned(d)), xb = randn(m * d, 100 + unsigned(d));
        std::vector<int64_t> labels(m);
        for (size_t i = 0; i < m; ++i) labels[i] = int64_t(1000 + 7 * ((i * 37) % m));  // unique, not in order (m prime or < 37)
        const Result r = search(q, n, d, xb, labels, k, metric, 1);
        for (size_t i = 0; i < n; ++i) {
          // the expected k: every row scored by flat_score, sorted best first, ties by label
          std::vector<std::pair<float, int64_t>> all;
          for (size_t j = 0; j < m; ++j) {
            const float s = flat_score(q.data() + i * d, xb.data() + j * d, d, metric);
            const double want = ref_score(q.data() + i * d, xb.data() + j * d, d, metric);
            double mag = 0;
            for (size_t c = 0; c < d; ++c) mag += std::fabs(double(q[i * d + c]) * xb[j * d + c]);
            if (metric == FlatMetric::L2) mag = want;
            // the worst case of d float roundings in order (and the L2 difference's own)
            ASSERT_NEAR(s, want, (double(d) + 2) * 0x1p-24 * (1 + mag)) << "d " << d << " query " << i << " row " << j;
            all.emplace_back(s, labels[j]);
          }
          std::sort(all.begin(), all.end(), [&](const auto& a, const auto& b) {
            if (a.first != b.first) return metric == FlatMetric::InnerProduct ? a.first > b.first : a.first < b.first;
            return a.second < b.second;
          });
          for (size_t j = 0; j < k; ++j) {
            const int64_t want = j < m ? all[j].second : -1;
            ASSERT_EQ(r.labels[i * k + j], want) << "d " << d << " m " << m << " query " << i << " rank " << j;
            if (j < m) {
              ASSERT_EQ(r.scores[i * k + j], all[j].first) << "d " << d << " m " << m << " query " << i << " rank " << j;
            }
          }
        }
      }
}

TEST(FlatSearch, SameResultForAnyBatchSplitOrRowOrder) {
  const size_t d = 24, n = 9, m = 500, k = 10;
  const auto q = randn(n * d, 7), xb = randn(m * d, 8);
  std::vector<int64_t> labels(m);
  for (size_t i = 0; i < m; ++i) labels[i] = int64_t(i);
  for (FlatMetric metric : {FlatMetric::InnerProduct, FlatMetric::L2}) {
    const Result whole = search(q, n, d, xb, labels, k, metric, 1);
    EXPECT_GT(whole.scores[0], 0.0f);
    // rows split in 3 and 7 parts
    for (size_t parts : {3, 7}) {
      const Result r = search(q, n, d, xb, labels, k, metric, parts);
      EXPECT_EQ(r.labels, whole.labels) << parts << " parts";
      EXPECT_EQ(r.scores, whole.scores) << parts << " parts";
    }
    // each query alone
    for (size_t i = 0; i < n; ++i) {
      const std::vector<float> one(q.begin() + i * d, q.begin() + (i + 1) * d);
      const Result r = search(one, 1, d, xb, labels, k, metric, 1);
      EXPECT_EQ(r.labels, std::vector<int64_t>(whole.labels.begin() + i * k, whole.labels.begin() + (i + 1) * k));
      EXPECT_EQ(r.scores, std::vector<float>(whole.scores.begin() + i * k, whole.scores.begin() + (i + 1) * k));
    }
    // the rows reversed (another index layout, same labels)
    std::vector<float> rev(m * d);
    std::vector<int64_t> rlabels(m);
    for (size_t i = 0; i < m; ++i) {
      std::copy(xb.begin() + (m - 1 - i) * d, xb.begin() + (m - i) * d, rev.begin() + i * d);
      rlabels[i] = labels[m - 1 - i];
    }
    const Result r = search(q, n, d, rev, rlabels, k, metric, 1);
    EXPECT_EQ(r.labels, whole.labels);
    EXPECT_EQ(r.scores, whole.scores);
  }
}

TEST(FlatSearch, TiesRankByLabelFewerRowsThanKAndNaN) {
  const size_t d = 4;
  // four identical rows (one tie) with labels 9, 3, 7, 5, and a row of NaN
  std::vector<float> xb = {1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3, 4, NAN, 0, 0, 0};
  std::vector<int64_t> labels = {9, 3, 7, 5, 1};
  const std::vector<float> q = {1, 1, 1, 1};
  const Result r = search(q, 1, d, xb, labels, 6, FlatMetric::InnerProduct, 1);
  EXPECT_EQ(r.labels, (std::vector<int64_t>{3, 5, 7, 9, -1, -1}));
  EXPECT_EQ(r.scores, (std::vector<float>{10, 10, 10, 10, 0, 0}));
  const Result two = search(q, 1, d, xb, labels, 2, FlatMetric::InnerProduct, 2);
  EXPECT_EQ(two.labels, (std::vector<int64_t>{3, 5}));
  // no labels: the positions are the labels; a position list picks and orders the rows scanned
  TopK top(3, FlatMetric::InnerProduct);
  const std::vector<int64_t> picked = {4, 2, 0};
  flat_scan(q.data(), 1, d, xb.data(), picked.data(), picked.size(), nullptr, FlatMetric::InnerProduct, &top);
  std::vector<int64_t> got(3);
  std::vector<float> s(3);
  top.write(got.data(), s.data());
  EXPECT_EQ(got, (std::vector<int64_t>{0, 2, -1}));
}
