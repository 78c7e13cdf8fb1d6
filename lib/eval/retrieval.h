// loom::eval retrieval metrics — trec_eval's, to the last bit.
//
// What `loom eval retrieval` computes: a run (ranked documents per query) scored against qrels
// (graded relevance judgments), with the measures, names and semantics of trec_eval 9.0.8 run as
// `trec_eval -c` (the version pytrec-eval-terrier 0.5.11 wraps). Every value is computed with the
// same floating-point operations in the same order as trec_eval's C code, so per-query values and
// means are identical doubles, not just close (tests/unit/test_eval_retrieval.cpp checks this
// against goldens from the trec_eval binary).
//
//   auto qrels = eval::read_qrels("qrels.txt");            // TREC or JSONL, .zst or "-"
//   auto run = eval::read_run("run.trec");                 // TREC run or loom-retrieve JSONL
//   auto ms = eval::parse_measures({"map", "ndcg_cut.10", "P@5", "mrr@10"});
//   auto ev = eval::evaluate(qrels, run, ms);
//   ev.all[i]                  // value of ms[i] (named ev.names[i]) over all queries
//   fputs(eval::format_trec(ev, false).c_str(), stdout);   // trec_eval's table
//
// Semantics (trec_eval's; the source files named are trec_eval's):
//   - Ranking: hits are sorted by score, descending; equal scores by document id, descending
//     byte order (form_res_rels.c). The rank column of a TREC run is ignored, as trec_eval does.
//   - Relevance: a document is relevant when it is judged with rel >= relevance_level (default
//     1, trec_eval -l). Unjudged documents are non-relevant. A negative judgment (rel < 0) means
//     "in the pool but unjudged": never relevant, no gain, not counted in num_rel.
//   - Queries: only queries of the qrels count. A run's query absent from the qrels is ignored.
//     A qrels query absent from the run scores 0 on every measure and counts in the mean (-c):
//     means are sums over the qrels queries in byte order of their ids, divided by their number.
//     A qrels query with no relevant document counts too (its values are 0).
//   - num_q, num_ret, num_rel, num_rel_ret are counts; their "all" values are totals, not means:
//     num_q = number of qrels queries, num_ret and num_rel_ret summed over the evaluated queries,
//     and num_rel over every qrels query counting rel > 0 whatever relevance_level is (m_num_rel.c
//     with -c does exactly that).
//   - nDCG (ndcg, ndcg_cut) uses the relevance value as gain (Gain::Linear, trec_eval's only
//     choice) or 2^rel - 1 (Gain::Exp, which equals trec_eval on qrels with rel -> 2^rel - 1).
//     nDCG ignores relevance_level: every judged rel > 0 is gain. The ideal ranking is every
//     judged document with gain > 0, highest first; the DCG discount is log2(rank + 1).
//     ndcg_cut_K with an ideal DCG of 0 is 0.
//   - Cutoff measures at K beyond the hits retrieved treat the missing ranks as non-relevant
//     (P_K divides by K).
//   - recip_rank_cut_K (not in trec_eval; `mrr@K`) is recip_rank over the best K hits only,
//     which is trec_eval -M K -m recip_rank: the MS MARCO "MRR@10".
//
// Where loom differs from trec_eval. Stricter (where trec_eval would print numbers anyway):
//   - A document twice in one query of the run, or judged twice for one query in the qrels, is an
//     error naming file and line of the second occurrence. trec_eval refuses both too ("duplicate
//     docs"), but only for queries it evaluates.
//   - Malformed lines are errors naming file and line: a TREC qrels line needs exactly 4 columns
//     and an integer relevance (trec_eval takes atol's reading of anything); a TREC run line
//     exactly 6 columns (trec_eval ignores a 7th and more) and a score that strtod reads fully
//     (exponents, inf; not NaN; trec_eval takes atof's reading of anything).
// More lenient:
//   - An empty run, or no query both judged and retrieved, gives zeros (trec_eval exits with an
//     error); the counts in Evaluation tell the caller.
//   - Blank lines and lines starting with '#' are skipped in both TREC files (trec_eval 10 skips
//     '#' lines; 9.0.8 rejects a blank qrels line).
//   - `-m P.5 -m P.10` is P_5 and P_10 here (trec_eval keeps the first list only).
//
// Reading keeps a whole file in memory (mapped when large and uncompressed, as trec_eval reads
// it); TREC ids are views into it. Evaluation is O(hits log hits) per query (no sort when the
// hits come best first, as runs usually do).
//
// A trec_eval quirk loom does not copy: for a query evaluated with no judgment rel >= 0 at all
// (only negative ones), trec_eval reads the relevance levels left over from the previous query;
// loom gives such a query no ideal (nDCG 0).
#pragma once
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace loom::eval {

struct TextStore;  // owns the bytes that the string_views of Qrels and Run point into

// ---- input -------------------------------------------------------------------------------------
//
// Qrels, either format (the first non-blank character '{' means JSONL):
//   TREC:   qid iter docid rel              one judgment a line, whitespace separated; iter ignored
//   JSONL:  {"query_id": "q1", "doc_id": "d1", "relevance": 2}    one judgment a record
//           {"query_id": "q1", "relevance": {"d1": 2, "d3": 1}}   several: an object of doc -> rel
//           (query_id may be named qid; doc_id docid; relevance rel; ids are strings or integers)
// Runs, either format:
//   TREC:   qid Q0 docid rank score tag     one hit a line; lines of a query may be anywhere
//   JSONL:  loom-retrieve's output, one query a record:
//           {"id": "q1", ..., "hits": [{"id": "d1", "score": 3.5, "rank": 1, ...}, ...]}
//           The query id is query_id, else qid, else id; a hit's document id is id (else doc_id,
//           docid). A hit without a score is scored -rank, or -(its 1-based position) without a
//           rank, so hits without scores keep their order. A query in two records is an error.
// Files may be zstd-compressed; "-" is stdin. Errors are loom::Error: a missing file is a usage
// error, every malformed line a bad-input error naming file and 1-based line.

struct Judgment {
  std::string_view doc;
  int rel;
};

struct Qrels {
  struct Query {
    std::string_view id;
    std::vector<Judgment> judgments;  // in input order, documents distinct
  };
  std::vector<Query> queries;  // in order of first appearance, ids distinct
  std::shared_ptr<const TextStore> store;
};

struct Hit {
  std::string_view doc;
  double score;
};

struct Run {
  struct Query {
    std::string_view id;
    std::vector<Hit> hits;  // in input order (evaluate() ranks them), documents distinct
  };
  std::vector<Query> queries;  // in order of first appearance, ids distinct
  std::shared_ptr<const TextStore> store;
};

Qrels read_qrels(const std::string& path);
Run read_run(const std::string& path);
// The same over a file's bytes already in memory; `name` is what errors call the file.
Qrels parse_qrels(std::string bytes, const std::string& name);
Run parse_run(std::string bytes, const std::string& name);

// ---- measures ----------------------------------------------------------------------------------

// In trec_eval's order of output (recip_rank_cut, loom's own, after recip_rank).
enum class Metric {
  NumQ, NumRet, NumRel, NumRelRet, Map, Rprec, RecipRank, RecipRankCut, P, Recall, Ndcg, NdcgCut, MapCut, Success
};

struct Measure {
  Metric metric;
  int cutoff = 0;  // K of the cutoff measures, 0 for the others
  // trec_eval's output name: "map", "P_5", "ndcg_cut_10", "recip_rank_cut_10", ...
  std::string name() const;
  // num_q, num_ret, num_rel, num_rel_ret: counts, printed as integers.
  bool integral() const { return metric <= Metric::NumRelRet; }
  bool operator==(const Measure&) const = default;
};

// Measure specs, as trec_eval -m takes them or in the short forms common elsewhere:
//   map  Rprec  recip_rank  ndcg  num_q  num_ret  num_rel  num_rel_ret
//   P.5,10  recall.100  success.1,5  ndcg_cut.10  map_cut.100  recip_rank_cut.10
//   P  recall  ndcg_cut  map_cut  (trec_eval's cutoffs 5,10,15,20,30,100,200,500,1000)
//   success  (1,5,10)
//   P@5  p@5  recall@100  success@10  ndcg@10  map@10  mrr (= recip_rank)  mrr@10
//   (= recip_rank_cut.10)  rprec  r-precision
// Names are matched ignoring case. A spec may hold several comma-separated measures, and a bare
// number continues the cutoff list before it: "map,ndcg@5,10,P.5" is map, ndcg_cut_5,
// ndcg_cut_10 and P_5. Cutoffs are positive integers. The result is sorted into trec_eval's
// output order, without repeats. An unknown name or a bad cutoff is loom::usage_error (its
// message lists the valid names).
std::vector<Measure> parse_measures(const std::vector<std::string>& specs);

// ---- evaluation --------------------------------------------------------------------------------

enum class Gain { Linear, Exp };  // nDCG gain: rel (trec_eval) or 2^rel - 1

struct Options {
  int relevance_level = 1;  // trec_eval -l: rel >= this is relevant (levels <= 0 as trec_eval has them)
  Gain gain = Gain::Linear;
};

struct Evaluation {
  std::vector<Measure> measures;
  std::vector<std::string> names;  // names[i] = measures[i].name()
  struct Query {
    std::string id;
    bool retrieved;              // in the run (else every value but num_rel is 0)
    std::vector<double> values;  // values[i] of measures[i]
  };
  std::vector<Query> queries;  // every query of the qrels, ids in byte order
  std::vector<double> all;     // trec_eval's "all": means over `queries` (-c), totals for counts
  size_t num_qrels_queries = 0;  // = queries.size()
  size_t num_run_queries = 0;    // queries in the run, judged or not
  size_t num_evaluated = 0;      // queries both judged and in the run
};

Evaluation evaluate(const Qrels& qrels, const Run& run, const std::vector<Measure>& measures,
                    const Options& options = {});

// trec_eval's table, byte for byte as `trec_eval -c [-q]` prints it for the same measures:
// lines "%-22s\t%s\t%6.4f" (name, query id or "all", value), counts as integers; with per_query,
// first the lines of each retrieved query (byte order of ids; num_q has none), then the "all"
// lines.
std::string format_trec(const Evaluation& ev, bool per_query);

}  // namespace loom::eval
