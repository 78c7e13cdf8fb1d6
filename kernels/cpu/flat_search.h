// Exact (brute-force) k-nearest search over float vectors, the kernel behind loom's Flat indexes.
//
// Every score is computed in one fixed order, whatever the batch of queries, the vector's place
// in the index, the thread split or the CPU (AVX-512, AVX2 or neither): one fused multiply-add
// per dimension, in order (inner product: x*q; L2: (x-q)^2). So a vector scores the same bits in
// an index built at once, one updated record by record, a merge of shards, or each shard
// searched apart. flat_score is that order for one pair; the tests hold the tiled scan to it bit
// for bit. (The tiles vectorize across queries, never within one pair's sum.)
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
  // Offers one candidate (NaN scores are never kept). Inline: most candidates are turned away by
  // one comparison with the worst kept.
  void push(float score, int64_t label) {
    if (h_.size() == k_ && k_ > 0) {
      const auto& w = h_.front();
      if (larger_ ? !(score >= w.first) : !(score <= w.first)) return;  // worse, or NaN
      if (score == w.first && label > w.second) return;
    }
    insert(score, label);
  }
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
  void insert(float score, int64_t label);
  size_t k_;
  bool larger_;
  std::vector<std::pair<float, int64_t>> h_;
};

// Scores queries [0, n) (n x d, row-major) against m vectors of xb (each d floats, row-major)
// and offers each to tops[query]. The i-th vector scanned is position p = rows[i] (or i when
// rows is null), with label labels[p] (or p when labels is null). Runs on the calling thread;
// callers split queries or rows across threads (a TopK per query per thread, merged after a
// row split).
void flat_scan(const float* queries, size_t n, size_t d, const float* xb, const int64_t* rows, size_t m,
               const int64_t* labels, FlatMetric metric, TopK* tops);

}  // namespace loom::kernels
