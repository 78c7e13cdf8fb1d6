// Unigram tokenizers (SentencePiece-converted tokenizer.json: T5, ALBERT, XLM-R style): parity with
// Hugging Face `tokenizers` on the golden corpus (tests/reference/gen_unigram_goldens.py), and the
// behaviour of the Metaspace, Precompiled and Unigram parts on hand-checked examples.
#include <gtest/gtest.h>

#include <filesystem>

#include <fmt/format.h>

#include "loom/core/error.h"
#include "loom/tokenizer/parts_extra.h"
#include "loom/tokenizer/tokenizer.h"
#include "tokenizer_golden.h"

using namespace loom;
using tokenizer_golden::check_family;
using tokenizer_golden::kTokGolden;
using tokenizer_golden::char_to_byte;
using tokenizer_golden::int_array;
namespace fs = std::filesystem;

// ---- parity ------------------------------------------------------------------------------------

namespace {
void parity(const std::string& family) {
  std::string file = kTokGolden + "files/" + family + ".tokenizer.json.zst";
  if (!fs::exists(file)) GTEST_SKIP() << "no " << file;
  check_family(family, tok::Tokenizer::from_json_file(file));
}
}  // namespace

TEST(UnigramParity, T5PrecompiledMetaspace) { parity("unigram-t5"); }
TEST(UnigramParity, ByteFallbackReplaceNormalizer) { parity("unigram-bf"); }
TEST(UnigramParity, WhitespaceSplitMetaspaceFirst) { parity("unigram-ws"); }

// ---- behaviour ---------------------------------------------------------------------------------

namespace {

// A tiny Unigram tokenizer.json; %PRE% and %DEC% are replaced by the test.
std::string tiny(const std::string& pre, const std::string& dec, const std::string& norm = "null") {
  std::string s = R"({"normalizer": %NORM%, "pre_tokenizer": %PRE%, "decoder": %DEC%,
    "added_tokens": [{"id": 0, "content": "<unk>", "special": true}],
    "model": {"type": "Unigram", "unk_id": 0, "byte_fallback": false, "vocab": [["<unk>", 0.0],
      ["\u2581", -2.0], ["\u2581he", -3.0], ["llo", -3.0], ["\u2581hello", -4.0], ["h", -5.0], ["e", -5.0], ["l", -5.0],
      ["o", -5.0], ["\u2581w", -4.0], ["orld", -4.0], ["\u2581world", -5.5], ["w", -5.0], ["r", -5.0], ["d", -5.0]]}})";
  auto put = [&](const std::string& key, const std::string& v) { s.replace(s.find(key), key.size(), v); };
  put("%NORM%", norm);
  put("%PRE%", pre);
  put("%DEC%", dec);
  return s;
}

std::vector<std::string> pieces(const tok::Tokenizer& t, std::string_view text, std::vector<tok::Span>* spans = nullptr) {
  auto e = t.encode(text, {false, true});
  std::vector<std::string> out;
  for (auto id : e.ids) out.emplace_back(t.piece(id));
  if (spans) *spans = e.offsets;
  return out;
}

using P = std::vector<std::string>;

}  // namespace

TEST(Unigram, ViterbiPicksTheBestPathAndFusesUnknowns) {
  auto t = tok::Tokenizer::from_json(tiny(R"({"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": true})",
                                          R"({"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": true})"));
  // ▁hello (-4) beats ▁he + llo (-6); "world" alone: ▁world (-5.5) beats ▁w + orld (-8)
  EXPECT_EQ(pieces(t, "hello world"), (P{"\u2581hello", "\u2581world"}));
  // x and y are unknown: one fused <unk> spanning both
  std::vector<tok::Span> spans;
  EXPECT_EQ(pieces(t, "hexyd", &spans), (P{"\u2581he", "<unk>", "d"}));
  EXPECT_EQ(spans[1].b, 2u);
  EXPECT_EQ(spans[1].e, 4u);
  EXPECT_EQ(spans[0].b, 0u);  // the prepended ▁ is aligned with the first character
  EXPECT_EQ(t.decode(t.encode("hello world", {false, false}).ids), "hello world");
}

TEST(Unigram, MetaspacePrependSchemes) {
  auto ms = [](const char* scheme, bool split) {
    return std::string(R"({"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": ")") + scheme + "\", \"split\": " +
           (split ? "true" : "false") + "}";
  };
  auto always = tok::Tokenizer::from_json(tiny(ms("always", true), ms("always", true)));
  auto never = tok::Tokenizer::from_json(tiny(ms("never", true), ms("never", true)));
  auto first = tok::Tokenizer::from_json(tiny(R"({"type": "Sequence", "pretokenizers": [{"type": "WhitespaceSplit"}, )" + ms("first", true) + "]}",
                                              ms("first", true)));
  auto nosplit = tok::Tokenizer::from_json(tiny(ms("always", false), ms("always", false)));
  EXPECT_EQ(pieces(always, "hello"), (P{"\u2581hello"}));
  EXPECT_EQ(pieces(never, "hello"), (P{"h", "e", "llo"}));
  EXPECT_EQ(pieces(never, "hello world"), (P{"h", "e", "llo", "\u2581world"}));
  // after WhitespaceSplit, "first" prepends only to the word at offset 0
  EXPECT_EQ(pieces(first, "hello world"), (P{"\u2581hello", "w", "orld"}));
  EXPECT_EQ(pieces(first, " hello"), (P{"h", "e", "llo"}));
  // without split the whole text is one word: "▁hello▁world" may cut across the ▁
  EXPECT_EQ(pieces(nosplit, "hello world"), (P{"\u2581hello", "\u2581world"}));
  // the decoder drops the ▁ of the first piece unless the scheme is never
  EXPECT_EQ(always.decode(always.encode("hello world", {false, false}).ids), "hello world");
  EXPECT_EQ(never.decode(never.encode(" hello", {false, false}).ids), " hello");
  // add_prefix_space false is the old spelling of never, and must agree with prepend_scheme
  EXPECT_NO_THROW(tok::Tokenizer::from_json(tiny(R"({"type": "Metaspace", "replacement": "\u2581", "add_prefix_space": false, "prepend_scheme": "never"})", "null")));
  EXPECT_THROW(tok::Tokenizer::from_json(tiny(R"({"type": "Metaspace", "replacement": "\u2581", "add_prefix_space": false})", "null")), Error);
}

TEST(Unigram, ByteFallbackAndMissingUnk) {
  std::string vocab = R"([["<unk>", 0.0], ["a", -1.0])";
  for (int b = 0; b < 256; ++b) vocab += fmt::format(R"(, ["<0x{:02X}>", -10.0])", b);
  vocab += "]";
  auto t = tok::Tokenizer::from_json(R"({"model": {"type": "Unigram", "unk_id": 0, "byte_fallback": true, "vocab": )" + vocab + "}}");
  auto e = t.encode("a\xC3\xA9", {false, false});
  ASSERT_EQ(e.ids.size(), 3u);
  EXPECT_EQ(e.ids[1], 2 + 0xC3);
  EXPECT_EQ(e.ids[2], 2 + 0xA9);
  EXPECT_EQ(e.offsets[1].b, 1u);  // both byte tokens span the whole character
  EXPECT_EQ(e.offsets[2].e, 3u);
  auto no_unk = tok::Tokenizer::from_json(R"({"model": {"type": "Unigram", "unk_id": null, "vocab": [["a", -1.0]]}})");
  EXPECT_EQ(no_unk.encode("aa", {false, false}).ids, (std::vector<tok::TokenId>{0, 0}));
  EXPECT_THROW(no_unk.encode("ab", {false, false}), Error);
  EXPECT_THROW(tok::Tokenizer::from_json(R"({"model": {"type": "Unigram", "unk_id": 5, "vocab": [["a", -1.0]]}})"), Error);
  EXPECT_THROW(tok::Tokenizer::from_json(R"({"model": {"type": "Unigram", "vocab": [["a"]]}})"), Error);
}

// ---- Precompiled ---------------------------------------------------------------------------------

namespace {

// A precompiled_charsmap with the rules "Ａ" (U+FF21) -> "A" and "ﬁ" (U+FB01) -> "fi", and "\x01" -> ""
// built as SentencePiece's Darts does: base 1 at the root, children at base ^ label.
std::string tiny_charsmap() {
  // The double array: unit = label | has_leaf << 8 | offset << 10 (offset < 2^21, no shift bit).
  std::vector<uint32_t> a(1024, 0);
  auto unit = [](uint32_t label, bool leaf, uint32_t offset) { return label | (leaf ? 1u << 8 : 0) | offset << 10; };
  std::string normalized = std::string("A") + '\0' + "fi" + '\0' + '\0';
  // keys (bytes): EF BC A1 (Ａ), EF AC 81 (ﬁ), 01
  // root at 0 with offset 256 -> children at 256 ^ byte
  a[0] = unit(0, false, 256);
  uint32_t ef = 256 ^ 0xEF, x01 = 256 ^ 0x01;
  a[ef] = unit(0xEF, false, ef ^ 512);  // children of EF at 512 ^ byte
  uint32_t bc = 512 ^ 0xBC, ac = 512 ^ 0xAC;
  a[bc] = unit(0xBC, false, bc ^ 768);
  a[ac] = unit(0xAC, false, ac ^ 896);
  uint32_t a1 = 768 ^ 0xA1, e81 = 896 ^ 0x81;
  // a leaf: the unit's offset points at a value unit (value = index into `normalized`)
  a[a1] = unit(0xA1, true, a1 ^ 100);
  a[100] = 0u;  // "A"
  a[e81] = unit(0x81, true, e81 ^ 101);
  a[101] = 2u;  // "fi"
  a[x01] = unit(0x01, true, x01 ^ 102);
  a[102] = 5u;  // ""
  std::string out(4, '\0');
  uint32_t bytes = static_cast<uint32_t>(a.size() * 4);
  for (int k = 0; k < 4; ++k) out[static_cast<size_t>(k)] = static_cast<char>(bytes >> (8 * k));
  for (uint32_t u : a)
    for (int k = 0; k < 4; ++k) out += static_cast<char>(u >> (8 * k));
  return out + normalized;
}

std::string b64(std::string_view s) {
  static const char* kAlpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (size_t i = 0; i < s.size(); i += 3) {
    uint32_t w = static_cast<uint32_t>(static_cast<unsigned char>(s[i])) << 16;
    if (i + 1 < s.size()) w |= static_cast<uint32_t>(static_cast<unsigned char>(s[i + 1])) << 8;
    if (i + 2 < s.size()) w |= static_cast<unsigned char>(s[i + 2]);
    out += kAlpha[w >> 18];
    out += kAlpha[(w >> 12) & 63];
    out += i + 1 < s.size() ? kAlpha[(w >> 6) & 63] : '=';
    out += i + 2 < s.size() ? kAlpha[w & 63] : '=';
  }
  return out;
}

}  // namespace

TEST(Precompiled, HandCheckedRulesAndAlignment) {
  auto norm = tok::make_precompiled_normalizer(tiny_charsmap(), "t");
  // "xＡ\x01ﬁy": Ａ -> A, \x01 removed (charged to the A before it), ﬁ -> f + i (the i inserted)
  std::string in = "x\xEF\xBC\xA1\x01\xEF\xAC\x81y";
  auto n = norm->normalize(in);
  EXPECT_EQ(n.text, "xAfiy");
  ASSERT_EQ(n.src_begin.size(), 5u);
  EXPECT_EQ(n.src_begin[1], 1u);  // A <- Ａ
  EXPECT_EQ(n.src_end[1], 4u);
  EXPECT_EQ(n.src_begin[2], 5u);  // f <- ﬁ
  EXPECT_EQ(n.src_begin[3], 5u);  // i inserted: aligned with the byte before it (ﬁ)
  EXPECT_EQ(n.src_end[3], 8u);
  EXPECT_EQ(n.src_begin[4], 8u);  // y
  // untouched text is the identity
  EXPECT_EQ(norm->normalize("plain").text, "plain");
  // through tokenizer.json, base64
  std::string json = R"({"normalizer": {"type": "Precompiled", "precompiled_charsmap": ")" + b64(tiny_charsmap()) +
                     R"("}, "model": {"type": "Unigram", "unk_id": 0, "vocab": [["<unk>", 0.0], ["A", -1.0], ["fi", -1.0]]}})";
  auto t = tok::Tokenizer::from_json(json);
  EXPECT_EQ(t.encode("\xEF\xBC\xA1\xEF\xAC\x81", {false, false}).ids, (std::vector<tok::TokenId>{1, 2}));
}

TEST(Precompiled, BadCharsmapsAreErrors) {
  auto load = [](const std::string& b64_map) {
    return tok::Tokenizer::from_json(R"({"normalizer": {"type": "Precompiled", "precompiled_charsmap": ")" + b64_map +
                                     R"("}, "model": {"type": "Unigram", "unk_id": 0, "vocab": [["<unk>", 0.0]]}})", "t.json");
  };
  auto message = [&](const std::string& b64_map) {
    try {
      load(b64_map);
    } catch (const Error& e) {
      EXPECT_EQ(e.exit_status(), 2);
      return e.located();
    }
    return std::string("no error");
  };
  EXPECT_NE(message("not base64!").find("not valid base64"), std::string::npos);
  EXPECT_NE(message("QUJD=").find("not valid base64"), std::string::npos);
  std::string full = tiny_charsmap();
  EXPECT_NE(message(b64(full.substr(0, 2))).find("too short"), std::string::npos);
  EXPECT_NE(message(b64(full.substr(0, 1000))).find("truncated"), std::string::npos);
  EXPECT_NO_THROW(load(b64(full)));
  // every truncation is loaded or rejected, never a crash
  for (size_t n = 0; n < full.size(); n += 97) {
    try {
      auto t = load(b64(full.substr(0, n)));
      (void)t.encode("x\xEF\xBC\xA1 ok", {false, false});
    } catch (const Error&) {
    }
  }
}

TEST(UnigramNormalizers, StripLowercaseRegexReplace) {
  auto strip = tok::make_strip_normalizer(true, true);
  auto n = strip->normalize("  a b \t");
  EXPECT_EQ(n.text, "a b");
  EXPECT_EQ(n.src_begin[0], 2u);
  auto lower = tok::make_lowercase_normalizer();
  EXPECT_EQ(lower->normalize("A\xC3\x89\xC4\xB0").text, "a\xC3\xA9i\xCC\x87");  // AÉİ -> aéi̇
  auto runs = tok::make_regex_replace_normalizer(" {2,}", "\xE2\x96\x81", "t");
  auto r = runs->normalize("a   b c");
  EXPECT_EQ(r.text, "a\xE2\x96\x81" "b c");
  EXPECT_EQ(r.src_begin[1], 3u);  // aligned with the run's last space
  EXPECT_EQ(r.src_end[1], 4u);
  EXPECT_THROW(tok::make_regex_replace_normalizer("\\s+|x", "", "t"), Error);
}

// Metaspace "first" next to added tokens: U+2581 only at the start of the whole input (expected
// ids and offsets from Hugging Face tokenizers: tests/reference/gen_metaspace_added_goldens.py).
TEST(UnigramParity, MetaspaceFirstAfterAddedTokens) {
  std::string file = kTokGolden + "files/unigram-ws-mark.tokenizer.json.zst";
  if (!fs::exists(file)) GTEST_SKIP() << "no " << file;
  tok::Tokenizer t = tok::Tokenizer::from_json_file(file);
  auto in = io::Input::open(kTokGolden + "unigram-ws-mark.jsonl");
  io::JsonlReader reader(*in);
  io::Record r;
  size_t n = 0;
  while (reader.next(r)) {
    std::string text = r.get_string("text").value();
    tok::Encoding e = t.encode(text, {false, false});
    std::vector<int64_t> got(e.ids.begin(), e.ids.end()), offs;
    auto cb = char_to_byte(text);
    for (const auto& s : e.offsets) {
      offs.push_back(static_cast<int64_t>(std::find(cb.begin(), cb.end(), s.b) - cb.begin()));
      offs.push_back(static_cast<int64_t>(std::find(cb.begin(), cb.end(), s.e) - cb.begin()));
    }
    EXPECT_EQ(got, int_array(*r.raw("ids"))) << text;
    EXPECT_EQ(offs, int_array(*r.raw("offsets"))) << text;
    ++n;
  }
  EXPECT_EQ(n, 8u);
}
