// Fuzz target: the text metrics of `loom eval text` (lib/eval/text.h) on arbitrary UTF-8: the
// input is split at 0 bytes into a prediction and its references (invalid UTF-8 is rejected
// before the metrics, as loom-eval's reader does). Every metric must return without a crash or
// hang, with values in their ranges, the same twice; an item without references may only be
// rejected with a bad-input error.
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "loom/core/error.h"
#include "loom/eval/text.h"
#include "loom/io/json.h"

namespace {
bool in(double v, double hi) { return std::isfinite(v) && v >= 0 && v <= hi * (1 + 1e-12); }
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace loom;
  std::string_view s(reinterpret_cast<const char*>(data), size);
  if (!json::valid_utf8(s) || size > 4096) return 0;
  std::vector<std::string> parts;
  for (size_t at = 0;;) {
    size_t z = s.find('\0', at);
    parts.emplace_back(s.substr(at, z == std::string_view::npos ? std::string_view::npos : z - at));
    if (z == std::string_view::npos) break;
    at = z + 1;
  }
  eval::TextItem item{parts[0], {parts.begin() + 1, parts.end()}};
  for (bool stem : {false, true}) {
    eval::TextOptions o;
    o.rouge_options.use_stemmer = stem;
    o.bleu_options.tokenize = stem ? eval::BleuTokenize::Intl : eval::BleuTokenize::T13a;
    o.chrf_options.word_order = stem ? 2 : 0;
    eval::TextEvaluator ev(o);
    eval::TextItemScores a;
    try {
      a = ev.score(item);
    } catch (const Error& e) {
      if (e.kind() != Error::Kind::BadInput || !item.references.empty()) std::abort();
      continue;
    }
    eval::TextItemScores b = ev.score(item);
    if (a.bleu.score != b.bleu.score || a.chrf != b.chrf || a.rouge.rougeLsum.fmeasure != b.rouge.rougeLsum.fmeasure) std::abort();
    if (!in(a.squad.exact, 1) || !in(a.squad.f1, 1) || !in(a.bleu.score, 100) || !in(a.chrf, 100)) std::abort();
    for (const eval::Prf* p : {&a.rouge.rouge1, &a.rouge.rouge2, &a.rouge.rougeL, &a.rouge.rougeLsum})
      if (!in(p->precision, 1) || !in(p->recall, 1) || !in(p->fmeasure, 1)) std::abort();
    ev.add(a);
    eval::TextSummary sum = ev.summary();
    if (!in(sum.bleu.score, 100) || !in(sum.chrf, 100)) std::abort();
  }
  for (auto& w : eval::rouge_tokenize(parts[0])) (void)eval::porter_stem(w);
  return 0;
}
