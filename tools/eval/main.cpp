// loom-eval — metrics as the field computes them: retrieval (trec_eval), text (SQuAD, sacrebleu,
// rouge-score), perplexity (llama-perplexity), RAG (RAGAS, with a local judge), and the comparison
// of two evaluations. Each subcommand is its own small program with its own options table; the
// computations live in lib/eval/, this file reads inputs and writes one JSON summary (after one
// line per item with --per-item).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <optional>
#include <unordered_map>

#include "loom/chat/value.h"
#include "loom/cli/tool.h"
#include "loom/core/parallel.h"
#include "loom/eval/compare.h"
#include "loom/eval/perplexity.h"
#include "loom/eval/rag.h"
#include "loom/eval/retrieval.h"
#include "loom/eval/text.h"
#include "loom/gguf/gguf.h"
#include "loom/io/json.h"
#include "loom/io/jsonl.h"
#include "loom/io/stream.h"
#include "loom/model/decoder.h"
#include "loom/model/models_dir.h"
#include "loom/tokenizer/tokenizer.h"

using namespace loom;

namespace {

// --fail-under / --fail-over: checked once the summary is written; a metric past its threshold,
// or undefined, is reported on stderr and the exit status is 1.
struct Gates {
  std::vector<std::string> under, over;
  // maps a threshold's metric name to the summary's (retrieval: ndcg@10 -> ndcg_cut_10)
  std::function<std::string(const std::string&)> rename = nullptr;
  bool failed = false;

  void add(CLI::App& app) {
    app.add_option("--fail-under", under, "Exit 1 when METRIC is below VALUE (repeatable)")->type_name("METRIC=VALUE")->allow_extra_args(false)->default_str("");
    app.add_option("--fail-over", over, "Exit 1 when METRIC is above VALUE (repeatable; perplexity)")->type_name("METRIC=VALUE")->allow_extra_args(false)->default_str("");
  }
  std::vector<std::string> renamed(std::vector<std::string> specs) const {
    if (rename)
      for (auto& s : specs) {
        auto t = eval::parse_threshold(s);
        s = rename(t.first) + s.substr(t.first.size());
      }
    return specs;
  }
  // Before the work: each threshold well formed and naming one of the metrics this run reports.
  void validate(const std::vector<std::string>& names) const {
    std::vector<std::pair<std::string, std::optional<double>>> none;
    for (auto& n : names) none.emplace_back(n, std::nullopt);
    eval::check_thresholds(none, renamed(under), renamed(over));
  }
  void check(cli::Tool& tool, const std::vector<std::pair<std::string, std::optional<double>>>& metrics) {
    for (const std::string& m : eval::check_thresholds(metrics, renamed(under), renamed(over))) {
      fmt::print(stderr, "{}: failed: {}\n", tool.program(), m);
      failed = true;
    }
  }
  int status(int s) const { return s == 0 && failed ? 1 : s; }
};

// A JSON value: a number, or null for an undefined one (NaN).
void append_value(std::string& s, std::optional<double> v) {
  if (v && std::isfinite(*v))
    json::append_number(s, *v);
  else
    s += "null";
}

// {"name": value, ...}
std::string metrics_json(const std::vector<std::pair<std::string, std::optional<double>>>& metrics) {
  std::string s = "{";
  for (auto& [k, v] : metrics) {
    if (s.size() > 1) s += ',';
    json::append_string(s, k);
    s += ':';
    append_value(s, v);
  }
  return s + '}';
}

// ------------------------------------------------------------------------------------------------
// retrieval

int retrieval_main(int argc, char** argv) {
  cli::Tool tool("eval retrieval",
                 "Retrieval metrics of a run against relevance judgments, as trec_eval -c computes them (the same "
                 "values, to the last digit).\n\n"
                 "QRELS: TREC (qid iter docid rel) or JSONL ({query_id, doc_id, relevance}). RUN: a TREC run (qid Q0 "
                 "docid rank score tag) or loom-retrieve's records with hits.");
  tool.add_output();
  std::string qrels_file, run_file = "-";
  std::vector<std::string> specs;
  eval::Options eo;
  enum class Format { Json, Trec } format = Format::Json;
  bool per_query = false;
  Gates gates;
  CLI::App& app = tool.app();
  app.add_option("run", run_file, "The run ('-' = stdin; .zst accepted)")->type_name("RUN");
  app.add_option("--qrels", qrels_file, "Relevance judgments (.zst accepted)")->type_name("QRELS")->required();
  app.add_option("-m,--metrics", specs,
                 "Measures (repeatable, comma-separated): trec_eval names (map, ndcg_cut.10, P.5,10, recall.100, "
                 "recip_rank, Rprec, success.10, map_cut.10, ndcg, num_rel_ret...) or short forms (ndcg@10, P@5, mrr, "
                 "mrr@10, recall@100); default map,Rprec,recip_rank,P.10,recall.100,ndcg,ndcg_cut.10")
      ->type_name("SPEC")
      ->allow_extra_args(false)
      ->default_str("");
  app.add_option("-l,--relevance-level", eo.relevance_level, "Judged relevance at least this is relevant (trec_eval -l)")
      ->type_name("N");
  tool.add_choice("--gain", eo.gain, {{"linear", eval::Gain::Linear}, {"exp", eval::Gain::Exp}},
                  "nDCG gain: the relevance value (trec_eval) or 2^rel - 1");
  tool.add_choice("--format", format, {{"json", Format::Json}, {"trec", Format::Trec}},
                  "Output: a JSON summary, or trec_eval's table");
  app.add_flag("--per-query,--per-item", per_query, "Each query's values too (before the summary), as trec_eval -q");
  gates.add(app);
  int status = tool.run(argc, argv, [&] {
    if (specs.empty()) specs = {"map,Rprec,recip_rank,P.10,recall.100,ndcg,ndcg_cut.10"};
    std::vector<eval::Measure> measures = eval::parse_measures(specs);
    gates.rename = [](const std::string& m) {  // ndcg@10=0.4 is ndcg_cut_10=0.4
      try {
        auto ms = eval::parse_measures({m});
        return ms.size() == 1 ? ms[0].name() : m;
      } catch (const Error&) {
        return m;
      }
    };
    std::vector<std::string> names;
    for (auto& m : measures) names.push_back(m.name());
    gates.validate(names);
    eval::Qrels qrels = eval::read_qrels(qrels_file);
    eval::Run run = eval::read_run(run_file);
    eval::Evaluation ev = eval::evaluate(qrels, run, measures, eo);
    if (ev.num_evaluated == 0)
      tool.warn("no query is both in the qrels ({} queries) and in the run ({}): every value is 0", ev.num_qrels_queries,
                ev.num_run_queries);
    std::vector<std::pair<std::string, std::optional<double>>> all;
    for (size_t i = 0; i < ev.names.size(); ++i) all.emplace_back(ev.names[i], ev.all[i]);
    if (format == Format::Trec) {
      tool.out().write(eval::format_trec(ev, per_query));
    } else {
      std::string s;
      auto values = [&](const std::vector<double>& v) {
        s += "{";
        for (size_t i = 0; i < ev.names.size(); ++i) {
          if (i) s += ',';
          json::append_string(s, ev.names[i]);
          s += ':';
          if (ev.measures[i].integral())
            json::append_number(s, static_cast<int64_t>(v[i]));
          else
            json::append_number(s, v[i]);
        }
        s += "}";
      };
      if (per_query)
        for (auto& q : ev.queries) {
          s = "{\"id\":";
          json::append_string(s, q.id);
          s += ",\"metrics\":";
          values(q.values);
          s += q.retrieved ? ",\"retrieved\":true}\n" : ",\"retrieved\":false}\n";
          tool.out().write(s);
        }
      s = "{\"eval\":\"retrieval\",\"metrics\":";
      values(ev.all);
      s += fmt::format(",\"queries\":{},\"run_queries\":{},\"evaluated\":{},\"relevance_level\":{},\"gain\":\"{}\"}}\n",
                       ev.num_qrels_queries, ev.num_run_queries, ev.num_evaluated, eo.relevance_level,
                       eo.gain == eval::Gain::Exp ? "exp" : "linear");
      tool.out().write(s);
    }
    gates.check(tool, all);
  });
  return gates.status(status);
}

// ------------------------------------------------------------------------------------------------
// text

// The references of a record: a string, a list of strings, or SQuAD's {"text": [...]}.
std::vector<std::string> references_of(const chat::Value& v, const std::string& field) {
  std::vector<std::string> out;
  const chat::Value* list = &v;
  if (v.is_dict()) list = v.get("text");
  if (list && list->is_string()) return {list->str()};
  if (list && list->is_list()) {
    for (auto& x : list->items()) {
      if (!x.is_string()) throw input_error(fmt::format("\"{}\" must hold strings", field));
      out.push_back(x.str());
    }
    return out;
  }
  throw input_error(fmt::format("\"{}\" must be a string, a list of strings or {{\"text\": [...]}}", field));
}

int text_main(int argc, char** argv) {
  cli::Tool tool("eval text",
                 "Generated text against references: SQuAD exact match and F1, BLEU and chrF (sacrebleu), ROUGE-1/2/L/Lsum "
                 "(rouge-score), with the references' defaults and values.\n\n"
                 "Records: a prediction (prediction, or completion) and references (references, reference or answers: a "
                 "string, a list, or SQuAD's {\"text\": [...]}). With --ref-text, plain text: a prediction a line, "
                 "references a line in each file.");
  tool.add_output();
  tool.add_on_error();
  std::string input = "-", metrics = "exact_match,f1,bleu,chrf,rouge", pred_field, ref_field;
  std::vector<std::string> ref_texts;
  eval::TextOptions to;
  enum class Squad { V2, V1 } squad = Squad::V2;
  bool per_item = false;
  Gates gates;
  CLI::App& app = tool.app();
  app.add_option("input", input, "Records (or predictions, with --ref-text) ('-' = stdin; .zst accepted)")->type_name("FILE");
  app.add_option("-m,--metrics", metrics, "Metrics, comma-separated: exact_match, f1, bleu, chrf, rouge (all four ROUGE scores)")
      ->type_name("LIST");
  app.add_option("--prediction-field", pred_field, "Field of the prediction (default: prediction, else completion)")
      ->type_name("NAME");
  app.add_option("--reference-field", ref_field, "Field of the references (default: references, else reference, else answers)")
      ->type_name("NAME");
  app.add_option("--ref-text", ref_texts, "Plain-text references, a line per prediction (repeatable: several references)")
      ->type_name("FILE")
      ->allow_extra_args(false)
      ->default_str("");
  tool.add_choice("--squad", squad, {{"v2", Squad::V2}, {"v1", Squad::V1}},
                  "SQuAD evaluation script: v2.0 (unanswerable items: no reference) or v1.1");
  tool.add_choice("--tokenize", to.bleu_options.tokenize,
                  {{"13a", eval::BleuTokenize::T13a}, {"none", eval::BleuTokenize::None}, {"intl", eval::BleuTokenize::Intl},
                   {"char", eval::BleuTokenize::Char}},
                  "BLEU tokenizer (sacrebleu's)");
  app.add_flag("--lowercase", to.bleu_options.lowercase, "BLEU on lowercased text (sacrebleu -lc)");
  app.add_option("--chrf-word-order", to.chrf_options.word_order, "chrF word n-gram order (2: chrF++)")->type_name("N");
  app.add_flag("--stem", to.rouge_options.use_stemmer, "ROUGE with the Porter stemmer (rouge-score use_stemmer=True)");
  app.add_flag("--per-item", per_item, "Each item's values too (before the summary): sentence BLEU and chrF");
  gates.add(app);
  int status = tool.run(argc, argv, [&] {
    to.squad = to.bleu = to.chrf = to.rouge = false;
    bool em = false, f1 = false;
    for (auto& m : CLI::detail::split(metrics, ',')) {
      std::string n = CLI::detail::trim_copy(m);
      if (n == "exact_match") em = to.squad = true;
      else if (n == "f1") f1 = to.squad = true;
      else if (n == "bleu") to.bleu = true;
      else if (n == "chrf") to.chrf = true;
      else if (n == "rouge") to.rouge = true;
      else throw usage_error(fmt::format("no text metric '{}' (exact_match, f1, bleu, chrf, rouge)", n));
    }
    to.squad_version = squad == Squad::V1 ? eval::SquadVersion::V1_1 : eval::SquadVersion::V2_0;
    eval::TextEvaluator ev(to);
    // the values of an item (or of the summary), on the summary's scales
    auto values = [&](const eval::SquadScore& sq, double bleu, double chrf, const eval::RougeScores& r, double scale) {
      std::vector<std::pair<std::string, std::optional<double>>> v;
      if (em) v.emplace_back("exact_match", sq.exact * scale);
      if (f1) v.emplace_back("f1", sq.f1 * scale);
      if (to.bleu) v.emplace_back("bleu", bleu);
      if (to.chrf) v.emplace_back("chrf" + std::string(std::max(0, to.chrf_options.word_order), '+'), chrf);  // chrF++: 2
      if (to.rouge)
        for (auto [name, prf] : {std::pair{"rouge1", &r.rouge1}, {"rouge2", &r.rouge2}, {"rougeL", &r.rougeL}, {"rougeLsum", &r.rougeLsum}})
          v.emplace_back(name, prf->fmeasure);
      return v;
    };
    std::vector<std::string> names;
    for (auto& [k, x] : values({}, 0, 0, {}, 1)) names.push_back(k);
    gates.validate(names);
    std::vector<eval::TextItem> items;
    std::vector<std::string> ids;
    std::vector<eval::TextItemScores> scores;
    std::vector<std::exception_ptr> errors;
    std::vector<std::pair<std::string, size_t>> places;  // file, line of each item
    const unsigned threads = tool.common().threads;
    auto flush = [&] {
      scores.assign(items.size(), {});
      errors.assign(items.size(), nullptr);
      parallel_for(items.size(), threads, [&](size_t i) {
        try {
          scores[i] = ev.score(items[i]);
        } catch (...) {
          errors[i] = std::current_exception();
        }
      });
      for (size_t i = 0; i < items.size(); ++i) {
        if (errors[i]) {
          if (tool.skip_failed(errors[i], places[i].first, places[i].second)) continue;
        }
        ev.add(scores[i]);
        if (per_item) {
          std::string line = "{\"id\":";
          json::append_string(line, ids[i]);
          line += ",\"metrics\":" + metrics_json(values(scores[i].squad, scores[i].bleu.score, scores[i].chrf, scores[i].rouge, 100)) + "}\n";
          tool.out().write(line);
        }
      }
      items.clear(), ids.clear(), places.clear();
    };
    if (!ref_texts.empty()) {
      // plain text: line i of the input and of each reference file make item i
      auto in = io::Input::open(input);
      io::LineReader preds(*in);
      std::vector<std::unique_ptr<io::Input>> rin;
      std::vector<io::LineReader> refs;
      for (auto& f : ref_texts) rin.push_back(io::Input::open(f));
      for (auto& r : rin) refs.emplace_back(*r);
      std::string_view line;
      while (preds.next(line)) {
        eval::TextItem it{std::string(line), {}};
        for (size_t k = 0; k < refs.size(); ++k) {
          std::string_view r;
          if (!refs[k].next(r))
            throw input_error(fmt::format("ends after {} lines; {} has more predictions", refs[k].line_number(), in->name()),
                              ref_texts[k]);
          if (!json::valid_utf8(r)) throw input_error("not UTF-8", ref_texts[k], refs[k].line_number());
          it.references.emplace_back(r);
        }
        if (!json::valid_utf8(it.prediction)) throw input_error("not UTF-8", in->name(), preds.line_number());
        ids.push_back(std::to_string(preds.line_number()));
        places.emplace_back(in->name(), preds.line_number());
        items.push_back(std::move(it));
        if (items.size() == 1024) flush();
      }
      for (size_t k = 0; k < refs.size(); ++k)
        if (std::string_view r; refs[k].next(r))
          throw input_error(fmt::format("more lines than the predictions ({})", preds.line_number()), ref_texts[k], refs[k].line_number());
    } else {
      tool.read_records(
          input, 1024,
          [&](io::Record&& rec, const std::string& file, size_t line) {
            try {
              eval::TextItem it;
              std::string pf = pred_field;
              if (pf.empty()) pf = rec.has("prediction") || !rec.has("completion") ? "prediction" : "completion";
              auto p = rec.get_string(pf);
              if (!p) throw input_error(fmt::format("no prediction: a \"{}\" string is needed", pf));
              it.prediction = std::move(*p);
              std::string rf = ref_field;
              if (rf.empty())
                for (const char* n : {"references", "reference", "answers"})
                  if (rec.has(n)) {
                    rf = n;
                    break;
                  }
              auto raw = rf.empty() ? std::nullopt : rec.raw(rf);
              if (!raw) throw input_error(rf.empty() ? "no references (\"references\", \"reference\" or \"answers\")"
                                                     : fmt::format("no references: no \"{}\"", rf));
              it.references = references_of(chat::Value::parse_json(*raw), rf);
              auto id = rec.raw("id");
              ids.push_back(!id ? std::to_string(line) : (*id)[0] == '"' ? *rec.get_string("id") : std::string(*id));
              places.emplace_back(file, line);
              items.push_back(std::move(it));
            } catch (Error& e) {
              e.at(file, line);
              if (!tool.skip(e)) throw;
            }
          },
          flush);
    }
    flush();
    eval::TextSummary sum = ev.summary();
    auto v = values(sum.squad, sum.bleu.score, sum.chrf, sum.rouge, 1);
    if (sum.items == 0) {
      tool.warn("no items: every metric is undefined (null)");
      for (auto& [k, x] : v) x.reset();
    }
    std::string line = "{\"eval\":\"text\",\"metrics\":" + metrics_json(v) + fmt::format(",\"items\":{}", sum.items);
    if (to.squad) line += to.squad_version == eval::SquadVersion::V1_1 ? ",\"squad\":\"v1.1\"" : ",\"squad\":\"v2.0\"";
    if (to.bleu) {
      const eval::BleuScore& b = sum.bleu;
      line += fmt::format(",\"bleu\":{{\"precisions\":[{}],\"bp\":", fmt::join(b.precisions, ","));
      json::append_number(line, b.bp);
      line += fmt::format(",\"sys_len\":{},\"ref_len\":{},\"counts\":[{}],\"totals\":[{}],\"signature\":", b.sys_len, b.ref_len,
                          fmt::join(b.counts, ","), fmt::join(b.totals, ","));
      json::append_string(line, sum.bleu_signature);
      line += '}';
    }
    if (to.chrf) {
      line += ",\"chrf\":{\"signature\":";
      json::append_string(line, sum.chrf_signature);
      line += '}';
    }
    if (to.rouge) {
      line += fmt::format(",\"rouge\":{{\"stemmer\":{}", to.rouge_options.use_stemmer ? "true" : "false");
      const eval::RougeScores& r = sum.rouge;
      for (auto [name, prf] : {std::pair{"rouge1", &r.rouge1}, {"rouge2", &r.rouge2}, {"rougeL", &r.rougeL}, {"rougeLsum", &r.rougeLsum}}) {
        line += fmt::format(",\"{}\":{{\"precision\":", name);
        json::append_number(line, prf->precision);
        line += ",\"recall\":";
        json::append_number(line, prf->recall);
        line += ",\"fmeasure\":";
        json::append_number(line, prf->fmeasure);
        line += '}';
      }
      line += '}';
    }
    line += "}\n";
    tool.out().write(line);
    gates.check(tool, v);
  });
  return gates.status(status);
}

// ------------------------------------------------------------------------------------------------
// perplexity

int perplexity_main(int argc, char** argv) {
  cli::Tool tool("eval perplexity",
                 "The perplexity of a language model on a text, windowed exactly as llama.cpp's llama-perplexity "
                 "(context chunks whose first half is context only; --stride as its --ppl-stride), with its "
                 "uncertainty and bits per byte.");
  tool.add_output();
  std::string model, file;
  eval::PerplexityOptions po;
  bool per_item = false;
  Gates gates;
  CLI::App& app = tool.app();
  app.add_option("-m,--model", model, "A GGUF language model: path or name under $LOOM_MODELS")->type_name("MODEL")->required();
  app.add_option("file", file, "The text ('-' = stdin; .zst accepted; one final newline is dropped, as llama-perplexity -f does)")
      ->type_name("FILE")
      ->required();
  app.add_option("-c,--ctx", po.n_ctx, "Window (context) size in tokens")->type_name("N");
  app.add_option("--stride", po.stride, "A window every N tokens, scoring its last N (llama-perplexity --ppl-stride; 0: chunks)")
      ->type_name("N");
  app.add_option("--chunks", po.chunks, "Evaluate at most N windows (-1: all)")->type_name("N");
  app.add_option("-b,--batch", po.n_batch, "Tokens per forward pass")->type_name("N");
  app.add_flag("--per-item", per_item, "Each window's mean negative log-likelihood too (before the summary)");
  gates.add(app);
  int status = tool.run(argc, argv, [&] {
    gates.validate({"perplexity", "nll", "bits_per_byte"});
    const std::string path = model::find_gguf(model);
    std::string text = io::read_all(*io::Input::open(file));
    if (!text.empty() && text.back() == '\n') text.pop_back();
    if (!json::valid_utf8(text))
      throw input_error(fmt::format("not UTF-8 (byte {})", json::first_invalid_utf8(text)), file == "-" ? "<stdin>" : file);
    auto gf = std::make_shared<gguf::File>(gguf::File::open(path));
    tok::Tokenizer tokenizer = tok::Tokenizer::from_gguf(*gf, path);
    po.threads = tool.common().threads;
    model::Decoder dec(gf, {.n_ctx = po.n_ctx, .threads = tool.common().threads, .n_seq = 1});
    cli::Progress progress(tool, "perplexity");
    eval::PerplexityResult r;
    try {
      r = eval::perplexity(dec, tokenizer, text, po, [&](size_t done, size_t total, double ppl) {
        progress.tick([&] { return fmt::format("window {}/{}: {:.4f}", done, total, ppl); });
      });
    } catch (Error& e) {
      if (e.kind() == Error::Kind::BadInput) e.at(file == "-" ? "<stdin>" : file);  // the text is too short
      throw;
    }
    progress.done();
    if (per_item)
      for (size_t i = 0; i < r.window_nll.size(); ++i) {
        std::string line = fmt::format("{{\"id\":\"{}\",\"metrics\":{{\"nll\":", i + 1);
        json::append_number(line, r.window_nll[i]);
        line += ",\"perplexity\":";
        json::append_number(line, std::exp(r.window_nll[i]));
        line += "}}\n";
        tool.out().write(line);
      }
    const double nll = r.nll_sum / static_cast<double>(r.scored_tokens);
    std::vector<std::pair<std::string, std::optional<double>>> metrics = {
        {"perplexity", r.ppl}, {"nll", nll}, {"bits_per_byte", r.bits_per_byte}};
    std::string line = "{\"eval\":\"perplexity\",\"metrics\":{\"perplexity\":";
    json::append_number(line, r.ppl);
    line += ",\"nll\":";
    json::append_number(line, nll);
    line += ",\"bits_per_byte\":";
    json::append_number(line, r.bits_per_byte);
    line += "},\"uncertainty\":";
    json::append_number(line, r.uncertainty);
    line += fmt::format(",\"tokens\":{},\"scored_tokens\":{},\"bytes\":{},\"windows\":{},\"ctx\":{},\"stride\":{},\"model\":",
                        r.tokens, r.scored_tokens, r.bytes, r.chunks, r.n_ctx, r.stride);
    json::append_string(line, path);
    line += ",\"running\":[";
    for (size_t i = 0; i < r.running.size(); ++i) {
      if (i) line += ',';
      json::append_number(line, r.running[i]);
    }
    line += "]}\n";
    tool.out().write(line);
    gates.check(tool, metrics);
  });
  return gates.status(status);
}

// ------------------------------------------------------------------------------------------------
// rag

int rag_main(int argc, char** argv) {
  cli::Tool tool("eval rag",
                 "RAG metrics as RAGAS defines them (faithfulness, answer relevancy, context precision and recall), "
                 "judged by a local model (greedy) with an embedding model for answer relevancy.\n\n"
                 "Records: question, answer (or completion), contexts (strings) or hits (loom-retrieve's), and "
                 "optionally reference.");
  tool.add_output();
  tool.add_on_error();
  eval::RagOptions o;
  std::string input = "-", metrics = "faithfulness,answer_relevancy,context_precision,context_recall";
  bool per_item = false;
  size_t batch = 16;
  Gates gates;
  CLI::App& app = tool.app();
  app.add_option("input", input, "Records to evaluate ('-' = stdin; .zst accepted)")->type_name("FILE");
  app.add_option("-m,--metrics", metrics, "Metrics to compute, comma-separated")->type_name("LIST");
  app.add_option("--judge", o.judge, "The judge: a chat model (GGUF), path or name under $LOOM_MODELS")->type_name("MODEL");
  app.add_option("--judge-chat-template", o.chat_template_file, "A Jinja chat template for the judge (default: the model's own)")
      ->type_name("FILE");
  app.add_option("--embed-model", o.embedder, "Embedding model for answer relevancy")->type_name("MODEL");
  app.add_option("--prompts", o.prompts_dir, "Folder of prompt files replacing the built-in ones (statements.txt, faithfulness.txt, "
                                             "questions.txt, noncommittal.txt, context_precision.txt, context_recall.txt)")
      ->type_name("DIR");
  app.add_option("--questions", o.questions, "Questions generated per answer (answer relevancy)")->type_name("N");
  app.add_option("--judge-ctx", o.n_ctx, "The judge's context window per prompt")->type_name("N");
  app.add_option("--parallel", o.parallel, "Judge prompts decoded together")->type_name("N");
  app.add_option("--batch", batch, "Records judged together")->type_name("N");
  app.add_flag("--per-item", per_item, "Write one line per record (metrics and every judgment) before the summary");
  gates.add(app);
  int status = tool.run(argc, argv, [&] {
    o.faithfulness = o.answer_relevancy = o.context_precision = o.context_recall = false;
    std::vector<std::string> names;
    for (auto& m : CLI::detail::split(metrics, ',')) {
      std::string n = CLI::detail::trim_copy(m);
      if (n == "faithfulness") o.faithfulness = true;
      else if (n == "answer_relevancy") o.answer_relevancy = true;
      else if (n == "context_precision") o.context_precision = true;
      else if (n == "context_recall") o.context_recall = true;
      else throw usage_error(fmt::format("no RAG metric '{}' (faithfulness, answer_relevancy, context_precision, context_recall)", n));
      names.push_back(n);
    }
    gates.validate(names);
    if (batch == 0 || o.parallel == 0 || o.questions == 0) throw usage_error("--batch, --parallel and --questions must be at least 1");
    o.threads = tool.common().threads;
    eval::RagEvaluator ev(o);
    std::vector<eval::RagItem> items;
    std::vector<std::pair<std::string, size_t>> places;  // file, line of each item
    std::vector<double> sum(4, 0);
    std::vector<size_t> count(4, 0);
    size_t n_items = 0;
    cli::Progress progress(tool, "judging");
    auto flush = [&] {
      if (items.empty()) return;
      std::vector<eval::RagJudgment> js = ev.evaluate(items);
      for (size_t i = 0; i < items.size(); ++i) {
        const eval::RagJudgment& j = js[i];
        if (!j.error.empty()) {  // the items before it are written; with --on-error skip, so are those after
          Error e = input_error(j.error, places[i].first, places[i].second);
          if (tool.skip(e)) continue;
          throw e;
        }
        ++n_items;
        std::optional<double> vals[4] = {j.faithfulness, j.answer_relevancy, j.context_precision, j.context_recall};
        std::vector<std::pair<std::string, std::optional<double>>> row;
        const char* kNames[4] = {"faithfulness", "answer_relevancy", "context_precision", "context_recall"};
        bool on[4] = {o.faithfulness, o.answer_relevancy, o.context_precision, o.context_recall};
        for (int k = 0; k < 4; ++k) {
          if (!on[k]) continue;
          row.emplace_back(kNames[k], vals[k]);
          if (vals[k]) sum[k] += *vals[k], ++count[k];
        }
        if (per_item) {
          std::string line = "{\"id\":";
          json::append_string(line, items[i].id);
          line += ",\"metrics\":" + metrics_json(row) + ",\"judgments\":" + j.to_json() + "}\n";
          tool.out().write(line);
        }
      }
      items.clear();
      places.clear();
      progress.tick([&] { return fmt::format("{} records", n_items); });
    };
    tool.read_records(
        input, batch,
        [&](io::Record&& rec, const std::string& file, size_t line) {
          try {
            items.push_back(eval::rag_item(chat::Value::parse_json(rec.to_json()), std::to_string(line)));
            places.emplace_back(file, line);
          } catch (Error& e) {
            e.at(file, line);
            if (!tool.skip(e)) throw;
          }
        },
        flush);
    progress.done();
    std::vector<std::pair<std::string, std::optional<double>>> summary;
    const char* kNames[4] = {"faithfulness", "answer_relevancy", "context_precision", "context_recall"};
    std::string counted = "{";
    for (int k = 0; k < 4; ++k) {
      if (std::find(names.begin(), names.end(), kNames[k]) == names.end()) continue;
      std::optional<double> mean;
      if (count[k]) mean = sum[k] / count[k];
      summary.emplace_back(kNames[k], mean);
      if (counted.size() > 1) counted += ',';
      counted += fmt::format("\"{}\":{}", kNames[k], count[k]);
    }
    std::string line = "{\"eval\":\"rag\",\"metrics\":" + metrics_json(summary) + ",\"items\":" + std::to_string(n_items) +
                       ",\"counted\":" + counted + "},\"judge\":";
    json::append_string(line, ev.judge_path());
    if (o.answer_relevancy) {
      line += ",\"embed_model\":";
      json::append_string(line, o.embedder);
    }
    line += "}\n";
    tool.out().write(line);
    gates.check(tool, summary);
  });
  return gates.status(status);
}

// ------------------------------------------------------------------------------------------------
// compare

bool lower_is_better(const std::string& metric) {
  return metric == "perplexity" || metric == "bits_per_byte" || metric == "nll";
}

int compare_main(int argc, char** argv) {
  cli::Tool tool("eval compare",
                 "Compare two evaluations of the same items (what loom eval writes; --per-item files get paired tests): "
                 "the difference per metric, a paired t-test and a paired bootstrap.");
  tool.add_output();
  std::string base_file, new_file;
  enum class Format { Json, Table } format = Format::Json;
  uint32_t samples = 1000;
  uint64_t seed = 0;
  double alpha = 0.05;
  bool fail_if_worse = false;
  CLI::App& app = tool.app();
  app.add_option("base", base_file, "The evaluation to compare against")->type_name("BASE.json")->required();
  app.add_option("new", new_file, "The new evaluation")->type_name("NEW.json")->required();
  tool.add_choice("--format", format, {{"json", Format::Json}, {"table", Format::Table}}, "Output: one JSON object, or a table");
  app.add_option("--samples", samples, "Bootstrap resamples (0: no bootstrap)")->type_name("N");
  app.add_option("--seed", seed, "Seed of the bootstrap")->type_name("N");
  app.add_option("--alpha", alpha, "Significance level for --fail-if-worse")->type_name("P");
  app.add_flag("--fail-if-worse", fail_if_worse,
               "Exit 1 when a metric is significantly worse in NEW (t-test p < alpha; without items: any drop)");
  bool worse = false;
  int status = tool.run(argc, argv, [&] {
    if (!(alpha > 0 && alpha < 1)) throw usage_error(fmt::format("--alpha {} must lie between 0 and 1", alpha));
    if (samples > 1000000) throw usage_error(fmt::format("--samples {}: at most 1000000", samples));
    eval::EvalFile a = eval::read_evaluation(base_file), b = eval::read_evaluation(new_file);
    if (!a.kind.empty() && !b.kind.empty() && a.kind != b.kind)
      throw usage_error(fmt::format("{} is a {} evaluation, {} a {} one", base_file, a.kind, new_file, b.kind));
    // items in both, by id
    std::vector<std::pair<size_t, size_t>> common;
    {
      std::unordered_map<std::string, size_t> at;
      for (size_t i = 0; i < a.ids.size(); ++i) at.emplace(a.ids[i], i);
      for (size_t i = 0; i < b.ids.size(); ++i)
        if (auto it = at.find(b.ids[i]); it != at.end()) common.emplace_back(it->second, i);
      if (!a.ids.empty() && !b.ids.empty() && (common.size() != a.ids.size() || common.size() != b.ids.size()))
        tool.warn("the files share {} items ({} in {}, {} in {}): tests use those", common.size(), a.ids.size(), base_file,
                  b.ids.size(), new_file);
    }
    std::string js = "{\"base\":";
    json::append_string(js, base_file);
    js += ",\"new\":";
    json::append_string(js, new_file);
    js += ",\"metrics\":{";
    std::string table = fmt::format("{:<22} {:>10} {:>10} {:>10} {:>8} {:>9} {:>9}\n", "metric", "base", "new", "delta", "items",
                                    "p(t)", "p(boot)");
    bool first = true;
    for (size_t mb = 0; mb < b.metrics.size(); ++mb) {
      const std::string& name = b.metrics[mb].first;
      const double nv = b.metrics[mb].second;
      auto it = std::find_if(a.metrics.begin(), a.metrics.end(), [&](auto& m) { return m.first == name; });
      if (it == a.metrics.end()) {
        tool.warn("{} is only in {}", name, new_file);
        continue;
      }
      size_t ma = it - a.metrics.begin();
      double av = it->second;
      // paired values: both files hold item values for this metric and it is their mean
      std::vector<double> x, y;
      auto is_mean = [](const eval::EvalFile& e, size_t m) {
        if (e.values[m].empty()) return false;
        double s = 0;
        size_t n = 0;
        for (auto& v : e.values[m])
          if (v) s += *v, ++n;
        return n > 0 && std::fabs(s / n - e.metrics[m].second) <= 1e-9 * std::max(1.0, std::fabs(s / n));
      };
      bool paired = is_mean(a, ma) && is_mean(b, mb);
      if (paired)
        for (auto [i, j] : common)
          if (a.values[ma][i] && b.values[mb][j]) x.push_back(*a.values[ma][i]), y.push_back(*b.values[mb][j]);
      if (x.size() < 2) paired = false;  // nothing to test on fewer than 2 pairs
      eval::PairedTest t;
      eval::Bootstrap bs;
      if (paired) {
        t = eval::paired_ttest(x, y);
        if (samples) bs = eval::paired_bootstrap(x, y, samples, seed);
      }
      double delta = nv - av;
      bool drop = lower_is_better(name) ? delta > 0 : delta < 0;
      if (fail_if_worse && drop && (!paired || (t.p && *t.p < alpha))) {
        worse = true;
        fmt::print(stderr, "{}: worse: {} {:.6g} -> {:.6g}{}\n", tool.program(), name, av, nv,
                   paired && t.p ? fmt::format(" (p = {:.3g})", *t.p) : "");
      }
      if (!first) js += ',';
      first = false;
      json::append_string(js, name);
      js += ":{\"base\":";
      append_value(js, av);
      js += ",\"new\":";
      append_value(js, nv);
      js += ",\"delta\":";
      append_value(js, delta);
      js += ",\"relative\":";
      append_value(js, av != 0 ? std::optional<double>(delta / std::fabs(av)) : std::nullopt);
      if (paired) {
        js += fmt::format(",\"items\":{},\"t\":", t.n);
        append_value(js, t.t);
        js += ",\"p_ttest\":";
        append_value(js, t.p);
        if (samples) {
          js += ",\"p_bootstrap\":";
          append_value(js, bs.p);
          js += ",\"ci95\":[";
          append_value(js, bs.low);
          js += ',';
          append_value(js, bs.high);
          js += ']';
        }
      }
      js += '}';
      auto num = [](std::optional<double> v, const char* f) { return v ? fmt::format(fmt::runtime(f), *v) : std::string("-"); };
      table += fmt::format("{:<22} {:>10.4f} {:>10.4f} {:>+10.4f} {:>8} {:>9} {:>9}\n", name, av, nv, delta,
                           paired ? std::to_string(t.n) : "-", num(paired ? t.p : std::nullopt, "{:.3g}"),
                           num(paired && samples ? std::optional<double>(bs.p) : std::nullopt, "{:.3g}"));
    }
    js += "}}\n";
    tool.out().write(format == Format::Json ? js : table);
    for (auto& am : a.metrics)  // a metric gone from NEW
      if (const std::string& name = am.first;
          std::none_of(b.metrics.begin(), b.metrics.end(), [&](auto& m) { return m.first == name; })) {
        tool.warn("{} is only in {}", name, base_file);
        if (fail_if_worse) {
          worse = true;
          fmt::print(stderr, "{}: worse: {} is missing from {}\n", tool.program(), name, new_file);
        }
      }
  });
  return status == 0 && worse ? 1 : status;
}

struct Sub {
  const char* name;
  int (*main)(int, char**);
  const char* what;
};
const Sub kSubs[] = {
    {"retrieval", retrieval_main, "nDCG, MAP, MRR, P@k, recall@k, success@k, R-precision, as trec_eval -c"},
    {"text", text_main, "exact match and F1 (SQuAD), BLEU and chrF (sacrebleu), ROUGE (rouge-score)"},
    {"perplexity", perplexity_main, "perplexity of a language model on a text, as llama-perplexity"},
    {"rag", rag_main, "faithfulness, answer relevancy, context precision and recall (RAGAS), with a local judge"},
    {"compare", compare_main, "differences between two evaluations, with paired tests"},
};

}  // namespace

int main(int argc, char** argv) {
  std::string_view first = argc > 1 ? argv[1] : "";
  for (const Sub& s : kSubs)
    if (first == s.name) return s.main(argc - 1, argv + 1);
  if (first == "--help-man") {
    for (const Sub& s : kSubs) {
      std::printf(".SS loom eval %s\n", s.name);
      std::fflush(stdout);
      std::string name = s.name, flag = "--help-man";
      char* args[] = {name.data(), flag.data(), nullptr};
      s.main(2, args);
    }
    return 0;
  }
  std::string names;
  for (const Sub& s : kSubs) names += (names.empty() ? "" : ", ") + std::string(s.name);
  std::string desc = "Evaluate: retrieval runs, generated text, language models and RAG answers, as the reference tools do.\n\n"
                     "usage: loom eval COMMAND [options]   (loom eval COMMAND --help for its options)\n\ncommands:\n";
  for (const Sub& s : kSubs) desc += fmt::format("  {:<12}{}\n", s.name, s.what);
  cli::Tool tool("eval", desc);
  std::string cmd;
  tool.app().add_option("command", cmd, names)->type_name("COMMAND");
  return tool.run(argc, argv, [&] {
    if (cmd.empty()) throw usage_error(fmt::format("a command is needed: {} (loom eval --help)", names));
    throw usage_error(fmt::format("unknown command '{}': {}", cmd, names));
  });
}
