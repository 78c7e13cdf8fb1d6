// loom-retrieve — adds `hits` to query records: the best records of one or more index directories
// by dense (FAISS), BM25 or hybrid search.
//
// Queries are read in batches; a batch's vectors go to FAISS together (its threads), BM25 queries
// run on the pool. Queries that carry a vector use it; queries with only text are embedded here
// with the model the index recorded (or -m). Several directories are searched and their lists
// merged by score, a record id appearing once (its best). Hybrid search fuses the dense and the
// BM25 lists: reciprocal rank fusion by default, or with --alpha a weighted sum of min-max
// normalized scores.
#include <algorithm>
#include <cmath>
#include <exception>
#include <map>
#include <memory>
#include <unordered_map>
#include <unordered_set>

#include "loom/cli/tool.h"
#include "loom/core/parallel.h"
#include "loom/index/filter.h"
#include "loom/index/store.h"
#include "loom/io/json.h"
#include "loom/io/jsonl.h"
#include "loom/model/encoder.h"

using namespace loom;

namespace {

enum class Mode { Dense, Bm25, Hybrid };

struct Options {
  std::vector<std::string> dirs;
  std::string input = "-";
  size_t k = 10;
  Mode mode = Mode::Dense;
  double rrf_k = 60;
  double alpha = -1;  // < 0: reciprocal rank fusion
  size_t candidates = 0;
  index::SearchParams search;
  std::string filter;
  std::string model;
  std::string prefix;
  bool has_prefix = false;
  std::string field = "text";
  std::string key = "embedding";
  std::string hits_key = "hits";
  size_t batch_size = 1024;
};

// One candidate of one list.
struct Cand {
  size_t dir;
  uint64_t label;
  float score;
};

// A fused hit.
struct Hit {
  std::string id;
  size_t dir;
  uint64_t label;
  double score;
  std::optional<float> dense, bm25;
};

class Retrieve {
 public:
  Retrieve(cli::Tool& tool, const Options& opt) : tool_(tool), opt_(opt), pool_(tool.common().threads) {
    for (const auto& d : opt.dirs) readers_.push_back(index::Reader::open(d, tool.common().threads));
    const index::Settings& s0 = readers_[0].manifest().settings;
    for (size_t i = 1; i < readers_.size(); ++i) {
      const index::Settings& s = readers_[i].manifest().settings;
      if (opt.mode != Mode::Bm25 && (s.dim != s0.dim || s.metric != s0.metric))
        throw usage_error(fmt::format("{} ({} dimensions, {}) cannot be searched with {} ({} dimensions, {})", opt.dirs[i],
                                      s.dim, index::metric_name(s.metric), opt.dirs[0], s0.dim, index::metric_name(s0.metric)));
    }
    if (opt.mode != Mode::Dense)
      for (size_t i = 0; i < readers_.size(); ++i)
        if (!readers_[i].has_bm25()) throw usage_error(fmt::format("{} has no BM25 index (built with --no-bm25): use --mode dense", opt.dirs[i]));
    l2_ = s0.metric == index::Metric::L2;
    if (!opt.filter.empty()) {
      index::Filter f = index::Filter::parse(opt.filter);
      for (auto& r : readers_) {
        std::vector<int64_t> allowed;
        r.for_each([&](uint64_t label, std::string_view, std::string_view json) {
          if (f.matches(io::Record::parse(json))) allowed.push_back(int64_t(label));
        });
        allowed_.push_back(std::move(allowed));
      }
    }
  }

  struct Query {
    io::Record rec;
    std::string file;
    size_t line;
    std::optional<std::string> text;
    std::vector<float> vec;
    std::exception_ptr error;
    std::vector<Hit> hits;
  };

  void run_batch(std::vector<Query>& qs) {
    const bool dense = opt_.mode != Mode::Bm25, lexical = opt_.mode != Mode::Dense;
    const size_t depth = opt_.mode == Mode::Hybrid ? std::max(opt_.k, opt_.candidates ? opt_.candidates : std::max<size_t>(100, opt_.k)) : opt_.k;
    // 1. read the queries' text and vectors
    pool_.for_each(qs.size(), [&](size_t i) {
      Query& q = qs[i];
      try {
        q.text = q.rec.get_string(opt_.field);
        auto raw = q.rec.raw(opt_.key);
        if (dense && raw && *raw != "null") q.vec = index::parse_vector(*raw, opt_.key);
        if (dense && q.vec.empty() && !q.text) throw input_error(fmt::format("query has neither \"{}\" nor \"{}\"", opt_.field, opt_.key));
        if (lexical && !q.text) throw input_error(fmt::format("query has no \"{}\" field (BM25 searches text)", opt_.field));
        if (dense && !q.vec.empty() && q.vec.size() != readers_[0].manifest().settings.dim)
          throw input_error(fmt::format("query vector has {} dimensions; the index has {}", q.vec.size(),
                                        readers_[0].manifest().settings.dim));
      } catch (...) {
        q.error = std::current_exception();
      }
    });
    // 2. embed the queries that have only text
    if (dense) embed_missing(qs);
    // 3. search every directory
    std::vector<std::vector<Cand>> dense_lists(qs.size()), bm25_lists(qs.size());
    if (dense) {
      std::vector<size_t> rows;
      std::vector<float> x;
      for (size_t i = 0; i < qs.size(); ++i)
        if (!qs[i].error) {
          rows.push_back(i);
          x.insert(x.end(), qs[i].vec.begin(), qs[i].vec.end());
        }
      std::vector<int64_t> labels;
      std::vector<float> scores;
      for (size_t r = 0; r < readers_.size() && !rows.empty(); ++r) {
        readers_[r].search(x.data(), rows.size(), depth, opt_.search, allowed_.empty() ? nullptr : &allowed_[r], labels, scores);
        for (size_t j = 0; j < rows.size(); ++j)
          for (size_t c = 0; c < depth; ++c)
            if (labels[j * depth + c] >= 0)
              dense_lists[rows[j]].push_back({r, uint64_t(labels[j * depth + c]), scores[j * depth + c]});
      }
    }
    if (lexical) {
      pool_.for_each(qs.size(), [&](size_t i) {
        if (qs[i].error) return;
        try {
          for (size_t r = 0; r < readers_.size(); ++r)
            for (auto& [label, score] : readers_[r].search_bm25(*qs[i].text, depth, allowed_.empty() ? nullptr : &allowed_[r]))
              bm25_lists[i].push_back({r, label, score});
        } catch (...) {
          qs[i].error = std::current_exception();
        }
      });
    }
    // 4. merge, fuse, look the records up, write
    std::string line;
    for (size_t i = 0; i < qs.size(); ++i) {
      Query& q = qs[i];
      if (q.error && tool_.skip_failed(q.error, q.file, q.line)) continue;
      auto dl = merged(dense_lists[i], !l2_, depth);
      auto bl = merged(bm25_lists[i], true, depth);
      std::vector<Hit> hits = opt_.mode == Mode::Dense ? dl : opt_.mode == Mode::Bm25 ? bl : fuse(dl, bl);
      if (hits.size() > opt_.k) hits.resize(opt_.k);
      write(q, hits, line);
    }
  }

 private:
  // The records of a list, their ids read; sorted best first (stable: a directory's order kept on
  // ties, earlier directories first), each id once.
  std::vector<Hit> merged(std::vector<Cand>& cands, bool higher_better, size_t depth) {
    std::stable_sort(cands.begin(), cands.end(), [&](const Cand& a, const Cand& b) {
      return higher_better ? a.score > b.score : a.score < b.score;
    });
    std::vector<Hit> out;
    std::unordered_set<std::string> seen;
    for (const Cand& c : cands) {
      if (out.size() == depth) break;
      std::string id = id_of(c.dir, c.label);
      if (!seen.insert(id).second) continue;
      Hit h{std::move(id), c.dir, c.label, c.score, {}, {}};
      out.push_back(std::move(h));
    }
    return out;
  }

  std::vector<Hit> fuse(const std::vector<Hit>& dl, const std::vector<Hit>& bl) {
    std::vector<Hit> out;
    std::unordered_map<std::string, size_t> at;
    auto entry = [&](const Hit& h) -> Hit& {
      auto [it, fresh] = at.emplace(h.id, out.size());
      if (fresh) out.push_back({h.id, h.dir, h.label, 0.0, {}, {}});
      return out[it->second];
    };
    if (opt_.alpha < 0) {
      for (size_t r = 0; r < dl.size(); ++r) {
        Hit& h = entry(dl[r]);
        h.score += 1.0 / (opt_.rrf_k + double(r + 1));
        h.dense = float(dl[r].score);
      }
      for (size_t r = 0; r < bl.size(); ++r) {
        Hit& h = entry(bl[r]);
        h.score += 1.0 / (opt_.rrf_k + double(r + 1));
        h.bm25 = float(bl[r].score);
      }
    } else {
      // min-max normalized per list (a list of one, or of equal scores, normalizes to 1)
      auto norm = [&](const std::vector<Hit>& l, double sign, double weight, bool is_dense) {
        if (l.empty()) return;
        double lo = 1e300, hi = -1e300;
        for (auto& h : l) lo = std::min(lo, sign * h.score), hi = std::max(hi, sign * h.score);
        for (auto& x : l) {
          Hit& h = entry(x);
          double v = hi > lo ? (sign * x.score - lo) / (hi - lo) : 1.0;
          h.score += weight * v;
          if (is_dense) h.dense = float(x.score);
          else h.bm25 = float(x.score);
        }
      };
      norm(dl, l2_ ? -1.0 : 1.0, opt_.alpha, true);
      norm(bl, 1.0, 1.0 - opt_.alpha, false);
    }
    std::stable_sort(out.begin(), out.end(), [](const Hit& a, const Hit& b) { return a.score > b.score; });
    return out;
  }

  // A stored record, parsed once and kept while it is likely to come back (the next query's hits).
  const io::Record& stored(size_t dir, uint64_t label) {
    auto key = std::make_pair(dir, label);
    auto it = cache_.find(key);
    if (it != cache_.end()) return it->second;
    if (cache_.size() > 100000) cache_.clear();
    return cache_.emplace(key, io::Record::parse(readers_[dir].record(label))).first->second;
  }
  std::string id_of(size_t dir, uint64_t label) { return stored(dir, label).get_string("id").value_or(""); }

  void write(Query& q, const std::vector<Hit>& hits, std::string& line) {
    std::string arr = "[";
    for (size_t r = 0; r < hits.size(); ++r) {
      const Hit& h = hits[r];
      const io::Record& rec = stored(h.dir, h.label);
      io::Record out;
      out.set("id", h.id);
      if (opt_.mode == Mode::Hybrid) out.set("score", h.score);
      else out.set("score", float(h.score));  // FAISS's and BM25's float32 values, printed exactly
      out.set("rank", int64_t(r + 1));
      if (opt_.mode == Mode::Hybrid) {
        if (h.dense) out.set("dense_score", *h.dense);
        else out.set_null("dense_score");
        if (h.bm25) out.set("bm25_score", *h.bm25);
        else out.set_null("bm25_score");
      }
      if (readers_.size() > 1) out.set("index", opt_.dirs[h.dir]);
      for (size_t i = 0; i < rec.size(); ++i)
        if (rec.raw_key(i) != "\"id\"" && !out.has(rec.key(i))) out.append_raw(rec.raw_key(i), rec.raw_value(i));
      if (r) arr += ',';
      out.append_to(arr);
    }
    arr += ']';
    q.rec.set_raw(opt_.hits_key, arr);
    line.clear();
    q.rec.append_to(line);
    line += '\n';
    tool_.out().write(line);
  }

  void embed_missing(std::vector<Query>& qs) {
    std::vector<size_t> need;
    for (size_t i = 0; i < qs.size(); ++i)
      if (!qs[i].error && qs[i].vec.empty()) need.push_back(i);
    if (need.empty()) return;
    if (!enc_) {
      const index::ModelInfo& mi = readers_[0].manifest().settings.model;
      std::string name = !opt_.model.empty() ? opt_.model : mi.name;
      if (name.empty())
        throw usage_error(fmt::format("{} does not name the model that made its vectors: give -m MODEL to embed text queries, "
                                      "or queries carrying \"{}\"", opt_.dirs[0], opt_.key));
      for (size_t i = 1; i < readers_.size() && opt_.model.empty(); ++i)
        if (readers_[i].manifest().settings.model.name != mi.name)
          throw usage_error(fmt::format("{} and {} were embedded with different models ({} and {}): give -m MODEL", opt_.dirs[0],
                                        opt_.dirs[i], mi.name, readers_[i].manifest().settings.model.name));
      try {
        enc_ = std::make_unique<model::Encoder>(model::Encoder::load(name, {.threads = tool_.common().threads}));
      } catch (Error& e) {
        throw Error(e.kind(), fmt::format("the index's embedding model {}: {}", name, e.what()), e.file(), e.line());
      }
      if (enc_->dims() != readers_[0].manifest().settings.dim)
        throw usage_error(fmt::format("model {} makes {}-dimensional vectors; the index has {}", name, enc_->dims(),
                                      readers_[0].manifest().settings.dim));
      prefix_ = opt_.has_prefix ? opt_.prefix : mi.query_prefix;
      // the pooling and normalization the index's vectors were made with (a -m model: its own)
      pooling_ = enc_->config().pooling;
      normalize_ = enc_->config().normalize;
      if (opt_.model.empty() || opt_.model == mi.name) {
        for (auto p : {model::Pooling::Mean, model::Pooling::Cls, model::Pooling::Last, model::Pooling::Max,
                       model::Pooling::MeanSqrtLen})
          if (mi.pooling == model::pooling_name(p)) pooling_ = p;
        normalize_ = mi.normalize;
      }
    }
    std::vector<model::EncoderInput> batch(need.size());
    pool_.for_each(need.size(), [&](size_t j) {
      try {
        batch[j] = enc_->encode_text(prefix_ + *qs[need[j]].text);
      } catch (...) {
        qs[need[j]].error = std::current_exception();
      }
    });
    for (size_t j = need.size(); j-- > 0;)
      if (qs[need[j]].error) {
        need.erase(need.begin() + long(j));
        batch.erase(batch.begin() + long(j));
      }
    if (need.empty()) return;
    const size_t d = enc_->dims();
    std::vector<float> out(need.size() * d);
    enc_->embed(batch, pooling_, out.data());
    for (size_t j = 0; j < need.size(); ++j) {
      float* v = out.data() + j * d;
      if (normalize_) model::l2_normalize(v, d);
      qs[need[j]].vec.assign(v, v + d);
    }
  }

  cli::Tool& tool_;
  const Options& opt_;
  ThreadPool pool_;
  std::vector<index::Reader> readers_;
  std::vector<std::vector<int64_t>> allowed_;
  bool l2_ = false;
  std::unique_ptr<model::Encoder> enc_;
  model::Pooling pooling_ = model::Pooling::Mean;
  bool normalize_ = true;
  std::string prefix_;
  std::map<std::pair<size_t, uint64_t>, io::Record> cache_;
};

void run(cli::Tool& tool, Options& opt) {
  if (opt.k == 0) throw usage_error("-k must be at least 1");
  if (opt.batch_size == 0) throw usage_error("--batch-size must be at least 1");
  if (opt.alpha >= 0 && opt.mode != Mode::Hybrid) throw usage_error("--alpha applies to --mode hybrid");
  if (opt.alpha > 1) throw usage_error("--alpha must be in [0, 1]");
  if (!(opt.rrf_k >= 0)) throw usage_error("--rrf-k must be >= 0");
  Retrieve r(tool, opt);
  std::vector<Retrieve::Query> batch;
  tool.read_records(opt.input, opt.batch_size, [&](io::Record&& rec, const std::string& file, size_t line) {
    batch.push_back({std::move(rec), file, line, {}, {}, nullptr, {}});
  }, [&] {
    std::vector<Retrieve::Query> qs;
    qs.swap(batch);
    r.run_batch(qs);
  });
}

}  // namespace

int main(int argc, char** argv) {
  openmp_wait_passively(argv);
  cli::Tool tool("retrieve", "Add the best records of one or more indexes to each query record as `hits`.\n\n"
                             "Reads query records with text and/or a vector (`embedding`) and adds hits: [{id, score, rank, text,\n"
                             "meta and the stored record's other fields}], best first. Queries with only text are embedded with\n"
                             "the model the index recorded (loom index build -m). Dense scores are FAISS's: inner products (ip)\n"
                             "or squared distances (l2, smaller is closer); BM25 scores are Lucene's; hybrid scores are the\n"
                             "fused values, with dense_score and bm25_score beside them.");
  Options opt;
  auto& app = tool.app();
  app.add_option("indexes", opt.dirs, "Index directories (loom index build); several are searched and merged")
      ->type_name("DIR...")
      ->required();
  app.add_option("-k", opt.k, "Hits per query")->type_name("N");
  tool.add_choice("--mode", opt.mode, {{"dense", Mode::Dense}, {"bm25", Mode::Bm25}, {"hybrid", Mode::Hybrid}},
                  "Dense (FAISS), BM25, or both fused");
  app.add_option("--rrf-k", opt.rrf_k, "Hybrid: reciprocal rank fusion constant: score = sum of 1/(rrf-k + rank)")->type_name("K");
  app.add_option("--alpha", opt.alpha,
                 "Hybrid: instead of RRF, alpha * dense + (1 - alpha) * BM25 over min-max normalized scores")
      ->type_name("A")
      ->default_str("");
  app.add_option("--candidates", opt.candidates, "Hybrid: hits taken from each list before fusing (0 = max(k, 100))")->type_name("N");
  app.add_option("--nprobe", opt.search.nprobe, "Inverted lists visited per query (IVF; 0 = the index's default)")->type_name("N");
  app.add_option("--ef", opt.search.ef_search, "efSearch (HNSW; 0 = the index's default)")->type_name("N");
  app.add_option("--filter", opt.filter, "Only records matching EXPR, e.g. 'meta.lang == \"en\" and meta.year >= 2020' (see FILTERS)")
      ->type_name("EXPR");
  app.add_option("-m,--model", opt.model, "Embedding model for text queries (default: the one the index recorded)")->type_name("MODEL");
  app.add_option_function<std::string>("--prefix", [&](const std::string& s) { opt.prefix = s, opt.has_prefix = true; },
                                       "Text put before query texts when embedding them (default: the index's query prefix)")
      ->type_name("TEXT");
  app.add_option("-i,--input", opt.input, "Query records ('-' = stdin; .zst accepted)")->type_name("FILE");
  app.add_option("--field", opt.field, "Query field holding the text")->type_name("NAME");
  app.add_option("--key", opt.key, "Query field holding a vector")->type_name("NAME");
  app.add_option("--hits-key", opt.hits_key, "Field the hits are written to")->type_name("NAME");
  app.add_option("--batch-size", opt.batch_size, "Queries searched together (FAISS multiplies a batch at once: larger is faster; output still streams)")->type_name("N");
  tool.add_output();
  tool.add_on_error();
  return tool.run(argc, argv, [&] { run(tool, opt); });
}
