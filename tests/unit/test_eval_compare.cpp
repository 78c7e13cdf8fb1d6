// loom-eval compare's statistics (lib/eval/compare.h) against scipy (goldens by
// tests/reference/gen_eval_compare_goldens.py), and the evaluation files and thresholds it reads.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "loom/chat/value.h"
#include "loom/core/error.h"
#include "loom/eval/compare.h"
#include "loom/io/stream.h"

using namespace loom;

namespace {

const std::string kGolden = std::string(LOOM_SOURCE_DIR) + "/tests/reference/golden/eval_compare/ttest.json";

chat::Value golden() { return chat::Value::parse_json(io::read_all(*io::Input::open(kGolden))); }

std::vector<double> numbers(const chat::Value& v) {
  std::vector<double> out;
  for (auto& x : v.items()) out.push_back(x.as_float());
  return out;
}

// a golden number: a JSON number, null (nan) or "inf"/"-inf"
std::optional<double> expected(const chat::Value& v) {
  if (v.is_none()) return std::nullopt;
  if (v.is_string()) return v.str() == "inf" ? INFINITY : -INFINITY;
  return v.as_float();
}

void expect_close(std::optional<double> got, std::optional<double> want, double rel, const std::string& what) {
  ASSERT_EQ(got.has_value(), want.has_value()) << what;
  if (!want) return;
  if (std::isinf(*want)) {
    EXPECT_EQ(*got, *want) << what;
    return;
  }
  EXPECT_NEAR(*got, *want, rel * std::max(std::fabs(*want), 1e-300)) << what;
}

std::string write_file(const std::string& name, const std::string& text) {
  auto p = std::filesystem::temp_directory_path() / ("loom_test_eval_compare_" + name);
  std::ofstream(p) << text;
  return p.string();
}

}  // namespace

TEST(EvalCompare, PairedTTestMatchesScipy) {
  chat::Value g = golden();
  size_t n = 0;
  for (auto& c : g.get("ttest_rel")->items()) {
    eval::PairedTest t = eval::paired_ttest(numbers(*c.get("base")), numbers(*c.get("new")));
    std::string what = "n=" + std::to_string(t.n) + " case " + std::to_string(n++);
    expect_close(t.t, expected(*c.get("t")), 1e-9, what + " t");
    expect_close(t.p, expected(*c.get("p")), 1e-9, what + " p");
  }
  EXPECT_EQ(n, 30u);
}

TEST(EvalCompare, StudentTSurvivalMatchesScipy) {
  chat::Value g = golden();
  for (auto& c : g.get("t_sf")->items()) {
    double t = c.get("t")->as_float(), df = c.get("df")->as_float(), want = c.get("sf")->as_float();
    double got = eval::student_t_sf(t, df);
    // relative 1e-9 (lgamma of large df/2 loses a few digits), absolute 1e-12 near 0
    EXPECT_NEAR(got, want, std::max(1e-12, 1e-9 * want)) << "t=" << t << " df=" << df;
  }
}

TEST(EvalCompare, BootstrapIsSeededAndSensible) {
  std::vector<double> a, b, same;
  for (int i = 0; i < 200; ++i) {
    a.push_back((i * 37 % 101) / 100.0);
    b.push_back(a.back() + 0.05 + ((i * 13 % 7) - 3) / 100.0);
  }
  eval::Bootstrap x = eval::paired_bootstrap(a, b, 2000, 7), y = eval::paired_bootstrap(a, b, 2000, 7);
  EXPECT_EQ(x.p, y.p);
  EXPECT_EQ(x.low, y.low);
  EXPECT_LT(x.p, 0.001);  // a shift of 0.05 with noise of 0.03 is no accident
  EXPECT_GT(x.p, 0.0);    // never exactly 0
  double mean = eval::paired_ttest(a, b).mean_diff;
  EXPECT_LT(x.low, mean);
  EXPECT_GT(x.high, mean);
  // no difference on average: a large p
  std::vector<double> c = a;
  for (size_t i = 0; i < c.size(); ++i) c[i] += (i % 2 ? 0.01 : -0.01);
  EXPECT_GT(eval::paired_bootstrap(a, c, 2000, 7).p, 0.5);
}

TEST(EvalCompare, ReadsItemsAndSummary) {
  std::string f = write_file("a.jsonl",
                             "{\"id\":\"q1\",\"metrics\":{\"map\":0.5,\"P_10\":0.1}}\n"
                             "{\"id\":\"q2\",\"metrics\":{\"map\":0.25,\"P_10\":null}}\n"
                             "{\"eval\":\"retrieval\",\"metrics\":{\"map\":0.375,\"P_10\":0.1},\"queries\":2}\n");
  eval::EvalFile e = eval::read_evaluation(f);
  EXPECT_EQ(e.kind, "retrieval");
  ASSERT_EQ(e.metrics.size(), 2u);
  EXPECT_EQ(e.metrics[0].first, "map");
  EXPECT_EQ(e.ids, (std::vector<std::string>{"q1", "q2"}));
  ASSERT_EQ(e.values[1].size(), 2u);
  EXPECT_FALSE(e.values[1][1].has_value());
  // items alone: the summary is their mean
  f = write_file("b.jsonl", "{\"id\":\"q1\",\"metrics\":{\"map\":0.5}}\n{\"id\":\"q2\",\"metrics\":{\"map\":0.25}}\n");
  e = eval::read_evaluation(f);
  ASSERT_EQ(e.metrics.size(), 1u);
  EXPECT_DOUBLE_EQ(e.metrics[0].second, 0.375);
}

TEST(EvalCompare, BadFilesNameTheLine) {
  std::string f = write_file("bad.jsonl", "{\"id\":\"q1\",\"metrics\":{\"map\":0.5}}\n{\"id\":\"q2\",\"map\":0.25}\n");
  try {
    eval::read_evaluation(f);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.line(), 2u);
    EXPECT_EQ(e.file(), f);
    EXPECT_EQ(e.exit_status(), 2);
  }
  f = write_file("bad2.jsonl", "{\"id\":\"q1\",\"metrics\":{\"map\":\"x\"}}\n");
  EXPECT_THROW(eval::read_evaluation(f), Error);
  f = write_file("bad3.jsonl", "{\"eval\":\"text\",\"metrics\":{}}\n{\"id\":\"q1\",\"metrics\":{}}\n");
  EXPECT_THROW(eval::read_evaluation(f), Error);  // nothing after the summary
  f = write_file("empty.jsonl", "");
  EXPECT_THROW(eval::read_evaluation(f), Error);
}

TEST(EvalCompare, Thresholds) {
  std::vector<std::pair<std::string, std::optional<double>>> m = {{"map", 0.3}, {"perplexity", 12.5}, {"recall", std::nullopt}};
  EXPECT_TRUE(eval::check_thresholds(m, {"map=0.3"}, {}).empty());  // equal is not under
  EXPECT_EQ(eval::check_thresholds(m, {"map=0.31"}, {}).size(), 1u);
  EXPECT_EQ(eval::check_thresholds(m, {}, {"perplexity=12"}).size(), 1u);
  EXPECT_TRUE(eval::check_thresholds(m, {}, {"perplexity=13"}).empty());
  try {
    eval::check_thresholds(m, {"ndcg=0.1"}, {});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("map, perplexity, recall"), std::string::npos) << e.what();
    EXPECT_EQ(e.exit_status(), 2);
  }
  EXPECT_EQ(eval::check_thresholds(m, {"recall=0"}, {}).size(), 1u);  // undefined never passes a gate
  EXPECT_EQ(eval::check_thresholds(m, {}, {"recall=1"}).size(), 1u);
  EXPECT_THROW(eval::parse_threshold("map"), Error);
  EXPECT_THROW(eval::parse_threshold("map=x"), Error);
  EXPECT_THROW(eval::parse_threshold("=0.3"), Error);
  EXPECT_EQ(eval::parse_threshold("ndcg_cut_10=0.45").second, 0.45);
}
