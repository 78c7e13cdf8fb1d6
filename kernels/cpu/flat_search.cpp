#include "kernels/cpu/flat_search.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <memory>
#include <new>
#include <utility>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#endif

namespace loom::kernels {

namespace {

// The queries are packed in panels of kNR (step k of a panel holds its queries' k-th values,
// padded with zeros); the rows are read where they lie. A tile of MR rows x kNR queries keeps
// 2 x MR vector accumulators, one lane per (row, query) pair, and each step broadcasts one value
// of each row against the panel: every pair is summed in order over the d steps. AVX-512 CPUs
// run the AVX2 tiles too (an AVX-512 variant could not be tested on the machines at hand; the
// results would be the same bits).
#if defined(__AVX2__) && defined(__FMA__)
using V = __m256;
constexpr size_t kW = 8;
inline V zero() { return _mm256_setzero_ps(); }
inline V load(const float* p) { return _mm256_load_ps(p); }
inline V bcast(const float* p) { return _mm256_broadcast_ss(p); }
inline V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
inline V sub(V a, V b) { return _mm256_sub_ps(a, b); }
inline void store(float* p, V v) { _mm256_storeu_ps(p, v); }
constexpr int kMRip = 6, kMRl2 = 5;  // of 16 registers
#else
constexpr size_t kW = 8;
struct V {
  float v[kW];
};
inline V zero() { return V{}; }
inline V load(const float* p) {
  V r;
  for (size_t j = 0; j < kW; ++j) r.v[j] = p[j];
  return r;
}
inline V bcast(const float* p) {
  V r;
  for (size_t j = 0; j < kW; ++j) r.v[j] = *p;
  return r;
}
inline V fma(V a, V b, V c) {
  for (size_t j = 0; j < kW; ++j) c.v[j] = std::fma(a.v[j], b.v[j], c.v[j]);
  return c;
}
inline V sub(V a, V b) {
  for (size_t j = 0; j < kW; ++j) a.v[j] -= b.v[j];
  return a;
}
inline void store(float* p, V v) {
  for (size_t j = 0; j < kW; ++j) p[j] = v.v[j];
}
constexpr int kMRip = 4, kMRl2 = 4;
#endif
constexpr size_t kNR = 2 * kW;  // queries per panel

template <FlatMetric M>
constexpr int kMR = M == FlatMetric::InnerProduct ? kMRip : kMRl2;

// out[r * kNR + j] = the score of row x[r] against the panel's query j. The loops over rows are
// unrolled by pragma, or GCC keeps the accumulators in memory (half the speed).
template <FlatMetric M, int MR>
void tile(const float* const* x, const float* panel, size_t d, float* out) {
  V c0[MR], c1[MR];
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) {
    c0[r] = zero();
    c1[r] = zero();
  }
  for (size_t k = 0; k < d; ++k) {
    const V q0 = load(panel + k * kNR), q1 = load(panel + k * kNR + kW);
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      const V a = bcast(x[r] + k);
      if constexpr (M == FlatMetric::InnerProduct) {
        c0[r] = fma(a, q0, c0[r]);
        c1[r] = fma(a, q1, c1[r]);
      } else {
        const V t0 = sub(a, q0);
        c0[r] = fma(t0, t0, c0[r]);
        const V t1 = sub(a, q1);
        c1[r] = fma(t1, t1, c1[r]);
      }
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) {
    store(out + r * kNR, c0[r]);
    store(out + r * kNR + kW, c1[r]);
  }
}

using TileFn = void (*)(const float* const*, const float*, size_t, float*);
template <FlatMetric M, size_t... R>
constexpr std::array<TileFn, sizeof...(R)> tiles(std::index_sequence<R...>) {
  return {&tile<M, static_cast<int>(R + 1)>...};
}
template <FlatMetric M>
constexpr auto kTiles = tiles<M>(std::make_index_sequence<kMR<M>>{});

struct FreeDeleter {
  void operator()(float* p) const { std::free(p); }
};

template <FlatMetric M>
void scan(const float* queries, size_t n, size_t d, const float* xb, const int64_t* rows, size_t m, const int64_t* labels,
          TopK* tops) {
  constexpr size_t MR = kMR<M>;
  const size_t panels = (n + kNR - 1) / kNR, floats = std::max<size_t>(1, panels * d * kNR);
  std::unique_ptr<float, FreeDeleter> buf(static_cast<float*>(std::aligned_alloc(64, (floats * 4 + 63) / 64 * 64)));
  if (!buf) throw std::bad_alloc();
  float* packed = buf.get();
  std::fill(packed, packed + floats, 0.0f);
  for (size_t i = 0; i < n; ++i)
    for (size_t k = 0; k < d; ++k) packed[(i / kNR * d + k) * kNR + i % kNR] = queries[i * d + k];
  // rows per block: about 128 KB of them, read again from L2 for every panel
  const size_t block = std::max(MR, (32768 / std::max<size_t>(d, 1)) / MR * MR);
  alignas(64) float out[MR * kNR];
  const float* x[MR];
  int64_t label[MR];
  for (size_t r0 = 0; r0 < m; r0 += block) {
    const size_t r1 = std::min(m, r0 + block);
    for (size_t p = 0; p < panels; ++p) {
      const size_t nq = std::min(kNR, n - p * kNR);
      TopK* t = tops + p * kNR;
      for (size_t c0 = r0; c0 < r1; c0 += MR) {
        const size_t nr = std::min(MR, r1 - c0);
        for (size_t r = 0; r < nr; ++r) {
          const size_t pos = rows ? size_t(rows[c0 + r]) : c0 + r;
          x[r] = xb + pos * d;
          label[r] = labels ? labels[pos] : int64_t(pos);
        }
        kTiles<M>[nr - 1](x, packed + p * d * kNR, d, out);
        for (size_t r = 0; r < nr; ++r)
          for (size_t j = 0; j < nq; ++j) t[j].push(out[r * kNR + j], label[r]);
      }
    }
  }
}

}  // namespace

float flat_score(const float* q, const float* x, size_t d, FlatMetric metric) {
  float s = 0.0f;
  for (size_t k = 0; k < d; ++k) {
    if (metric == FlatMetric::InnerProduct) {
      s = std::fma(x[k], q[k], s);
    } else {
      const float t = x[k] - q[k];
      s = std::fma(t, t, s);
    }
  }
  return s;
}

void TopK::insert(float score, int64_t label) {
  if (k_ == 0 || std::isnan(score)) return;
  const std::pair<float, int64_t> e{score, label};
  auto worse = [this](const auto& a, const auto& b) { return better(a, b); };  // heap top: the worst kept
  if (h_.size() < k_) {
    h_.push_back(e);
    std::push_heap(h_.begin(), h_.end(), worse);
  } else if (better(e, h_.front())) {
    std::pop_heap(h_.begin(), h_.end(), worse);
    h_.back() = e;
    std::push_heap(h_.begin(), h_.end(), worse);
  }
}

void TopK::merge(const TopK& other) {
  for (const auto& [s, l] : other.h_) push(s, l);
}

void TopK::write(int64_t* labels, float* scores) const {
  auto sorted = h_;
  std::sort(sorted.begin(), sorted.end(), [this](const auto& a, const auto& b) { return better(a, b); });
  for (size_t i = 0; i < k_; ++i) {
    labels[i] = i < sorted.size() ? sorted[i].second : -1;
    scores[i] = i < sorted.size() ? sorted[i].first : 0.0f;
  }
}

void flat_scan(const float* queries, size_t n, size_t d, const float* xb, const int64_t* rows, size_t m,
               const int64_t* labels, FlatMetric metric, TopK* tops) {
  if (n == 0 || m == 0) return;
  if (metric == FlatMetric::InnerProduct)
    scan<FlatMetric::InnerProduct>(queries, n, d, xb, rows, m, labels, tops);
  else
    scan<FlatMetric::L2>(queries, n, d, xb, rows, m, labels, tops);
}

}  // namespace loom::kernels
