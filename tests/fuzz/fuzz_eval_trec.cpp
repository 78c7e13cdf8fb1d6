// Fuzz target: the qrels and run readers of `loom eval retrieval` (lib/eval/retrieval.h), TREC and
// JSONL. The input is split at its first 0 byte into a qrels file and a run file. Each must parse
// or be rejected with a bad-input error naming the file — never a crash, hang or leak. When both
// parse, every measure is computed: each value is finite, the rates lie in [0, 1], and the same
// evaluation twice gives the same doubles.
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "loom/core/error.h"
#include "loom/eval/retrieval.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace loom;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  size_t cut = in.find('\0');
  std::string qrels_text(in.substr(0, cut)), run_text(cut == std::string_view::npos ? "" : in.substr(cut + 1));
  eval::Qrels qrels;
  eval::Run run;
  try {
    qrels = eval::parse_qrels(qrels_text, "qrels");
  } catch (const Error& e) {
    if (e.kind() != Error::Kind::BadInput || e.file() != "qrels") std::abort();
    return 0;
  }
  try {
    run = eval::parse_run(run_text, "run");
  } catch (const Error& e) {
    if (e.kind() != Error::Kind::BadInput || e.file() != "run") std::abort();
    return 0;
  }
  static const auto measures = eval::parse_measures({"num_q,num_ret,num_rel,num_rel_ret,map,Rprec,recip_rank,mrr@3",
                                                     "P.1,5,100", "recall.1,5,100", "success.1,5", "ndcg", "ndcg_cut.1,5,100",
                                                     "map_cut.1,5,100"});
  for (int level : {1, 0, 2})
    for (auto gain : {eval::Gain::Linear, eval::Gain::Exp}) {
      eval::Options opt{level, gain};
      eval::Evaluation a = eval::evaluate(qrels, run, measures, opt), b = eval::evaluate(qrels, run, measures, opt);
      if (a.all != b.all || a.queries.size() != qrels.queries.size()) std::abort();
      for (size_t i = 0; i < a.all.size(); ++i) {
        if (!std::isfinite(a.all[i])) std::abort();
        bool rate = !a.measures[i].integral() && !(level <= 0 && a.measures[i].metric == eval::Metric::Rprec);
        for (auto& q : a.queries)
          if (!std::isfinite(q.values[i]) || q.values[i] < 0 || (rate && q.values[i] > 1 + 1e-12)) std::abort();
      }
      (void)eval::format_trec(a, true);
    }
  return 0;
}
