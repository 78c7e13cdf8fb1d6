// Importance matrices (lib/quant/imatrix.h): collected on the tiny model of every decoder
// architecture, against llama.cpp's llama-imatrix on the same model and text (goldens:
// tests/reference/gen_imatrix_goldens.sh); the file format round trip; bad files and short texts.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <unistd.h>
#include <string>
#include <vector>

#include "loom/core/error.h"
#include "loom/gguf/gguf.h"
#include "loom/quant/imatrix.h"
#include "loom/tokenizer/tokenizer.h"

using namespace loom;

namespace {

const std::string kGolden = std::string(LOOM_SOURCE_DIR) + "/tests/reference/golden/";

std::string slurp(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

// The calibration text as llama-imatrix -f reads it (one final newline dropped).
std::string calibration_text() {
  std::string t = slurp(kGolden + "eval_perplexity/apache-2.0.txt");
  if (!t.empty() && t.back() == '\n') t.pop_back();
  return t;
}

std::string temp_path(const char* name) {
  return (std::filesystem::temp_directory_path() / (std::to_string(::getpid()) + "-" + name)).string();
}

class ImatrixGolden : public ::testing::TestWithParam<const char*> {};

TEST_P(ImatrixGolden, CollectionMatchesLlamaImatrix) {
  const std::string m = GetParam();
  const std::string model_path = kGolden + "arch/" + m + ".gguf";
  auto file = std::make_shared<gguf::File>(gguf::File::open(model_path));
  const tok::Tokenizer tokenizer = tok::Tokenizer::from_gguf(*file, model_path);
  const quant::Imatrix want = quant::read_imatrix(kGolden + "imatrix/" + m + ".imatrix.gguf");
  size_t progress_calls = 0;
  quant::Imatrix got = quant::collect_imatrix(file, tokenizer, calibration_text(), {.n_ctx = 64, .chunks = 3, .threads = 2},
                                              [&](size_t done, size_t total) {
                                                ++progress_calls;
                                                EXPECT_EQ(total, 3u);
                                                EXPECT_EQ(done, progress_calls);
                                              });
  EXPECT_EQ(progress_calls, 3u);
  EXPECT_EQ(got.chunk_count, want.chunk_count);
  EXPECT_EQ(got.chunk_size, want.chunk_size);
  ASSERT_EQ(got.entries.size(), want.entries.size());
  // The activations are llama.cpp's up to the last bits (the same operations; f16 roundings of the
  // KV cache can land the other way): layer 0 agrees exactly or nearly, and the random weights of
  // these tiny models amplify last-bit differences layer by layer (Gemma 3 the most: up to ~1e-2
  // relative in its last layer). Per weight: the median relative difference at most 1e-3, every
  // column within 2e-2; the counts exactly.
  for (const auto& [name, w] : want.entries) {
    auto it = got.entries.find(name);
    ASSERT_NE(it, got.entries.end()) << m << ": no entry for " << name;
    const quant::ImatrixEntry& g = it->second;
    EXPECT_EQ(g.count, w.count) << m << " " << name;
    ASSERT_EQ(g.sums.size(), w.sums.size()) << m << " " << name;
    std::vector<double> rel(w.sums.size());
    for (size_t j = 0; j < w.sums.size(); ++j) {
      rel[j] = std::fabs(double(g.sums[j]) - w.sums[j]) / std::max(1e-30, std::fabs(double(w.sums[j])));
      EXPECT_LE(rel[j], 2e-2) << m << " " << name << " column " << j << ": " << g.sums[j] << " vs llama.cpp " << w.sums[j];
    }
    std::nth_element(rel.begin(), rel.begin() + rel.size() / 2, rel.end());
    EXPECT_LE(rel[rel.size() / 2], 1e-3) << m << " " << name << ": median relative difference";
  }
}

INSTANTIATE_TEST_SUITE_P(Arch, ImatrixGolden, ::testing::Values("llama-k", "llama-scaled", "qwen2", "qwen3", "gemma3"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& c : n)
                             if (c == '-') c = '_';
                           return n;
                         });

TEST(Imatrix, WriteReadRoundTripAndImportance) {
  quant::Imatrix m;
  m.datasets = {"calib.txt"};
  m.chunk_count = 7;
  m.chunk_size = 512;
  m.entries["blk.1.ffn_down.weight"] = {{4.0f, 0.0f, 2.5f, 1e-20f}, 2};
  m.entries["blk.0.attn_q.weight"] = {{1.0f, 2.0f}, 0};
  const std::string path = temp_path("imatrix-roundtrip.gguf");
  quant::write_imatrix(m, path);
  const quant::Imatrix r = quant::read_imatrix(path);
  std::remove(path.c_str());
  EXPECT_EQ(r.datasets, m.datasets);
  EXPECT_EQ(r.chunk_count, 7u);
  EXPECT_EQ(r.chunk_size, 512u);
  ASSERT_EQ(r.entries.size(), 2u);
  EXPECT_EQ(r.entries.at("blk.1.ffn_down.weight").sums, m.entries["blk.1.ffn_down.weight"].sums);
  EXPECT_EQ(r.entries.at("blk.1.ffn_down.weight").count, 2);
  // importance = sums / count; a count of 0 gives ones (llama-quantize's rule); absent: empty
  EXPECT_EQ(r.importance("blk.1.ffn_down.weight"), (std::vector<float>{2.0f, 0.0f, 1.25f, 5e-21f}));
  EXPECT_EQ(r.importance("blk.0.attn_q.weight"), (std::vector<float>{1.0f, 1.0f}));
  EXPECT_TRUE(r.importance("output.weight").empty());
}

TEST(Imatrix, ANonImatrixFileIsABadInputNamingIt) {
  const std::string model = kGolden + "arch/qwen2.gguf";
  try {
    quant::read_imatrix(model);
    FAIL() << "a model file was read as an importance matrix";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), Error::Kind::BadInput);
    EXPECT_EQ(e.file(), model) << e.what();
  }
  // Truncations of a real matrix: errors, never a crash or a silently partial matrix.
  const std::string bytes = slurp(kGolden + "imatrix/qwen2.imatrix.gguf");
  const std::string path = temp_path("imatrix-cut.gguf");
  // (the last cut takes the tail of the last tensor's data, not just the file's end padding)
  for (size_t cut : {size_t{0}, size_t{10}, size_t{200}, bytes.size() / 2, bytes.size() - 64}) {
    std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(cut));
    EXPECT_THROW(quant::read_imatrix(path), Error) << "cut at " << cut;
  }
  std::remove(path.c_str());
}

TEST(Imatrix, ATextShorterThanTwoChunksIsABadInput) {
  const std::string model_path = kGolden + "arch/qwen2.gguf";
  auto file = std::make_shared<gguf::File>(gguf::File::open(model_path));
  const tok::Tokenizer tokenizer = tok::Tokenizer::from_gguf(*file, model_path);
  try {
    quant::collect_imatrix(file, tokenizer, "a short text", {.n_ctx = 64});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), Error::Kind::BadInput);
    EXPECT_NE(std::string(e.what()).find("at least 128"), std::string::npos) << e.what();
  }
  EXPECT_THROW(quant::collect_imatrix(file, tokenizer, calibration_text(), {.n_ctx = 8}), Error);
  EXPECT_THROW(quant::collect_imatrix(file, tokenizer, calibration_text(), {.n_ctx = 64, .chunks = 0}), Error);
}

}  // namespace
