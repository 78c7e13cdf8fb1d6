// Tokenizer library: loading tokenizer.json, errors, and parity with Hugging Face `tokenizers`
// on the golden corpus (tests/reference/gen_tokenizer_goldens.py) for the families implemented.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "loom/core/error.h"
#include "loom/io/jsonl.h"
#include "loom/tokenizer/tokenizer.h"
#include "tokenizer_golden.h"

using namespace loom;
namespace fs = std::filesystem;

namespace {

// A tiny WordPiece tokenizer.json, written here, for the behaviour tests below.
const char* kTiny = R"({
  "added_tokens": [{"id": 0, "content": "[UNK]", "special": true}, {"id": 1, "content": "[CLS]", "special": true},
                   {"id": 2, "content": "[SEP]", "special": true}],
  "normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true, "strip_accents": null, "lowercase": true},
  "pre_tokenizer": {"type": "BertPreTokenizer"},
  "post_processor": {"type": "TemplateProcessing",
    "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
    "special_tokens": {"[CLS]": {"id": "[CLS]", "ids": [1], "tokens": ["[CLS]"]}, "[SEP]": {"id": "[SEP]", "ids": [2], "tokens": ["[SEP]"]}}},
  "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": true},
  "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##", "max_input_chars_per_word": 100,
    "vocab": {"[UNK]": 0, "[CLS]": 1, "[SEP]": 2, "un": 3, "##aff": 4, "##able": 5, "cafe": 6, ",": 7, "!": 8, "東": 9}}
})";

std::vector<tok::TokenId> ids(const tok::Encoding& e) { return e.ids; }

}  // namespace

TEST(Tokenizer, WordPieceGreedyLongestMatchWithAlignment) {
  auto t = tok::Tokenizer::from_json(kTiny);
  std::string text = "UnAffable, CAFÉ!東x";
  auto e = t.encode(text, {false, false});
  EXPECT_EQ(ids(e), (std::vector<tok::TokenId>{3, 4, 5, 7, 6, 8, 9, 0}));
  // offsets are byte spans of the original text, through lowercasing and accent stripping
  ASSERT_EQ(e.offsets.size(), 8u);
  EXPECT_EQ(text.substr(e.offsets[1].b, e.offsets[1].e - e.offsets[1].b), "Aff");
  EXPECT_EQ(text.substr(e.offsets[4].b, e.offsets[4].e - e.offsets[4].b), "CAFÉ");
  EXPECT_EQ(text.substr(e.offsets[6].b, e.offsets[6].e - e.offsets[6].b), "東");
  auto with = t.encode(text, {true, false});
  EXPECT_EQ(with.ids.front(), 1);
  EXPECT_EQ(with.ids.back(), 2);
  EXPECT_EQ(t.decode(e.ids), "unaffable, cafe! 東 [UNK]");
}

TEST(Tokenizer, SpecialTokenStringsAreTextUnlessParsed) {
  auto t = tok::Tokenizer::from_json(kTiny);
  auto plain = t.encode("un [SEP] un", {false, false});
  auto parsed = t.encode("un [SEP] un", {false, true});
  EXPECT_EQ(ids(parsed), (std::vector<tok::TokenId>{3, 2, 3}));
  EXPECT_NE(ids(plain), ids(parsed));  // [SEP] typed by a user is not a separator by default
}

TEST(Tokenizer, ErrorsNameWhatIsWrong) {
  auto msg = [](const std::string& json) {
    try {
      tok::Tokenizer::from_json(json, "t.json");
    } catch (const Error& e) {
      EXPECT_EQ(e.exit_status(), 2);
      return e.located();
    }
    return std::string("no error");
  };
  EXPECT_NE(msg("{").find("t.json: not valid JSON"), std::string::npos);
  EXPECT_NE(msg(R"({"model": {"type": "Mystery"}})").find("model type \"Mystery\" is not supported"), std::string::npos);
  std::string bad_norm = kTiny;
  bad_norm.replace(bad_norm.find("BertNormalizer"), 14, "NFKD");
  EXPECT_NE(msg(bad_norm).find("normalizer type \"NFKD\""), std::string::npos);
  auto t = tok::Tokenizer::from_json(kTiny);
  EXPECT_THROW(t.decode({3, 999}), Error);
  // every prefix of a valid file is either loaded or rejected with loom::Error (never a crash)
  std::string full = kTiny;
  for (size_t n = 0; n < full.size(); n += 7) {
    try {
      tok::Tokenizer::from_json(full.substr(0, n));
    } catch (const Error&) {
    }
  }
}

// ---- parity with Hugging Face tokenizers on the golden corpus ----------------------------------

using tokenizer_golden::check_family;
using tokenizer_golden::kTokGolden;

TEST(TokenizerParity, MiniLMWordPiece) {
  std::string file = kTokGolden + "files/minilm.tokenizer.json.zst";
  if (!fs::exists(file)) GTEST_SKIP() << "no " << file;
  check_family("minilm", tok::Tokenizer::from_json_file(file));
}

TEST(TokenizerParity, Gpt2ByteLevelBpe) {
  std::string file = kTokGolden + "files/gpt2.tokenizer.json.zst";
  if (!fs::exists(file)) GTEST_SKIP() << "no " << file;
  // ids and decoding; offsets of byte-level tokens (the reference reports them in characters,
  // trimmed) are not compared yet
  check_family("gpt2", tok::Tokenizer::from_json_file(file), /*offsets=*/true);
}

TEST(TokenizerParity, Llama3ByteLevelBpe) {
  std::string file = kTokGolden + "files/llama3.tokenizer.json.zst";
  if (!fs::exists(file)) GTEST_SKIP() << "no " << file;
  check_family("llama3", tok::Tokenizer::from_json_file(file), /*offsets=*/true);
}

TEST(TokenizerParity, Qwen3ByteLevelBpeWithNfc) {
  std::string file = kTokGolden + "files/qwen3.tokenizer.json.zst";
  if (!fs::exists(file)) GTEST_SKIP() << "no " << file;
  check_family("qwen3", tok::Tokenizer::from_json_file(file), /*offsets=*/true);
}

TEST(TokenizerParity, Llama2SentencePieceBpe) {
  std::string file = kTokGolden + "files/llama2.tokenizer.json.zst";
  if (!fs::exists(file)) GTEST_SKIP() << "no " << file;
  check_family("llama2", tok::Tokenizer::from_json_file(file), /*offsets=*/true);
}

TEST(TokenizerParity, Gemma3SentencePieceBpe) {
  std::string file = kTokGolden + "files/gemma3.tokenizer.json.zst";
  if (!fs::exists(file)) GTEST_SKIP() << "no " << file;
  check_family("gemma3", tok::Tokenizer::from_json_file(file), /*offsets=*/true);
}

TEST(TokenizerParity, Gpt2OriginalFiles) {
  // GPT-2's own encoder.json + vocab.bpe (copied from ../shared/tokenizers), loaded directly
  std::string enc = kTokGolden + "files/gpt2.encoder.json.zst", bpe = kTokGolden + "files/gpt2.vocab.bpe.zst";
  if (!fs::exists(enc) || !fs::exists(bpe)) GTEST_SKIP() << "no " << enc;
  check_family("gpt2", tok::Tokenizer::from_gpt2_files(enc, bpe));
}

TEST(Tokenizer, Gpt2FilesErrorsNameFileAndLine) {
  fs::path d = fs::temp_directory_path() / "loom-gpt2-files";
  fs::create_directories(d);
  {
    std::ofstream(d / "encoder.json") << R"({"a": 0, "b": 1, "ab": 2})";
    std::ofstream(d / "vocab.bpe") << "#version: 0.2\na b\nab\n";
  }
  try {
    tok::Tokenizer::load(d.string());
    FAIL() << "a merge line with one token was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), Error::Kind::BadInput);
    EXPECT_NE(e.located().find("vocab.bpe:3: "), std::string::npos) << e.located();
    EXPECT_EQ(e.line(), 3u) << e.what();
  }
  std::ofstream(d / "vocab.bpe") << "#version: 0.2\na b\n";
  tok::Tokenizer t = tok::Tokenizer::load(d.string());
  EXPECT_EQ(t.encode("abba").ids, (std::vector<tok::TokenId>{2, 1, 0}));
  fs::remove_all(d);
}

// decode(encode(x)) == x on the whole corpus for the tokenizers that lose nothing (byte-level BPE
// without a normalizer; SentencePiece-style BPE with byte fallback). The others (lowercasing
// MiniLM, NFC Qwen3) are checked against the reference's decode in check_family.
TEST(TokenizerParity, LosslessRoundTrip) {
  for (std::string fam : {"gpt2", "llama3", "llama2", "gemma3"}) {
    std::string file = kTokGolden + "files/" + fam + ".tokenizer.json.zst";
    if (!fs::exists(file)) GTEST_SKIP() << "no " << file;
    tok::Tokenizer t = tok::Tokenizer::from_json_file(file);
    auto in = io::Input::open(kTokGolden + "corpus.jsonl");
    io::JsonlReader corpus(*in);
    io::Record c;
    size_t n = 0, bad = 0;
    while (corpus.next(c)) {
      std::string text = c.get_string("text").value();
      std::string back = t.decode(t.encode(text, {false, false}).ids);
      if (back != text && ++bad <= 3) ADD_FAILURE() << fam << " record " << *c.get_string("id") << " does not round-trip";
      ++n;
    }
    EXPECT_GT(n, 1000u);
    EXPECT_EQ(bad, 0u) << fam << ": " << bad << " of " << n << " texts do not round-trip";
  }
}
