// The BERT encoder (lib/model/encoder.h) against the reference implementations.
//
//   MiniLmMatchesSentenceTransformers  all-MiniLM-L6-v2 (scripts/fetch-models) on the 680 texts of
//       golden/embed/minilm.jsonl.zst (tests/reference/gen_embed_goldens.py: sentence-transformers
//       3.0.1, transformers 4.41.2, torch 1.13): the same number of tokens after truncation to
//       max_seq_length (71 texts are cut), then, run in batches of 32 texts: the normalized
//       vectors at cosine >= 0.99999 for every text, and the raw mean-pooled and [CLS] vectors
//       within 1e-4 (relative to the vector's largest element). Max differences are printed.
//   BatchingDoesNotChangeVectors       a text alone and in a batch of others: cosine >= 0.999999.
//   CrossEncoderMatchesTransformers    a tiny random BertForSequenceClassification (F16
//       safetensors) on 200 (query, passage) pairs of golden/encoder/cross_encoder.jsonl
//       (gen_cross_encoder_goldens.py): token counts after longest_first truncation equal, logits
//       within 1e-4.
//   GgufBertMatchesFolder              the same tiny model converted by llama.cpp's
//       convert_hf_to_gguf.py: on the folder's tokens its vectors equal the folder's and
//       transformers' mean-pooled normalized output (golden/encoder/tiny-bert-embed.jsonl) at
//       cosine >= 0.99999 for all 60 texts; with its own vocabulary (llama.cpp's WordPiece) the
//       vectors are identical wherever the tokens agree (most texts; counts printed).
//   BadModelFolders                    missing files, mismatched vocabularies: errors naming them.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>

#include "kernels/cpu/ggml_blocks.h"
#include "loom/core/error.h"
#include "loom/gguf/gguf.h"
#include "loom/gguf/writer.h"
#include "loom/model/decoder.h"
#include "loom/tensor/dequant.h"
#include "loom/io/jsonl.h"
#include "loom/io/stream.h"
#include "loom/model/encoder.h"
#include "model_files.h"

using namespace loom;
namespace fs = std::filesystem;

namespace {

const fs::path kGolden = fs::path(LOOM_SOURCE_DIR) / "tests/reference/golden";

std::vector<float> floats(const io::Record& r, const char* key) {
  std::vector<float> v;
  auto raw = r.raw(key);
  if (!raw) return v;
  std::string s(raw->substr(1, raw->size() - 2));
  for (size_t i = 0; i < s.size();) {
    size_t j = s.find(',', i);
    if (j == std::string::npos) j = s.size();
    v.push_back(std::strtof(s.substr(i, j - i).c_str(), nullptr));
    i = j + 1;
  }
  return v;
}

std::vector<io::Record> read_records(const fs::path& p) {
  auto in = io::Input::open(p.string());
  io::JsonlReader r(*in);
  std::vector<io::Record> out;
  io::Record rec;
  while (r.next(rec)) out.push_back(std::move(rec)), rec = io::Record();
  return out;
}

double cosine(const float* a, const float* b, size_t n) {
  double ab = 0, aa = 0, bb = 0;
  for (size_t i = 0; i < n; ++i) ab += double(a[i]) * b[i], aa += double(a[i]) * a[i], bb += double(b[i]) * b[i];
  return ab / std::sqrt(aa * bb);
}

double max_abs(const float* a, const float* b, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; ++i) m = std::max(m, std::fabs(double(a[i]) - b[i]));
  return m;
}

double max_elem(const std::vector<float>& v) {
  double m = 0;
  for (float x : v) m = std::max(m, std::fabs(double(x)));
  return m;
}

fs::path minilm() { return model_files::dir() / "minilm"; }

TEST(Encoder, MiniLmMatchesSentenceTransformers) {
  if (!fs::exists(minilm() / "model.safetensors")) GTEST_SKIP() << "no " << minilm() << " (scripts/fetch-models)";
  auto enc = model::Encoder::load(minilm().string(), {.threads = 2});
  ASSERT_EQ(enc.config().pooling, model::Pooling::Mean);
  ASSERT_TRUE(enc.config().normalize);
  ASSERT_EQ(enc.config().max_tokens, 256u);
  ASSERT_EQ(enc.dims(), 384u);
  auto golden = read_records(kGolden / "embed/minilm.jsonl.zst");
  ASSERT_GE(golden.size(), 600u);
  std::vector<model::EncoderInput> inputs;
  size_t truncated = 0;
  for (auto& g : golden) {
    inputs.push_back(enc.encode_text(*g.get_string("text")));
    ASSERT_EQ(inputs.back().ids.size(), static_cast<size_t>(*g.get_int("n_tokens"))) << *g.get_string("id");
    ASSERT_EQ(inputs.back().truncated, *g.get_bool("truncated")) << *g.get_string("id");
    truncated += inputs.back().truncated;
  }
  EXPECT_GE(truncated, 40u);
  const size_t d = enc.dims();
  double worst_cos = 1, worst_abs = 0, worst_mean = 0, worst_cls = 0;
  for (size_t b = 0; b < inputs.size(); b += 32) {
    std::vector<model::EncoderInput> batch(inputs.begin() + b, inputs.begin() + std::min(inputs.size(), b + 32));
    std::vector<float> mean(batch.size() * d), cls(batch.size() * d);
    enc.embed(batch, model::Pooling::Mean, mean.data());
    enc.embed(batch, model::Pooling::Cls, cls.data());
    for (size_t i = 0; i < batch.size(); ++i) {
      const io::Record& g = golden[b + i];
      const std::string id = *g.get_string("id");
      auto ge = floats(g, "embedding"), gm = floats(g, "mean"), gc = floats(g, "cls");
      ASSERT_EQ(ge.size(), d);
      std::vector<float> v(mean.begin() + i * d, mean.begin() + (i + 1) * d);
      const double rel_mean = max_abs(v.data(), gm.data(), d) / max_elem(gm);
      const double rel_cls = max_abs(cls.data() + i * d, gc.data(), d) / max_elem(gc);
      EXPECT_LE(rel_mean, 1e-4) << id;
      EXPECT_LE(rel_cls, 1e-4) << id;
      model::l2_normalize(v.data(), d);
      const double c = cosine(v.data(), ge.data(), d);
      EXPECT_GE(c, 0.99999) << id;
      worst_cos = std::min(worst_cos, c);
      worst_abs = std::max(worst_abs, max_abs(v.data(), ge.data(), d));
      worst_mean = std::max(worst_mean, rel_mean);
      worst_cls = std::max(worst_cls, rel_cls);
    }
  }
  std::printf("minilm vs sentence-transformers, %zu texts (%zu truncated): min cosine %.9f, max |diff| %.3g (normalized); "
              "raw mean / cls max |diff| relative to max |x|: %.3g / %.3g\n",
              golden.size(), truncated, worst_cos, worst_abs, worst_mean, worst_cls);
}

TEST(Encoder, BatchingDoesNotChangeVectors) {
  if (!fs::exists(minilm() / "model.safetensors")) GTEST_SKIP() << "no " << minilm() << " (scripts/fetch-models)";
  auto enc = model::Encoder::load(minilm().string(), {.threads = 2});
  std::vector<model::EncoderInput> batch = {enc.encode_text("short"), enc.encode_text("a somewhat longer text about logs and rotation"),
                                            enc.encode_text(std::string(3000, 'x') + " end")};
  const size_t d = enc.dims();
  std::vector<float> all(batch.size() * d);
  enc.embed(batch, model::Pooling::Mean, all.data());
  for (size_t i = 0; i < batch.size(); ++i) {
    std::vector<float> one(d);
    enc.embed({batch[i]}, model::Pooling::Mean, one.data());
    EXPECT_GE(cosine(one.data(), all.data() + i * d, d), 0.999999) << i;
  }
  EXPECT_THROW(enc.embed({model::EncoderInput{}}, model::Pooling::Mean, all.data()), Error);
  EXPECT_THROW(enc.embed({model::EncoderInput{.ids = {101, 999999, 102}, .types = {}, .truncated = false}}, model::Pooling::Mean, all.data()), Error);
}

TEST(Encoder, CrossEncoderMatchesTransformers) {
  const fs::path dir = kGolden / "encoder/tiny-cross-encoder";
  ASSERT_TRUE(fs::exists(dir / "model.safetensors")) << dir;
  auto enc = model::Encoder::load(dir.string(), {.threads = 2});
  ASSERT_EQ(enc.config().n_labels, 1u);
  auto golden = read_records(kGolden / "encoder/cross_encoder.jsonl");
  ASSERT_GE(golden.size(), 200u);
  std::vector<model::EncoderInput> in;
  size_t truncated = 0;
  for (auto& g : golden) {
    in.push_back(enc.encode_pair(*g.get_string("query"), *g.get_string("passage")));
    ASSERT_EQ(in.back().ids.size(), static_cast<size_t>(*g.get_int("n_tokens")));
    truncated += in.back().truncated;
  }
  EXPECT_GE(truncated, 1u);
  std::vector<float> logits(in.size());
  for (size_t b = 0; b < in.size(); b += 16) {
    std::vector<model::EncoderInput> batch(in.begin() + b, in.begin() + std::min(in.size(), b + 16));
    enc.classify(batch, logits.data() + b);
  }
  double worst = 0;
  for (size_t i = 0; i < in.size(); ++i) {
    const double want = *golden[i].get_number("logit");
    EXPECT_NEAR(logits[i], want, 1e-4) << i;
    worst = std::max(worst, std::fabs(logits[i] - want));
  }
  std::printf("cross-encoder vs transformers, %zu pairs (%zu truncated): max |logit diff| %.3g\n", in.size(), truncated, worst);
}

TEST(Encoder, GgufBertMatchesFolder) {
  const fs::path gguf = kGolden / "encoder/tiny-bert.gguf";
  ASSERT_TRUE(fs::exists(gguf)) << gguf;
  auto g = model::Encoder::load(gguf.string(), {.threads = 2});
  auto f = model::Encoder::load((kGolden / "encoder/tiny-cross-encoder").string(), {.threads = 2});
  ASSERT_EQ(g.dims(), f.dims());
  auto golden = read_records(kGolden / "encoder/tiny-bert-embed.jsonl");
  ASSERT_GE(golden.size(), 50u);
  const size_t d = g.dims();
  size_t same_tokens = 0;
  double worst = 1;
  for (auto& r : golden) {
    const std::string text = *r.get_string("text");
    auto ig = g.encode_text(text), ifo = f.encode_text(text);
    std::vector<float> vg(d), vf(d), want = floats(r, "embedding");
    g.embed({ig}, g.config().pooling, vg.data());
    model::l2_normalize(vg.data(), d);
    // the GGUF's weights on the folder's tokens: the folder's vectors and transformers', every text
    std::vector<float> vgf(d);
    g.embed({ifo}, g.config().pooling, vgf.data());
    model::l2_normalize(vgf.data(), d);
    f.embed({ifo}, model::Pooling::Mean, vf.data());
    model::l2_normalize(vf.data(), d);
    EXPECT_GE(cosine(vgf.data(), vf.data(), d), 0.99999) << text;
    EXPECT_GE(cosine(vgf.data(), want.data(), d), 0.99999) << text;
    worst = std::min(worst, cosine(vgf.data(), want.data(), d));
    // its own vocabulary, tokenized as llama.cpp does: the same where the tokens agree
    if (ig.ids == ifo.ids) {
      ++same_tokens;
      EXPECT_EQ(vg, vgf) << text;
    }
  }
  // llama.cpp's WordPiece differs from transformers' on some scripts and symbols (the corpus's
  // hardest texts are among these 60); plain text agrees
  EXPECT_GE(same_tokens, golden.size() * 3 / 4);
  std::printf("GGUF bert vs folder: %zu of %zu texts tokenized alike; min cosine vs transformers %.9f\n", same_tokens, golden.size(), worst);
}

TEST(Encoder, BadModelFolders) {
  const fs::path tmp = fs::temp_directory_path() / "loom-test-encoder";
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  auto expect = [&](const std::string& needle) {
    try {
      model::Encoder::load(tmp.string(), {});
      ADD_FAILURE() << "loaded; expected: " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect("has no config.json");
  const fs::path src = kGolden / "encoder/tiny-cross-encoder";
  fs::copy_file(src / "config.json", tmp / "config.json");
  expect("has no tokenizer.json or vocab.txt");
  fs::copy_file(src / "tokenizer.json", tmp / "tokenizer.json");
  expect("has no model.safetensors");
  // a vocabulary larger than the model's embedding table
  std::ifstream in(src / "config.json");
  std::string cfg((std::istreambuf_iterator<char>(in)), {});
  auto at = cfg.find("\"vocab_size\"");
  ASSERT_NE(at, std::string::npos);
  auto end = cfg.find_first_of(",}", at);
  cfg.replace(at, end - at, "\"vocab_size\": 1000");
  std::ofstream(tmp / "config.json") << cfg;
  expect("do not belong together");
  std::ofstream(tmp / "config.json") << R"({"model_type": "gpt2"})";
  expect("model_type \"gpt2\" is not supported");
  EXPECT_THROW(model::Encoder::load((tmp / "nope").string(), {}), Error);
  fs::remove_all(tmp);
}

}  // namespace

namespace {

// A copy of a tiny decoder GGUF (tests/reference/golden/arch, llama.cpp-verified logits) that
// declares an embedding pooling, as llama.cpp's converter writes embedding models.
fs::path with_pooling(const std::string& arch, int pooling) {
  auto f = gguf::File::open((kGolden / "arch" / (arch + ".gguf")).string());
  gguf::Writer w;
  for (const auto& [k, v] : f.metadata()) w.set(k, v);
  w.set(arch + ".pooling_type", gguf::u32(static_cast<uint32_t>(pooling)));
  for (const auto& t : f.tensors()) w.add_tensor(t.name, t.ne, t.ggml_type, f.tensor_data(t));
  const fs::path p = fs::temp_directory_path() / fmt::format("loom-test-{}-pool{}.gguf", arch, pooling);
  w.write(p.string());
  return p;
}

}  // namespace

// A decoder as an embedder: the vector is the hidden state after the output norm, the one the
// output layer turns into logits — checked against the logits (which equal llama.cpp's, by
// test_decoder) through the dequantized output matrix: |logit - W h| within the Q8_0 activation
// rounding of llama.cpp's dot products (1% of sum |w h|). Pooling: last token, first token and
// the mean of all tokens' states; a model without pooling_type is refused.
TEST(Encoder, DecoderAsEmbedderGivesTheStateBeforeTheOutputLayer) {
  const std::vector<int32_t> ids = {172, 206, 5, 207, 120, 132, 161, 73};
  auto file = std::make_shared<gguf::File>(gguf::File::open((kGolden / "arch/qwen3.gguf").string()));
  model::Decoder dec(file, {.n_ctx = 64, .threads = 2});
  const auto& c = dec.config();
  std::vector<float> all = dec.forward(ids, 0, /*all_logits=*/true);
  const gguf::TensorInfo* out = file->find_tensor("output.weight");
  ASSERT_NE(out, nullptr);
  std::vector<float> W(out->n_elements());
  tensor::dequantize_row(static_cast<kernels::GgmlType>(out->ggml_type), file->tensor_data(*out).data(), W.data(), W.size());
  auto check = [&](const std::vector<float>& h, size_t pos) {
    for (size_t i = 0; i < c.n_vocab; ++i) {
      double dot = 0, mag = 0;
      for (size_t k = 0; k < c.n_embd; ++k) dot += double(W[i * c.n_embd + k]) * h[k], mag += std::fabs(double(W[i * c.n_embd + k]) * h[k]);
      ASSERT_NEAR(all[pos * c.n_vocab + i], dot, 1e-2 * mag + 1e-6) << "position " << pos << " logit " << i;
    }
  };
  std::vector<std::vector<float>> states;
  for (int pooling : {3, 2, 1}) {
    const fs::path p = with_pooling("qwen3", pooling);
    auto enc = model::Encoder::load(p.string(), {.threads = 2});
    EXPECT_TRUE(enc.config().normalize);
    EXPECT_EQ(enc.dims(), c.n_embd);
    std::vector<float> v(enc.dims());
    enc.embed({model::EncoderInput{.ids = ids, .types = {}, .truncated = false}}, enc.config().pooling, v.data());
    states.push_back(v);
    fs::remove(p);
  }
  check(states[0], ids.size() - 1);  // last
  check(states[1], 0);               // first
  // mean: the average of every position's state, each checked the same way
  model::DecoderOptions o{.n_ctx = 64, .threads = 2, .embeddings = true};
  model::Decoder hid(file, o);
  std::vector<float> every = hid.forward(ids, 0, true), mean(c.n_embd, 0.0f);
  for (size_t t = 0; t < ids.size(); ++t) {
    check(std::vector<float>(every.begin() + t * c.n_embd, every.begin() + (t + 1) * c.n_embd), t);
    for (size_t k = 0; k < c.n_embd; ++k) mean[k] += every[t * c.n_embd + k] / ids.size();
  }
  for (size_t k = 0; k < c.n_embd; ++k) EXPECT_NEAR(states[2][k], mean[k], 1e-5 * (1 + std::fabs(mean[k])));
  // batches of several sequences give each its own vector
  const fs::path p = with_pooling("qwen3", 3);
  auto enc = model::Encoder::load(p.string(), {.threads = 2});
  std::vector<model::EncoderInput> batch(10, model::EncoderInput{.ids = ids, .types = {}, .truncated = false});
  batch[3].ids.resize(3);
  std::vector<float> vs(batch.size() * enc.dims());
  enc.embed(batch, model::Pooling::Last, vs.data());
  for (size_t s = 0; s < batch.size(); ++s) {
    if (s == 3) continue;
    for (size_t k = 0; k < enc.dims(); ++k) EXPECT_NEAR(vs[s * enc.dims() + k], states[0][k], 1e-5 * (1 + std::fabs(states[0][k])));
  }
  EXPECT_GT(max_abs(vs.data() + 3 * enc.dims(), states[0].data(), enc.dims()), 1e-3);
  fs::remove(p);
  // no pooling_type: not an embedding model
  EXPECT_THROW(model::Encoder::load((kGolden / "arch/qwen3.gguf").string(), {}), Error);
}

// A folder with vocab.txt and no tokenizer.json (older BERT checkpoints): the WordPiece
// tokenizer transformers builds from it (lowercasing as tokenizer_config.json says) gives the
// same tokens as the folder's tokenizer.json on the cross-encoder pairs and the embedding texts.
TEST(Encoder, VocabTxtFolderTokenizesAsTokenizerJson) {
  const fs::path src = kGolden / "encoder/tiny-cross-encoder";
  const fs::path tmp = fs::temp_directory_path() / "loom-test-vocab-txt";
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  for (const char* f : {"config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json"}) fs::copy_file(src / f, tmp / f);
  auto a = model::Encoder::load(src.string(), {}), b = model::Encoder::load(tmp.string(), {});
  size_t n = 0;
  for (auto& r : read_records(kGolden / "encoder/cross_encoder.jsonl")) {
    const std::string q = *r.get_string("query"), p = *r.get_string("passage");
    ASSERT_EQ(a.encode_pair(q, p).ids, b.encode_pair(q, p).ids) << q;
    ASSERT_EQ(a.encode_text(p).ids, b.encode_text(p).ids) << p;
    ++n;
  }
  EXPECT_GE(n, 200u);
  fs::remove_all(tmp);
}

// Every sentence-transformers module loom follows, on a tiny model (gen_st_dense_goldens.py):
// Transformer (F16), CLS pooling, Dense 32 -> 16 with tanh, Normalize, max_seq_length 64 (10 texts
// cut), a named prompt — 40 vectors of SentenceTransformer.encode at cosine >= 0.99999.
TEST(Encoder, SentenceTransformersModulesMatch) {
  const fs::path dir = kGolden / "encoder/tiny-st-dense";
  auto enc = model::Encoder::load(dir.string(), {.threads = 2});
  const auto& c = enc.config();
  EXPECT_EQ(c.pooling, model::Pooling::Cls);
  EXPECT_TRUE(c.normalize);
  EXPECT_EQ(c.max_tokens, 64u);
  EXPECT_EQ(enc.dims(), 16u);
  ASSERT_EQ(c.prompts.size(), 1u);
  EXPECT_EQ(c.prompts[0].first, "query");
  size_t n = 0, cut = 0, prompted = 0;
  double worst = 1;
  for (auto& r : read_records(kGolden / "encoder/st-dense-embed.jsonl")) {
    std::string text = *r.get_string("text");
    if (r.get_string("prompt")) text = c.prompts[0].second + text, ++prompted;
    auto in = enc.encode_text(text);
    cut += in.truncated;
    std::vector<float> v(enc.dims()), want = floats(r, "embedding");
    enc.embed({in}, c.pooling, v.data());
    model::l2_normalize(v.data(), v.size());
    const double cs = cosine(v.data(), want.data(), v.size());
    EXPECT_GE(cs, 0.99999) << text;
    worst = std::min(worst, cs);
    ++n;
  }
  EXPECT_EQ(n, 40u);
  EXPECT_EQ(prompted, 10u);
  EXPECT_GE(cut, 10u);
  std::printf("sentence-transformers modules (CLS, Dense tanh, Normalize): %zu texts (%zu cut), min cosine %.9f\n", n, cut, worst);
}
