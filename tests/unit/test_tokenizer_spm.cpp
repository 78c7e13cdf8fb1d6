// SentencePiece .model files: parity with the sentencepiece Python package on the golden corpus
// (tests/reference/gen_spm_goldens.py), special tokens, offsets, and corrupt or truncated files.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>

#include "loom/core/error.h"
#include "loom/io/json.h"
#include "loom/io/jsonl.h"
#include "loom/io/stream.h"
#include "loom/tokenizer/tokenizer.h"
#include "tokenizer_golden.h"

using namespace loom;
using tokenizer_golden::char_to_byte;
using tokenizer_golden::int_array;
namespace fs = std::filesystem;

namespace {

const std::string kGolden = std::string(LOOM_SOURCE_DIR) + "/tests/reference/golden/tokenize/";
const std::string kFiles = kGolden + "files/";

// The four models of gen_spm_goldens.py: two trained by `loom tokenize train`, two by spm_train.
const char* kModels[] = {"loom-unigram", "loom-bpe", "spmtrain-bpe", "spmtrain-unigram"};

tok::Tokenizer load(const std::string& name) { return tok::Tokenizer::from_sentencepiece_file(kFiles + name + ".model"); }

std::string read_file(const std::string& path) { return io::read_all(*io::Input::open(path)); }

void write_file(const std::string& path, std::string_view data) {
  std::ofstream f(path, std::ios::binary);
  f.write(data.data(), static_cast<std::streamsize>(data.size()));
}

// The JSON array of strings `raw` (the golden "pieces"), unescaped.
std::vector<std::string> string_array(std::string_view a) {
  std::vector<std::string> out;
  for (size_t i = 1; i < a.size() && a[i] != ']';) {
    if (a[i] != '"') {
      ++i;
      continue;
    }
    size_t j = i + 1;
    while (j < a.size() && a[j] != '"') j += a[j] == '\\' ? 2 : 1;
    std::string s;
    json::unescape_string(a.substr(i, j + 1 - i), s);
    out.push_back(std::move(s));
    i = j + 1;
  }
  return out;
}

struct Corpus {
  std::vector<std::string> ids, texts;
};

const Corpus& corpus() {
  static Corpus c = [] {
    Corpus c;
    auto in = io::Input::open(kGolden + "corpus.jsonl");
    io::JsonlReader r(*in);
    io::Record rec;
    while (r.next(rec)) {
      c.ids.push_back(rec.get_string("id").value());
      c.texts.push_back(rec.get_string("text").value());
    }
    return c;
  }();
  return c;
}

}  // namespace

// ---- parity with the sentencepiece Python package -----------------------------------------------

class SpmParity : public ::testing::TestWithParam<const char*> {};

TEST_P(SpmParity, IdsSpecialsPiecesOffsetsAndDecodeOnEveryCorpusText) {
  std::string name = GetParam();
  tok::Tokenizer t = load(name);
  auto gold_in = io::Input::open(kGolden + "spm-" + name + ".jsonl.zst");
  io::JsonlReader gold(*gold_in);
  io::Record g;
  const Corpus& c = corpus();
  size_t n = 0, same_ids = 0, same_special = 0, same_pieces = 0, same_offsets = 0, same_decode = 0, bad = 0;
  tok::TokenId unk = -1;
  for (size_t r = 0; r < c.texts.size(); ++r) {
    ASSERT_TRUE(gold.next(g)) << name << ": golden file ends early";
    ASSERT_EQ(c.ids[r], g.get_string("id").value());
    const std::string& text = c.texts[r];
    tok::Encoding plain = t.encode(text, {.add_special = false, .parse_special = false});
    tok::Encoding special = t.encode(text, {.add_special = true, .parse_special = false});
    std::vector<int64_t> want = int_array(*g.raw("ids")), want_special = int_array(*g.raw("ids_special"));
    std::vector<int64_t> got(plain.ids.begin(), plain.ids.end()), got_special(special.ids.begin(), special.ids.end());
    bool ids_ok = got == want, special_ok = got_special == want_special;

    // pieces: sentencepiece names an <unk> piece by the text it covers; loom by "<unk>"
    std::vector<std::string> pieces = string_array(*g.raw("pieces"));
    bool pieces_ok = ids_ok && pieces.size() == plain.ids.size();
    for (size_t i = 0; pieces_ok && i < pieces.size(); ++i) {
      if (t.piece(plain.ids[i]) == "<unk>") unk = plain.ids[i];
      pieces_ok = plain.ids[i] == unk || t.piece(plain.ids[i]) == pieces[i];
    }

    // offsets: sentencepiece's character spans, an empty one taking the next non-empty span (or
    // the previous, at the end), in bytes
    std::vector<int64_t> offs = int_array(*g.raw("offsets"));
    auto cb = char_to_byte(text);
    std::vector<tok::Span> want_spans;
    for (size_t i = 0; i + 1 < offs.size(); i += 2)
      want_spans.push_back({cb[static_cast<size_t>(offs[i])], cb[static_cast<size_t>(offs[i + 1])]});
    for (size_t i = want_spans.size(); i-- > 0;)
      if (want_spans[i].e == want_spans[i].b && i + 1 < want_spans.size()) want_spans[i] = want_spans[i + 1];
    for (size_t i = 1; i < want_spans.size(); ++i)
      if (want_spans[i].e == want_spans[i].b) want_spans[i] = want_spans[i - 1];
    bool offsets_ok = want_spans.size() == plain.offsets.size();
    for (size_t i = 0; offsets_ok && i < want_spans.size(); ++i)
      offsets_ok = want_spans[i].b == plain.offsets[i].b && want_spans[i].e == plain.offsets[i].e;

    bool decode_ok = t.decode(plain.ids) == g.get_string("decoded").value();
    same_ids += ids_ok;
    same_special += special_ok;
    same_pieces += pieces_ok;
    same_offsets += offsets_ok;
    same_decode += decode_ok;
    if (!(ids_ok && special_ok && pieces_ok && offsets_ok && decode_ok) && ++bad <= 5)
      ADD_FAILURE() << name << " record " << c.ids[r] << ": ids " << (ids_ok ? "same" : "differ") << ", with specials "
                    << (special_ok ? "same" : "differ") << ", pieces " << (pieces_ok ? "same" : "differ") << ", offsets "
                    << (offsets_ok ? "same" : "differ") << ", decode " << (decode_ok ? "same" : "differs")
                    << "; text starts " << text.substr(0, 60);
    ++n;
  }
  EXPECT_FALSE(gold.next(g)) << name << ": golden file has more records than the corpus";
  EXPECT_GT(n, 4000u) << "the golden corpus is missing or short";
  std::printf("%s: %zu texts; identical ids %zu, with specials %zu, pieces %zu, offsets %zu, decode %zu\n", name.c_str(), n,
              same_ids, same_special, same_pieces, same_offsets, same_decode);
  EXPECT_EQ(bad, 0u) << bad << " of " << n << " texts differ from the sentencepiece Python package";
}

INSTANTIATE_TEST_SUITE_P(Models, SpmParity, ::testing::ValuesIn(kModels),
                         [](const auto& info) {
                           std::string s = info.param;
                           std::replace(s.begin(), s.end(), '-', '_');
                           return s;
                         });

// ---- behaviour --------------------------------------------------------------------------------

TEST(Spm, LosslessModelRoundTripsEveryText) {
  // spmtrain-bpe: identity normalization, whitespace kept, byte fallback: decode(encode(x)) == x
  tok::Tokenizer t = load("spmtrain-bpe");
  size_t n = 0;
  for (const auto& text : corpus().texts) n += t.decode(t.encode(text, {.add_special = false}).ids) == text;
  EXPECT_EQ(n, corpus().texts.size());
}

TEST(Spm, OffsetsAreNonEmptyMonotonicCharacterSpansWithinTheText) {
  for (const char* name : kModels) {
    tok::Tokenizer t = load(name);
    size_t tokens = 0;
    for (const auto& text : corpus().texts) {
      tok::Encoding e = t.encode(text, {.add_special = false});
      auto cb = char_to_byte(text);
      auto boundary = [&](size_t b) { return std::binary_search(cb.begin(), cb.end(), b); };
      for (size_t i = 0; i < e.offsets.size(); ++i) {
        const tok::Span& s = e.offsets[i];
        ASSERT_LT(s.b, s.e) << name << ": empty span in \"" << text.substr(0, 40) << "\"";
        ASSERT_LE(s.e, text.size()) << name;
        ASSERT_TRUE(boundary(s.b) && boundary(s.e)) << name << ": span inside a character";
        if (i) {
          ASSERT_LE(e.offsets[i - 1].b, s.b) << name << ": offsets go back in \"" << text.substr(0, 40) << "\"";
          ASSERT_LE(e.offsets[i - 1].e, s.e) << name;
        }
      }
      tokens += e.ids.size();
    }
    EXPECT_GT(tokens, 100000u) << name;
  }
}

TEST(Spm, AddSpecialAddsBosOrForAModelWithoutBosEos) {
  tok::Tokenizer llama = load("loom-unigram");  // <unk> 0, <s> 1, </s> 2
  auto plain = llama.encode("Hello world", {.add_special = false}).ids;
  auto with = llama.encode("Hello world").ids;  // add_special is the default
  ASSERT_FALSE(plain.empty());
  EXPECT_EQ(with.front(), 1);
  EXPECT_EQ(std::vector<tok::TokenId>(with.begin() + 1, with.end()), plain);
  EXPECT_EQ(llama.encode("Hello world").offsets.front().e, 0u);  // an added special: {0, 0}

  tok::Tokenizer t5 = load("spmtrain-unigram");  // T5's ids: <pad> 0, </s> 1, <unk> 2, no <s>
  auto p5 = t5.encode("Hello world", {.add_special = false}).ids;
  auto w5 = t5.encode("Hello world").ids;
  EXPECT_EQ(w5.back(), 1);
  EXPECT_EQ(std::vector<tok::TokenId>(w5.begin(), w5.end() - 1), p5);
}

TEST(Spm, ControlTokensOnlyWithParseSpecialAndNeverFromUserTextByDefault) {
  tok::Tokenizer t = load("loom-unigram");
  const std::string text = "Hi <s> there </s>";
  auto plain = t.encode(text, {.add_special = false}).ids;
  EXPECT_EQ(std::count(plain.begin(), plain.end(), 1), 0) << "<s> typed in the text must stay text";
  EXPECT_EQ(std::count(plain.begin(), plain.end(), 2), 0);
  auto parsed = t.encode(text, {.add_special = false, .parse_special = true}).ids;
  // each stretch between control tokens is encoded as a text of its own
  std::vector<tok::TokenId> want = t.encode("Hi ", {.add_special = false}).ids;
  want.push_back(1);
  for (auto id : t.encode(" there ", {.add_special = false}).ids) want.push_back(id);
  want.push_back(2);
  EXPECT_EQ(parsed, want);
  // decode drops control tokens when asked (as sentencepiece always does), else keeps their text
  EXPECT_EQ(t.decode(parsed, /*skip_special=*/true), "Hi there");
  EXPECT_EQ(t.decode(parsed, /*skip_special=*/false), "Hi<s>there</s>");
  auto round = t.encode("<s>hello", {.add_special = false, .parse_special = true}).ids;
  EXPECT_EQ(t.decode(round, false), "<s>hello");

  // a control symbol of the trainer's (--control_symbols=<|eot_id|>) behaves the same
  tok::Tokenizer b = load("spmtrain-bpe");
  auto eot = b.encode("a<|eot_id|>", {.add_special = false, .parse_special = true}).ids;
  ASSERT_FALSE(eot.empty());
  EXPECT_EQ(b.piece(eot.back()), "<|eot_id|>");
  auto eot_text = b.encode("a<|eot_id|>", {.add_special = false}).ids;
  EXPECT_GT(eot_text.size(), 2u);
  EXPECT_EQ(b.decode(eot_text), "a<|eot_id|>");
}

TEST(Spm, UserDefinedSymbolsAreAlwaysOnePiece) {
  tok::Tokenizer t = load("loom-bpe");  // --user-defined-symbols '<|im_start|>,<|im_end|>'
  for (bool parse : {false, true}) {
    auto e = t.encode("<|im_start|>user hi<|im_end|>", {.add_special = false, .parse_special = parse});
    std::vector<std::string> pieces;
    for (auto id : e.ids) pieces.emplace_back(t.piece(id));
    EXPECT_NE(std::find(pieces.begin(), pieces.end(), "<|im_start|>"), pieces.end());
    EXPECT_NE(std::find(pieces.begin(), pieces.end(), "<|im_end|>"), pieces.end());
    EXPECT_EQ(t.decode(e.ids), "<|im_start|>user hi<|im_end|>");
  }
}

TEST(Spm, ByteFallbackBytesShareTheCharactersSpan) {
  tok::Tokenizer t = load("spmtrain-bpe");
  const std::string text = "x\xF0\x90\x8D\x88";  // x + U+10348 (Gothic hwair: not in the corpus, so bytes)
  tok::Encoding e = t.encode(text, {.add_special = false});
  size_t bytes = 0;
  for (size_t i = 0; i < e.ids.size(); ++i) {
    if (t.piece(e.ids[i]).starts_with("<0x")) {
      ++bytes;
      EXPECT_EQ(e.offsets[i].b, 1u);
      EXPECT_EQ(e.offsets[i].e, 5u);
    }
  }
  EXPECT_EQ(bytes, 4u);
  EXPECT_EQ(t.decode(e.ids), text);
}

TEST(Spm, LoadFindsModelFilesAndFoldersWithTokenizerModel) {
  fs::path dir = fs::temp_directory_path() / ("loom-spm-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  fs::copy_file(kFiles + "loom-bpe.model", dir / "tokenizer.model", fs::copy_options::overwrite_existing);
  tok::Tokenizer a = tok::Tokenizer::load(dir.string());
  tok::Tokenizer b = tok::Tokenizer::load(kFiles + "loom-bpe.model");
  EXPECT_EQ(a.encode("Hello, world").ids, b.encode("Hello, world").ids);
  EXPECT_EQ(a.vocab_size(), 4000u);
  fs::remove_all(dir);
}

// ---- corrupt and truncated files -----------------------------------------------------------------

namespace {

// Loads bytes as a .model file; "" when it loads, else the error (which must be BadInput naming the file).
std::string load_error(const std::string& path, std::string_view bytes) {
  write_file(path, bytes);
  try {
    tok::Tokenizer t = tok::Tokenizer::from_sentencepiece_file(path);
    // whatever loads must also tokenize without crashing
    auto e = t.encode("Hello world, café 東京 123", {});
    (void)t.decode(e.ids);
    return "";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), Error::Kind::BadInput) << e.what();
    EXPECT_EQ(e.file(), path) << e.what();
    return e.what();
  }
}

}  // namespace

TEST(Spm, EveryTruncationIsABadInputErrorNamingTheFile) {
  std::string data = read_file(kFiles + "spmtrain-bpe.model");
  std::string path = (fs::temp_directory_path() / ("loom-spm-trunc-" + std::to_string(::getpid()) + ".model")).string();
  size_t tried = 0, loaded = 0;
  for (size_t n = 0; n < data.size(); n += (n < 512 || n + 512 > data.size()) ? 1 : 61) {
    ++tried;
    if (load_error(path, std::string_view(data).substr(0, n)).empty()) {
      ++loaded;
      ADD_FAILURE() << "a file truncated to " << n << " of " << data.size() << " bytes loads";
    }
  }
  EXPECT_GT(tried, 2000u);
  EXPECT_EQ(loaded, 0u);
  EXPECT_EQ(load_error(path, data), "");  // the whole file loads
  fs::remove(path);
}

TEST(Spm, CorruptFilesAreErrorsNotCrashes) {
  std::string path = (fs::temp_directory_path() / ("loom-spm-bad-" + std::to_string(::getpid()) + ".model")).string();
  EXPECT_NE(load_error(path, ""), "");
  EXPECT_NE(load_error(path, "{\"model\": {\"type\": \"BPE\"}}\n"), "");  // a tokenizer.json renamed
  EXPECT_NE(load_error(path, std::string(1000, '\xff')), "");
  // random byte changes (in the pieces, the specs, the normalizer's tables): each either loads
  // and tokenizes, or is a BadInput error. LOOM_SPM_FUZZ_ROUNDS=20000 for a longer run.
  const int rounds = std::getenv("LOOM_SPM_FUZZ_ROUNDS") ? std::atoi(std::getenv("LOOM_SPM_FUZZ_ROUNDS")) : 200;
  for (const char* name : {"spmtrain-bpe", "loom-unigram"}) {
    std::string data = read_file(kFiles + name + ".model");
    std::mt19937 rng(1234);
    size_t errors = 0;
    for (int round = 0; round < rounds; ++round) {
      std::string bad = data;
      for (int k = 0; k < 1 + round % 4; ++k) bad[rng() % bad.size()] = static_cast<char>(rng());
      errors += !load_error(path, bad).empty();
    }
    std::printf("%s: %d corrupted copies: %zu rejected, %zu loaded and tokenized\n", name, rounds, errors, rounds - errors);
  }
  fs::remove(path);
}

TEST(Spm, MissingFileIsAnErrorNamingIt) {
  try {
    tok::Tokenizer::from_sentencepiece_file("/nonexistent/x.model");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.located()).find("/nonexistent/x.model"), std::string::npos) << e.located();
  }
}
