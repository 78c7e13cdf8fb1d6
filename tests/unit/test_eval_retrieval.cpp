// Retrieval metrics (lib/eval/retrieval.h) against trec_eval 9.0.8, their reference
// (tests/reference/gen_eval_retrieval_goldens.py writes tests/reference/golden/eval_retrieval/ from
// the trec_eval binary, built from source, cross-checked with pytrec_eval; nothing there comes from
// loom):
//   - every case of cases.tsv (graded relevance with negative judgments, ties, unjudged documents,
//     queries missing on either side, relevance levels 0, 1, 2, exponential gain, JSONL and zstd
//     inputs, runs without scores, an empty run): every per-query and "all" value of `trec_eval -c
//     -q` (printed at full precision) within 1e-12 relative, the same set of evaluated queries, and
//     format_trec() byte for byte the table trec_eval prints;
//   - measure specs: trec_eval names, short forms, defaults, order; unknown names are usage errors
//     listing the valid ones;
//   - malformed input: each error names file and line; duplicates; score text strtod accepts.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "loom/core/error.h"
#include "loom/eval/retrieval.h"
#include "loom/io/stream.h"

using namespace loom;
using namespace loom::eval;

namespace {

const std::string kGolden = std::string(LOOM_SOURCE_DIR) + "/tests/reference/golden/eval_retrieval/";

std::string slurp(const std::string& path) {
  auto in = io::Input::open(path);
  return io::read_all(*in);
}

std::vector<std::string> split(std::string_view s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    size_t i = s.find(sep, start);
    out.emplace_back(s.substr(start, i - start));
    if (i == std::string_view::npos) return out;
    start = i + 1;
  }
}

struct Case {
  std::string name, qrels, run;
  int level;
  Gain gain;
  std::vector<std::string> measures;
  std::string expected, table;
};

std::vector<Case> cases() {
  std::vector<Case> out;
  for (const std::string& line : split(slurp(kGolden + "cases.tsv"), '\n')) {
    if (line.empty() || line[0] == '#') continue;
    auto f = split(line, '\t');
    if (f.size() != 8) throw std::runtime_error("cases.tsv: bad line: " + line);
    out.push_back({f[0], f[1], f[2], std::stoi(f[3]), f[4] == "exp" ? Gain::Exp : Gain::Linear, split(f[5], ' '), f[6], f[7]});
  }
  return out;
}

// A temporary file with the given contents, removed at the end of the test.
struct TempFile {
  std::string path;
  explicit TempFile(std::string_view contents, std::string suffix = "") {
    std::string name = "loom-evr-" + std::to_string(getpid()) + "-" + std::to_string(counter++) + suffix;
    path = (std::filesystem::temp_directory_path() / name).string();
    std::ofstream(path, std::ios::binary) << contents;
  }
  ~TempFile() { std::remove(path.c_str()); }
  static inline int counter = 0;
};

// Runs fn, which must throw loom::Error of `kind`; returns it.
template <typename Fn>
Error expect_error(Fn&& fn, Error::Kind kind) {
  try {
    fn();
  } catch (const Error& e) {
    EXPECT_EQ(static_cast<int>(e.kind()), static_cast<int>(kind)) << e.located();
    return e;
  }
  ADD_FAILURE() << "no error";
  return Error(kind, "");
}

Error qrels_error(std::string_view text, size_t line) {
  TempFile f(text);
  Error e = expect_error([&] { read_qrels(f.path); }, Error::Kind::BadInput);
  EXPECT_EQ(e.file(), f.path) << e.located();
  EXPECT_EQ(e.line(), line) << e.located();
  return e;
}

Error run_error(std::string_view text, size_t line) {
  TempFile f(text);
  Error e = expect_error([&] { read_run(f.path); }, Error::Kind::BadInput);
  EXPECT_EQ(e.file(), f.path) << e.located();
  EXPECT_EQ(e.line(), line) << e.located();
  return e;
}

std::vector<std::string> names(const std::vector<Measure>& ms) {
  std::vector<std::string> out;
  for (const auto& m : ms) out.push_back(m.name());
  return out;
}

// Value of measure `name` for query `qid` (or "all").
double value(const Evaluation& ev, const std::string& qid, const std::string& name) {
  size_t m = std::find(ev.names.begin(), ev.names.end(), name) - ev.names.begin();
  if (m == ev.names.size()) throw std::runtime_error("no measure " + name);
  if (qid == "all") return ev.all[m];
  for (const auto& q : ev.queries)
    if (q.id == qid) return q.values[m];
  throw std::runtime_error("no query " + qid);
}

// ---- goldens --------------------------------------------------------------------------------------

TEST(EvalRetrieval, GoldenCasesMatchTrecEval) {
  auto all = cases();
  ASSERT_GE(all.size(), 9u);
  size_t compared = 0, inexact = 0;
  double max_rel = 0;
  for (const Case& c : all) {
    SCOPED_TRACE("case " + c.name + " (" + c.qrels + ", " + c.run + ", level " + std::to_string(c.level) + ")");
    Qrels qrels = read_qrels(kGolden + c.qrels);
    eval::Run run = read_run(kGolden + c.run);
    auto measures = parse_measures(c.measures);
    Options opt;
    opt.relevance_level = c.level;
    opt.gain = c.gain;
    Evaluation ev = evaluate(qrels, run, measures, opt);
    ASSERT_EQ(ev.names.size(), measures.size());

    std::set<std::string> expected_queries;
    size_t rows = 0, per_query_rows = 0;
    for (const std::string& line : split(slurp(kGolden + c.expected), '\n')) {
      if (line.empty()) continue;
      auto f = split(line, '\t');
      ASSERT_EQ(f.size(), 3u) << line;
      double want = std::strtod(f[2].c_str(), nullptr);
      double got = value(ev, f[1], f[0]);
      double rel = want == got ? 0.0 : std::fabs(got - want) / std::max(std::fabs(want), std::fabs(got));
      EXPECT_LE(rel, 1e-12) << f[0] << " " << f[1] << ": loom " << got << ", trec_eval " << f[2];
      max_rel = std::max(max_rel, rel);
      inexact += want != got;
      ++rows;
      if (f[1] != "all") {
        expected_queries.insert(f[1]);
        ++per_query_rows;
      }
    }
    compared += rows;
    // The same queries evaluated, each with a value for every measure (trec_eval has no per-query num_q).
    std::set<std::string> retrieved;
    for (const auto& q : ev.queries)
      if (q.retrieved) retrieved.insert(q.id);
    EXPECT_EQ(retrieved, expected_queries);
    EXPECT_EQ(ev.num_evaluated, retrieved.size());
    size_t with_num_q = std::count_if(measures.begin(), measures.end(), [](auto& m) { return m.metric == Metric::NumQ; });
    EXPECT_EQ(per_query_rows, retrieved.size() * (measures.size() - with_num_q));
    EXPECT_EQ(rows - per_query_rows, measures.size());

    // trec_eval's own table (4 decimals), for its measures.
    std::vector<Measure> te;
    for (const auto& m : measures)
      if (m.metric != Metric::RecipRankCut) te.push_back(m);
    EXPECT_EQ(format_trec(evaluate(qrels, run, te, opt), true), slurp(kGolden + c.table));
  }
  std::printf("[ golden   ] %zu values compared with trec_eval, %zu not bit-identical, largest relative difference %.3g\n",
              compared, inexact, max_rel);
  EXPECT_GT(compared, 5000u);
}

TEST(EvalRetrieval, GoldenCountsAndEmptyRun) {
  Qrels qrels = read_qrels(kGolden + "graded.qrels");
  eval::Run run = read_run(kGolden + "graded.run");
  Evaluation ev = evaluate(qrels, run, parse_measures({"map"}));
  EXPECT_EQ(ev.num_qrels_queries, 40u);
  EXPECT_EQ(ev.num_run_queries, 39u);  // 37 judged, x1 and x2 not
  EXPECT_EQ(ev.num_evaluated, 37u);
  Evaluation empty = evaluate(qrels, read_run(kGolden + "empty.run"), parse_measures({"map", "num_q"}));
  EXPECT_EQ(empty.num_evaluated, 0u);
  EXPECT_EQ(empty.all, (std::vector<double>{40, 0}));
}

TEST(EvalRetrieval, JsonlAndTrecInputsAgree) {
  Qrels a = read_qrels(kGolden + "graded.qrels"), b = read_qrels(kGolden + "graded.qrels.jsonl.zst");
  ASSERT_EQ(a.queries.size(), b.queries.size());
  size_t judgments = 0;
  for (size_t i = 0; i < a.queries.size(); ++i) {
    EXPECT_EQ(a.queries[i].id, b.queries[i].id);
    ASSERT_EQ(a.queries[i].judgments.size(), b.queries[i].judgments.size());
    for (size_t j = 0; j < a.queries[i].judgments.size(); ++j) {
      EXPECT_EQ(a.queries[i].judgments[j].doc, b.queries[i].judgments[j].doc);
      EXPECT_EQ(a.queries[i].judgments[j].rel, b.queries[i].judgments[j].rel);
      ++judgments;
    }
  }
  EXPECT_GT(judgments, 500u);
}

// ---- measure specs ------------------------------------------------------------------------------

TEST(EvalRetrieval, MeasureSpecs) {
  EXPECT_EQ(names(parse_measures({"ndcg_cut.10", "map", "P.5"})), (std::vector<std::string>{"map", "P_5", "ndcg_cut_10"}));
  EXPECT_EQ(names(parse_measures({"ndcg_cut.5,10,20"})), (std::vector<std::string>{"ndcg_cut_5", "ndcg_cut_10", "ndcg_cut_20"}));
  EXPECT_EQ(names(parse_measures({"ndcg@10", "map@10", "mrr", "mrr@10", "p@5", "P@5", "recall@100", "success@10", "r-precision",
                                  "rprec", "Rprec", "recip_rank", "NDCG"})),
            (std::vector<std::string>{"Rprec", "recip_rank", "recip_rank_cut_10", "P_5", "recall_100", "ndcg", "ndcg_cut_10",
                                      "map_cut_10", "success_10"}));
  EXPECT_EQ(names(parse_measures({"map,ndcg@5,10,P.5", "num_rel_ret,num_q"})),
            (std::vector<std::string>{"num_q", "num_rel_ret", "map", "P_5", "ndcg_cut_5", "ndcg_cut_10"}));
  EXPECT_EQ(names(parse_measures({"P"})),
            (std::vector<std::string>{"P_5", "P_10", "P_15", "P_20", "P_30", "P_100", "P_200", "P_500", "P_1000"}));
  EXPECT_EQ(names(parse_measures({"success"})), (std::vector<std::string>{"success_1", "success_5", "success_10"}));
  EXPECT_EQ(parse_measures({"recall", "map_cut", "ndcg_cut"}).size(), 27u);
  EXPECT_EQ(names(parse_measures({"P.10,5", "P@5", "P.7"})), (std::vector<std::string>{"P_5", "P_7", "P_10"}));
  EXPECT_TRUE(parse_measures({"num_rel"})[0].integral());
  EXPECT_FALSE(parse_measures({"map"})[0].integral());

  Error e = expect_error([] { parse_measures({"ndcg@10", "bleu"}); }, Error::Kind::Usage);
  EXPECT_NE(std::string(e.what()).find("\"bleu\""), std::string::npos) << e.what();
  for (const char* name : {"map", "ndcg_cut", "P@K", "recip_rank_cut", "mrr@K", "success", "Rprec"})
    EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << name << " not in: " << e.what();
  for (const char* bad : {"", "P.0", "P.x", "P.", "P@-1", "map.5", "mrr.10", "recip_rank_cut", "5", "map,", "P.5,,10", "ndcg,10",
                          "P.99999999999"})
    expect_error([&] { parse_measures({bad}); }, Error::Kind::Usage);
}

// ---- semantics on small hand-made cases ---------------------------------------------------------

Evaluation eval_text(std::string_view qrels, std::string_view run, std::vector<std::string> ms, Options opt = {}) {
  return evaluate(parse_qrels(std::string(qrels), "q"), parse_run(std::string(run), "r"), parse_measures(ms), opt);
}

TEST(EvalRetrieval, TiesBreakByDocumentIdDescending) {
  // Equal scores: "b" ranks before "a", so the relevant "a" is second.
  auto ev = eval_text("q 0 a 1\n", "q Q0 a 1 2.0 t\nq Q0 b 2 2.0 t\n", {"recip_rank"});
  EXPECT_EQ(value(ev, "q", "recip_rank"), 0.5);
  // The rank column is ignored.
  ev = eval_text("q 0 a 1\n", "q Q0 a 9 1.0 t\nq Q0 b 1 0.5 t\n", {"recip_rank"});
  EXPECT_EQ(value(ev, "q", "recip_rank"), 1.0);
}

TEST(EvalRetrieval, QueriesOnEitherSide) {
  // q2 is judged, not retrieved: 0 in the mean. x is retrieved, not judged: ignored.
  auto ev = eval_text("q1 0 a 1\nq2 0 b 1\n", "q1 Q0 a 1 1 t\nx Q0 a 1 1 t\n", {"map", "num_q", "num_rel", "num_ret"});
  EXPECT_EQ(value(ev, "all", "map"), 0.5);
  EXPECT_EQ(value(ev, "all", "num_q"), 2.0);
  EXPECT_EQ(value(ev, "all", "num_rel"), 2.0);
  EXPECT_EQ(value(ev, "all", "num_ret"), 1.0);
  EXPECT_EQ(ev.queries.size(), 2u);
  EXPECT_FALSE(ev.queries[1].retrieved);
  EXPECT_EQ(value(ev, "q2", "num_rel"), 1.0);
  EXPECT_EQ(ev.num_run_queries, 2u);
  EXPECT_EQ(ev.num_evaluated, 1u);
  // The table has lines for retrieved queries only, then "all".
  EXPECT_EQ(format_trec(ev, true),
            "num_ret               \tq1\t1\nnum_rel               \tq1\t1\nmap                   \tq1\t1.0000\n"
            "num_q                 \tall\t2\nnum_ret               \tall\t1\nnum_rel               \tall\t2\n"
            "map                   \tall\t0.5000\n");
}

TEST(EvalRetrieval, ExpGainAndNegativeJudgments) {
  // Ideal: rel 2, rel 1. The run puts rel 1 first; the negative judgment is never relevant.
  std::string qrels = "q 0 a 2\nq 0 b 1\nq 0 c -1\n", run = "q Q0 c 1 3 t\nq Q0 b 2 2 t\nq Q0 a 3 1 t\n";
  Options exp;
  exp.gain = Gain::Exp;
  auto lin = eval_text(qrels, run, {"ndcg", "P.1"});
  auto ex = eval_text(qrels, run, {"ndcg", "P.1"}, exp);
  double l1 = std::log2(2.0), l2 = std::log2(3.0), l3 = std::log2(4.0);
  EXPECT_EQ(value(lin, "q", "ndcg"), (1 / l2 + 2 / l3) / (2 / l1 + 1 / l2));
  EXPECT_EQ(value(ex, "q", "ndcg"), (1 / l2 + 3 / l3) / (3 / l1 + 1 / l2));
  EXPECT_EQ(value(lin, "q", "P_1"), 0.0);
}

TEST(EvalRetrieval, HitsWithoutScoresKeepTheirOrder) {
  std::string qrels = "q 0 a 1\n";
  auto by_rank = eval_text(qrels, R"({"id":"q","hits":[{"id":"b","rank":2},{"id":"a","rank":1}]})", {"recip_rank"});
  EXPECT_EQ(value(by_rank, "q", "recip_rank"), 1.0);
  auto by_order = eval_text(qrels, R"({"id":"q","hits":[{"id":"c"},{"id":"a"}]})", {"recip_rank"});
  EXPECT_EQ(value(by_order, "q", "recip_rank"), 0.5);
  auto query_id = eval_text(qrels, R"({"id":"x","query_id":"q","hits":[{"id":"a","score":1}]})" "\n", {"recip_rank"});
  EXPECT_EQ(value(query_id, "q", "recip_rank"), 1.0);
  auto empty_hits = eval_text(qrels, R"({"id":"q","hits":[]})", {"num_ret", "map"});
  EXPECT_TRUE(empty_hits.queries[0].retrieved);
  EXPECT_EQ(value(empty_hits, "all", "map"), 0.0);
}

TEST(EvalRetrieval, ScoreTextAsStrtodReadsIt) {
  std::string qrels = "q 0 a 1\n";
  // a's score decides whether it ranks first (above b at 1.0).
  for (const char* s : {"1e2", "+2", "0x1p+1", "inf", "1.5", "1E+1", "1e999"}) {
    auto ev = eval_text(qrels, std::string("q Q0 b 1 1.0 t\nq Q0 a 2 ") + s + " t\n", {"recip_rank"});
    EXPECT_EQ(value(ev, "q", "recip_rank"), 1.0) << s;
  }
  for (const char* s : {"-inf", "-1e2", "0x1p-2", ".5", "-0"}) {
    auto ev = eval_text(qrels, std::string("q Q0 b 1 1.0 t\nq Q0 a 2 ") + s + " t\n", {"recip_rank"});
    EXPECT_EQ(value(ev, "q", "recip_rank"), 0.5) << s;
  }
  for (const char* s : {"nan", "NaN", "1.5x", "abc", "--1", "0x", "1e"})
    run_error(std::string("q Q0 a 1 ") + s + " t\n", 1);
}

TEST(EvalRetrieval, BlankLinesCommentsCrlfBom) {
  auto ev = eval_text("\xEF\xBB\xBF# judgments\r\nq 0 a 1\r\n\r\n  \nq 0 b 0\n",  // BOM, comment, CRLF, blank lines
                      "# run\nq\tQ0\ta\t1\t1\tt\r\n\nq Q0 b 2 0.5 t",           // tabs; no final newline
                      {"num_rel", "num_ret", "P.1"});
  EXPECT_EQ(value(ev, "q", "num_rel"), 1.0);
  EXPECT_EQ(value(ev, "q", "num_ret"), 2.0);
  EXPECT_EQ(value(ev, "q", "P_1"), 1.0);
}

// ---- errors -------------------------------------------------------------------------------------

TEST(EvalRetrieval, MalformedQrelsNameFileAndLine) {
  qrels_error("q 0 a 1\nq 0 b\n", 2);
  qrels_error("q 0 a 1\n\nq 0 b 1 x\n", 3);
  qrels_error("q 0 a 1.5\n", 1);
  qrels_error("q 0 a x\n", 1);
  qrels_error("q 0 a 99999999999\n", 1);
  Error e = qrels_error("q 0 a 1\nq 0 b 1\nr 0 a 1\nq 0 a 0\n", 4);  // judged twice (trec_eval: "duplicate docs")
  EXPECT_NE(std::string(e.what()).find("twice"), std::string::npos) << e.what();
  qrels_error("{\"query_id\":\"q\",\"doc_id\":\"a\",\"relevance\":1}\n{\"query_id\":\"q\",\"doc_id\":\"a\",\"relevance\":2}\n", 2);
  qrels_error("{\"query_id\":\"q\",\"relevance\":{\"a\":1,\"b\":2}}\n{\"query_id\":\"q\",\"relevance\":{\"c\":1,\"b\":2}}\n", 2);
  qrels_error("{\"query_id\":\"q\",\"doc_id\":\"a\"}\n", 1);
  qrels_error("{\"doc_id\":\"a\",\"relevance\":1}\n", 1);
  qrels_error("{\"query_id\":\"q\",\"doc_id\":\"a\",\"relevance\":1}\n"
              "{\"query_id\":\"q\",\"relevance\":\"high\",\"doc_id\":\"b\"}\n", 2);
  qrels_error("{\"query_id\":\"q\",\"doc_id\":\"a\",\"relevance\":1.5}\n", 1);
  qrels_error("{\"query_id\":[1],\"doc_id\":\"a\",\"relevance\":1}\n", 1);
  qrels_error("{\"query_id\":\"q\",\"doc_id\":\"a\",\"relevance\":1}\nnot json\n", 2);
  // A missing file is a usage error.
  expect_error([] { read_qrels("/nonexistent/qrels.txt"); }, Error::Kind::Usage);
}

TEST(EvalRetrieval, MalformedRunsNameFileAndLine) {
  run_error("q Q0 a 1 1.0 t\nq Q0 b 2 1.0\n", 2);
  run_error("q Q0 a 1 1.0 t extra\n", 1);
  run_error("q Q0 a 1 x t\n", 1);
  Error e = run_error("q Q0 a 1 1.0 t\nr Q0 a 1 1.0 t\nq Q0 b 2 0.5 t\nq Q0 a 3 0.1 t\n", 4);  // trec_eval: "duplicate docs"
  EXPECT_NE(std::string(e.what()).find("\"a\""), std::string::npos) << e.what();
  EXPECT_NE(std::string(e.what()).find("\"q\""), std::string::npos) << e.what();
  run_error("{\"id\":\"q\",\"hits\":[{\"id\":\"a\",\"score\":1}]}\n{\"id\":\"r\",\"hits\":[{\"id\":\"a\"},{\"id\":\"a\"}]}\n", 2);
  run_error("{\"id\":\"q\",\"hits\":[]}\n\n{\"id\":\"q\",\"hits\":[]}\n", 3);  // a query in two records
  run_error("{\"id\":\"q\"}\n", 1);
  run_error("{\"id\":\"q\",\"hits\":[{\"score\":1}]}\n", 1);
  run_error("{\"id\":\"q\",\"hits\":[{\"id\":\"a\",\"score\":\"high\"}]}\n", 1);
  run_error("{\"id\":\"q\",\"hits\":[1,2]}\n", 1);
  run_error("{\"id\":\"q\",\"hits\":[{\"id\":{\"x\":1}}]}\n", 1);
  run_error("{\"hits\":[]}\n", 1);
  run_error("{\"id\":\"q\",\"hits\":[]}\n{\"id\":\"r\",\"hits\":[\n", 2);
}

TEST(EvalRetrieval, ZstdInputs) {
  std::string qrels = "q 0 a 1\nq 0 b 2\n";
  std::string run = R"({"id":"q","hits":[{"id":"b","score":2},{"id":"a","score":1}]})" "\n";
  auto path = (std::filesystem::temp_directory_path() / ("loom-evr-zst-" + std::to_string(getpid()))).string();
  for (auto [name, text] : {std::pair{path + ".qrels.zst", qrels}, std::pair{path + ".run.zst", run}}) {
    auto out = io::Output::open(name);
    out->write(text);
    out->close();
  }
  Evaluation ev = evaluate(read_qrels(path + ".qrels.zst"), read_run(path + ".run.zst"), parse_measures({"ndcg", "num_ret"}));
  EXPECT_EQ(value(ev, "q", "ndcg"), 1.0);
  EXPECT_EQ(value(ev, "q", "num_ret"), 2.0);
  std::remove((path + ".qrels.zst").c_str());
  std::remove((path + ".run.zst").c_str());
  // The same bytes in memory.
  std::string zbytes;
  {
    TempFile f("", ".zst");
    auto out = io::Output::open(f.path);
    out->write(qrels);
    out->close();
    std::ifstream in(f.path, std::ios::binary);
    zbytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  ASSERT_TRUE(io::is_zstd_magic(zbytes));
  EXPECT_EQ(parse_qrels(zbytes, "mem").queries.at(0).judgments.size(), 2u);
}

}  // namespace
