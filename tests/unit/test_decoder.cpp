// The decoder against llama.cpp (tests/reference/gen_generate_goldens.py): logits at every
// position of 256-token texts (top 16 and log-sum-exp), and its own consistency (a batch gives
// what token-by-token decoding gives). Skips with a reason when a model file is absent.
//
// Both default models are computed in llama.cpp's exact float order, so their logits are held to
// equality (up to the 6 significant digits the golden keeps) and their greedy continuations must
// be identical: SmolLM2 (Q4_1, Q8_0) and Gemma 3 (Q4_K, Q6_K, Q5_0, Q8_0). Tiny random-weight
// models of every architecture (tests/reference/gen_arch_goldens.py: llama with K quants and
// rope_freqs, llama with linear RoPE scaling, qwen2, qwen3, gemma3 with a sliding window) are
// held to llama.cpp's full logit vectors, in one batch and token by token.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <thread>

#include "loom/core/error.h"
#include "loom/gguf/gguf.h"
#include "loom/io/jsonl.h"
#include "loom/io/stream.h"
#include "loom/model/decoder.h"
#include "model_files.h"
#include "tokenizer_golden.h"

using namespace loom;
using tokenizer_golden::int_array;
namespace fs = std::filesystem;

namespace {

const std::string kGolden = std::string(LOOM_SOURCE_DIR) + "/tests/reference/golden/generate/";

fs::path model_path(const std::string& name) { return model_files::gguf(name); }

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
  if (!num.empty()) out.push_back(std::stod(num));
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

TEST(DecoderParity, SmolLM2LogitsEqualLlamaCpp) {
  Stats st;
  compare_logits("smollm2", texts_to_check(), st);
  if (st.positions == 0) return;
  EXPECT_LT(st.max_top, 1e-4);  // the golden's floats went through 6-digit JSON
  EXPECT_LT(st.max_lse, 1e-4);
  EXPECT_EQ(st.argmax_differs, 0u);
}

// Greedy continuations (128 tokens after a 64-token prompt) against llama.cpp's.
void compare_greedy(const std::string& name, size_t max_texts, size_t& identical, size_t& texts) {
  fs::path mp = model_path(name);
  std::string gold = kGolden + name + "-greedy.jsonl";
  if (!fs::exists(mp)) GTEST_SKIP() << "no " << mp;
  auto file = std::make_shared<gguf::File>(gguf::File::open(mp.string()));
  model::Decoder m(file, {.n_ctx = 512, .threads = 2});
  auto in = io::Input::open(gold);
  io::JsonlReader reader(*in);
  io::Record r;
  identical = texts = 0;
  while (texts < max_texts && reader.next(r)) {
    std::vector<int64_t> p64 = int_array(*r.raw("prompt")), want = int_array(*r.raw("greedy"));
    std::vector<int32_t> ids(p64.begin(), p64.end());
    std::vector<float> logits = m.forward(ids, 0);
    size_t same = 0;
    for (size_t i = 0; i < want.size(); ++i) {
      int32_t next = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
      if (next != want[i]) break;
      ++same;
      ids.push_back(next);
      if (i + 1 < want.size()) logits = m.forward({next}, static_cast<uint32_t>(ids.size() - 1));
    }
    std::printf("[   info   ] %s greedy text %zu: %zu of %zu tokens identical\n", name.c_str(), texts, same, want.size());
    identical += same == want.size();
    ++texts;
  }
}

TEST(DecoderParity, SmolLM2GreedyEqualsLlamaCpp) {
  size_t identical = 0, texts = 0;
  compare_greedy("smollm2", texts_to_check(), identical, texts);
  EXPECT_EQ(identical, texts);
}

// Gemma 3's Q4_K weights take llama.cpp's repacked gemv/gemm orders, its Q6_K ones the tiled
// mat-mul for 8 tokens or more; q is scaled before q·k.
TEST(DecoderParity, Gemma3LogitsEqualLlamaCpp) {
  Stats st;
  compare_logits("gemma3", texts_to_check(), st);
  if (st.positions == 0) return;
  EXPECT_LT(st.max_top, 1e-4);
  EXPECT_LT(st.max_lse, 1e-4);
  EXPECT_EQ(st.argmax_differs, 0u);
}

TEST(DecoderParity, Gemma3GreedyEqualsLlamaCpp) {
  size_t identical = 0, texts = 0;
  compare_greedy("gemma3", texts_to_check(), identical, texts);
  EXPECT_EQ(identical, texts);
}

// Log-likelihood of a 20480-token text, scored in chunks of 1024 tokens as llama.cpp scored it
// (each token after the first of its chunk, by log softmax in double): within 0.1%.
void compare_loglik(const std::string& name) {
  fs::path mp = model_path(name);
  std::string gold = kGolden + name + "-loglik.json";
  if (!fs::exists(mp)) GTEST_SKIP() << "no " << mp;
  auto in = io::Input::open(gold);
  io::JsonlReader reader(*in);
  io::Record r;
  ASSERT_TRUE(reader.next(r));
  std::vector<int64_t> ids = int_array(*r.raw("tokens"));
  const size_t chunk = static_cast<size_t>(doubles(*r.raw("chunk")).at(0));
  const double want = doubles(*r.raw("sum")).at(0);
  auto file = std::make_shared<gguf::File>(gguf::File::open(mp.string()));
  model::Decoder m(file, {.n_ctx = static_cast<uint32_t>(chunk), .threads = 2});
  const size_t V = m.config().n_vocab;
  double sum = 0;
  size_t count = 0;
  for (size_t c = 0; c + 1 < ids.size(); c += chunk) {
    const size_t len = std::min(chunk, ids.size() - c);
    // batches of 128 positions (any batch of 2 or more computes the same logits)
    for (size_t b = 0; b < len; b += 128) {
      const size_t nb = std::min<size_t>(128, len - b);
      std::vector<int32_t> toks(ids.begin() + static_cast<long>(c + b), ids.begin() + static_cast<long>(c + b + nb));
      std::vector<float> lg = m.forward(toks, static_cast<uint32_t>(b), true);
      // log softmax of the next token, rows split over two threads
      const size_t n_rows = std::min(nb, len - b - 1);
      std::vector<double> lp(n_rows);
      auto rows = [&](size_t t0, size_t t1) {
        for (size_t t = t0; t < t1; ++t) {
          const float* row = &lg[t * V];
          double mx = -INFINITY, se = 0;
          for (size_t i = 0; i < V; ++i) mx = std::max(mx, double(row[i]));
          for (size_t i = 0; i < V; ++i) se += std::exp(double(row[i]) - mx);
          lp[t] = double(row[ids[c + b + t + 1]]) - (mx + std::log(se));
        }
      };
      std::thread other(rows, n_rows / 2, n_rows);
      rows(0, n_rows / 2);
      other.join();
      for (double x : lp) sum += x;
      count += n_rows;
    }
  }
  std::printf("[   info   ] %s: log-likelihood of %zu tokens %.6f, llama.cpp %.6f: relative difference %.2e\n", name.c_str(),
              count, sum, want, std::fabs(sum - want) / std::fabs(want));
  EXPECT_EQ(count, static_cast<size_t>(doubles(*r.raw("count")).at(0)));
  EXPECT_LT(std::fabs(sum - want), 1e-3 * std::fabs(want));
}

TEST(DecoderParity, SmolLM2LogLikelihoodMatchesLlamaCpp) { compare_loglik("smollm2"); }
TEST(DecoderParity, Gemma3LogLikelihoodMatchesLlamaCpp) { compare_loglik("gemma3"); }

// Tiny models of each architecture: loom's logits against llama.cpp's, every position, every
// token of the vocabulary, for a 24-token batch and for 8 tokens then 16 single steps.
class ArchParity : public ::testing::TestWithParam<const char*> {};

TEST_P(ArchParity, LogitsEqualLlamaCpp) {
  const std::string dir = std::string(LOOM_SOURCE_DIR) + "/tests/reference/golden/arch/";
  const std::string name = GetParam();
  auto file = std::make_shared<gguf::File>(gguf::File::open(dir + name + ".gguf"));
  auto in = io::Input::open(dir + name + "-logits.jsonl.zst");
  io::JsonlReader reader(*in);
  io::Record r;
  size_t modes = 0;
  while (reader.next(r)) {
    const std::string mode = *r.get_string("mode");
    std::vector<int64_t> t64 = int_array(*r.raw("tokens"));
    std::vector<int32_t> toks(t64.begin(), t64.end());
    std::vector<double> want = doubles(*r.raw("logits"));
    model::Decoder m(file, {.n_ctx = 64, .threads = 2});
    const size_t V = m.config().n_vocab;
    ASSERT_EQ(want.size(), toks.size() * V);
    std::vector<float> got;
    if (mode == "batch") {
      got = m.forward(toks, 0, true);
    } else {
      got = m.forward(std::vector<int32_t>(toks.begin(), toks.begin() + 8), 0, true);
      for (size_t i = 8; i < toks.size(); ++i) {
        std::vector<float> row = m.forward({toks[i]}, static_cast<uint32_t>(i), true);
        got.insert(got.end(), row.begin(), row.end());
      }
    }
    ASSERT_EQ(got.size(), want.size());
    double max_diff = 0, max_abs = 0;
    size_t argmax_differs = 0;
    for (size_t p = 0; p < toks.size(); ++p) {
      const float* g = &got[p * V];
      const double* w = &want[p * V];
      for (size_t i = 0; i < V; ++i) {
        max_diff = std::max(max_diff, std::fabs(g[i] - w[i]));
        max_abs = std::max(max_abs, std::fabs(w[i]));
      }
      argmax_differs += std::max_element(g, g + V) - g != std::max_element(w, w + V) - w;
    }
    std::printf("[   info   ] %s %s: %zu positions x %zu logits, max |diff| %.3g (largest logit %.3g), argmax differs at %zu\n",
                name.c_str(), mode.c_str(), toks.size(), V, max_diff, max_abs, argmax_differs);
    EXPECT_LE(max_diff, 1e-5 * std::max(1.0, max_abs)) << name << " " << mode;  // the golden keeps f32 digits
    EXPECT_EQ(argmax_differs, 0u);
    ++modes;
  }
  EXPECT_EQ(modes, 2u);
}

INSTANTIATE_TEST_SUITE_P(Tiny, ArchParity, ::testing::Values("llama-k", "llama-scaled", "qwen2", "qwen3", "gemma3"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& c : n)
                             if (c == '-') c = '_';
                           return n;
                         });

// Prompt processing in one batch and decoding one token at a time agree closely (not bitwise:
// like llama.cpp, a one-token batch sums its attention in another order); sequences sharing a
// batch get exactly the logits they get alone; bad calls are clear errors.
TEST(Decoder, BatchesSequencesAndErrors) {
  fs::path mp = model_path("smollm2");
  if (!fs::exists(mp)) GTEST_SKIP() << "no " << mp;
  auto file = std::make_shared<gguf::File>(gguf::File::open(mp.string()));
  std::vector<int32_t> toks = {504, 3458, 282, 4649, 314, 2};
  model::Decoder a(file, {.n_ctx = 16, .threads = 2}), b(file, {.n_ctx = 16, .threads = 1});
  std::vector<float> all = a.forward(toks, 0, true);
  const size_t V = a.config().n_vocab;
  std::vector<std::vector<float>> alone;
  for (size_t t = 0; t < toks.size(); ++t) {
    std::vector<float> one = b.forward({toks[t]}, static_cast<uint32_t>(t));
    ASSERT_EQ(one.size(), V);
    // a different sum order can flip an activation's 8-bit rounding, and that moves logits by
    // tenths (llama.cpp's own batch and one-token logits differ the same way; both orders are
    // checked against it above)
    double sum_diff = 0;
    for (size_t i = 0; i < V; ++i) sum_diff += std::fabs(double(one[i]) - all[t * V + i]);
    std::printf("[   info   ] position %zu: mean |batch - incremental| %.5f\n", t, sum_diff / double(V));
    EXPECT_LT(sum_diff / double(V), 0.3) << "position " << t;
    EXPECT_EQ(std::max_element(one.begin(), one.end()) - one.begin(),
              std::max_element(all.begin() + static_cast<long>(t * V), all.begin() + static_cast<long>((t + 1) * V)) -
                  (all.begin() + static_cast<long>(t * V)))
        << "position " << t;
    alone.push_back(std::move(one));
  }
  // three sequences: seq 0 replays toks one by one next to seq 1 (a 3-token prompt chunk, then
  // single tokens) and seq 2 (a copy of seq 0's cache)
  model::Decoder m(file, {.n_ctx = 16, .threads = 2, .n_seq = 3});
  std::vector<float> first = m.decode({{.token = toks[0], .pos = 0, .seq = 0, .logits = true},
                                       {.token = toks[0], .pos = 0, .seq = 1},
                                       {.token = toks[1], .pos = 1, .seq = 1},
                                       {.token = toks[2], .pos = 2, .seq = 1, .logits = true}});
  ASSERT_EQ(first.size(), 2 * V);
  EXPECT_TRUE(std::equal(alone[0].begin(), alone[0].end(), first.begin()));
  EXPECT_TRUE(std::equal(all.begin() + 2 * V, all.begin() + 3 * V, first.begin() + V));
  m.copy_sequence(0, 2, 1);
  for (uint32_t t = 1; t < toks.size(); ++t) {
    std::vector<float> out = m.decode({{.token = toks[t], .pos = t, .seq = 0, .logits = true},
                                       {.token = toks[t], .pos = t, .seq = 2, .logits = true},
                                       {.token = toks[(t + 2) % toks.size()], .pos = t + 2, .seq = 1, .logits = true}});
    ASSERT_EQ(out.size(), 3 * V);
    EXPECT_TRUE(std::equal(alone[t].begin(), alone[t].end(), out.begin())) << "seq 0, position " << t;
    EXPECT_TRUE(std::equal(alone[t].begin(), alone[t].end(), out.begin() + V)) << "seq 2, position " << t;
  }
  EXPECT_THROW(a.forward(std::vector<int32_t>(17, 1), 0), Error);            // past the context
  EXPECT_THROW(a.forward({static_cast<int32_t>(V)}, 0), Error);              // not a token
  EXPECT_THROW(m.decode({{.token = 1, .pos = 0, .seq = 3}}), Error);          // no such sequence
  EXPECT_THROW(m.decode({{.token = 1, .pos = 16, .seq = 0}}), Error);         // past the context
}

// The model code reaches the numbers only through the Backend interface: a backend that wraps
// the CPU one (as a GPU backend would replace it) sees every operation and gives the same logits.
TEST(Decoder, RunsOnAnyBackend) {
  fs::path mp = model_path("smollm2");
  if (!fs::exists(mp)) GTEST_SKIP() << "no " << mp;
  struct Counting : model::Backend {
    std::unique_ptr<model::Backend> cpu;
    std::map<std::string, int> calls;
    const char* name() const override { return "counting"; }
    void begin(const std::vector<model::BatchToken>& b) override { ++calls["begin"]; cpu->begin(b); }
    model::Act alloc(size_t r, size_t c) override { return cpu->alloc(r, c); }
    void embed(const model::Weight& w, float s, model::Act x) override { ++calls["embed"]; cpu->embed(w, s, x); }
    void rms_norm(model::Act x, const model::Weight& w, float e, size_t n, model::Act o) override {
      ++calls["rms_norm"];
      cpu->rms_norm(x, w, e, n, o);
    }
    void matmul(const model::Weight& w, model::Act x, model::Act y) override { ++calls["matmul"]; cpu->matmul(w, x, y); }
    void add_bias(const model::Weight& b, model::Act y) override { ++calls["add_bias"]; cpu->add_bias(b, y); }
    void rope(model::Act x, size_t h, float b, float s) override { ++calls["rope"]; cpu->rope(x, h, b, s); }
    void attention(const model::AttentionParams& p, model::Act q, model::Act k, model::Act v, model::Act o) override {
      ++calls["attention"];
      cpu->attention(p, q, k, v, o);
    }
    void glu(model::Activation a, model::Act g, model::Act u) override { ++calls["glu"]; cpu->glu(a, g, u); }
    void add(model::Act x, model::Act y) override { ++calls["add"]; cpu->add(x, y); }
    void scale(model::Act x, float s) override { ++calls["scale"]; cpu->scale(x, s); }
    void select_rows(model::Act x, const std::vector<size_t>& r, model::Act o) override { cpu->select_rows(x, r, o); }
    void read(model::Act x, float* h) override { ++calls["read"]; cpu->read(x, h); }
    void copy_sequence(uint32_t s, uint32_t d, uint32_t n) override { cpu->copy_sequence(s, d, n); }
  };
  Counting* seen = nullptr;
  auto file = std::make_shared<gguf::File>(gguf::File::open(mp.string()));
  model::DecoderOptions opt{.n_ctx = 16, .threads = 2};
  opt.backend = [&](const model::Config& c, const model::DecoderOptions& o) {
    auto b = std::make_unique<Counting>();
    b->cpu = model::make_cpu_backend(c, o);
    seen = b.get();
    return b;
  };
  model::Decoder wrapped(file, opt), plain(file, {.n_ctx = 16, .threads = 2});
  std::vector<int32_t> toks = {504, 3458, 282, 4649};
  EXPECT_EQ(wrapped.forward(toks, 0, true), plain.forward(toks, 0, true));
  ASSERT_NE(seen, nullptr);
  const int layers = static_cast<int>(wrapped.config().n_layer);
  EXPECT_EQ(seen->calls["attention"], layers);
  EXPECT_EQ(seen->calls["matmul"], 7 * layers + 1);  // q k v o gate up down, then the output
  EXPECT_EQ(seen->calls["read"], 1);
}
