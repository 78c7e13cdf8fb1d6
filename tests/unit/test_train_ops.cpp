// Every backward operation of kernels/cpu/train_ops against central finite differences of its
// forward (in the manner of ggml's test-backend-ops gradient mode): for random inputs x and a
// random upstream gradient dy, the backward's dx . e_i equals (L(x + h e_i) - L(x - h e_i)) / 2h
// with L = forward(x) . dy, for every input element.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>
#include <vector>

#include "kernels/cpu/train_ops.h"

namespace ops = loom::kernels::train;

namespace {

std::vector<float> randn(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = nd(rng);
  return v;
}

// checks analytic (the backward's gradient of L w.r.t. x) against finite differences of L
void check_fd(std::vector<float>& x, const std::function<double()>& L, const std::vector<float>& analytic, double tol,
              const char* what) {
  ASSERT_EQ(x.size(), analytic.size());
  double worst = 0, scale = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const float x0 = x[i], h = 1e-2f * std::max(1.0f, std::abs(x0));
    x[i] = x0 + h;
    const double lp = L();
    x[i] = x0 - h;
    const double lm = L();
    x[i] = x0;
    const double fd = (lp - lm) / (2.0 * h);
    worst = std::max(worst, std::abs(fd - analytic[i]));
    scale = std::max(scale, std::abs(fd));
  }
  EXPECT_LT(worst, tol * std::max(1.0, scale)) << what;
}

double dot(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += double(a[i]) * b[i];
  return s;
}

}  // namespace

TEST(TrainOps, RmsNorm) {
  const size_t n = 24;
  std::vector<float> x = randn(n, 1), w = randn(n, 2), dy = randn(n, 3), y(n), dx(n);
  const float r = ops::rms_norm_fwd(x.data(), w.data(), y.data(), n, 1e-5f);
  ops::rms_norm_bwd(x.data(), w.data(), r, dy.data(), dx.data(), n);
  check_fd(x, [&] { std::vector<float> t(n); ops::rms_norm_fwd(x.data(), w.data(), t.data(), n, 1e-5f); return dot(t, dy); }, dx,
           2e-3, "rms_norm");
}

TEST(TrainOps, Rope) {
  for (bool neox : {false, true}) {
    const size_t half = 8, n = 2 * half;
    std::vector<float> x = randn(n, 4), dy = randn(n, 5), cs(2 * half);
    for (size_t i = 0; i < half; ++i) {
      cs[2 * i] = std::cos(0.7f * float(i + 1));
      cs[2 * i + 1] = std::sin(0.7f * float(i + 1));
    }
    std::vector<float> dx = dy;
    ops::rope_bwd(dx.data(), cs.data(), half, neox);
    check_fd(x, [&] { std::vector<float> t = x; ops::rope_fwd(t.data(), cs.data(), half, neox); return dot(t, dy); }, dx, 1e-3,
             neox ? "rope neox" : "rope normal");
  }
}

TEST(TrainOps, Glu) {
  for (bool gelu : {false, true}) {
    const size_t n = 32;
    std::vector<float> g = randn(n, 6, 2.0f), u = randn(n, 7), da = randn(n, 8), dg(n), du(n);
    ops::glu_bwd(gelu, g.data(), u.data(), da.data(), dg.data(), du.data(), n);
    auto L = [&] { std::vector<float> a(n); ops::glu_fwd(gelu, g.data(), u.data(), a.data(), n); return dot(a, da); };
    check_fd(g, L, dg, 2e-3, gelu ? "gelu gate" : "silu gate");
    check_fd(u, L, du, 2e-3, gelu ? "gelu up" : "silu up");
  }
}

TEST(TrainOps, Attention) {
  for (size_t window : {size_t{0}, size_t{3}}) {
    const size_t T = 7, d = 8, dv = 6, ld = 10;  // strided rows
    std::vector<float> q = randn(T * ld, 9), k = randn(T * ld, 10), v = randn(T * ld, 11), dO = randn(T * dv, 12);
    const float scale = 0.4f;
    std::vector<float> o(T * dv), lse(T), scratch(2 * T * T), dq(T * ld, 0.0f), dk(T * ld, 0.0f), dvv(T * ld, 0.0f);
    ops::attention_fwd(T, d, dv, q.data(), ld, k.data(), ld, v.data(), ld, scale, window, o.data(), dv, lse.data(), scratch.data());
    ops::attention_bwd(T, d, dv, q.data(), ld, k.data(), ld, v.data(), ld, scale, window, lse.data(), dO.data(), dv, dq.data(), ld,
                       dk.data(), ld, dvv.data(), ld, scratch.data());
    auto L = [&] {
      std::vector<float> t(T * dv), l2(T), s2(T * T);
      ops::attention_fwd(T, d, dv, q.data(), ld, k.data(), ld, v.data(), ld, scale, window, t.data(), dv, l2.data(), s2.data());
      return dot(t, dO);
    };
    // the padding columns of the strided inputs have zero gradient, which the differences confirm
    for (size_t r = 0; r < T; ++r)
      for (size_t c = 0; c < ld; ++c) {
        if (c >= d) dq[r * ld + c] = dk[r * ld + c] = 0.0f;
        if (c >= dv) dvv[r * ld + c] = 0.0f;
      }
    check_fd(q, L, dq, 3e-3, "attention q");
    check_fd(k, L, dk, 3e-3, "attention k");
    check_fd(v, L, dvv, 3e-3, "attention v");
  }
}

TEST(TrainOps, LogSoftmaxTarget) {
  const size_t n = 50, target = 17;
  std::vector<float> z = randn(n, 13, 3.0f);
  std::vector<float> g = z;
  const float weight = -0.7f;  // the gradient of weight * (-log p)
  ops::log_softmax_target(g.data(), n, target, weight, true);
  check_fd(z, [&] { std::vector<float> t = z; return -weight * ops::log_softmax_target(t.data(), n, target, 1.0f, false); }, g, 2e-3,
           "cross-entropy");
}
