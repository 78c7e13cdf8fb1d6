// Float kernels of the encoder (kernels/cpu/encoder_ops.h), each against its plain
// double-precision reference, on shapes that exercise the vector bodies and the scalar tails:
//   linear_f32       relative to the sum of |terms| (the float error bound of a K-term dot)
//   gelu_erf_f32     |err| <= 2e-7 * (1 + |x|) against 0.5 x (1 + erf(x / sqrt 2)) in double,
//                    over [-12, 12] densely and at the branch points (|x / sqrt 2| = 0.5, 6)
//   layer_norm_f32   1e-5 absolute (values of unit variance)
//   softmax_f32      1e-6 relative, rows summing to 1
//   attention_head   1e-5 absolute against softmax(q k^T / sqrt d) v in double
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "kernels/cpu/encoder_ops.h"

using namespace loom::kernels;

namespace {

std::vector<float> randn(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 g(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = d(g);
  return v;
}

TEST(EncoderOps, LinearMatchesReference) {
  blas_single_threaded();
  for (auto [M, K, N] : {std::tuple<size_t, size_t, size_t>{1, 384, 384}, {7, 33, 5}, {64, 384, 1536}, {3, 1536, 384}}) {
    auto x = randn(M * (K + 3), 1), W = randn(N * K, 2, 0.05f), b = randn(N, 3);
    std::vector<float> y(M * (N + 2), 7.0f), r(M * (N + 2), 7.0f);
    linear_f32(x.data(), K + 3, M, K, W.data(), N, b.data(), y.data(), N + 2);
    linear_f32_ref(x.data(), K + 3, M, K, W.data(), N, b.data(), r.data(), N + 2);
    for (size_t i = 0; i < M; ++i)
      for (size_t j = 0; j < N; ++j) {
        double mag = std::fabs(b[j]);
        for (size_t k = 0; k < K; ++k) mag += std::fabs(x[i * (K + 3) + k] * W[j * K + k]);
        EXPECT_NEAR(y[i * (N + 2) + j], r[i * (N + 2) + j], 1e-6 * mag + 1e-7) << M << "x" << K << "x" << N << " at " << i << "," << j;
      }
    for (size_t i = 0; i < M; ++i) EXPECT_EQ(y[i * (N + 2) + N], 7.0f) << "wrote past the row";
    // no bias
    linear_f32(x.data(), K + 3, M, K, W.data(), N, nullptr, y.data(), N + 2);
    linear_f32_ref(x.data(), K + 3, M, K, W.data(), N, nullptr, r.data(), N + 2);
    EXPECT_NEAR(y[0], r[0], 1e-4);
  }
}

TEST(EncoderOps, PackedLinearMatchesReference) {
  // shapes with row tails (not multiples of the 12-row tile or the 96-row block), column tails
  // (not multiples of the 32-column panel), K over the 384 rows of one panel pass, and M = 1
  for (auto [M, K, N] : {std::tuple<size_t, size_t, size_t>{1, 384, 384}, {13, 33, 5}, {97, 384, 1536}, {25, 1536, 384},
                         {7, 800, 37}, {3, 1, 1}}) {
    auto x = randn(M * (K + 3), 21), W = randn(N * K, 22, 0.05f), b = randn(N, 23);
    const PackedWeights p = pack_weights(W.data(), N, K);
    for (bool gelu : {false, true})
      for (const float* bias : {static_cast<const float*>(b.data()), static_cast<const float*>(nullptr)}) {
        std::vector<float> y(M * (N + 2), 7.0f), r(M * (N + 2), 7.0f);
        linear_packed_f32(x.data(), K + 3, M, p, bias, y.data(), N + 2, gelu);
        linear_f32_ref(x.data(), K + 3, M, K, W.data(), N, bias, r.data(), N + 2);
        for (size_t i = 0; i < M; ++i) {
          for (size_t j = 0; j < N; ++j) {
            double mag = bias ? std::fabs(b[j]) : 0.0;
            for (size_t k = 0; k < K; ++k) mag += std::fabs(x[i * (K + 3) + k] * W[j * K + k]);
            const float want = gelu ? gelu_erf_ref(r[i * (N + 2) + j]) : r[i * (N + 2) + j];
            ASSERT_NEAR(y[i * (N + 2) + j], want, 1e-6 * mag + 2e-7 * (1 + std::fabs(want)))
                << M << "x" << K << "x" << N << " gelu " << gelu << " at " << i << "," << j;
          }
          EXPECT_EQ(y[i * (N + 2) + N], 7.0f) << "wrote past the row";
          EXPECT_EQ(y[i * (N + 2) + N + 1], 7.0f) << "wrote past the row";
        }
      }
  }
}

// The packed kernel's order is part of its contract: each element is its bias, then one fma per k
// in order. So a row's output is bit-identical alone or in any batch, and the same on AVX2 and
// AVX-512 machines (what makes embeddings and rerank scores independent of --batch-size).
TEST(EncoderOps, PackedLinearIsSequentialFmaInAnyBatch) {
#if !(defined(__AVX2__) && defined(__FMA__))
  GTEST_SKIP() << "no AVX2/FMA: the packed kernel falls back to BLAS, whose order depends on the shape";
#else
  for (auto [M, K, N] : {std::tuple<size_t, size_t, size_t>{29, 900, 41}, {101, 384, 70}, {5, 17, 3}}) {
    auto x = randn(M * K, 31), W = randn(N * K, 32, 0.05f), b = randn(N, 33);
    const PackedWeights p = pack_weights(W.data(), N, K);
    std::vector<float> all(M * N);
    linear_packed_f32(x.data(), K, M, p, b.data(), all.data(), N);
    for (size_t i = 0; i < M; ++i) {
      std::vector<float> one(N);
      linear_packed_f32(x.data() + i * K, K, 1, p, b.data(), one.data(), N);
      for (size_t j = 0; j < N; ++j) {
        float c = b[j];
        for (size_t k = 0; k < K; ++k) c = std::fma(x[i * K + k], W[j * K + k], c);
        ASSERT_EQ(all[i * N + j], c) << M << "x" << K << "x" << N << " at " << i << "," << j;
        ASSERT_EQ(one[j], c) << "row " << i << " alone, column " << j;
      }
    }
  }
#endif
}

TEST(EncoderOps, GeluMatchesErfForm) {
  std::vector<float> xs;
  for (float x = -12.0f; x <= 12.0f; x += 0.00137f) xs.push_back(x);
  for (float b : {0.5f * std::sqrt(2.0f), 6.0f * std::sqrt(2.0f)})
    for (float d : {-1e-6f, 0.0f, 1e-6f}) xs.push_back(b + d), xs.push_back(-b - d);
  xs.push_back(0.0f), xs.push_back(-0.0f), xs.push_back(1e-30f), xs.push_back(-40.0f), xs.push_back(40.0f);
  std::vector<float> y = xs;
  gelu_erf_f32(y.data(), y.size());
  double worst = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    const double ref = 0.5 * xs[i] * (1.0 + std::erf(xs[i] / std::sqrt(2.0)));
    const double err = std::fabs(y[i] - ref) / (1.0 + std::fabs(xs[i]));
    worst = std::max(worst, err);
    ASSERT_LE(err, 2e-7) << "x = " << xs[i] << " gave " << y[i] << ", reference " << ref;
  }
  // the vector body and the scalar tail agree with the same bound (odd sizes: both paths)
  std::vector<float> odd(xs.begin(), xs.begin() + 13);
  gelu_erf_f32(odd.data(), odd.size());
  for (size_t i = 0; i < odd.size(); ++i) EXPECT_NEAR(odd[i], gelu_erf_ref(xs[i]), 2e-7 * (1 + std::fabs(xs[i])));
  std::printf("gelu: worst |err| / (1 + |x|) = %.3g over %zu points\n", worst, xs.size());
}

TEST(EncoderOps, LayerNormMatchesReference) {
  for (size_t n : {384u, 13u, 1024u, 7u}) {
    auto x = randn(n, 4, 3.0f), add = randn(n, 5), w = randn(n, 6), b = randn(n, 7);
    for (float& v : x) v += 10.0f;  // an offset the mean must remove
    auto y = x, r = x;
    layer_norm_f32(y.data(), n, add.data(), w.data(), b.data(), 1e-12f);
    layer_norm_f32_ref(r.data(), n, add.data(), w.data(), b.data(), 1e-12f);
    for (size_t i = 0; i < n; ++i) EXPECT_NEAR(y[i], r[i], 1e-5 * (1 + std::fabs(r[i]))) << n << " at " << i;
    y = x, r = x;
    layer_norm_f32(y.data(), n, nullptr, w.data(), b.data(), 1e-5f);
    layer_norm_f32_ref(r.data(), n, nullptr, w.data(), b.data(), 1e-5f);
    for (size_t i = 0; i < n; ++i) EXPECT_NEAR(y[i], r[i], 1e-5 * (1 + std::fabs(r[i])));
  }
}

TEST(EncoderOps, SoftmaxMatchesReference) {
  for (size_t n : {1u, 5u, 8u, 17u, 256u}) {
    auto x = randn(n, 8, 4.0f);
    x[0] = 80.0f;  // a large value: the maximum must be subtracted
    auto y = x, r = x;
    softmax_f32(y.data(), n);
    softmax_f32_ref(r.data(), n);
    double sum = 0;
    for (size_t i = 0; i < n; ++i) {
      EXPECT_NEAR(y[i], r[i], 1e-6 * r[i] + 1e-30) << n << " at " << i;
      sum += y[i];
    }
    EXPECT_NEAR(sum, 1.0, 1e-6);
  }
}

TEST(EncoderOps, AttentionHeadMatchesReference) {
  for (size_t L : {1u, 2u, 9u, 64u, 200u}) {
    const size_t dh = 32, ld = 3 * 384;
    auto qkv = randn(L * ld, 9 + static_cast<uint32_t>(L));
    std::vector<float> out(L * 384, 0.0f), ref(L * 384, 0.0f), scores(L * L);
    const float scale = 1.0f / std::sqrt(32.0f);
    attention_head_f32(qkv.data(), qkv.data() + 384, qkv.data() + 768, ld, L, dh, scale, out.data(), 384, scores.data());
    attention_head_f32_ref(qkv.data(), qkv.data() + 384, qkv.data() + 768, ld, L, dh, scale, ref.data(), 384);
    for (size_t i = 0; i < L; ++i)
      for (size_t c = 0; c < 384; ++c) ASSERT_NEAR(out[i * 384 + c], ref[i * 384 + c], 1e-5) << "L " << L << " row " << i << " col " << c;
  }
}

}  // namespace
