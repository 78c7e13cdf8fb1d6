#include "kernels/cpu/flat_search.h"

#include <algorithm>
#include <array>
#include <cmath>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#endif

namespace loom::kernels {

namespace {

// Eight float lanes: AVX2 registers, or a plain array with the same fma-per-lane arithmetic.
#if defined(__AVX2__) && defined(__FMA__)
using V = __m256;
inline V zero() { return _mm256_setzero_ps(); }
inline V load(const float* p) { return _mm256_loadu_ps(p); }
inline V load_first(const float* p, size_t n) {  // lanes at and past n read nothing and are 0
  const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_maskload_ps(p, _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), idx));
}
inline V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
inline V sub(V a, V b) { return _mm256_sub_ps(a, b); }
inline float hsum(V v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));  // j + (j+4)
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));                                          // (0+4)+(2+6), (1+5)+(3+7)
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
#else
struct V {
  float v[8];
};
inline V zero() { return V{}; }
inline V load(const float* p) {
  V r;
  for (int j = 0; j < 8; ++j) r.v[j] = p[j];
  return r;
}
inline V load_first(const float* p, size_t n) {
  V r{};
  for (size_t j = 0; j < n && j < 8; ++j) r.v[j] = p[j];
  return r;
}
inline V fma(V a, V b, V c) {
  for (int j = 0; j < 8; ++j) c.v[j] = std::fma(a.v[j], b.v[j], c.v[j]);
  return c;
}
inline V sub(V a, V b) {
  for (int j = 0; j < 8; ++j) a.v[j] -= b.v[j];
  return a;
}
inline float hsum(V v) {
  const float s0 = v.v[0] + v.v[4], s1 = v.v[1] + v.v[5], s2 = v.v[2] + v.v[6], s3 = v.v[3] + v.v[7];
  return (s0 + s2) + (s1 + s3);
}
#endif

template <FlatMetric M>
inline V step(V q, V x, V acc) {
  if constexpr (M == FlatMetric::InnerProduct) {
    return fma(q, x, acc);
  } else {
    const V t = sub(q, x);
    return fma(t, t, acc);
  }
}

// out[r * C + c] = score of query q[r] against row x[c]: R x C accumulators, each query and row
// chunk loaded once per tile step.
template <FlatMetric M, int R, int C>
void tile(const float* const* q, const float* const* x, size_t d, float* out) {
  V acc[R][C];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) acc[r][c] = zero();
  size_t i = 0;
  for (; i + 8 <= d; i += 8) {
    V xv[C];
    for (int c = 0; c < C; ++c) xv[c] = load(x[c] + i);
    for (int r = 0; r < R; ++r) {
      const V qv = load(q[r] + i);
      for (int c = 0; c < C; ++c) acc[r][c] = step<M>(qv, xv[c], acc[r][c]);
    }
  }
  if (i < d) {
    V xv[C];
    for (int c = 0; c < C; ++c) xv[c] = load_first(x[c] + i, d - i);
    for (int r = 0; r < R; ++r) {
      const V qv = load_first(q[r] + i, d - i);
      for (int c = 0; c < C; ++c) acc[r][c] = step<M>(qv, xv[c], acc[r][c]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) out[r * C + c] = hsum(acc[r][c]);
}

// Tile shapes: 4 queries x 3 rows for inner products (12 accumulators), 4 x 2 for L2 (its
// difference takes a register too).
constexpr int kR = 4;
template <FlatMetric M>
constexpr int kC = M == FlatMetric::InnerProduct ? 3 : 2;

using TileFn = void (*)(const float* const*, const float* const*, size_t, float*);
template <FlatMetric M, int R, size_t... C>
constexpr std::array<TileFn, sizeof...(C)> tiles_row(std::index_sequence<C...>) {
  return {&tile<M, R, static_cast<int>(C + 1)>...};
}
template <FlatMetric M, size_t... R>
constexpr std::array<std::array<TileFn, kC<M>>, sizeof...(R)> tiles(std::index_sequence<R...>) {
  return {tiles_row<M, static_cast<int>(R + 1)>(std::make_index_sequence<kC<M>>{})...};
}
template <FlatMetric M>
constexpr auto kTiles = tiles<M>(std::make_index_sequence<kR>{});

template <FlatMetric M>
void scan(const float* queries, size_t n, size_t d, const float* const* xs, const int64_t* labels, size_t m, TopK* tops) {
  constexpr size_t C = kC<M>;
  // rows per block: about 128 KB of them, reused from L2 by every query tile
  const size_t block = std::max(C, (32768 / std::max<size_t>(d, 1)) / C * C);
  float out[kR * C];
  const float* qp[kR];
  for (size_t r0 = 0; r0 < m; r0 += block) {
    const size_t r1 = std::min(m, r0 + block);
    for (size_t q0 = 0; q0 < n; q0 += kR) {
      const size_t nr = std::min<size_t>(kR, n - q0);
      for (size_t r = 0; r < nr; ++r) qp[r] = queries + (q0 + r) * d;
      for (size_t c0 = r0; c0 < r1; c0 += C) {
        const size_t nc = std::min(C, r1 - c0);
        kTiles<M>[nr - 1][nc - 1](qp, xs + c0, d, out);
        for (size_t r = 0; r < nr; ++r)
          for (size_t c = 0; c < nc; ++c) tops[q0 + r].push(out[r * nc + c], labels[c0 + c]);
      }
    }
  }
}

}  // namespace

float flat_score(const float* q, const float* x, size_t d, FlatMetric metric) {
  float s;
  if (metric == FlatMetric::InnerProduct)
    tile<FlatMetric::InnerProduct, 1, 1>(&q, &x, d, &s);
  else
    tile<FlatMetric::L2, 1, 1>(&q, &x, d, &s);
  return s;
}

void TopK::push(float score, int64_t label) {
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

void flat_scan(const float* queries, size_t n, size_t d, const float* const* xs, const int64_t* labels, size_t m,
               FlatMetric metric, TopK* tops) {
  if (metric == FlatMetric::InnerProduct)
    scan<FlatMetric::InnerProduct>(queries, n, d, xs, labels, m, tops);
  else
    scan<FlatMetric::L2>(queries, n, d, xs, labels, m, tops);
}

}  // namespace loom::kernels
