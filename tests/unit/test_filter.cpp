// The filter language of `loom retrieve --filter` (lib/index/filter.h): a table of expressions
// against records with the answers worked out by hand from the header's rules, and a table of bad
// expressions with the column and message each must give.
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <string_view>

#include "loom/core/error.h"
#include "loom/index/filter.h"
#include "loom/io/jsonl.h"

using loom::Error;
using loom::index::Filter;
using loom::io::Record;

namespace {

// The records the table reads, by name.
const std::map<std::string, std::string>& record_texts() {
  static const std::map<std::string, std::string> recs = {
      {"r1", R"json({"id":"doc-1","text":"How to rotate logs with logrotate","lang":"en","meta":{"lang":"en","year":2021,"score":0.75,"draft":false,"source":"man","tags":["linux","logs","admin"],"author":null,"odd-key":"yes","nested":{"a":{"b":[10,20,{"c":"deep"}]}},"title":"Caf\u00e9 \"quoted\" \\ back","big":12345678901234567891,"empty":"","zero":0,"list":[],"obj":{"x":1,"y":[1,2]},"obj2":{"y":[1,2.0],"x":1.0},"obj3":{"x":1},"in":"kw","sql":"'; DROP TABLE t","uni":"日本語"}})json"},
      {"r2", R"json({"id":"doc-2","text":"Bonjour","meta":{"esc":"x\"]}{[,:\\","lang":"fr","year":2019.0,"draft":true,"source":"faq","tags":["faq"],"score":-0.5,"n":1e3,"title":"Café","flag":"true","year_s":"2021","emoji":"\ud83e\udd99 llama","we\u0069rd":1,"q\"k":2}})json"},
      {"r3", R"json({"id":"doc-3"})json"},
      {"r4", R"json({"id":"doc-4","meta":"plain string","text":null})json"},
      {"r5", R"json({"id":"doc-5","meta":{"year":2020,"lang":"EN","tags":"linux admin","num_s":"10"}})json"},
  };
  return recs;
}

const Record& record(const std::string& name) {
  static std::map<std::string, Record> parsed;
  auto it = parsed.find(name);
  if (it == parsed.end()) it = parsed.emplace(name, Record::parse(record_texts().at(name))).first;
  return it->second;
}

struct Case {
  const char* rec;
  const char* expr;
  bool want;
};

// Each answer follows from the rules in lib/index/filter.h, worked out by hand.
const Case kCases[] = {
    // == and != on strings; absent is null, and != is not ==
    {"r1", R"(meta.lang == "en")", true},
    {"r2", R"(meta.lang == "en")", false},
    {"r3", R"(meta.lang == "en")", false},
    {"r5", R"(meta.lang == "en")", false},  // "EN": no case folding
    {"r1", R"(meta.lang != "en")", false},
    {"r2", R"(meta.lang != "en")", true},
    {"r3", R"(meta.lang != "en")", true},
    {"r1", R"("en" == meta.lang)", true},
    {"r1", R"(id == "doc-1")", true},
    {"r3", R"(id == "doc-3")", true},

    // ordering of numbers
    {"r1", "meta.year >= 2020", true},
    {"r2", "meta.year >= 2020", false},
    {"r3", "meta.year >= 2020", false},
    {"r5", "meta.year >= 2020", true},
    {"r5", "meta.year > 2020", false},
    {"r5", "meta.year < 2020", false},
    {"r5", "meta.year <= 2020", true},
    {"r1", "meta.year > 2020", true},
    {"r1", "meta.year < 2022", true},
    {"r1", "2020 < meta.year", true},

    // numbers compare by value: 2020 == 2020.0, exponents, negatives, zero
    {"r5", "meta.year == 2020.0", true},
    {"r5", "meta.year == 2.02e3", true},
    {"r5", "meta.year == 2020.0000001", false},
    {"r5", "meta.year < 2020.0000001", true},
    {"r2", "meta.year == 2019", true},
    {"r2", "meta.year == 2019.5", false},
    {"r2", "meta.year == 20190e-1", true},
    {"r2", "meta.n == 1000", true},
    {"r2", "meta.n == 1e3", true},
    {"r2", "meta.n == 1E+3", true},
    {"r2", "meta.n == 10000e-1", true},
    {"r2", "meta.n == 0.1e4", true},
    {"r2", "meta.n > 999.999", true},
    {"r2", "meta.n < 1000.5", true},
    {"r2", "meta.score == -0.5", true},
    {"r2", "meta.score == -5e-1", true},
    {"r2", "meta.score < 0", true},
    {"r2", "meta.score < -0.49", true},
    {"r2", "meta.score > -0.51", true},
    {"r2", "meta.score >= -0.5", true},
    {"r2", "meta.score > -0.5", false},
    {"r1", "meta.score > 0.5", true},
    {"r1", "meta.score == 0.750", true},
    {"r1", "meta.zero == -0", true},
    {"r1", "meta.zero == 0.0", true},
    {"r1", "meta.zero == 0e10", true},
    {"r1", "meta.zero < 0.0001", true},
    {"r1", "meta.zero > -1e-300", true},
    {"r1", "meta.zero > 1e-999999", false},
    {"r1", "meta.zero < 1e-999999", true},
    // big integers stay exact (a double cannot tell these apart)
    {"r1", "meta.big == 12345678901234567891", true},
    {"r1", "meta.big == 12345678901234567890", false},
    {"r1", "meta.big != 12345678901234567890", true},
    {"r1", "meta.big > 12345678901234567890", true},
    {"r1", "meta.big < 12345678901234567892", true},
    {"r1", "meta.big == 1.2345678901234567891e19", true},
    {"r1", "meta.big > 1e19", true},
    {"r1", "meta.big < 1e20", true},
    {"r1", "meta.big < 1e999999", true},
    {"r1", "meta.big > -1e999999", true},

    // strings: escapes decoded, bytewise, unicode
    {"r1", R"(meta.title == "Café \"quoted\" \\ back")", true},
    {"r1", R"(meta.title == "Caf\u00e9 \"quoted\" \u005c back")", true},
    {"r1", R"(meta.title == "Cafe \"quoted\" \\ back")", false},
    {"r1", R"(meta.title contains "\"")", true},
    {"r1", R"(meta.title contains "\\")", true},
    {"r2", R"(meta.title == "Caf\u00e9")", true},
    {"r2", R"(meta.title == "Café")", true},
    {"r2", R"(meta.title == "Cafe")", false},
    {"r2", R"(meta.title == "CAFÉ")", false},
    {"r2", R"(meta.title > "Cafe")", true},   // 0xC3 > 'e'
    {"r2", R"(meta.title < "Cafz")", false},  // 0xC3 > 'z': bytes compare unsigned
    {"r2", R"(meta.emoji == "🦙 llama")", true},
    {"r2", R"(meta.emoji == "\ud83e\udd99 llama")", true},
    {"r2", R"(meta.emoji contains "🦙")", true},
    {"r2", R"(meta.esc == "x\"]}{[,:\\")", true},
    {"r1", R"(meta.uni == "日本語")", true},
    {"r1", R"(meta.uni == "\u65e5\u672c\u8a9e")", true},
    {"r1", R"(meta.uni contains "本")", true},
    {"r1", R"(meta.uni > "日")", true},
    {"r1", R"(meta.source < "mao")", true},
    {"r1", R"(meta.source >= "man")", true},
    {"r1", R"(meta.source > "ma")", true},
    {"r1", R"(meta.source < "Man")", false},
    {"r1", R"("\n" == "\u000a")", true},
    {"r1", R"("\/" == "/")", true},
    {"r1", R"("\t\"" == "\u0009\u0022")", true},
    {"r1", R"("\b\f\r" == "\u0008\u000C\u000d")", true},

    // types that differ: == is false, ordering is false either way
    {"r5", "meta.num_s > 5", false},
    {"r5", "meta.num_s < 5", false},
    {"r5", "meta.num_s == 10", false},
    {"r5", R"(meta.num_s == "10")", true},
    {"r1", R"(meta.year > "2000")", false},
    {"r1", R"(meta.year <= "2000")", false},
    {"r1", R"(meta.year == "2021")", false},
    {"r1", R"(meta.year < "a")", false},
    {"r1", "meta.year >= null", false},
    {"r1", "meta.year <= null", false},
    {"r2", "meta.flag == true", false},
    {"r2", R"(meta.flag == "true")", true},
    {"r1", "meta.draft > 0", false},
    {"r1", "meta.draft == 0", false},
    {"r1", "meta.draft == false", true},
    {"r1", "meta.draft < true", true},
    {"r2", "meta.draft > false", true},
    {"r2", "meta.draft >= true", true},
    {"r3", "meta.year <= 2020", false},
    {"r3", "meta.year < meta.other", false},
    {"r3", "meta.year <= meta.other", false},
    {"r3", "meta.year == meta.other", true},
    {"r1", "1 < \"2\"", false},
    {"r1", "1 != \"1\"", true},
    {"r1", "null == null", true},
    {"r1", "null < null", false},
    {"r1", "null >= null", false},
    {"r1", "true > false", true},
    {"r1", "1 == 1.0", true},
    {"r1", R"("a" < "b")", true},

    // null, absent and exists()
    {"r1", "meta.author == null", true},
    {"r1", "exists(meta.author)", true},
    {"r1", "meta.missing == null", true},
    {"r1", "exists(meta.missing)", false},
    {"r1", "not exists(meta.missing)", true},
    {"r1", "meta.author", false},
    {"r1", "not meta.author", true},
    {"r1", "meta.author != null", false},
    {"r3", "meta == null", true},
    {"r3", "exists(meta)", false},
    {"r3", "exists(id)", true},
    {"r4", "text == null", true},
    {"r4", "exists(text)", true},
    {"r4", "text", false},
    {"r4", "meta.lang == null", true},
    {"r4", "exists(meta.lang)", false},
    {"r4", R"(meta == "plain string")", true},
    {"r4", R"(meta contains "plain")", true},
    {"r4", "meta[0] == null", true},

    // truth of a lone operand
    {"r1", "meta.draft", false},
    {"r2", "meta.draft", true},
    {"r1", "not meta.draft", true},
    {"r2", "not not meta.draft", true},
    {"r1", "meta.zero", true},
    {"r1", "meta.empty", true},
    {"r1", "meta.list", true},
    {"r1", "meta.obj", true},
    {"r1", "meta.lang", true},
    {"r3", "meta", false},
    {"r3", "true", true},
    {"r3", "false", false},
    {"r3", "null", false},
    {"r3", "0", true},
    {"r3", "\"\"", true},
    {"r3", "[]", true},

    // and / or / not: not binds tighter than and, and tighter than or; not applies to a comparison
    {"r1", R"(meta.lang == "en" and meta.year >= 2020)", true},
    {"r2", R"(meta.lang == "en" and meta.year >= 2020)", false},
    {"r5", R"(meta.lang == "en" and meta.year >= 2020)", false},
    {"r2", R"(meta.lang == "en" or meta.lang == "fr")", true},
    {"r5", R"(meta.lang == "en" or meta.lang == "fr")", false},
    {"r3", "true or false and false", true},
    {"r3", "false and false or true", true},
    {"r3", "not false and false", false},
    {"r3", "not true or true", true},
    {"r3", "not (true and false)", true},
    {"r3", "(true or false) and false", false},
    {"r3", "true or (false and false)", true},
    {"r3", "false or false or false or true", true},
    {"r3", "true and true and true and false", false},
    {"r3", "not not not false", true},
    {"r2", "not meta.year == 2021", true},
    {"r1", "not meta.year == 2021", false},
    {"r3", "not meta.year == 2021", true},
    {"r1", "meta.draft == false and not meta.author and exists(meta.author)", true},
    {"r1", R"((meta.source == "man" or meta.source == "faq") and not meta.draft)", true},
    {"r2", R"((meta.source == "man" or meta.source == "faq") and not meta.draft)", false},
    {"r5", R"((meta.source == "man" or meta.source == "faq") and not meta.draft)", false},
    {"r1", R"(((((meta.lang == "en")))))", true},

    // in (b contains a)
    {"r1", R"(meta.lang in ["en", "fr"])", true},
    {"r2", R"(meta.lang in ["en", "fr"])", true},
    {"r5", R"(meta.lang in ["en", "fr"])", false},
    {"r3", R"(meta.lang in ["en", "fr"])", false},
    {"r3", R"(meta.lang in ["en", null])", true},
    {"r1", "meta.author in [null]", true},
    {"r1", "meta.year in [2020, 2021]", true},
    {"r2", "meta.year in [2019]", true},
    {"r2", "meta.n in [1000.0]", true},
    {"r2", "meta.n in [1e3, \"x\"]", true},
    {"r2", R"(meta.year in ["2019"])", false},
    {"r1", R"(id in ["doc-1", "doc-2"])", true},
    {"r3", R"(id in ["doc-1", "doc-2"])", false},
    {"r1", "meta.lang in []", false},
    {"r1", "meta.draft in [true, false]", true},
    {"r1", "meta.draft in [true, 0]", false},
    {"r1", "meta.obj.y in [[1, 2], [3]]", true},
    {"r1", "meta.obj.y in [[1.0, 2e0]]", true},
    {"r1", "meta.obj.y in [[2, 1]]", false},
    {"r1", R"("linux" in meta.tags)", true},
    {"r2", R"("linux" in meta.tags)", false},
    {"r1", R"("an" in meta.source)", true},
    {"r1", R"(meta.lang in "english")", true},
    {"r1", R"(meta.lang in "English")", false},
    {"r1", R"(not meta.lang in ["en"])", false},

    // contains: substring for strings, membership for arrays, false otherwise
    {"r1", R"(meta.tags contains "linux")", true},
    {"r2", R"(meta.tags contains "linux")", false},
    {"r3", R"(meta.tags contains "linux")", false},
    {"r5", R"(meta.tags contains "linux")", true},
    {"r5", R"(meta.tags contains "dmi")", true},
    {"r1", R"(meta.tags contains "lin")", false},
    {"r1", R"(meta.tags contains ["linux"])", false},
    {"r1", R"(text contains "rotate")", true},
    {"r1", R"(text contains "Rotate")", false},
    {"r1", R"(text contains "")", true},
    {"r1", "meta.year contains 2", false},
    {"r1", "meta.nested.a.b contains 20", true},
    {"r1", "meta.nested.a.b contains 20.0", true},
    {"r1", R"(meta.nested.a.b contains "deep")", false},
    {"r1", "meta.list contains null", false},
    {"r1", "meta.obj contains 1", false},
    {"r1", "[1, 2, 3] contains 2", true},
    {"r1", R"(["a", "b"] contains meta.lang)", false},
    {"r1", R"("abc" contains "b")", true},
    {"r1", R"(meta.sql contains "DROP")", true},

    // paths: dots, brackets, indexes, jq's leading dot, keyword names after a dot
    {"r1", R"(meta["odd-key"] == "yes")", true},
    {"r1", R"(meta."odd-key" == "yes")", true},
    {"r1", "meta.nested.a.b[0] == 10", true},
    {"r1", R"(meta.nested.a.b[2].c == "deep")", true},
    {"r1", R"(meta.nested["a"]["b"][-1].c == "deep")", true},
    {"r1", "meta.nested.a.b[-3] == 10", true},
    {"r1", "meta.nested.a.b[-4] == null", true},
    {"r1", "exists(meta.nested.a.b[-4])", false},
    {"r1", "meta.nested.a.b[3] == null", true},
    {"r1", "exists(meta.nested.a.b[2])", true},
    {"r1", "exists(meta.nested.a.b[3])", false},
    {"r1", R"(meta.tags[0] == "linux")", true},
    {"r1", R"(meta.tags[1] == "logs")", true},
    {"r1", "meta.tags[99999999999999999999] == null", true},
    {"r1", R"(meta.tags["0"] == null)", true},
    {"r1", "meta.nested[0] == null", true},
    {"r1", "meta.lang.x == null", true},
    {"r1", R"(lang == "en")", true},
    {"r2", R"(lang == "en")", false},
    {"r1", R"(.meta.lang == "en")", true},
    {"r1", R"(.lang == "en")", true},
    {"r1", R"(.["lang"] == "en")", true},
    {"r1", R"(."lang" == "en")", true},
    {"r1", R"(meta.in == "kw")", true},
    {"r1", R"(meta["in"] == "kw")", true},
    {"r1", R"(.id == "doc-1")", true},
    {"r1", R"(meta . lang == "en")", true},
    {"r1", R"(meta.tags [ 0 ] == "linux")", true},
    {"r1", "meta.yea == null", true},
    {"r2", R"(meta.year_s == "2021")", true},
    {"r2", "meta.weird == 1", true},             // the record spells the key we\u0069rd
    {"r2", R"(meta["q\"k"] == 2)", true},
    {"r2", R"(meta["q\\\"k"] == null)", true},  // the key q\"k, not the record's q"k
    {"r2", R"(meta.lang == "fr")", true},        // found after skipping "esc"'s brackets and quotes
    {"r1", "meta.obj.x == meta.nested.a.b[0]", false},
    {"r1", "meta.tags[0] == meta.tags[0]", true},

    // structural equality of arrays and objects
    {"r1", "meta.obj == meta.obj", true},
    {"r1", "meta.obj == meta.obj2", true},  // other key order, 2.0 and 1.0
    {"r1", "meta.obj == meta.obj3", false},
    {"r1", "meta.obj3 == meta.obj", false},
    {"r1", "meta.nested.a == meta.nested.a", true},
    {"r1", "meta.obj.y == [1, 2]", true},
    {"r1", "meta.obj.y == [1.0, 2e0]", true},
    {"r1", "meta.obj.y == [1, 2, 3]", false},
    {"r1", "meta.obj.y == [2, 1]", false},
    {"r1", "meta.obj.y != [1, 2]", false},
    {"r1", "meta.obj.y == [1]", false},
    {"r1", "meta.list == []", true},
    {"r1", R"(meta.tags == ["linux", "logs", "admin"])", true},
    {"r1", R"(meta.obj == "x")", false},
    {"r1", "meta.nested.a.b == [10, 20, null]", false},
    {"r1", R"([1, [2, "x"]] == [1.0, [2, "x"]])", true},
    {"r1", "meta.obj.y < [3]", false},  // arrays have no order

    // a parenthesized condition is true/false; a parenthesized operand keeps its value
    {"r1", "(meta.year == 2021) == true", true},
    {"r2", "(meta.year == 2021) == false", true},
    {"r1", "exists(meta.author) == true", true},
    {"r3", "exists(meta.author) == false", true},
    {"r1", "(meta.draft) == false", true},
    {"r1", R"((meta.lang) == "en")", true},
    {"r1", R"(((meta.lang)) == "en")", true},
    {"r1", "(meta.zero) == 0", true},
    {"r1", "(not meta.draft) == true", true},

    // SQL-looking text is only a string
    {"r1", R"(meta.sql == "'; DROP TABLE t")", true},
    {"r2", R"(meta.sql == "'; DROP TABLE t")", false},
    {"r1", R"(meta.x == "'; DROP TABLE")", false},
    {"r1", R"(meta.lang == "x' OR '1'='1")", false},
    {"r1", R"(meta.lang == "en\" OR 1=1 --")", false},
};

}  // namespace

TEST(Filter, TableOfExpressions) {
  int n = 0;
  for (const Case& c : kCases) {
    SCOPED_TRACE(std::string(c.rec) + ": " + c.expr);
    Filter f = Filter::parse(c.expr);
    EXPECT_EQ(f.matches(record(c.rec)), c.want);
    EXPECT_EQ(f.matches(record(c.rec)), c.want);  // no state kept between records
    ++n;
  }
  EXPECT_GT(n, 250);
}

TEST(Filter, OneFilterOverManyRecords) {
  Filter f = Filter::parse(R"(meta.lang == "en" and meta.year >= 2020 or id == "doc-4")");
  EXPECT_TRUE(f.matches(record("r1")));
  EXPECT_FALSE(f.matches(record("r2")));
  EXPECT_FALSE(f.matches(record("r3")));
  EXPECT_TRUE(f.matches(record("r4")));
  EXPECT_FALSE(f.matches(record("r5")));
  EXPECT_TRUE(f.matches(record("r1")));
}

TEST(Filter, LongListsOfIdsAndNumbers) {
  std::string ids = "id in [", years = "meta.year in [";
  for (int i = 0; i < 1000; ++i) {
    if (i) ids += ", ", years += ", ";
    ids += "\"doc-" + std::to_string(i * 2 + 1) + "\"";  // doc-1, doc-3, ..., doc-1999
    years += std::to_string(1000 + i);                  // 1000 .. 1999
  }
  ids += "]";
  years += "]";
  Filter fi = Filter::parse(ids), fy = Filter::parse(years);
  EXPECT_TRUE(fi.matches(record("r1")));
  EXPECT_FALSE(fi.matches(record("r2")));
  EXPECT_TRUE(fi.matches(record("r3")));
  EXPECT_FALSE(fi.matches(record("r4")));
  EXPECT_TRUE(fi.matches(record("r5")));
  EXPECT_FALSE(fy.matches(record("r1")));  // 2021
  EXPECT_FALSE(fy.matches(record("r2")));  // 2019.0
  EXPECT_FALSE(fy.matches(record("r3")));
  Filter fy2 = Filter::parse("meta.year in [1e3, 2019.0e0, 20200e-1]");
  EXPECT_FALSE(fy2.matches(record("r1")));
  EXPECT_TRUE(fy2.matches(record("r2")));
  EXPECT_TRUE(fy2.matches(record("r5")));
}

TEST(Filter, FieldsAndText) {
  Filter f = Filter::parse(R"(meta.a == 1 and id in ["x"] or meta.b or .["odd key"] == 2)");
  EXPECT_EQ(f.fields(), (std::vector<std::string>{"meta", "id", "odd key"}));
  EXPECT_EQ(f.text(), R"(meta.a == 1 and id in ["x"] or meta.b or .["odd key"] == 2)");
  Filter g = std::move(f);
  EXPECT_EQ(g.fields().size(), 3u);
  g = Filter::parse("true");
  EXPECT_TRUE(g.fields().empty());
  EXPECT_TRUE(g.matches(record("r3")));
}

TEST(Filter, TopLevelKeysWithEscapesAndOddNames) {
  Record r = Record::parse(R"({"odd key":1,"in":2,"a\u0062":3,"True":4})");
  EXPECT_TRUE(Filter::parse(R"(.["odd key"] == 1)").matches(r));
  EXPECT_TRUE(Filter::parse(R"(."odd key" == 1)").matches(r));
  EXPECT_TRUE(Filter::parse(".in == 2").matches(r));
  EXPECT_TRUE(Filter::parse("ab == 3").matches(r));
  EXPECT_TRUE(Filter::parse(".True == 4").matches(r));
}

TEST(Filter, NeverThrowsOnOddRecordText) {
  // A string with a lone surrogate escape is valid JSON but not text; matching must not throw.
  Record r;
  r.set_raw("meta", R"({"s":"\ud800","t":[1,"\udc00x"]})");
  for (const char* e : {R"(meta.s == "x")", R"(meta.s contains "a")", R"(meta.t contains "x")"}) {
    SCOPED_TRACE(e);
    Filter f = Filter::parse(e);
    bool got = true;
    EXPECT_NO_THROW(got = f.matches(r));
    EXPECT_FALSE(got);
  }
  EXPECT_TRUE(Filter::parse("exists(meta.t[1])").matches(r));
}

TEST(Filter, DeepNestingIsLimitedNotACrash) {
  std::string ok = std::string(64, '(') + "true" + std::string(64, ')');
  EXPECT_TRUE(Filter::parse(ok).matches(record("r1")));
  std::string nots;
  for (int i = 0; i < 64; ++i) nots += "not ";
  EXPECT_TRUE(Filter::parse(nots + "true").matches(record("r1")));  // 64 nots: even
  EXPECT_THROW(Filter::parse(std::string(100000, '(')), Error);
  EXPECT_THROW(Filter::parse(std::string(100000, '[')), Error);
  std::string many_nots;
  for (int i = 0; i < 50000; ++i) many_nots += "not ";
  EXPECT_THROW(Filter::parse(many_nots + "true"), Error);
  // long flat chains are not nesting
  std::string chain = "false";
  for (int i = 0; i < 20000; ++i) chain += " or false";
  chain += " or meta.draft";
  EXPECT_FALSE(Filter::parse(chain).matches(record("r1")));
  EXPECT_TRUE(Filter::parse(chain).matches(record("r2")));
}

// ---- errors ----------------------------------------------------------------------------------

namespace {

struct BadCase {
  std::string expr;
  int column;
  const char* says;  // a fragment of the message after "--filter: column N: "
};

const BadCase kBad[] = {
    {"", 1, "expected an expression, found end of expression"},
    {"meta.year >=", 13, "expected a value after '>=', found end of expression"},
    {"meta.a == 1 adn meta.b == 2", 13, "expected 'and', 'or' or end of expression, found 'adn' (did you mean 'and'?)"},
    {"meta.a adn meta.b", 8, "expected a comparison operator, 'and', 'or' or end of expression, found 'adn' (did you mean 'and'?)"},
    {"meta.a == 1 AND meta.b == 2", 13, "found 'AND' (did you mean 'and'?)"},
    {"meta.a == 1 ro meta.b", 13, "found 'ro' (did you mean 'or'?)"},
    {"meta.x contain \"a\"", 8, "found 'contain' (did you mean 'contains'?)"},
    {"(meta.a == 1", 13, "expected ')' to close the '(' at column 1, found end of expression"},
    {"(meta.a == 1 adn true)", 14, "expected 'and', 'or' or ')' to close the '(' at column 1, found 'adn' (did you mean 'and'?)"},
    {"meta.a == 1)", 12, "expected 'and', 'or' or end of expression, found ')'"},
    {"meta.a == \"en", 11, "unterminated string"},
    {"meta.a == \"en\\", 11, "unterminated string"},
    {"meta.a == 'en'", 11, "strings are written in double quotes"},
    {"meta.a = 1", 8, "'=' is not an operator: use '==' to compare"},
    {"meta.a && meta.b", 8, "'&&' is not an operator: use 'and'"},
    {"meta.a || meta.b", 8, "'||' is not an operator: use 'or'"},
    {"!meta.a", 1, "'!' is not an operator: use 'not'"},
    {"1 < meta.x < 5", 12, "comparisons do not chain"},
    {"meta.a == meta.b == true", 18, "comparisons do not chain"},
    {"exist(meta.a)", 1, "unknown function 'exist' (did you mean 'exists'?)"},
    {"lower(meta.a) == \"x\"", 1, "unknown function 'lower'; the only function is exists(path)"},
    {"exists(1)", 8, "exists() takes a path, found '1'"},
    {"exists(meta.a", 14, "expected ')' to close the 'exists(' at column 1, found end of expression"},
    {"exists meta.a", 8, "expected '(' after 'exists', found 'meta'"},
    {"meta.a in [meta.b]", 12, "expected a literal in the list (a string, number, true, false, null or list), found 'meta'"},
    {"meta.a in [1, 2", 16, "expected ',' or ']' to close the '[' at column 11, found end of expression"},
    {"meta.a in [1,]", 14, "expected a literal in the list (a string, number, true, false, null or list), found ']'"},
    {"meta.a in [1 2]", 14, "expected ',' or ']' to close the '[' at column 11, found '2'"},
    {"meta.a in (1, 2)", 13, "expected a comparison operator, 'and', 'or' or ')' to close the '(' at column 11, found ',' (lists are written in brackets"},
    {"meta.", 6, "expected a field name after '.', found end of expression"},
    {".", 2, "expected a field name after '.', found end of expression"},
    {"meta.a == .5", 12, "expected a field name after '.', found '5'"},
    {"meta.tags[1.5]", 11, "an array index must be an integer, found '1.5'"},
    {"meta.tags[true]", 11, "expected a string key or an integer index after '[', found 'true'"},
    {"meta.tags[0", 12, "expected ']', found end of expression"},
    {".[0] == 1", 3, "expected a string key after '.[', found '0'"},
    {"meta.a == 01", 11, "numbers do not start with 0 followed by a digit"},
    {"meta.a == 1.", 13, "expected a digit after '.' in a number, found end of expression"},
    {"meta.a == 1.x", 13, "expected a digit after '.' in a number, found 'x'"},
    {"meta.a == 1e", 13, "expected a digit in the exponent of a number, found end of expression"},
    {"meta.a == 1e+", 14, "expected a digit in the exponent of a number, found end of expression"},
    {"meta.a == -x", 12, "expected a digit after '-', found 'x'"},
    {"meta.a == \"\\q\"", 12, "invalid escape '\\q' in a string"},
    {"meta.a == \"\\u12\"", 12, "invalid escape: \\u needs four hex digits"},
    {"meta.a == \"\\ud800\"", 12, "invalid escape: '\\ud800' is a lone UTF-16 surrogate"},
    {"meta.a == \"\\udc00\\ud800\"", 12, "is a lone UTF-16 surrogate"},
    {"meta.a == \"a\tb\"", 13, "control character U+0009 in a string"},
    {"meta.a == \"é\" @", 15, "unexpected character '@'"},  // columns count characters, not bytes
    {"meta.a == \"日本\" )", 16, "found ')'"},
    {"meta.a == \"\xff\"", 12, "invalid UTF-8 in the expression"},
    {"meta.a @ 1", 8, "unexpected character '@'"},
    {"meta.année == 1", 9, "unexpected character 'é' (a key that is not a plain word is written in brackets"},
    {"meta.odd-key == \"yes\"", 9, "'-' in a key: a key that is not a plain word is written in brackets (meta[\"odd-key\"])"},
    {"meta.a == 1 \x01", 13, "unexpected character U+0001"},
    {"meta.lang == \"en\" \"fr\"", 19, "expected 'and', 'or' or end of expression, found '\"fr\"'"},
    {"meta.a == and", 11, "expected a value after '==', found 'and'"},
    {"meta.a == not meta.b", 11, "expected a value after '==', found 'not'"},
    {"meta.a and", 11, "expected an expression after 'and', found end of expression"},
    {"meta.a == 1 or", 15, "expected an expression after 'or', found end of expression"},
    {"meta.a == 1 and and", 17, "expected an expression after 'and', found 'and'"},
    {"not", 4, "expected an expression after 'not', found end of expression"},
    {"()", 2, "expected an expression after '(', found ')'"},
    {"in", 1, "expected an expression, found 'in'"},
    {"True", 1, "'True' is not a keyword: keywords are lowercase ('true'); write .True for a field of that name"},
    {"meta.a == NULL", 11, "'NULL' is not a keyword: keywords are lowercase ('null')"},
    {"NOT meta.a", 1, "'NOT' is not a keyword: keywords are lowercase ('not')"},
    {std::string(65, '(') + "true" + std::string(65, ')'), 65, "expression nested too deeply (more than 64 levels)"},
    {std::string(100000, '('), 65, "expression nested too deeply"},
    {"x in " + std::string(65, '[') + std::string(65, ']'), 70, "expression nested too deeply"},
    {[] { std::string s; for (int i = 0; i < 65; ++i) s += "not "; return s + "true"; }(), 257, "expression nested too deeply"},
};

}  // namespace

TEST(Filter, ErrorsNameTheColumnAndWhatWasExpected) {
  for (const BadCase& c : kBad) {
    SCOPED_TRACE(c.expr.size() > 80 ? c.expr.substr(0, 80) + "..." : c.expr);
    try {
      Filter::parse(c.expr);
      ADD_FAILURE() << "parsed";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), Error::Kind::Usage);
      std::string what = e.what();
      std::string prefix = "--filter: column " + std::to_string(c.column) + ": ";
      EXPECT_EQ(what.substr(0, prefix.size()), prefix) << what;
      EXPECT_NE(what.find(c.says), std::string::npos) << what;
    }
  }
}

TEST(Filter, ErrorMessageExactly) {
  try {
    Filter::parse(R"(meta.lang == "en" and meta.year >=)");
    FAIL();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "--filter: column 35: expected a value after '>=', found end of expression");
  }
}
