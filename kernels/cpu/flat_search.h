// Exact (brute-force) k-nearest search over float vectors, the kernel behind loom's Flat indexes.
//
// Every score is computed in one fixed order, whatever the batch of queries, the vector's place
// in the index, the thread split or the CPU (AVX2 or not): eight lanes, lane j summing elements
// j, j+8, j+16, ... with one fma each (inner product: q*x; L2: (q-x)^2), then the lanes added as
// ((0+4)+(2+6)) + ((1+5)+(3+7)). So a vector scores the same bits in an index built at once, one
// updated record by record, a merge of shards, or each shard searched apart. flat_score is that
// order for one pair; the tests hold the tiled search to it bit for bit.
//
// Ties rank by label, smaller first, so the k kept are one set however the rows are split.
#pragma once
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace loom::kernels {

enum class FlatMetric { InnerProduct, L2 };  // larger is better for the first, smaller for the second

float flat_score(const float* q, const float* x, size_t d, FlatMetric metric);

// The k best (score, label) pairs of one query: a heap whose top is the worst kept.
class TopK {
 public:
  TopK(size_t k, FlatMetric metric) : k_(k), larger_(metric == FlatMetric::InnerProduct) { h_.reserve(k); }
  // Offers one candidate (NaN scores are never kept).
  void push(float score, int64_t label);
  // Offers every pair another TopK kept (the union's k best; the same whatever the split).
  void merge(const TopK& other);
  // Best first; `labels`/`scores` get k entries, -1 / 0 past the number kept.
  void write(int64_t* labels, float* scores) const;
  size_t size() const { return h_.size(); }

 private:
  bool better(const std::pair<float, int64_t>& a, const std::pair<float, int64_t>& b) const {
    if (a.first != b.first) return larger_ ? a.first > b.first : a.first < b.first;
    return a.second < b.second;
  }
  size_t k_;
  bool larger_;
  std::vector<std::pair<float, int64_t>> h_;
};

// Scores queries [0, n) (n x d, row-major) against the rows xs[0..m) (each d floats) and offers
// each to tops[query] with labels[row]. Runs on the calling thread; callers split queries or
// rows across threads (a TopK per query per thread, merged after a row split).
void flat_scan(const float* queries, size_t n, size_t d, const float* const* xs, const int64_t* labels, size_t m,
               FlatMetric metric, TopK* tops);

}  // namespace loom::kernels
