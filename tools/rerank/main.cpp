// loom-rerank — re-scores the hits of query records with a stronger model and reorders them.
//
// Two kinds of model:
//   a cross-encoder folder   (BertForSequenceClassification: config.json, model.safetensors,
//                            tokenizer): score = the logit of [CLS] query [SEP] text [SEP]
//                            (--sigmoid: its probability)
//   a decoder GGUF           (any model loom generate runs): score = P(yes) / (P(yes) + P(no)) for
//                            the next token after a chat-formatted relevance question, "yes" and
//                            "no" counting every single-token spelling (yes/Yes, no/No)
// Each hit's new score replaces `score` (the old one is kept as `retrieval_score`), `rank` is
// renumbered from 1, hits are sorted by the new score (ties keep their order), and -k keeps the
// best k. Every other field of a hit and of the record passes through.
#include <algorithm>
#include <cmath>
#include <exception>
#include <filesystem>
#include <memory>
#include <numeric>

#include "loom/cli/tool.h"
#include "loom/generate/prompt.h"
#include "loom/gguf/gguf.h"
#include "loom/io/json.h"
#include "loom/io/jsonl.h"
#include "loom/model/decoder.h"
#include "loom/model/encoder.h"
#include "loom/model/models_dir.h"
#include "loom/tokenizer/tokenizer.h"

using namespace loom;

namespace {

struct Options {
  std::string model;
  std::string input = "-";
  std::string field = "text";
  std::string hit_field = "text";
  size_t k = 0;
  bool sigmoid = false;
  uint32_t max_tokens = 0;
  size_t batch_size = 32;
  std::string question =
      "Judge whether the document answers or is relevant to the query. Answer only \"yes\" or \"no\".\n\n"
      "Query: {query}\n\nDocument: {document}";
};

// Splits a compact JSON array (as a Record holds it) into the raw text of its elements.
std::vector<std::string_view> split_array(std::string_view a) {
  std::vector<std::string_view> out;
  if (a.size() < 2 || a.front() != '[') throw input_error("\"hits\" must be an array of objects");
  size_t depth = 0, start = 1;
  bool in_str = false;
  for (size_t i = 1; i + 1 < a.size(); ++i) {
    char c = a[i];
    if (in_str) {
      if (c == '\\') ++i;
      else if (c == '"') in_str = false;
    } else if (c == '"') {
      in_str = true;
    } else if (c == '{' || c == '[') {
      ++depth;
    } else if (c == '}' || c == ']') {
      --depth;
    } else if (c == ',' && depth == 0) {
      out.push_back(a.substr(start, i - start));
      start = i + 1;
    }
  }
  if (a.size() > 2) out.push_back(a.substr(start, a.size() - 1 - start));
  return out;
}

// Scores (query, text) pairs.
class Scorer {
 public:
  virtual ~Scorer() = default;
  virtual std::vector<float> score(const std::vector<std::pair<std::string, std::string>>& pairs) = 0;
};

class CrossEncoderScorer final : public Scorer {
 public:
  CrossEncoderScorer(const std::string& model, const Options& opt, unsigned threads)
      : enc_(model::Encoder::load(model, {.threads = threads})), opt_(opt) {
    const auto& c = enc_.config();
    if (!c.n_labels)
      throw usage_error(fmt::format("{}: not a cross-encoder (no classifier.weight); rerank takes a sequence-classification "
                                    "folder or a decoder GGUF",
                                    model));
    if (c.n_labels != 1)
      throw usage_error(fmt::format("{}: the classifier has {} labels; rerank needs a one-logit relevance model", model, c.n_labels));
    if (opt.max_tokens > c.n_pos) throw usage_error(fmt::format("--max-tokens {}: the model has {} positions", opt.max_tokens, c.n_pos));
  }
  std::vector<float> score(const std::vector<std::pair<std::string, std::string>>& pairs) override {
    std::vector<model::EncoderInput> in(pairs.size());
    for (size_t i = 0; i < pairs.size(); ++i) in[i] = enc_.encode_pair(pairs[i].first, pairs[i].second, opt_.max_tokens);
    std::vector<size_t> order(pairs.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return in[a].ids.size() < in[b].ids.size(); });
    std::vector<float> out(pairs.size());
    for (size_t b = 0; b < order.size(); b += opt_.batch_size) {
      const size_t e = std::min(order.size(), b + opt_.batch_size);
      std::vector<model::EncoderInput> pass;
      for (size_t k = b; k < e; ++k) pass.push_back(std::move(in[order[k]]));
      std::vector<float> logits(pass.size());
      enc_.classify(pass, logits.data());
      for (size_t k = b; k < e; ++k) {
        float s = logits[k - b];
        out[order[k]] = opt_.sigmoid ? 1.0f / (1.0f + std::exp(-s)) : s;
      }
    }
    return out;
  }

 private:
  model::Encoder enc_;
  const Options& opt_;
};

class LlmScorer final : public Scorer {
 public:
  LlmScorer(const std::string& path, const Options& opt, unsigned threads)
      : file_(std::make_shared<gguf::File>(gguf::File::open(path))), tok_(tok::Tokenizer::from_gguf(*file_, path)), opt_(opt) {
    max_tokens_ = opt.max_tokens ? opt.max_tokens : 1024;
    n_seq_ = static_cast<uint32_t>(std::max<size_t>(1, std::min<size_t>(opt.batch_size, 16)));
    model_ = std::make_unique<model::Decoder>(file_, model::DecoderOptions{.n_ctx = max_tokens_, .threads = threads, .n_seq = n_seq_});
    generate::PromptOptions po;
    po.field = "messages";
    po.n_ctx = max_tokens_;
    prompter_ = std::make_unique<generate::Prompter>(*file_, path, tok_, po);
    for (const char* w : {"yes", "Yes", "YES"}) add_word(w, yes_);
    for (const char* w : {"no", "No", "NO"}) add_word(w, no_);
    if (yes_.empty() || no_.empty())
      throw usage_error(fmt::format("{}: \"yes\" and \"no\" are not single tokens of its vocabulary; LLM reranking needs them", path));
  }

  std::vector<float> score(const std::vector<std::pair<std::string, std::string>>& pairs) override {
    std::vector<std::vector<int32_t>> prompts;
    for (auto& [q, d] : pairs) prompts.push_back(prompt(q, d));
    std::vector<float> out(pairs.size());
    const size_t n_batch = 2048;
    for (size_t i = 0; i < prompts.size();) {
      // a group of sequences whose prompts fit one pass (a longer prompt goes alone, in chunks)
      size_t j = i, total = 0;
      while (j < prompts.size() && j - i < n_seq_ && (j == i || total + prompts[j].size() <= n_batch)) total += prompts[j++].size();
      std::vector<model::BatchToken> batch;
      for (size_t s = i; s < j; ++s)
        for (uint32_t p = 0; p < prompts[s].size(); ++p)
          batch.push_back({.token = prompts[s][p], .pos = p, .seq = static_cast<uint32_t>(s - i), .logits = p + 1 == prompts[s].size()});
      std::vector<float> logits;
      for (size_t b = 0; b < batch.size(); b += n_batch) {
        std::vector<model::BatchToken> part(batch.begin() + static_cast<long>(b), batch.begin() + static_cast<long>(std::min(batch.size(), b + n_batch)));
        auto l = model_->decode(part);
        logits.insert(logits.end(), l.begin(), l.end());
      }
      const size_t nv = model_->config().n_vocab;
      for (size_t s = i; s < j; ++s) {
        const float* l = logits.data() + (s - i) * nv;
        const double y = logsumexp(l, yes_), n = logsumexp(l, no_);
        out[s] = static_cast<float>(1.0 / (1.0 + std::exp(n - y)));
      }
      i = j;
    }
    return out;
  }

 private:
  void add_word(const char* w, std::vector<int32_t>& ids) {
    auto e = tok_.encode(w, {.add_special = false});
    if (e.ids.size() == 1 && std::find(ids.begin(), ids.end(), e.ids[0]) == ids.end()) ids.push_back(e.ids[0]);
  }
  static double logsumexp(const float* l, const std::vector<int32_t>& ids) {
    double m = -INFINITY, s = 0;
    for (int32_t id : ids) m = std::max(m, static_cast<double>(l[id]));
    for (int32_t id : ids) s += std::exp(l[id] - m);
    return m + std::log(s);
  }
  std::string question(const std::string& q, const std::string& d) const {
    std::string t = opt_.question;
    for (auto [key, val] : {std::pair<std::string, const std::string*>{"{query}", &q}, {"{document}", &d}})
      if (auto at = t.find(key); at != std::string::npos) t.replace(at, key.size(), *val);
    return t;
  }
  // The chat-formatted question, the document cut (by tokens) until the whole fits max_tokens_.
  std::vector<int32_t> prompt(const std::string& q, std::string d) {
    for (int attempt = 0;; ++attempt) {
      json::Writer w;
      w.begin_object();
      w.key("messages");
      w.begin_array();
      w.begin_object();
      w.key("role");
      w.value("user");
      w.key("content");
      w.value(question(q, d));
      w.end_object();
      w.end_array();
      w.end_object();
      auto rec = io::Record::parse(w.str());
      generate::Prompt p = prompter_->build(rec, 1);
      if (p.tokens.size() + 1 <= max_tokens_ || d.empty() || attempt > 8) {
        if (p.tokens.size() + 1 > max_tokens_) throw input_error(fmt::format("the query alone takes more than {} tokens", max_tokens_));
        return p.tokens;
      }
      auto ids = tok_.encode(d, {.add_special = false}).ids;
      const size_t over = p.tokens.size() + 1 - max_tokens_;
      ids.resize(ids.size() > over ? ids.size() - over : 0);
      d = tok_.decode(ids, true);
      ++truncated;
    }
  }

  std::shared_ptr<gguf::File> file_;
  tok::Tokenizer tok_;
  const Options& opt_;
  uint32_t max_tokens_ = 1024, n_seq_ = 8;
  std::unique_ptr<model::Decoder> model_;
  std::unique_ptr<generate::Prompter> prompter_;
  std::vector<int32_t> yes_, no_;

 public:
  uint64_t truncated = 0;
};

std::unique_ptr<Scorer> make_scorer(const Options& opt, unsigned threads) {
  if (opt.model.empty()) throw usage_error("-m/--model is required (a cross-encoder folder or a decoder .gguf)");
  auto path = model::find_model(opt.model);
  if (!path) throw usage_error(fmt::format("no model '{}': not a model folder, a .gguf file, or a model name under {}", opt.model, model::models_dir()));
  std::error_code ec;
  if (std::filesystem::is_directory(*path, ec)) return std::make_unique<CrossEncoderScorer>(*path, opt, threads);
  if (opt.sigmoid) throw usage_error("--sigmoid is for cross-encoders; an LLM's score is already a probability");
  return std::make_unique<LlmScorer>(*path, opt, threads);
}

struct Item {
  io::Record rec;
  std::string where;
  size_t line = 0;
  std::vector<io::Record> hits;
  std::string query;
  std::exception_ptr error;
};

void rerank_chunk(cli::Tool& tool, const Options& opt, Scorer& scorer, std::vector<Item>& items) {
  std::vector<std::pair<std::string, std::string>> pairs;
  std::vector<std::pair<size_t, size_t>> owner;  // (item, hit)
  for (size_t i = 0; i < items.size(); ++i) {
    Item& it = items[i];
    if (it.error) continue;
    try {
      auto q = it.rec.get_string(opt.field);
      if (!q) throw input_error(fmt::format("record has no \"{}\" field (the query, a string)", opt.field));
      auto raw = it.rec.raw("hits");
      if (!raw) throw input_error("record has no \"hits\" (loom-retrieve's output)");
      for (std::string_view h : split_array(*raw)) {
        if (h.empty() || h[0] != '{') throw input_error("\"hits\" must be an array of objects");
        it.hits.push_back(io::Record::parse(h));
      }
      for (size_t k = 0; k < it.hits.size(); ++k) {
        auto t = it.hits[k].get_string(opt.hit_field);
        if (!t) throw input_error(fmt::format("hits[{}] has no \"{}\" (a string) to score", k, opt.hit_field));
        pairs.emplace_back(*q, *t);
        owner.emplace_back(i, k);
      }
    } catch (...) {
      it.error = std::current_exception();
      while (!owner.empty() && owner.back().first == i) owner.pop_back(), pairs.pop_back();
    }
  }
  std::vector<float> scores = pairs.empty() ? std::vector<float>() : scorer.score(pairs);
  std::vector<std::vector<float>> per(items.size());
  for (size_t p = 0; p < owner.size(); ++p) {
    auto [i, k] = owner[p];
    per[i].resize(items[i].hits.size());
    per[i][k] = scores[p];
  }
  std::string line;
  for (size_t i = 0; i < items.size(); ++i) {
    Item& it = items[i];
    if (it.error && tool.skip_failed(it.error, it.where, it.line)) continue;
    std::vector<size_t> order(it.hits.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return per[i][a] > per[i][b]; });
    if (opt.k && order.size() > opt.k) order.resize(opt.k);
    std::string arr = "[";
    for (size_t r = 0; r < order.size(); ++r) {
      io::Record& h = it.hits[order[r]];
      if (auto old = h.raw("score")) {
        std::string keep(*old);
        h.set_raw("retrieval_score", keep);
      }
      h.set("score", per[i][order[r]]);
      h.set("rank", static_cast<int64_t>(r + 1));
      if (r) arr += ',';
      h.append_to(arr);
    }
    arr += ']';
    it.rec.set_raw("hits", arr);
    line.clear();
    it.rec.append_to(line);
    line += '\n';
    tool.out().write(line);
  }
}

void run(cli::Tool& tool, Options& opt) {
  if (opt.batch_size == 0) throw usage_error("--batch-size must be at least 1");
  if (opt.question.find("{query}") == std::string::npos || opt.question.find("{document}") == std::string::npos)
    throw usage_error("--question must contain {query} and {document}");
  auto scorer = make_scorer(opt, tool.common().threads);
  std::vector<Item> chunk;
  auto flush = [&] {
    std::vector<Item> items;
    items.swap(chunk);  // taken whole: an error below never writes a record twice
    rerank_chunk(tool, opt, *scorer, items);
  };
  tool.read_records(opt.input, 16, [&](io::Record&& rec, const std::string& file, size_t line) {
    chunk.push_back({std::move(rec), file, line, {}, {}, nullptr});
  }, flush);
  if (auto* llm = dynamic_cast<LlmScorer*>(scorer.get()); llm && llm->truncated)
    tool.note("{} documents were cut to fit the prompt in {} tokens", llm->truncated, opt.max_tokens ? opt.max_tokens : 1024);
}

}  // namespace

int main(int argc, char** argv) {
  cli::Tool tool("rerank", "Re-score and reorder the hits of query records.\n\n"
                           "Reads query records (text and hits, as loom-retrieve writes them), scores each (query, hit text)\n"
                           "pair, sorts the hits by the new score, and writes the records back: score is the new score, the old\n"
                           "one is kept as retrieval_score, rank is renumbered.\n"
                           "Models: a cross-encoder folder (BertForSequenceClassification, e.g. ms-marco-MiniLM-L-6-v2): the\n"
                           "logit of [CLS] query [SEP] text [SEP]; or a decoder GGUF (e.g. smollm2): the probability that it\n"
                           "answers yes to a relevance question, P(yes) / (P(yes) + P(no)) over the next token.");
  Options opt;
  auto& app = tool.app();
  app.add_option("-m,--model", opt.model, "A cross-encoder folder, a decoder .gguf, or a model name under $LOOM_MODELS")->type_name("MODEL");
  app.add_option("-i,--input", opt.input, "Records to read ('-' = stdin; .zst accepted)")->type_name("FILE");
  app.add_option("-k", opt.k, "Keep the best K hits of each record (0 = all)")->type_name("K");
  app.add_option("--field", opt.field, "Field of the record holding the query")->type_name("NAME");
  app.add_option("--hit-field", opt.hit_field, "Field of each hit holding its text")->type_name("NAME");
  app.add_flag("--sigmoid", opt.sigmoid, "Cross-encoders: the logit's sigmoid (a probability) instead of the raw logit");
  app.add_option("--max-tokens", opt.max_tokens,
                 "Tokens per pair (0 = the cross-encoder's positions; 1024 for an LLM): longer pairs are cut, the longer part first")
      ->type_name("N");
  app.add_option("--batch-size", opt.batch_size, "Pairs per forward pass (an LLM: at most 16 sequences)")->type_name("N");
  app.add_option("--question", opt.question, "LLM mode: the relevance question, with {query} and {document} in it")->type_name("TEXT");
  tool.add_output();
  tool.add_on_error();
  return tool.run(argc, argv, [&] { run(tool, opt); });
}
