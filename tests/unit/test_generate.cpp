// loom-generate's engine (tools/generate) against llama.cpp (tests/reference/gen_generate_goldens.py):
//   - greedy continuations of 20 prompts equal llama.cpp's 128 tokens exactly, alone and continuously
//     batched (--parallel, small --batch-size chunks, --n samples forked from one prompt): the decoder
//     gives each sequence the logits it gets alone, so batching may not change a single token;
//   - --score of the 20480-token text in 1024-token windows: llama.cpp's log-likelihood within 0.1%;
// and its own rules: the sampler (seeds, filters), beam search, stop strings, interruption, template
// names, citations. Tests that need a model skip (with the reason) when it is absent.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>

#include "loom/generate/generator.h"
#include "loom/generate/prompt.h"
#include "loom/core/error.h"
#include "loom/gguf/gguf.h"
#include "loom/io/jsonl.h"
#include "loom/io/stream.h"
#include "loom/model/decoder.h"
#include "loom/model/sampler.h"
#include "loom/tokenizer/tokenizer.h"
#include "model_files.h"
#include "tokenizer_golden.h"

using namespace loom;
using tokenizer_golden::int_array;
namespace fs = std::filesystem;

namespace {

const std::string kGolden = std::string(LOOM_SOURCE_DIR) + "/tests/reference/golden/generate/";

fs::path model_path(const std::string& name) { return model_files::gguf(name); }

std::vector<int32_t> ids32(std::string_view raw) {
  std::vector<int64_t> v = int_array(raw);
  return {v.begin(), v.end()};
}

struct Model {
  std::shared_ptr<gguf::File> file;
  std::unique_ptr<tok::Tokenizer> tok;
  explicit Model(const fs::path& p)
      : file(std::make_shared<gguf::File>(gguf::File::open(p.string()))),
        tok(std::make_unique<tok::Tokenizer>(tok::Tokenizer::from_gguf(*file, p.string()))) {}
};

// Runs every request; the results in request order.
std::vector<generate::Result> run_all(generate::Generator& g, std::vector<generate::Request> reqs,
                                      const std::atomic<bool>* stop = nullptr) {
  std::vector<generate::Result> out;
  size_t k = 0;
  g.run([&]() -> std::optional<generate::Request> { return k < reqs.size() ? std::optional(std::move(reqs[k++])) : std::nullopt; },
        [&](generate::Result&& r) { out.push_back(std::move(r)); }, stop);
  return out;
}

generate::Settings greedy(uint32_t parallel, uint32_t n_batch, size_t max_tokens) {
  generate::Settings s;
  s.n_ctx = 512;
  s.threads = 2;
  s.parallel = parallel;
  s.n_batch = n_batch;
  s.max_tokens = max_tokens;
  s.ignore_eos = true;  // llama.cpp's golden runs 128 tokens whatever comes (none is an end token)
  return s;
}

struct GreedyCase {
  std::vector<int32_t> prompt, want;
};

std::vector<GreedyCase> greedy_golden(const std::string& name) {
  auto in = io::Input::open(kGolden + name + "-greedy.jsonl");
  io::JsonlReader reader(*in);
  io::Record r;
  std::vector<GreedyCase> cases;
  while (reader.next(r)) cases.push_back({ids32(*r.raw("prompt")), ids32(*r.raw("greedy"))});
  return cases;
}

// The greedy golden through the generator with the given batching; every token must match.
void check_greedy(uint32_t parallel, uint32_t n_batch, uint32_t samples, size_t n_cases, const std::string& model = "smollm2") {
  fs::path mp = model_path(model);
  if (!fs::exists(mp)) GTEST_SKIP() << "no " << mp;
  Model m(mp);
  std::vector<GreedyCase> cases = greedy_golden(model);
  ASSERT_EQ(cases.size(), 20u);
  cases.resize(std::min(n_cases, cases.size()));
  generate::Settings s = greedy(parallel, n_batch, cases[0].want.size());
  s.samples = samples;
  generate::Generator g(m.file, *m.tok, s);
  std::vector<generate::Request> reqs;
  for (const auto& c : cases)
    reqs.push_back({.task = generate::Task::Generate, .tokens = c.prompt, .max_tokens = 0, .seed = 1, .stream = nullptr});
  std::vector<generate::Result> res = run_all(g, reqs);
  ASSERT_EQ(res.size(), cases.size());
  for (size_t i = 0; i < cases.size(); ++i) {
    ASSERT_EQ(res[i].completions.size(), samples) << "prompt " << i;
    EXPECT_EQ(res[i].prompt_tokens, cases[i].prompt.size());
    for (size_t k = 0; k < samples; ++k) {
      const generate::Completion& c = res[i].completions[k];
      EXPECT_EQ(c.ids, cases[i].want) << "prompt " << i << ", sample " << k << ", parallel " << parallel << ", batch " << n_batch;
      EXPECT_EQ(c.finish_reason, "length");
      EXPECT_EQ(c.text, m.tok->decode(cases[i].want, true));
    }
  }
}

}  // namespace

// ------------------------------------------------------------------------------------------------
// Parity with llama.cpp

TEST(GenerateParity, SmolLM2GreedyEqualsLlamaCpp) { check_greedy(1, 512, 1, 20); }
// 6 prompts in flight, prompts read in chunks of at most 24 tokens beside the decoding ones
TEST(GenerateParity, SmolLM2GreedyBatchedEqualsLlamaCpp) { check_greedy(6, 24, 1, 20); }
// 3 samples per prompt: one prompt read, its cache copied; greedy samples all equal the golden
TEST(GenerateParity, SmolLM2GreedySamplesEqualLlamaCpp) { check_greedy(2, 512, 3, 4); }
// Gemma 3's K-quant weights: prompts in chunks of 24 (8 or more, multiples of 4) sum as its one
// 64-token batch does
TEST(GenerateParity, Gemma3GreedyBatchedEqualsLlamaCpp) { check_greedy(4, 24, 1, 8, "gemma3"); }

// --score: the golden's 20480 tokens in windows of 1024 (each window's first token unscored)
TEST(GenerateParity, SmolLM2ScoreMatchesLlamaCpp) {
  fs::path mp = model_path("smollm2");
  if (!fs::exists(mp)) GTEST_SKIP() << "no " << mp;
  Model m(mp);
  auto in = io::Input::open(kGolden + "smollm2-loglik.json");
  io::JsonlReader reader(*in);
  io::Record r;
  ASSERT_TRUE(reader.next(r));
  std::vector<int32_t> ids = ids32(*r.raw("tokens"));
  ASSERT_EQ(ids.size(), 20480u);
  generate::Settings s;
  s.n_ctx = static_cast<uint32_t>(*r.get_int("chunk"));
  s.threads = 2;
  generate::Generator g(m.file, *m.tok, s);
  auto res = run_all(g, {{.task = generate::Task::Score, .tokens = ids, .max_tokens = 0, .seed = 0, .stream = nullptr}});
  ASSERT_EQ(res.size(), 1u);
  const double want = *r.get_number("sum"), got = res[0].score_sum;
  std::printf("[   info   ] log-likelihood %.6f over %zu tokens, llama.cpp %.6f: relative difference %.2e\n", got, res[0].score_tokens,
              want, std::fabs(got - want) / std::fabs(want));
  EXPECT_EQ(res[0].score_tokens, static_cast<size_t>(*r.get_int("count")));
  EXPECT_LT(std::fabs(got - want), 1e-3 * std::fabs(want));
  const double ppl = std::exp(-got / static_cast<double>(res[0].score_tokens));
  EXPECT_LT(std::fabs(ppl - *r.get_number("perplexity")), 1e-3 * *r.get_number("perplexity"));
}

// ------------------------------------------------------------------------------------------------
// The engine's own rules (smollm2)

class GenerateEngine : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::path mp = model_path("smollm2");
    if (!fs::exists(mp)) GTEST_SKIP() << "no " << mp;
    m_ = std::make_unique<Model>(mp);
    prompts_ = {m_->tok->encode("The capital of France is").ids, m_->tok->encode("Once upon a time, there was a").ids,
                m_->tok->encode("def fibonacci(n):").ids};
  }
  // the engine tests' settings: a small context, 2 threads, max_tokens per completion
  static generate::Settings settings(size_t max_tokens) {
    generate::Settings s;
    s.n_ctx = 256;
    s.threads = 2;
    s.max_tokens = max_tokens;
    return s;
  }
  std::vector<generate::Request> requests(uint64_t seed) const {
    std::vector<generate::Request> r;
    for (const auto& p : prompts_)
      r.push_back({.task = generate::Task::Generate, .tokens = p, .max_tokens = 0, .seed = seed, .stream = nullptr});
    return r;
  }
  std::unique_ptr<Model> m_;
  std::vector<std::vector<int32_t>> prompts_;
};

// Sampling: a request's output depends on its seed only, not on what shares its batches.
TEST_F(GenerateEngine, SeedGivesTheSameSamplesWhateverTheBatching) {
  generate::Settings s = settings(24);
  s.samples = 2;
  s.sampling = {.temperature = 0.8f, .top_k = 40, .top_p = 0.95f, .min_p = 0.05f, .seed = 0};
  generate::Generator one(m_->file, *m_->tok, s);
  s.parallel = 3;
  s.n_batch = 8;
  generate::Generator three(m_->file, *m_->tok, s);
  auto a = run_all(one, requests(42)), b = run_all(three, requests(42)), c = run_all(one, requests(43));
  ASSERT_EQ(a.size(), 3u);
  bool differs = false;
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a[i].completions.size(), 2u);
    for (size_t k = 0; k < 2; ++k) {
      EXPECT_FALSE(a[i].completions[k].ids.empty());
      EXPECT_EQ(a[i].completions[k].ids, b[i].completions[k].ids) << "prompt " << i << " sample " << k;
      differs |= a[i].completions[k].ids != c[i].completions[k].ids;
    }
    differs |= a[i].completions[0].ids != a[i].completions[1].ids;
  }
  EXPECT_TRUE(differs) << "other seeds (and the samples of one prompt) should not all agree";
}

// Stop strings end the text before them; streaming gives exactly the final text; EOS ends with "stop".
TEST_F(GenerateEngine, StopStringsAndStreaming) {
  generate::Settings s = settings(40);
  generate::Generator plain(m_->file, *m_->tok, s);
  auto base = run_all(plain, requests(0));
  const std::string& text = base[0].completions[0].text;  // " Paris.\n\nThe United States ..."
  ASSERT_NE(text.find("United"), std::string::npos) << text;
  s.stop = {"United", "xyzzy"};
  generate::Generator stopping(m_->file, *m_->tok, s);
  std::string streamed;
  auto reqs = requests(0);
  reqs[0].stream = [&](std::string_view piece) { streamed += piece; };
  auto res = run_all(stopping, reqs);
  EXPECT_EQ(res[0].completions[0].text, text.substr(0, text.find("United")));
  EXPECT_EQ(res[0].completions[0].finish_reason, "stop");
  EXPECT_EQ(streamed, res[0].completions[0].text);
  EXPECT_EQ(res[1].completions[0].text, base[1].completions[0].text);  // no stop string in it
}

// Beam search: beams=1 is greedy; B beams find a sequence at least as likely (length-normalized)
// as greedy's among what they explored, and the result is deterministic and batch-independent.
TEST_F(GenerateEngine, BeamSearch) {
  generate::Settings s = settings(12);
  s.beams = 3;
  generate::Generator g(m_->file, *m_->tok, s);
  s.parallel = 3;
  generate::Generator gp(m_->file, *m_->tok, s);
  auto a = run_all(g, requests(0)), b = run_all(gp, requests(0));
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a[i].completions.size(), 1u);
    EXPECT_FALSE(a[i].completions[0].ids.empty());
    EXPECT_EQ(a[i].completions[0].ids, b[i].completions[0].ids) << "prompt " << i;
    EXPECT_EQ(a[i].completions[0].text, m_->tok->decode(a[i].completions[0].ids, true));
  }
  // the mean log-probability of the beam result is at least greedy's over the same length
  auto mean_logprob = [&](const std::vector<int32_t>& prompt, const std::vector<int32_t>& out) {
    model::Decoder d(m_->file, {.n_ctx = 256, .threads = 2});
    std::vector<int32_t> all = prompt;
    all.insert(all.end(), out.begin(), out.end());
    std::vector<float> lg = d.forward(all, 0, true);
    const size_t V = d.config().n_vocab;
    double sum = 0;
    for (size_t t = prompt.size(); t < all.size(); ++t) {
      std::span<const float> row(&lg[(t - 1) * V], V);
      sum += row[static_cast<size_t>(all[t])] - model::log_sum_exp(row);
    }
    return sum / static_cast<double>(out.size());
  };
  generate::Settings gs = s;
  gs.beams = 1;
  gs.parallel = 1;
  generate::Generator greedy_gen(m_->file, *m_->tok, gs);
  auto gr = run_all(greedy_gen, requests(0));
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].completions[0].finish_reason != "length" || gr[i].completions[0].finish_reason != "length") continue;
    EXPECT_GE(mean_logprob(prompts_[i], a[i].completions[0].ids) + 1e-3, mean_logprob(prompts_[i], gr[i].completions[0].ids))
        << "prompt " << i;
  }
}

// --logprobs: the chosen token's log-probability and the most likely alternatives, best first;
// greedy chooses the first alternative.
TEST_F(GenerateEngine, Logprobs) {
  generate::Settings s = settings(6);
  s.logprobs = true;
  s.top_logprobs = 3;
  generate::Generator g(m_->file, *m_->tok, s);
  auto res = run_all(g, requests(0));
  for (const auto& r : res) {
    const auto& c = r.completions[0];
    ASSERT_EQ(c.logprobs.size(), c.ids.size());
    for (size_t t = 0; t < c.ids.size(); ++t) {
      const auto& lp = c.logprobs[t];
      EXPECT_EQ(lp.id, c.ids[t]);
      ASSERT_EQ(lp.top.size(), 3u);
      EXPECT_EQ(lp.top[0].first, lp.id);
      EXPECT_DOUBLE_EQ(lp.top[0].second, lp.logprob);
      EXPECT_LT(lp.logprob, 0.0);
      EXPECT_GE(lp.top[0].second, lp.top[1].second);
      EXPECT_GE(lp.top[1].second, lp.top[2].second);
    }
  }
  // the first token's log-probability is the model's own: log softmax of the prompt's last
  // logits, summed here in double
  {
    model::Decoder d(m_->file, {.n_ctx = 256, .threads = 2});
    const std::vector<float> row = d.forward(prompts_[0], 0);
    double mx = -INFINITY, se = 0;
    for (float x : row) mx = std::max(mx, static_cast<double>(x));
    for (float x : row) se += std::exp(static_cast<double>(x) - mx);
    const auto& first = res[0].completions[0].logprobs.at(0);
    EXPECT_NEAR(first.logprob, row[static_cast<size_t>(first.id)] - (mx + std::log(se)), 1e-9);
    for (const auto& [id, lp] : first.top) EXPECT_NEAR(lp, row[static_cast<size_t>(id)] - (mx + std::log(se)), 1e-9);
  }
  // the bytes of tokens: a GPT-2 byte-level piece ("Ġthe" is " the")
  EXPECT_EQ(g.token_bytes(m_->tok->encode(" the").ids.at(0)), " the");
  EXPECT_EQ(g.token_bytes(m_->tok->encode("\n").ids.at(0)), "\n");
}

// The stop flag: requests in flight end "interrupted", and nothing more is taken.
TEST_F(GenerateEngine, InterruptEndsRequestsInFlight) {
  generate::Settings s = settings(200);
  s.ignore_eos = true;
  s.parallel = 2;
  generate::Generator g(m_->file, *m_->tok, s);
  std::atomic<bool> stop{false};
  std::vector<generate::Result> out;
  size_t taken = 0, streamed = 0;
  auto reqs = requests(0);
  reqs[0].stream = [&](std::string_view) {
    if (++streamed == 5) stop = true;
  };
  g.run([&]() -> std::optional<generate::Request> { return taken < reqs.size() ? std::optional(reqs[taken++]) : std::nullopt; },
        [&](generate::Result&& r) { out.push_back(std::move(r)); }, &stop);
  EXPECT_EQ(taken, 2u);
  ASSERT_EQ(out.size(), 2u);
  for (const auto& r : out) {
    EXPECT_TRUE(r.interrupted);
    EXPECT_EQ(r.completions[0].finish_reason, "interrupted");
    EXPECT_FALSE(r.completions[0].ids.empty());
  }
}

// Score: windows of n_ctx tokens, each window's first token unscored; a 1-token text scores nothing.
TEST_F(GenerateEngine, ScoreWindows) {
  std::vector<int32_t> text = m_->tok->encode("The quick brown fox jumps over the lazy dog. It was a sunny day in the park.").ids;
  ASSERT_GE(text.size(), 19u);
  text.resize(19);  // windows of 8: 8 + 8 + 3 -> 7 + 7 + 2 scored
  generate::Settings s;
  s.n_ctx = 8;
  s.threads = 2;
  s.n_batch = 4;
  generate::Generator g(m_->file, *m_->tok, s);
  auto res = run_all(g, {{.task = generate::Task::Score, .tokens = text, .max_tokens = 0, .seed = 0, .stream = nullptr},
                         {.task = generate::Task::Score, .tokens = {text[0]}, .max_tokens = 0, .seed = 0, .stream = nullptr}});
  ASSERT_EQ(res.size(), 2u);
  EXPECT_EQ(res[0].score_tokens, 16u);
  EXPECT_EQ(res[1].score_tokens, 0u);
  // the same by hand, window by window
  model::Decoder d(m_->file, {.n_ctx = 8, .threads = 2});
  const size_t V = d.config().n_vocab;
  double want = 0;
  for (size_t w = 0; w < text.size(); w += 8) {
    std::vector<int32_t> win(text.begin() + static_cast<long>(w), text.begin() + static_cast<long>(std::min(text.size(), w + 8)));
    std::vector<float> lg = d.forward(win, 0, true);
    for (size_t t = 1; t < win.size(); ++t) {
      std::span<const float> row(&lg[(t - 1) * V], V);
      want += row[static_cast<size_t>(win[t])] - model::log_sum_exp(row);
    }
  }
  EXPECT_DOUBLE_EQ(res[0].score_sum, want);
}

// ------------------------------------------------------------------------------------------------
// Without a model

TEST(Sampler, GreedyFiltersAndSeeds) {
  std::vector<float> logits = {1.0f, 3.0f, 2.0f, 3.0f, -1.0f};
  auto draw = [&](model::SamplerOptions o, int n) {
    model::Sampler s(o);
    std::map<int32_t, int> seen;
    for (int i = 0; i < n; ++i) {
      std::vector<float> l = logits;
      ++seen[s.sample(l, std::vector<int32_t>{})];
    }
    return seen;
  };
  EXPECT_EQ(draw({.temperature = 0.0f}, 3), (std::map<int32_t, int>{{1, 3}}));  // greedy: the lower id of a tie
  EXPECT_EQ(draw({.temperature = 1.0f, .top_k = 1}, 20).size(), 1u);
  auto tied = draw({.temperature = 1.0f, .min_p = 1.0f}, 200);
  EXPECT_EQ(tied.size(), 2u);  // only the two tied best survive min-p 1
  EXPECT_TRUE(tied.count(1) && tied.count(3));
  // top-p: 1 and 3 hold 2e^3 / (e^1 + 2e^3 + e^2 + e^-1) = 0.79 of the probability, with 2: 0.94
  auto p75 = draw({.temperature = 1.0f, .top_p = 0.75f}, 300);
  EXPECT_EQ(p75.size(), 2u);
  auto p90 = draw({.temperature = 1.0f, .top_p = 0.9f}, 300);
  EXPECT_EQ(p90.size(), 3u);
  // frequencies follow the softmax at temperature 1
  auto all = draw({.temperature = 1.0f, .seed = 7}, 20000);
  double z = 0;
  for (float l : logits) z += std::exp(l);
  for (int32_t id = 0; id < 5; ++id) EXPECT_NEAR(all[id] / 20000.0, std::exp(logits[static_cast<size_t>(id)]) / z, 0.01) << id;
  // the same seed, the same draws; another seed, others
  EXPECT_EQ(draw({.temperature = 1.0f, .seed = 5}, 50), draw({.temperature = 1.0f, .seed = 5}, 50));
  EXPECT_NE(draw({.temperature = 1.0f, .seed = 5}, 50), draw({.temperature = 1.0f, .seed = 6}, 50));
}

TEST(Sampler, Penalties) {
  // repetition: positive logits divided, negative multiplied; frequency and presence subtracted
  std::vector<float> l = {2.0f, -2.0f, 1.5f};
  model::Sampler rep({.repeat_penalty = 2.0f});
  std::vector<int32_t> hist = {0, 1, 1};
  EXPECT_EQ(rep.sample(l, hist), 2);
  EXPECT_FLOAT_EQ(l[0], 1.0f);
  EXPECT_FLOAT_EQ(l[1], -4.0f);
  l = {2.0f, -2.0f, 1.5f};
  model::Sampler fp({.frequency_penalty = 0.5f, .presence_penalty = 0.1f});
  EXPECT_EQ(fp.sample(l, hist), 2);
  EXPECT_FLOAT_EQ(l[0], 2.0f - 0.5f - 0.1f);
  EXPECT_FLOAT_EQ(l[1], -2.0f - 1.0f - 0.1f);
  // only the last penalty_last_n tokens count
  l = {2.0f, 1.9f};
  model::Sampler last({.repeat_penalty = 4.0f, .penalty_last_n = 1});
  EXPECT_EQ(last.sample(l, std::vector<int32_t>{1, 0}), 1);
}

TEST(Sampler, LogProbabilityHelpers) {
  std::vector<float> l = {0.0f, std::log(3.0f), 0.0f};  // probabilities 1/5, 3/5, 1/5
  EXPECT_NEAR(model::log_sum_exp(l), std::log(5.0), 1e-6);
  EXPECT_EQ(model::top_ids(l, 2), (std::vector<int32_t>{1, 0}));
  EXPECT_EQ(model::top_ids(l, 9).size(), 3u);
}

TEST(GeneratePrompt, TemplateNames) {
  using generate::template_names;
  using N = std::vector<std::pair<std::string, size_t>>;
  EXPECT_EQ(template_names("Q: {{ question }}\n{% for s in sources %}[{{ s.n }}] {{ s.text | trim }}{% endfor %}"),
            (N{{"question", 1}, {"sources", 2}}));
  // set, loop and macro names are the template's own; attributes, filters, tests, keyword
  // arguments, strings and globals are not names it reads
  EXPECT_EQ(template_names("{% set x = 1 %}{{ x }}{% macro m(a, b=2) %}{{ a ~ b }}{% endmacro %}{{ m(1, b=3) }}"
                           "{{ 'topic' | upper }}{{ y is string }}{{ loop }}{{ range(3) | join(',') }}{# {{ hidden }} #}"),
            (N{{"y", 1}}));
  // whitespace control, a name tested with `is defined` or given a default, line numbers
  EXPECT_EQ(template_names("a\n{%- if extra is defined -%}{{ extra }}{%- endif %}\n{{ other | default('') }}\n\n{{- last -}}"),
            (N{{"extra", 2}, {"last", 5}}));
  EXPECT_EQ(template_names("{% raw %}{{ not_a_name }}{% endraw %}{{ real }}"), (N{{"real", 1}}));
}

TEST(GeneratePrompt, Citations) {
  using generate::citations;
  EXPECT_EQ(citations("Logs rotate daily [2]. Backups [1][3], see [2, 4] and [x] [] [10].", 4), (std::vector<size_t>{2, 1, 3, 4}));
  EXPECT_EQ(citations("no sources [0] [5]", 4), (std::vector<size_t>{}));
  EXPECT_EQ(citations("[1", 4), (std::vector<size_t>{}));
}
