// The decoder against llama.cpp (tests/reference/gen_generate_goldens.py): logits at every
// position of 256-token texts (top 16 and log-sum-exp), and its own consistency (a batch gives
// what token-by-token decoding gives). Skips with a reason when a model file is absent.
//
// Status: the issue asks for the argmax identical except near ties and identical greedy
// continuations; loom is not there yet (SmolLM2: mean |diff| of the top-16 logits ~0.17, argmax
// differs at ~3% of positions). The bounds below guard against regressions until it is; they
// are not the bounds.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>

#include "loom/core/error.h"
#include "loom/gguf/gguf.h"
#include "loom/io/jsonl.h"
#include "loom/io/stream.h"
#include "loom/model/decoder.h"
#include "tokenizer_golden.h"

using namespace loom;
using tokenizer_golden::int_array;
namespace fs = std::filesystem;

namespace {

const std::string kGolden = std::string(LOOM_SOURCE_DIR) + "/tests/reference/golden/generate/";

fs::path model_path(const std::string& name) {
  const char* env = std::getenv("LOOM_MODELS");
  const char* home = std::getenv("HOME");
  fs::path root = env && *env ? fs::path(env) : fs::path(home ? home : ".") / ".cache/loom/models";
  return root / (name + ".gguf");
}

std::vector<double> doubles(std::string_view raw) {
  std::vector<double> out;
  std::string num;
  for (char ch : raw) {
    if ((ch >= '0' && ch <= '9') || ch == '-' || ch == '.' || ch == 'e' || ch == 'E' || ch == '+') {
      num += ch;
    } else if (!num.empty()) {
      out.push_back(std::stod(num));
      num.clear();
    }
  }
  return out;
}

struct Stats {
  double max_top = 0, sum_top = 0, max_lse = 0;
  size_t n_top = 0, positions = 0, argmax_differs = 0, argmax_near_tie = 0;
};

void compare_logits(const std::string& name, size_t max_texts, Stats& st) {
  fs::path mp = model_path(name);
  std::string gold = kGolden + name + "-logits.jsonl.zst";
  if (!fs::exists(mp)) GTEST_SKIP() << "no " << mp;
  if (!fs::exists(gold)) GTEST_SKIP() << "no " << gold;
  auto file = std::make_shared<gguf::File>(gguf::File::open(mp.string()));
  model::Decoder m(file, {.n_ctx = 512, .threads = 2});
  const size_t V = m.config().n_vocab;
  auto in = io::Input::open(gold);
  io::JsonlReader reader(*in);
  io::Record r;
  size_t texts = 0;
  while (texts < max_texts && reader.next(r)) {
    std::vector<int64_t> toks64 = int_array(*r.raw("tokens"));
    std::vector<int32_t> toks(toks64.begin(), toks64.end());
    std::vector<float> logits = m.forward(toks, 0, true);
    ASSERT_EQ(logits.size(), toks.size() * V);
    std::vector<double> top = doubles(*r.raw("top")), lse = doubles(*r.raw("lse"));
    const size_t k = 16;
    ASSERT_EQ(top.size(), toks.size() * k * 2);
    for (size_t p = 0; p < toks.size(); ++p) {
      const float* lp = &logits[p * V];
      for (size_t j = 0; j < k; ++j) {
        size_t id = static_cast<size_t>(top[(p * k + j) * 2]);
        double want = top[(p * k + j) * 2 + 1];
        double d = std::fabs(lp[id] - want);
        st.max_top = std::max(st.max_top, d);
        st.sum_top += d;
        ++st.n_top;
      }
      double mx = -INFINITY;
      for (size_t i = 0; i < V; ++i) mx = std::max(mx, double(lp[i]));
      double s = 0;
      for (size_t i = 0; i < V; ++i) s += std::exp(double(lp[i]) - mx);
      st.max_lse = std::max(st.max_lse, std::fabs(mx + std::log(s) - lse[p]));
      size_t arg = static_cast<size_t>(std::max_element(lp, lp + V) - lp);
      size_t want_arg = static_cast<size_t>(top[p * k * 2]);
      if (arg != want_arg) {
        double gap = top[p * k * 2 + 1] - top[(p * k + 1) * 2 + 1];
        (gap < 1e-3 ? st.argmax_near_tie : st.argmax_differs)++;
      }
      ++st.positions;
    }
    ++texts;
  }
  std::printf("[   info   ] %s: %zu texts, %zu positions: top-16 logits max |diff| %.5f mean %.6f; lse max |diff| %.5f; "
              "argmax differs at %zu (+%zu near ties)\n",
              name.c_str(), texts, st.positions, st.max_top, st.sum_top / double(st.n_top), st.max_lse, st.argmax_differs,
              st.argmax_near_tie);
}

}  // namespace

size_t texts_to_check() {
  const char* env = std::getenv("LOOM_DECODER_TEXTS");  // all 20: LOOM_DECODER_TEXTS=20
  return env ? static_cast<size_t>(std::atoi(env)) : 3;
}

TEST(DecoderParity, SmolLM2LogitsNearLlamaCpp) {
  Stats st;
  compare_logits("smollm2", texts_to_check(), st);
  if (st.positions == 0) return;
  EXPECT_LT(st.sum_top / double(st.n_top), 0.25);
  EXPECT_LT(double(st.argmax_differs), 0.06 * double(st.positions));
}

TEST(DecoderParity, Gemma3LogitsNearLlamaCpp) {
  Stats st;
  compare_logits("gemma3", texts_to_check(), st);
  if (st.positions == 0) return;
  EXPECT_LT(st.sum_top / double(st.n_top), 0.25);
  EXPECT_LT(double(st.argmax_differs), 0.06 * double(st.positions));
}

// Prompt processing in one batch and decoding one token at a time give the same logits, and bad
// calls are clear errors.
TEST(Decoder, BatchEqualsIncrementalAndErrors) {
  fs::path mp = model_path("smollm2");
  if (!fs::exists(mp)) GTEST_SKIP() << "no " << mp;
  auto file = std::make_shared<gguf::File>(gguf::File::open(mp.string()));
  std::vector<int32_t> toks = {504, 3458, 282, 4649, 314, 2};
  model::Decoder a(file, {.n_ctx = 16, .threads = 2}), b(file, {.n_ctx = 16, .threads = 1});
  std::vector<float> all = a.forward(toks, 0, true);
  const size_t V = a.config().n_vocab;
  for (size_t t = 0; t < toks.size(); ++t) {
    std::vector<float> one = b.forward({toks[t]}, static_cast<uint32_t>(t));
    ASSERT_EQ(one.size(), V);
    EXPECT_TRUE(std::equal(one.begin(), one.end(), all.begin() + static_cast<long>(t * V))) << "position " << t;
  }
  EXPECT_THROW(a.forward(std::vector<int32_t>(17, 1), 0), Error);            // past the context
  EXPECT_THROW(a.forward({static_cast<int32_t>(V)}, 0), Error);              // not a token
}
