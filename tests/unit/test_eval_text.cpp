// Text-generation metrics (lib/eval/text.h) against their references: sacrebleu 2.6.0 (BLEU, chrF,
// chrF++), rouge-score 0.1.2 with nltk 3.10.4's Porter stemmer, the official SQuAD v1.1 and v2.0
// scripts. tests/reference/gen_eval_text_goldens.py writes tests/reference/golden/eval_text/ from
// them; nothing there comes from loom:
//   - 1,200 items (real sentences, mutated; Unicode, entities, numbers, empty texts, 1-4
//     references, multi-line texts): every per-item value of every metric and variant, and the
//     corpus values with sacrebleu's signatures, within 1e-9 relative (counts exactly);
//   - every distinct text's tokens under each tokenizer, SQuAD normalization, str.lower();
//   - nltk's stems of ~3,900 words; Python's whitespace, \w, lowercasing and final sigma on every
//     code point, and the regex module's categories that the intl tokenizer uses;
// plus hand-checked edge cases.
#include <gtest/gtest.h>
#include <utf8proc.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "loom/core/error.h"
#include "loom/eval/text.h"
#include "loom/io/json.h"
#include "loom/io/stream.h"
#include "loom/text/utf8.h"
#include "golden_json.h"

using namespace loom;
using namespace loom::eval;

namespace {

const std::string kGolden = std::string(LOOM_SOURCE_DIR) + "/tests/reference/golden/eval_text/";

using golden::J;

std::string slurp(const std::string& path) {
  auto in = io::Input::open(path);
  return io::read_all(*in);
}

J read_json(const std::string& name) { return golden::parse(slurp(kGolden + name)); }

std::vector<J> read_jsonl(const std::string& name) {
  std::string all = slurp(kGolden + name);
  std::vector<J> out;
  for (size_t b = 0; b < all.size();) {
    size_t e = all.find('\n', b);
    if (e == std::string::npos) e = all.size();
    if (e > b) out.push_back(golden::parse(std::string_view(all).substr(b, e - b)));
    b = e + 1;
  }
  return out;
}

const std::vector<J>& items() {
  static const std::vector<J> v = read_jsonl("items.jsonl.zst");
  return v;
}

// ---- comparisons, counted ---------------------------------------------------------------------------

struct Tally {
  size_t values = 0;
  double max_rel = 0;
  ~Tally() {
    if (values) std::printf("[eval_text] %zu golden values compared; largest relative difference %.3g\n", values, max_rel);
  }
} tally;

void near(double got, double want, const std::string& what) {
  ++tally.values;
  double diff = std::fabs(got - want);
  double rel = diff == 0 ? 0 : diff / std::max(std::fabs(want), 1e-300);
  tally.max_rel = std::max(tally.max_rel, rel);
  EXPECT_LE(rel, 1e-9) << what << ": loom " << got << " reference " << want;
}

void exact(int64_t got, double want, const std::string& what) {
  ++tally.values;
  EXPECT_EQ(static_cast<double>(got), want) << what;
}

std::string show(const J& item) {
  std::string s = "prediction ";
  json::append_string(s, item["prediction"].str);
  s += " references [";
  for (const auto& r : item["references"].arr) json::append_string(s, r.str), s += ",";
  return s + "]";
}

struct BleuVariant {
  const char* name;
  BleuOptions options;
};
const BleuVariant kBleu[] = {{"13a", {BleuTokenize::T13a, false}},
                             {"13a_lc", {BleuTokenize::T13a, true}},
                             {"none", {BleuTokenize::None, false}},
                             {"char", {BleuTokenize::Char, false}},
                             {"intl", {BleuTokenize::Intl, false}}};

struct ChrfVariant {
  const char* name;
  ChrfOptions options;
};
ChrfOptions chrf_with(int word_order, bool lowercase, bool eps_smoothing = false, bool whitespace = false) {
  ChrfOptions o;
  o.word_order = word_order;
  o.lowercase = lowercase;
  o.eps_smoothing = eps_smoothing;
  o.whitespace = whitespace;
  return o;
}
const ChrfVariant kChrf[] = {{"chrf", chrf_with(0, false)},
                             {"chrf++", chrf_with(2, false)},
                             {"chrf_lc", chrf_with(0, true)},
                             {"chrf_eps", chrf_with(0, false, true)},
                             {"chrf_ws", chrf_with(0, false, false, true)}};

void check_bleu(const BleuScore& s, const J& g, const std::string& what) {
  near(s.score, g["score"].num, what + " score");
  for (size_t n = 0; n < 4; ++n) {
    near(s.precisions[n], g["precisions"][n].num, what + " precision " + std::to_string(n + 1));
    exact(s.counts[n], g["counts"][n].num, what + " count " + std::to_string(n + 1));
    exact(s.totals[n], g["totals"][n].num, what + " total " + std::to_string(n + 1));
  }
  near(s.bp, g["bp"].num, what + " bp");
  exact(s.sys_len, g["sys_len"].num, what + " sys_len");
  exact(s.ref_len, g["ref_len"].num, what + " ref_len");
}

void check_prf(const Prf& p, const J& g, const std::string& what) {
  near(p.precision, g[0].num, what + " precision");
  near(p.recall, g[1].num, what + " recall");
  near(p.fmeasure, g[2].num, what + " fmeasure");
}

void check_rouge(const RougeScores& s, const J& g, const std::string& what) {
  check_prf(s.rouge1, g["rouge1"], what + " rouge1");
  check_prf(s.rouge2, g["rouge2"], what + " rouge2");
  check_prf(s.rougeL, g["rougeL"], what + " rougeL");
  check_prf(s.rougeLsum, g["rougeLsum"], what + " rougeLsum");
}

std::string joined(const std::vector<std::string>& t) {
  std::string s;
  for (size_t i = 0; i < t.size(); ++i) {
    if (i) s += ' ';
    s += t[i];
  }
  return s;
}

// Python's str.split()
std::vector<std::string> py_split(std::string_view s) {
  std::vector<std::string> out;
  std::string cur;
  for (size_t i = 0; i < s.size();) {
    size_t b = i;
    if (text::utf8::is_space(text::utf8::next(s, i))) {
      if (!cur.empty()) out.push_back(std::move(cur));
      cur.clear();
    } else {
      cur.append(s.substr(b, i - b));
    }
  }
  if (!cur.empty()) out.push_back(std::move(cur));
  return out;
}

// [[first, last], ...] -> membership over all code points
std::vector<bool> in_ranges(const J& ranges) {
  std::vector<bool> v(0x110000, false);
  for (const J& r : ranges.arr)
    for (auto c = static_cast<size_t>(r[0].num); c <= static_cast<size_t>(r[1].num); ++c) v[c] = true;
  return v;
}

}  // namespace

// ---- goldens ----------------------------------------------------------------------------------------

TEST(EvalTextGolden, PerItemValuesMatchReferences) {
  const auto& all = items();
  ASSERT_GE(all.size(), 1000u);
  for (size_t i = 0; i < all.size(); ++i) {
    const J& it = all[i];
    std::string pred = it["prediction"].str;
    std::vector<std::string> refs = it["references"].strings();
    std::string at = "item " + std::to_string(i) + " (" + show(it) + ")";
    SCOPED_TRACE(at);
    for (auto [key, version] : {std::pair{"squad_v1", SquadVersion::V1_1}, std::pair{"squad_v2", SquadVersion::V2_0}}) {
      SquadScore s = squad_score(pred, refs, version);
      exact(static_cast<int64_t>(s.exact), it[key]["exact"].num, std::string(key) + " exact");
      near(s.f1, it[key]["f1"].num, std::string(key) + " f1");
    }
    for (const auto& v : kBleu) check_bleu(bleu_score(bleu_stats(pred, refs, v.options), true), it["bleu"][v.name], std::string("bleu ") + v.name);
    for (const auto& v : kChrf) near(chrf_score(chrf_stats(pred, refs, v.options), v.options), it["chrf"][v.name].num, v.name);
    ChrfStats st = chrf_stats(pred, refs);
    ASSERT_EQ(st.size(), it["chrf_stats"].arr.size());
    for (size_t k = 0; k < st.size(); ++k) exact(st[k], it["chrf_stats"][k].num, "chrf stats " + std::to_string(k));
    check_rouge(rouge_score(pred, refs, {false}), it["rouge"]["plain"], "rouge");
    check_rouge(rouge_score(pred, refs, {true}), it["rouge"]["stem"], "rouge stemmed");
    if (HasFailure()) break;  // one item's failures are enough to read
  }
}

TEST(EvalTextGolden, CorpusValuesMatchReferences) {
  const auto& all = items();
  J corpus = read_json("corpus.json");
  // one evaluator per option set, as the CLI would run them
  auto run = [&](TextOptions o) {
    TextEvaluator ev(o);
    for (const J& it : all) ev.add(ev.score({it["prediction"].str, it["references"].strings()}));
    return ev.summary();
  };
  for (auto [key, version] : {std::pair{"squad_v1", SquadVersion::V1_1}, std::pair{"squad_v2", SquadVersion::V2_0}}) {
    TextOptions o;
    o.squad_version = version;
    o.bleu = o.chrf = o.rouge = false;
    TextSummary s = run(o);
    EXPECT_EQ(s.items, static_cast<size_t>(corpus[key]["total"].num));
    near(s.squad.exact, corpus[key]["exact"].num, std::string(key) + " exact");
    near(s.squad.f1, corpus[key]["f1"].num, std::string(key) + " f1");
  }
  for (const auto& v : kBleu) {
    TextOptions o;
    o.squad = o.chrf = o.rouge = false;
    o.bleu_options = v.options;
    TextSummary s = run(o);
    check_bleu(s.bleu, corpus["bleu"][v.name], std::string("corpus bleu ") + v.name);
    EXPECT_EQ(s.bleu_signature, corpus["bleu"][v.name]["signature"].str);
  }
  for (const auto& v : kChrf) {
    TextOptions o;
    o.squad = o.bleu = o.rouge = false;
    o.chrf_options = v.options;
    TextSummary s = run(o);
    near(s.chrf, corpus["chrf"][v.name]["score"].num, std::string("corpus ") + v.name);
    EXPECT_EQ(s.chrf_signature, corpus["chrf"][v.name]["signature"].str);
  }
  for (bool stem : {false, true}) {
    TextOptions o;
    o.squad = o.bleu = o.chrf = false;
    o.rouge_options.use_stemmer = stem;
    TextSummary s = run(o);
    check_rouge(s.rouge, corpus["rouge"][stem ? "stem" : "plain"], stem ? "corpus rouge stemmed" : "corpus rouge");
  }
}

TEST(EvalTextGolden, TokenizersMatchReferences) {
  auto rows = read_jsonl("tokens.jsonl.zst");
  ASSERT_GE(rows.size(), 2000u);
  const std::pair<const char*, BleuTokenize> toks[] = {
      {"13a", BleuTokenize::T13a}, {"intl", BleuTokenize::Intl}, {"char", BleuTokenize::Char}, {"none", BleuTokenize::None}};
  for (const J& r : rows) {
    const std::string& t = r["text"].str;
    std::string what;
    json::append_string(what, t);
    for (auto [name, tok] : toks) {
      ++tally.values;  // BLEU splits the tokenizer's output with str.split()
      EXPECT_EQ(bleu_tokenize(t, {tok, false}), py_split(r[name].str)) << name << " " << what;
    }
    ++tally.values;
    EXPECT_EQ(rouge_tokenize(t, false), r["rouge"].strings()) << "rouge " << what;
    ++tally.values;
    EXPECT_EQ(rouge_tokenize(t, true), r["rouge_stem"].strings()) << "rouge stemmed " << what;
    ++tally.values;
    EXPECT_EQ(squad_normalize(t), r["squad"].str) << "squad " << what;
    ++tally.values;
    EXPECT_EQ(python_lower(t), r["lower"].str) << "lower " << what;
    if (HasFailure()) break;
  }
}

TEST(EvalTextGolden, PorterStemsMatchNltk) {
  J p = read_json("porter.json.zst");
  auto words = p["words"].strings(), stems = p["stems"].strings();
  ASSERT_EQ(words.size(), stems.size());
  ASSERT_GE(words.size(), 2000u);
  size_t wrong = 0;
  for (size_t i = 0; i < words.size(); ++i) {
    ++tally.values;
    std::string got = porter_stem(words[i]);
    if (got != stems[i] && ++wrong <= 20) ADD_FAILURE() << words[i] << ": loom " << got << " nltk " << stems[i];
  }
  EXPECT_EQ(wrong, 0u);
}

TEST(EvalTextGolden, UnicodeFactsMatchPython) {
  J u = read_json("unicode.json");
  auto unassigned = in_ranges(u["unassigned"]), space = in_ranges(u["space"]), word = in_ranges(u["word"]);
  auto after = in_ranges(u["sigma_after"]), before = in_ranges(u["sigma_before"]);
  std::vector<std::string> lower(0x110000);
  for (const J& m : u["lower"].arr) lower[static_cast<size_t>(m[0].num)] = m[1].str;
  size_t checked = 0;
  for (char32_t c = 0; c < 0x110000; ++c) {
    if (c >= 0xD800 && c <= 0xDFFF) continue;
    // code points Python's Unicode (14.0) leaves unassigned may be assigned in utf8proc's
    if (unassigned[c] || utf8proc_category(static_cast<utf8proc_int32_t>(c)) == UTF8PROC_CATEGORY_CN) continue;
    ++checked;
    std::string ch;
    text::utf8::append(ch, c);
    ASSERT_EQ(text::utf8::is_space(c), space[c]) << std::hex << "U+" << uint32_t(c) << " isspace";
    ASSERT_EQ(python_is_word(c), word[c]) << std::hex << "U+" << uint32_t(c) << " \\w";
    ASSERT_EQ(python_lower(ch), lower[c].empty() ? ch : lower[c]) << std::hex << "U+" << uint32_t(c) << " lower";
    ASSERT_EQ(python_lower("A\u03a3" + ch).substr(1, 2) == "\u03c2", after[c]) << std::hex << "U+" << uint32_t(c) << " sigma after";
    std::string lb = python_lower(ch + "\u03a3");
    ASSERT_EQ(lb.substr(lb.size() - 2) == "\u03c2", before[c]) << std::hex << "U+" << uint32_t(c) << " sigma before";
  }
  tally.values += 5 * checked;
  EXPECT_GT(checked, 140000u);
}

TEST(EvalTextGolden, IntlCategoriesMatchRegexModule) {
  // the intl tokenizer's \p{P}, \p{S}, \p{N} come from utf8proc; the reference's from `regex`
  J u = read_json("unicode.json");
  auto P = in_ranges(u["regex_P"]), S = in_ranges(u["regex_S"]), N = in_ranges(u["regex_N"]);
  auto unassigned = in_ranges(u["regex_unassigned"]);
  size_t checked = 0;
  for (char32_t c = 0; c < 0x110000; ++c) {
    if ((c >= 0xD800 && c <= 0xDFFF) || unassigned[c]) continue;
    auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(c));
    if (cat == UTF8PROC_CATEGORY_CN) continue;
    ++checked;
    bool p = cat >= UTF8PROC_CATEGORY_PC && cat <= UTF8PROC_CATEGORY_PO;
    bool s = cat >= UTF8PROC_CATEGORY_SM && cat <= UTF8PROC_CATEGORY_SO;
    bool n = cat >= UTF8PROC_CATEGORY_ND && cat <= UTF8PROC_CATEGORY_NO;
    ASSERT_EQ(p, P[c]) << std::hex << "U+" << uint32_t(c);
    ASSERT_EQ(s, S[c]) << std::hex << "U+" << uint32_t(c);
    ASSERT_EQ(n, N[c]) << std::hex << "U+" << uint32_t(c);
  }
  tally.values += 3 * checked;
  EXPECT_GT(checked, 140000u);
}

// ---- hand-checked cases -------------------------------------------------------------------------------

TEST(EvalText, SquadNormalization) {
  EXPECT_EQ(squad_normalize("The  Cat, the hat!"), "cat hat");
  EXPECT_EQ(squad_normalize("an Apple a day"), "apple day");
  EXPECT_EQ(squad_normalize("theatre anthem"), "theatre anthem");  // whole words only
  EXPECT_EQ(squad_normalize("a\u0301 b"), "\u0301 b");               // a combining mark is not \w
  EXPECT_EQ(squad_normalize("caf\u00e9\u00a0au\u2028lait"), "caf\u00e9 au lait");
  EXPECT_EQ(squad_normalize("_the_"), "");  // '_' is punctuation, removed before the articles
  EXPECT_EQ(squad_normalize("\u00c9T\u00c9 \u0130"), "\u00e9t\u00e9 i\u0307");
}

TEST(EvalText, SquadScores) {
  std::vector<std::string> refs = {"the Eiffel Tower", "Eiffel tower in Paris"};
  SquadScore s = squad_score("Eiffel Tower.", refs, SquadVersion::V1_1);
  EXPECT_EQ(s.exact, 1);
  EXPECT_EQ(s.f1, 1);
  s = squad_score("tower", refs, SquadVersion::V1_1);
  EXPECT_EQ(s.exact, 0);
  EXPECT_DOUBLE_EQ(s.f1, 2 * 1.0 * 0.5 / 1.5);  // p 1, r 1/2 against the first reference
  // v1.1: an empty prediction scores 0 F1 even against an empty answer; v2.0 scores agreement
  std::vector<std::string> empty = {""};
  EXPECT_EQ(squad_score("", empty, SquadVersion::V1_1).f1, 0);
  EXPECT_EQ(squad_score("", empty, SquadVersion::V1_1).exact, 1);
  EXPECT_EQ(squad_score("", empty, SquadVersion::V2_0).f1, 1);
  // v2.0 drops answers that normalize to nothing ("the"): unanswerable
  std::vector<std::string> the = {"the", "."};
  EXPECT_EQ(squad_score("a", the, SquadVersion::V2_0).f1, 1);
  EXPECT_EQ(squad_score("Paris", the, SquadVersion::V2_0).f1, 0);
  // no references: unanswerable in v2.0, an error in v1.1
  std::vector<std::string> none;
  EXPECT_EQ(squad_score("", none, SquadVersion::V2_0).exact, 1);
  EXPECT_THROW(squad_score("", none, SquadVersion::V1_1), loom::Error);
}

TEST(EvalText, Tokenizer13a) {
  auto tok = [](std::string_view s) { return joined(bleu_tokenize(s)); };
  EXPECT_EQ(tok("Hello, world!"), "Hello , world !");
  EXPECT_EQ(tok("It costs $1,000.50 (approx.)"), "It costs $ 1,000.50 ( approx . )");
  EXPECT_EQ(tok("1990-2000 and well-known"), "1990 - 2000 and well-known");
  EXPECT_EQ(tok("AT&amp;T &quot;quoted&quot; &amp;lt;"), "AT & T \" quoted \" <");
  EXPECT_EQ(tok("pre-\nfix <skipped> end.\n"), "prefix end .");
  EXPECT_EQ(tok("caf\u00e9.\u00a0Next"), "caf\u00e9 . Next");  // U+00A0 is whitespace
  EXPECT_EQ(tok("x.5 5.x"), "x . 5 5 . x");
  EXPECT_EQ(tok(""), "");
  EXPECT_EQ(joined(bleu_tokenize("a b\u00a0c", {BleuTokenize::Char, false})), "a b c");
  EXPECT_EQ(joined(bleu_tokenize("HELLO \u0130", {BleuTokenize::None, true})), "hello i\u0307");
}

TEST(EvalText, BleuBasics) {
  std::vector<std::string> refs = {"The cat sat on the mat."};
  BleuScore s = bleu_score(bleu_stats("The cat sat on the mat.", refs), true);
  EXPECT_NEAR(s.score, 100.0, 1e-12);  // sacrebleu: 100.00000000000004
  EXPECT_EQ(s.sys_len, 7);
  EXPECT_EQ(s.bp, 1.0);
  // no match at all: 0, precisions 0, whatever the smoothing
  s = bleu_score(bleu_stats("dog", refs), true);
  EXPECT_EQ(s.score, 0);
  EXPECT_EQ(s.precisions[0], 0);
  // "the mat": 2 of 2 unigrams, 1 of 1 bigram; effective order 2; bp = exp(1 - 7/2)
  s = bleu_score(bleu_stats("the mat", refs), true);
  EXPECT_NEAR(s.score, std::exp(1 - 7.0 / 2) * 100, 1e-12);
  s = bleu_score(bleu_stats("the mat", refs), false);  // corpus: orders 3, 4 have no n-grams
  EXPECT_LT(s.score, 1e-100);
  // clipping over references, closest reference length (the shorter one on ties)
  std::vector<std::string> two = {"a a b", "a c d e f"};
  BleuStats st = bleu_stats("a a a a", two);
  EXPECT_EQ(st.correct[0], 2);
  EXPECT_EQ(st.ref_len, 3);
  EXPECT_THROW(bleu_stats("x", std::vector<std::string>{}), loom::Error);
  EXPECT_EQ(bleu_signature({}, 1), "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0");
  EXPECT_EQ(bleu_signature({BleuTokenize::Char, true}, -1, true), "nrefs:var|case:lc|eff:yes|tok:char|smooth:exp|version:2.6.0");
}

TEST(EvalText, ChrfBasics) {
  std::vector<std::string> refs = {"Hello there"};
  EXPECT_DOUBLE_EQ(chrf_score(chrf_stats("Hello there", refs)), 100.0);
  EXPECT_DOUBLE_EQ(chrf_score(chrf_stats("Hellothere", refs)), 100.0);  // whitespace is removed
  EXPECT_EQ(chrf_score(chrf_stats("", refs)), 0.0);
  // unigram-only chrF of "ab" vs "ac": p = r = 1/2 -> 50
  ChrfOptions o;
  o.char_order = 1;
  std::vector<std::string> ac = {"ac"};
  EXPECT_DOUBLE_EQ(chrf_score(chrf_stats("ab", ac, o), o), 50.0);
  o.char_order = 7;
  EXPECT_THROW(chrf_stats("ab", ac, o), loom::Error);
  EXPECT_EQ(chrf_signature({}, 2), "nrefs:2|case:mixed|eff:yes|nc:6|nw:0|space:no|version:2.6.0");
  EXPECT_EQ(chrf_signature(chrf_with(2, true), -1), "nrefs:var|case:lc|eff:yes|nc:6|nw:2|space:no|version:2.6.0");
}

TEST(EvalText, RougeTokenizerAndStemmer) {
  EXPECT_EQ(joined(rouge_tokenize("The quick-brown FOX, caf\u00e9 42!")), "the quick brown fox caf 42");
  EXPECT_EQ(joined(rouge_tokenize("\u0130stanbul \u212aelvin")), "i stanbul kelvin");
  EXPECT_EQ(joined(rouge_tokenize("running flies generalizations was", true)), "run fli gener was");
  EXPECT_EQ(porter_stem("caresses"), "caress");
  EXPECT_EQ(porter_stem("ponies"), "poni");
  EXPECT_EQ(porter_stem("ties"), "tie");    // nltk: four-letter "ies" words
  EXPECT_EQ(porter_stem("dying"), "die");   // nltk's irregular forms
  EXPECT_EQ(porter_stem("hopping"), "hop");
  EXPECT_EQ(porter_stem("relational"), "relat");
  EXPECT_EQ(porter_stem("controlling"), "control");
  EXPECT_EQ(porter_stem("enjoy"), "enjoy");
  EXPECT_EQ(porter_stem("happy"), "happi");
}

TEST(EvalText, RougeScores) {
  std::vector<std::string> refs = {"the cat was under the bed"};
  RougeScores s = rouge_score("the cat was found under the bed", refs);
  EXPECT_DOUBLE_EQ(s.rouge1.recall, 1.0);
  EXPECT_DOUBLE_EQ(s.rouge1.precision, 6.0 / 7);
  EXPECT_DOUBLE_EQ(s.rouge2.precision, 4.0 / 6);
  EXPECT_DOUBLE_EQ(s.rougeL.recall, 1.0);
  // Lsum: union LCS of each reference line over the prediction's lines
  std::vector<std::string> lines = {"a b c\nd e"};
  s = rouge_score("a c\nd x e", lines);
  EXPECT_DOUBLE_EQ(s.rougeLsum.recall, 4.0 / 5);
  EXPECT_DOUBLE_EQ(s.rougeLsum.precision, 4.0 / 5);
  // empty prediction: all zero; best reference chosen per type
  EXPECT_EQ(rouge_score("", refs).rougeL.fmeasure, 0);
  std::vector<std::string> multi = {"x y z", "the cat"};
  EXPECT_DOUBLE_EQ(rouge_score("the cat sat", multi).rouge1.recall, 1.0);
  EXPECT_THROW(rouge_score("x", std::vector<std::string>{}), loom::Error);
}

TEST(EvalText, EvaluatorStreamsAndSummarizes) {
  TextEvaluator ev;
  TextSummary empty = ev.summary();
  EXPECT_EQ(empty.items, 0u);
  EXPECT_EQ(empty.bleu.score, 0);
  std::vector<TextItem> data = {{"The cat sat on the mat.", {"The cat sat on the mat."}},
                                {"a dog", {"a dog barks", "the dog"}}};
  for (const auto& it : data) ev.add(ev.score(it));
  TextSummary s = ev.summary();
  EXPECT_EQ(s.items, 2u);
  EXPECT_EQ(s.bleu_signature, "nrefs:var|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0");
  EXPECT_EQ(s.chrf_signature, "nrefs:var|case:mixed|eff:yes|nc:6|nw:0|space:no|version:2.6.0");
  EXPECT_DOUBLE_EQ(s.squad.exact, 100.0);  // "dog" against "the dog"
  EXPECT_GT(s.bleu.score, 0);
  EXPECT_GT(s.rouge.rougeL.fmeasure, 0.5);
  TextItem none{"x", {}};
  EXPECT_THROW(ev.score(none), loom::Error);
  TextOptions bad;
  bad.chrf_options.word_order = 9;
  EXPECT_THROW(TextEvaluator{bad}, loom::Error);
}

TEST(EvalText, ManyDistinctSymbolsUseWideKeys) {
  // n-gram keys pack dense ids; past 2^16 distinct tokens (BLEU) or 2^10 distinct characters
  // (chrF) they no longer fit 64 bits. All symbols distinct: every n-gram is unique, so the
  // counts follow from the positions.
  std::string text, changed;
  const size_t words = 70000;
  for (size_t i = 0; i < words; ++i) {
    std::string w = "w";
    w += std::to_string(i);
    if (i) text += ' ', changed += ' ';
    text += w;
    changed += i == words / 2 ? std::string("other") : w;
  }
  std::vector<std::string> refs = {text};
  BleuStats st = bleu_stats(changed, refs);
  for (size_t n = 1; n <= 4; ++n) {
    EXPECT_EQ(st.total[n - 1], static_cast<int64_t>(words - n + 1));
    EXPECT_EQ(st.correct[n - 1], static_cast<int64_t>(words - n + 1 - n));  // n windows cover the change
  }
  std::string chars, chars_changed;
  const size_t count = 3000;
  for (size_t i = 0; i < count; ++i) {
    text::utf8::append(chars, static_cast<char32_t>(0x4E00 + i));
    text::utf8::append(chars_changed, static_cast<char32_t>(i == count / 2 ? 0x3042 : 0x4E00 + i));
  }
  std::vector<std::string> cref = {chars};
  ChrfStats cs = chrf_stats(chars_changed, cref);
  for (size_t n = 1; n <= 6; ++n) {
    EXPECT_EQ(cs[3 * (n - 1)], static_cast<int64_t>(count - n + 1));
    EXPECT_EQ(cs[3 * (n - 1) + 1], static_cast<int64_t>(count - n + 1));
    EXPECT_EQ(cs[3 * (n - 1) + 2], static_cast<int64_t>(count - n + 1 - n));
  }
  EXPECT_NEAR(chrf_score(chrf_stats(chars, cref)), 100.0, 1e-12);
}
