// loom::eval::perplexity (lib/eval/perplexity.h) against llama.cpp's llama-perplexity
// (tests/reference/gen_eval_perplexity_goldens.py):
//   - the windowing without a model: which windows, which positions score, BOS, --chunks, the
//     stride count, the too-short error, the window llama-perplexity --ppl-stride really uses;
//   - with the real models (skipped, saying which file is missing, when absent): the final
//     perplexity, its uncertainty, the running value after every window and the token counts of
//     llama-perplexity on apache-2.0.txt, chunks and stride modes. The cases marked quick run by
//     default (about 15 s on two cores); LOOM_PERPLEXITY_ALL=1 runs the whole-text ones too.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>

#include <unistd.h>

#include "loom/core/error.h"
#include "loom/eval/perplexity.h"
#include "loom/gguf/gguf.h"
#include "loom/gguf/writer.h"
#include "loom/quant/quantize.h"
#include "loom/tensor/dequant.h"
#include "loom/io/jsonl.h"
#include "loom/model/decoder.h"
#include "loom/tokenizer/tokenizer.h"
#include "model_files.h"

using namespace loom;
namespace fs = std::filesystem;

namespace {

const std::string kGolden = std::string(LOOM_SOURCE_DIR) + "/tests/reference/golden/eval_perplexity/";

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot read " + path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::vector<double> numbers(std::string_view raw) {
  std::vector<double> out;
  std::string s(raw);
  const char* p = s.c_str();
  while (*p) {
    if ((*p >= '0' && *p <= '9') || *p == '-') {
      char* end;
      out.push_back(std::strtod(p, &end));
      p = end;
    } else {
      ++p;
    }
  }
  return out;
}

// The golden text as llama-perplexity -f reads it: the file without its final newline.
std::string golden_text() {
  std::string t = slurp(kGolden + "apache-2.0.txt");
  if (!t.empty() && t.back() == '\n') t.pop_back();
  return t;
}

eval::PerplexityOptions opts(uint32_t n_ctx, uint32_t stride = 0, int64_t chunks = -1) {
  eval::PerplexityOptions o;
  o.n_ctx = n_ctx;
  o.stride = stride;
  o.chunks = chunks;
  return o;
}

Error::Kind error_kind(const std::function<void()>& fn, std::string* what = nullptr) {
  try {
    fn();
  } catch (const Error& e) {
    if (what) *what = e.what();
    return e.kind();
  }
  ADD_FAILURE() << "no loom::Error thrown";
  return Error::Kind::Runtime;
}

}  // namespace

// ---- windowing, no model --------------------------------------------------------------------

TEST(PerplexityWindows, ChunksCoverConsecutiveWindowsAndScoreTheSecondHalf) {
  const auto w = eval::perplexity_windows(1000, true, opts(128));
  ASSERT_EQ(w.size(), 7u);  // 1000 / 128
  for (size_t i = 0; i < w.size(); ++i) {
    EXPECT_EQ(w[i].start, i * 128);
    EXPECT_EQ(w[i].first, 64u);   // logits of positions 64..126 ...
    EXPECT_EQ(w[i].count, 63u);   // ... score the tokens at 65..127
    EXPECT_TRUE(w[i].bos);
  }
  EXPECT_FALSE(eval::perplexity_windows(1000, false, opts(128))[3].bos);  // a vocabulary without BOS
  const auto odd = eval::perplexity_windows(300, true, opts(129));       // n/2 rounds down
  ASSERT_EQ(odd.size(), 2u);
  EXPECT_EQ(odd[1].first, 64u);
  EXPECT_EQ(odd[1].count, 64u);
}

TEST(PerplexityWindows, ChunksLimitsTheWindows) {
  EXPECT_EQ(eval::perplexity_windows(1000, true, opts(128, 0, 3)).size(), 3u);
  EXPECT_EQ(eval::perplexity_windows(1000, true, opts(128, 0, 100)).size(), 7u);
  EXPECT_EQ(eval::perplexity_windows(256, true, opts(128)).size(), 2u);  // exactly 2 x n_ctx
}

TEST(PerplexityWindows, TooShortTextSaysHowManyTokensAreNeeded) {
  std::string what;
  EXPECT_EQ(error_kind([] { eval::perplexity_windows(255, true, opts(128)); }, &what), Error::Kind::BadInput);
  EXPECT_NE(what.find("255"), std::string::npos) << what;
  EXPECT_NE(what.find("256"), std::string::npos) << what;
  EXPECT_EQ(error_kind([] { eval::perplexity_windows(511, true, opts(256, 128)); }), Error::Kind::BadInput);
}

TEST(PerplexityWindows, BadOptionsAreUsageErrors) {
  EXPECT_EQ(error_kind([] { eval::perplexity_windows(1000, true, opts(2)); }), Error::Kind::Usage);
  EXPECT_EQ(error_kind([] { eval::perplexity_windows(1000, true, opts(128, 128)); }), Error::Kind::Usage);
  EXPECT_EQ(error_kind([] { eval::perplexity_windows(1000, true, opts(128, 0, 0)); }), Error::Kind::Usage);
}

TEST(PerplexityWindows, StrideScoresTheLastStrideTokensOfEachWindow) {
  const auto w = eval::perplexity_windows(600, true, opts(256, 128));
  ASSERT_EQ(w.size(), 3u);  // ceil((600 - 256) / 128)
  for (size_t i = 0; i < w.size(); ++i) {
    EXPECT_EQ(w[i].start, i * 128);
    EXPECT_EQ(w[i].first, 127u);  // logits of 127..254 score 128..255
    EXPECT_EQ(w[i].count, 128u);
    EXPECT_FALSE(w[i].bos);       // llama.cpp's v2 sets BOS only after decoding: never seen
    EXPECT_LE(w[i].start + 256, 600u);
    if (i > 0) {
      EXPECT_EQ(w[i].start + w[i].first + 1, w[i - 1].start + w[i - 1].first + w[i - 1].count + 1);
    }
  }
  // llama.cpp counts ceil((T - n) / S) windows: when S divides T - n, one fewer than would fit
  EXPECT_EQ(eval::perplexity_windows(512, true, opts(256, 128)).size(), 2u);
  EXPECT_EQ(eval::perplexity_windows(513, true, opts(256, 128)).size(), 3u);
  EXPECT_EQ(eval::perplexity_windows(600, true, opts(256, 128, 1)).size(), 1u);
}

TEST(PerplexityWindows, LlamaStrideWindowIsTheContextPaddedTo256) {
  EXPECT_EQ(eval::llama_stride_window(224, 64), 256u);
  EXPECT_EQ(eval::llama_stride_window(192, 128), 256u);
  EXPECT_EQ(eval::llama_stride_window(128, 32), 256u);
  EXPECT_EQ(eval::llama_stride_window(256, 64), 512u);
  EXPECT_EQ(eval::llama_stride_window(512, 0), 512u);
}

// ---- against llama-perplexity ------------------------------------------------------------------

namespace {

struct Loaded {
  std::shared_ptr<gguf::File> file;
  std::unique_ptr<tok::Tokenizer> tok;
};

// Models stay open across the cases of a test run.
Loaded* load(const std::string& name) {
  static std::map<std::string, Loaded> cache;
  auto it = cache.find(name);
  if (it != cache.end()) return &it->second;
  const fs::path p = model_files::gguf(name);
  if (!fs::exists(p)) return nullptr;
  Loaded l;
  l.file = std::make_shared<gguf::File>(gguf::File::open(p.string()));
  l.tok = std::make_unique<tok::Tokenizer>(tok::Tokenizer::from_gguf(*l.file, p.string()));
  return &cache.emplace(name, std::move(l)).first->second;
}

// Agreement asserted with llama.cpp beyond the rounding of its printed digits (%.4f perplexities,
// %.5f uncertainty, %f mean -ln p). loom computes llama.cpp's (AVX2 build's) logits bit for bit
// and its log-softmax operation for operation, so every printed digit agrees; the margins allow
// for summation order only (llama.cpp adds its threads' partial sums in any order).
constexpr double kRel = 1e-6;   // relative, on perplexities and the uncertainty
constexpr double kNll = 1e-7;   // absolute, on the mean -ln p

void check_case(const std::string& name) {
  const io::Record g = io::Record::parse(slurp(kGolden + name + ".json"));
  const std::string model_name = g.get_string("model").value();
  if (!g.get_bool("quick").value() && !std::getenv("LOOM_PERPLEXITY_ALL"))
    GTEST_SKIP() << name << " runs the whole text: LOOM_PERPLEXITY_ALL=1 runs it";
  Loaded* m = load(model_name);
  if (!m) GTEST_SKIP() << "no " << model_files::gguf(model_name);

  const auto n_ctx = static_cast<uint32_t>(g.get_int("n_ctx").value());
  const auto stride = static_cast<uint32_t>(g.get_int("stride").value());
  const auto chunks = g.get_int("chunks").value();
  if (stride > 0) {
    EXPECT_EQ(eval::llama_stride_window(static_cast<uint32_t>(g.get_int("c").value()), stride), n_ctx);
  }
  eval::PerplexityOptions o;
  o.n_ctx = n_ctx;
  o.stride = stride;
  o.n_batch = static_cast<uint32_t>(g.get_int("n_batch").value());
  o.threads = 2;
  // the whole-text cases give no --chunks: they must find the same count on their own
  const bool limited = std::string(*g.raw("command")).find("--chunks") != std::string::npos;
  o.chunks = limited ? chunks : -1;
  model::Decoder dec(m->file, {.n_ctx = n_ctx, .threads = 2});
  size_t calls = 0;
  const eval::PerplexityResult r = eval::perplexity(dec, *m->tok, golden_text(), o,
                                                    [&](size_t done, size_t total, double) {
                                                      EXPECT_EQ(done, ++calls);
                                                      EXPECT_EQ(total, static_cast<size_t>(chunks));
                                                    });

  EXPECT_EQ(r.tokens, static_cast<size_t>(g.get_int("tokens").value()));
  ASSERT_EQ(r.chunks, static_cast<size_t>(chunks));
  EXPECT_EQ(calls, r.chunks);
  const size_t per = stride ? stride : n_ctx - n_ctx / 2 - 1;
  EXPECT_EQ(r.scored_tokens, r.chunks * per);

  const double want = g.get_number("ppl").value();
  EXPECT_NEAR(r.ppl, want, 0.5e-4 + kRel * want) << name;
  std::printf("[ %s ] loom %.6f llama.cpp %.4f (%+.2e)\n", name.c_str(), r.ppl, want, (r.ppl - want) / want);
  const std::vector<double> running = numbers(*g.raw("running"));
  ASSERT_EQ(r.running.size(), running.size());
  for (size_t i = 0; i < running.size(); ++i)
    EXPECT_NEAR(r.running[i], running[i], 0.5e-4 + kRel * running[i]) << name << " window " << i + 1;
  if (stride == 0) {
    const double u = g.get_number("uncertainty").value();
    EXPECT_NEAR(r.uncertainty, u, 0.5e-5 + kRel * u) << name;
    const std::vector<double> nll = numbers(*g.raw("running_nll"));
    ASSERT_EQ(nll.size(), r.running.size());
    double worst = 0;
    for (size_t i = 0; i < nll.size(); ++i) {  // the mean -ln p, printed to 6 decimals
      EXPECT_NEAR(std::log(r.running[i]), nll[i], 0.5e-6 + kNll) << name << " window " << i + 1;
      worst = std::max(worst, std::fabs(std::log(r.running[i]) - nll[i]));
    }
    std::printf("[ %s ] mean -ln p after each window: max |loom - llama.cpp| %.1e (printed to 1e-6)\n", name.c_str(), worst);
  }
  EXPECT_GT(r.uncertainty, 0);
  EXPECT_GT(r.bytes, r.scored_tokens);  // English text: several bytes a token
  EXPECT_NEAR(r.bits_per_byte, r.nll_sum / std::log(2.0) / static_cast<double>(r.bytes), 1e-12);
}

}  // namespace

TEST(PerplexityGolden, Smollm2Chunks128) { check_case("smollm2-c128-chunks4"); }
TEST(PerplexityGolden, Smollm2Chunks256) { check_case("smollm2-c256-chunks2"); }
TEST(PerplexityGolden, Smollm2Stride) { check_case("smollm2-c192-stride128-chunks2"); }
TEST(PerplexityGolden, Smollm2WholeText) { check_case("smollm2-c128"); }
TEST(PerplexityGolden, Smollm2WholeTextStride) { check_case("smollm2-c224-stride64"); }
TEST(PerplexityGolden, Gemma3Chunks128) { check_case("gemma3-c128-chunks2"); }
TEST(PerplexityGolden, Gemma3Chunks256) { check_case("gemma3-c256-chunks1"); }
TEST(PerplexityGolden, Gemma3Stride) { check_case("gemma3-c192-stride128-chunks1"); }
TEST(PerplexityGolden, Gemma3WholeText) { check_case("gemma3-c256"); }

// A text shorter than two windows: loom counts the tokens llama-perplexity counts and refuses it
// the same way, before any decoding.
TEST(PerplexityGolden, TooShortTextCountsTokensAsLlamaCpp) {
  const io::Record manifest = io::Record::parse(slurp(kGolden + "MANIFEST.json"));
  for (const std::string name : {"smollm2", "gemma3"}) {
    Loaded* m = load(name);
    if (!m) GTEST_SKIP() << "no " << model_files::gguf(name);
    const io::Record models = io::Record::parse(*manifest.raw("models"));
    const auto tokens = io::Record::parse(*models.raw(name)).get_int("tokens").value();
    model::Decoder dec(m->file, {.n_ctx = 2048, .threads = 1});
    std::string what;
    EXPECT_EQ(error_kind([&] { eval::perplexity(dec, *m->tok, golden_text(), opts(2048)); }, &what),
              Error::Kind::BadInput);
    EXPECT_NE(what.find(std::to_string(tokens) + " tokens"), std::string::npos) << what;
    EXPECT_NE(what.find("4096"), std::string::npos) << what;
  }
}

// The scored tokens' bytes are the text they cover: for a byte-level BPE vocabulary, exactly what
// decoding each window's run of scored tokens gives back.
TEST(PerplexityGolden, BytesAreTheTextTheScoredTokensCover) {
  Loaded* m = load("smollm2");
  if (!m) GTEST_SKIP() << "no " << model_files::gguf("smollm2");
  const std::string text = golden_text();
  const std::vector<int32_t> ids = m->tok->encode(text).ids;
  model::Decoder dec(m->file, {.n_ctx = 16, .threads = 2});
  const auto r = eval::perplexity(dec, *m->tok, text, opts(16, 0, 3));
  size_t want = 0;
  for (const auto& w : eval::perplexity_windows(ids.size(), false, opts(16, 0, 3))) {
    std::vector<int32_t> run(ids.begin() + w.start + w.first + 1, ids.begin() + w.start + w.first + w.count + 1);
    want += m->tok->decode(run).size();
  }
  EXPECT_EQ(r.bytes, want);
  EXPECT_GT(r.bits_per_byte, 0);
}

// ---- compare_models: a model against itself and against its quantization ----------------------

namespace {

// `in` with every weight matrix (rows of whole 32-blocks) converted to Q8_0, written to `out`.
void write_q8_0(const gguf::File& f, const std::string& out) {
  gguf::Writer w(f.alignment());
  for (const auto& [key, v] : f.metadata()) w.set(key, v);
  for (const auto& t : f.tensors()) {
    const auto from = static_cast<kernels::GgmlType>(t.ggml_type);
    const std::string_view src = f.tensor_data(t);
    const bool weight = t.ne.size() >= 2 && t.ne[1] > 1 && t.name.ends_with("weight") && t.ne[0] % 32 == 0 &&
                        from != kernels::GgmlType::Q8_0;
    if (!weight) {
      w.add_tensor(t.name, t.ne, t.ggml_type, src);
      continue;
    }
    std::vector<float> x(t.n_elements());
    tensor::dequantize_row(from, src.data(), x.data(), x.size());
    std::string q(x.size() / 32 * 34, '\0');
    quant::quantize_row(kernels::GgmlType::Q8_0, x.data(), q.data(), x.size());
    w.add_tensor(t.name, t.ne, static_cast<uint32_t>(kernels::GgmlType::Q8_0), std::move(q));
  }
  w.write(out);
}

const std::string kArch = std::string(LOOM_SOURCE_DIR) + "/tests/reference/golden/arch/";

}  // namespace

TEST(CompareModels, AModelAgainstItselfDivergesByNothing) {
  const std::string path = kArch + "qwen3.gguf";
  auto f = std::make_shared<gguf::File>(gguf::File::open(path));
  const tok::Tokenizer tk = tok::Tokenizer::from_gguf(*f, path);
  model::Decoder a(f, {.n_ctx = 64, .threads = 2}), b(f, {.n_ctx = 64, .threads = 2});
  const auto o = opts(64, 0, 3);
  const eval::ModelComparison c = eval::compare_models(a, b, tk, golden_text(), o);
  EXPECT_EQ(c.kl_sum, 0.0);
  EXPECT_EQ(c.kl_max, 0.0);
  EXPECT_EQ(c.top1_same, c.a.scored_tokens);
  EXPECT_EQ(c.top1_agreement, 1.0);
  EXPECT_EQ(c.a.nll_sum, c.b.nll_sum);
  EXPECT_EQ(c.a.scored_tokens, 3u * 31);
  // each side is exactly what perplexity() gives
  model::Decoder d(f, {.n_ctx = 64, .threads = 2});
  const eval::PerplexityResult p = eval::perplexity(d, tk, golden_text(), o);
  EXPECT_EQ(c.a.ppl, p.ppl);
  EXPECT_EQ(c.a.running, p.running);
  EXPECT_EQ(c.a.bytes, p.bytes);
}

TEST(CompareModels, Q8_0DivergesALittle) {
  const std::string path = kArch + "qwen3.gguf";
  auto f = std::make_shared<gguf::File>(gguf::File::open(path));
  const tok::Tokenizer tk = tok::Tokenizer::from_gguf(*f, path);
  const std::string q8 = (fs::temp_directory_path() / ("loom-test-q8-" + std::to_string(::getpid()) + ".gguf")).string();
  write_q8_0(*f, q8);
  auto fq = std::make_shared<gguf::File>(gguf::File::open(q8));
  fs::remove(q8);  // the mapping stays
  model::Decoder a(f, {.n_ctx = 64, .threads = 2}), b(fq, {.n_ctx = 64, .threads = 2});
  const auto o = opts(64, 0, 3);
  const eval::ModelComparison c = eval::compare_models(a, b, tk, golden_text(), o);
  model::Decoder d(fq, {.n_ctx = 64, .threads = 2});
  EXPECT_EQ(c.b.ppl, eval::perplexity(d, tk, golden_text(), o).ppl);
  EXPECT_GT(c.kl_mean, 0.0);
  EXPECT_LT(c.kl_mean, 0.01);
  EXPECT_GE(c.kl_max, c.kl_mean);
  EXPECT_GT(c.top1_agreement, 0.8);
  EXPECT_NEAR(c.b.ppl / c.a.ppl, 1.0, 0.02);
  // the mean KL is the sum over the rows
  EXPECT_DOUBLE_EQ(c.kl_mean * static_cast<double>(c.a.scored_tokens), c.kl_sum);
  // and the stride mode compares the same way
  const eval::ModelComparison s = eval::compare_models(a, b, tk, golden_text(), opts(64, 16, 2));
  EXPECT_EQ(s.a.scored_tokens, 32u);
  EXPECT_GT(s.kl_mean, 0.0);
}
