// loom-index — builds and changes index directories (lib/index/store.h): build, add, delete,
// merge, info. Each subcommand is its own small program with its own options table; the man
// page lists them all (--help-man prints every subcommand's options).
#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>

#include "loom/cli/tool.h"
#include "loom/core/parallel.h"
#include "loom/index/store.h"
#include "loom/io/json.h"
#include "loom/io/jsonl.h"
#include "loom/model/encoder.h"
#include "loom/model/models_dir.h"

using namespace loom;
namespace fs = std::filesystem;

namespace {

struct Input {
  std::string input = "-";
  size_t chunk = 4096;
};

// Records -> entries, parsed on all threads a chunk at a time, then handed to the writer in order.
class Ingest {
 public:
  Ingest(cli::Tool& tool, index::Writer& writer) : tool_(tool), writer_(writer), pool_(tool.common().threads) {}

  void run(const std::string& input, size_t chunk) {
    tool_.read_records(input, chunk, [&](io::Record&& rec, const std::string& file, size_t line) {
      items_.push_back({std::move(rec), file, line, {}, nullptr});
    }, [&] { flush(); });
  }

  uint64_t added() const { return added_; }
  uint64_t replaced() const { return replaced_; }

 private:
  struct Item {
    io::Record rec;
    std::string file;
    size_t line;
    index::Entry entry;
    std::exception_ptr error;
  };

  void flush() {
    std::vector<Item> items;
    items.swap(items_);
    const index::Settings& s = writer_.manifest().settings;
    pool_.for_each(items.size(), [&](size_t i) {
      Item& it = items[i];
      try {
        index::Entry& e = it.entry;
        auto id = it.rec.get_string("id");
        e.id = id ? *id : std::to_string(it.line);
        if (e.id.empty()) throw input_error("\"id\" is empty");
        auto raw = it.rec.raw(s.vector_field);
        if (!raw || *raw == "null") throw input_error(fmt::format("record has no \"{}\" field (a vector)", s.vector_field));
        e.vec = index::parse_vector(*raw, s.vector_field);
        if (e.vec.empty()) throw input_error(fmt::format("field \"{}\" is an empty vector", s.vector_field));
        e.text = it.rec.get_string(s.text_field);
        it.rec.erase(s.vector_field);
        if (!id) it.rec.set("id", e.id);
        e.json = it.rec.to_json();
      } catch (...) {
        it.error = std::current_exception();
      }
    });
    for (Item& it : items) {
      try {
        if (it.error) std::rethrow_exception(it.error);
        if (writer_.upsert(std::move(it.entry))) ++replaced_;
        ++added_;
      } catch (Error& e) {
        if (e.kind() != Error::Kind::BadInput) throw;  // a flag FAISS rejects is not the record's fault
        e.at(it.file, it.line);
        if (tool_.skip(e)) continue;
        throw;
      }
    }
  }

  cli::Tool& tool_;
  index::Writer& writer_;
  ThreadPool pool_;
  std::vector<Item> items_;
  uint64_t added_ = 0, replaced_ = 0;
};

// For the crash tests: LOOM_INDEX_CRASH_AT=faiss|bm25|store kills the writer (SIGKILL, as kill -9
// would) right after that step of its commit.
void arm_crash_hook(index::Writer& w) {
  const char* at = std::getenv("LOOM_INDEX_CRASH_AT");
  if (!at || !*at) return;
  std::string step = at;
  w.set_commit_hook([step](const char* s) {
    if (step == s) ::raise(SIGKILL);
  });
}

void print_summary(cli::Tool& tool, const index::Writer& w, const std::string& dir, const std::string& what) {
  for (const auto& l : w.warnings()) tool.warn("{}", l);
  const index::Manifest& m = w.manifest();
  tool.note("{}: {} records, {} vectors of {} dimensions ({}, {}), {} BM25 documents, generation {}", dir, m.counts.records,
            m.counts.vectors, m.settings.dim, m.settings.factory, index::metric_name(m.settings.metric), m.counts.bm25_docs,
            m.generation);
  if (!what.empty()) tool.note("{}", what);
}

// ---- build ---------------------------------------------------------------------------------------

struct BuildOptions {
  std::string dir;
  Input in;
  index::Settings settings;
  std::string bm25 = "1.5,0.75";
  bool no_bm25 = false, force = false;
  std::string model = "minilm";
  bool model_given = false;
};

// The model that embeds text queries: recorded when it loads and its vectors have the index's size.
void settle_model(cli::Tool& tool, BuildOptions& o, uint32_t dim) {
  index::ModelInfo& mi = o.settings.model;
  if (o.model == "none") {
    mi = {};
    return;
  }
  std::string why;
  try {
    if (!model::find_model(o.model)) {
      why = fmt::format("model {} not found", o.model);
    } else {
      model::Encoder enc = model::Encoder::load(o.model, {.threads = 1});
      if (enc.dims() != dim) why = fmt::format("model {} makes {}-dimensional vectors; the records' have {}", o.model, enc.dims(), dim);
      if (mi.pooling.empty()) mi.pooling = model::pooling_name(enc.config().pooling);
      mi.normalize = enc.config().normalize;
    }
  } catch (const Error& e) {
    why = fmt::format("model {}: {}", o.model, e.what());
  }
  if (why.empty()) {
    mi.name = o.model;
    return;
  }
  if (o.model_given) throw usage_error("--model: " + why);
  tool.note("{}: text queries will need --model at retrieval (or queries carrying embeddings)", why);
  mi = {};
}

void build(cli::Tool& tool, BuildOptions& o) {
  index::Settings& s = o.settings;
  s.bm25 = !o.no_bm25;
  if (s.bm25) {
    auto comma = o.bm25.find(',');
    try {
      if (comma == std::string::npos) throw std::invalid_argument("");
      size_t p1 = 0, p2 = 0;
      s.bm25_params.k1 = std::stod(o.bm25.substr(0, comma), &p1);
      s.bm25_params.b = std::stod(o.bm25.substr(comma + 1), &p2);
      if (p1 != comma || p2 != o.bm25.size() - comma - 1) throw std::invalid_argument("");
    } catch (const std::exception&) {
      throw usage_error(fmt::format("--bm25 {}: expected K1,B (e.g. 1.5,0.75)", o.bm25));
    }
    if (!(s.bm25_params.k1 >= 0) || !(s.bm25_params.b >= 0 && s.bm25_params.b <= 1))
      throw usage_error(fmt::format("--bm25 {}: k1 must be >= 0 and b in [0, 1]", o.bm25));
    index::Analyzer check(s.bm25_params);  // an unknown stemmer or stop-word file fails before any work
  }
  if (s.nprobe < 0 || s.ef_search < 0) throw usage_error("--nprobe and --ef must be positive");
  if (o.model_given && o.model != "none" && !model::find_model(o.model))
    throw usage_error(fmt::format("--model: model {} not found (a path, or a name under {})", o.model, model::models_dir()));
  index::Writer w = index::Writer::create(o.dir, s, o.force, tool.common().threads);
  arm_crash_hook(w);
  Ingest ingest(tool, w);
  ingest.run(o.in.input, o.in.chunk);
  if (ingest.added() == 0) throw input_error("no records to index", o.in.input == "-" ? "<stdin>" : o.in.input);
  // the model is settled once the dimension is known; the manifest is written at commit
  settle_model(tool, o, w.manifest().settings.dim);
  w.set_model(s.model);
  w.commit();
  print_summary(tool, w, o.dir,
                ingest.replaced() ? fmt::format("{} records repeated an earlier id and replaced it", ingest.replaced()) : "");
}

int build_main(int argc, char** argv) {
  cli::Tool tool("index build", "Build an index directory from records with vectors (and text).\n\n"
                                "Reads records carrying a vector (`embedding`: a JSON array or base64 float32, as loom-embed\n"
                                "writes) and usually `text`; writes DIR with the vectors in FAISS, the records in a SQLite\n"
                                "store and a BM25 index over the text. A record without `id` gets its line number.");
  BuildOptions o;
  index::Settings& s = o.settings;
  auto& app = tool.app();
  app.add_option("-o,--output", o.dir, "The index directory to create")->type_name("DIR")->required();
  app.add_option("-i,--input", o.in.input, "Records to read ('-' = stdin; .zst accepted)")->type_name("FILE");
  app.add_option("--factory", s.factory,
                 "FAISS index_factory string: Flat, HNSW32, IVF4096,Flat, IVF4096,PQ32, OPQ16,IVF256,PQ16, ...")
      ->type_name("STRING");
  tool.add_choice("--metric", s.metric, {{"ip", index::Metric::InnerProduct}, {"l2", index::Metric::L2}},
                  "Inner product (cosine on normalized vectors) or squared Euclidean distance");
  app.add_flag("--normalize", s.normalize, "L2-normalize vectors before indexing (and queries before searching)");
  app.add_option_function<std::string>("-m,--model", [&](const std::string& m) { o.model = m, o.model_given = true; },
                                       "Embedding model recorded for text queries (loom-retrieve embeds them with it); "
                                       "'none' records none")
      ->type_name("MODEL")
      ->default_str("minilm, when its vectors fit");
  app.add_option("--pooling", s.model.pooling,
                 "Pooling the vectors were made with (as loom-embed --pooling: mean, cls, last, max); default: the model's")
      ->check(CLI::IsMember({"mean", "cls", "last", "max", "mean_sqrt_len"}).description(""))
      ->type_name("NAME");
  app.add_option("--query-prefix", s.model.query_prefix, "Text put before query texts when they are embedded (e5: 'query: ')")
      ->type_name("TEXT");
  app.add_option("--bm25", o.bm25, "BM25 parameters k1,b (Lucene's scoring, as bm25s method=lucene)")->type_name("K1,B");
  app.add_flag("--no-bm25", o.no_bm25, "No BM25 index (dense search only)");
  app.add_option("--stemmer", s.bm25_params.stemmer, "Snowball stemmer for BM25 terms (english, german, french, ...; none)")
      ->type_name("NAME");
  app.add_option("--stopwords", s.bm25_params.stopwords, "Stop words dropped from BM25 terms: en, none, or a file of one word per line")
      ->type_name("en|none|FILE");
  app.add_option("--field", s.text_field, "Field holding the text (BM25, and hits' text)")->type_name("NAME");
  app.add_option("--key", s.vector_field, "Field holding the vector")->type_name("NAME");
  app.add_option("--nprobe", s.nprobe, "Default inverted lists visited per query (IVF; 0 = FAISS's default)")->type_name("N");
  app.add_option("--ef", s.ef_search, "Default efSearch (HNSW; 0 = FAISS's default)")->type_name("N");
  app.add_option("--train-size", s.train_size, "Vectors to train on, sampled (IVF, PQ...; 0 = all)")->type_name("N");
  app.add_option("--seed", s.seed, "Seed of the training sample")->type_name("N");
  app.add_flag("--force", o.force, "Replace an existing index at DIR (once the new one is complete)");
  tool.add_on_error();
  return tool.run(argc, argv, [&] { build(tool, o); });
}

// ---- add / delete ----------------------------------------------------------------------------------

int add_main(int argc, char** argv) {
  cli::Tool tool("index add", "Add records to an index; a record whose id is there already replaces it (upsert).\n\n"
                              "The vectors, the store and the BM25 index change together: readers see the old index or the\n"
                              "new one, never a mix, and a writer killed midway leaves the old one.");
  std::string dir;
  Input in;
  tool.app().add_option("dir", dir, "The index directory")->type_name("DIR")->required();
  tool.app().add_option("-i,--input", in.input, "Records to read ('-' = stdin; .zst accepted)")->type_name("FILE");
  tool.add_on_error();
  return tool.run(argc, argv, [&] {
    index::Writer w = index::Writer::open(dir, tool.common().threads);
    arm_crash_hook(w);
    Ingest ingest(tool, w);
    ingest.run(in.input, in.chunk);
    w.commit();
    print_summary(tool, w, dir,
                  fmt::format("{} records added ({} new, {} replaced)", ingest.added(), ingest.added() - ingest.replaced(),
                              ingest.replaced()));
  });
}

int delete_main(int argc, char** argv) {
  cli::Tool tool("index delete", "Delete records from an index by id.\n\n"
                                 "Ids come from --ids, or from the `id` of records read from the input.");
  std::string dir, ids;
  Input in;
  tool.app().add_option("dir", dir, "The index directory")->type_name("DIR")->required();
  tool.app().add_option("--ids", ids, "Comma-separated ids to delete (instead of records)")->type_name("ID,...");
  tool.app().add_option("-i,--input", in.input, "Records whose ids to delete ('-' = stdin)")->type_name("FILE");
  tool.add_on_error();
  return tool.run(argc, argv, [&] {
    index::Writer w = index::Writer::open(dir, tool.common().threads);
    arm_crash_hook(w);
    uint64_t asked = 0, deleted = 0;
    if (!ids.empty()) {
      size_t b = 0;
      while (b <= ids.size()) {
        size_t e = ids.find(',', b);
        if (e == std::string::npos) e = ids.size();
        std::string id = ids.substr(b, e - b);
        if (!id.empty()) {
          ++asked;
          deleted += w.remove(id);
        }
        b = e + 1;
      }
    } else {
      tool.read_records(in.input, 4096, [&](io::Record&& rec, const std::string& file, size_t line) {
        try {
          auto id = rec.get_string("id");
          if (!id) throw input_error("record has no \"id\"");
          ++asked;
          deleted += w.remove(*id);
        } catch (Error& e) {
          e.at(file, line);
          if (e.kind() == Error::Kind::BadInput && tool.skip(e)) return;
          throw;
        }
      }, [] {});
    }
    if (deleted) w.commit();
    print_summary(tool, w, dir, fmt::format("{} of {} ids deleted ({} not in the index)", deleted, asked, asked - deleted));
  });
}

// ---- merge -----------------------------------------------------------------------------------------

int merge_main(int argc, char** argv) {
  cli::Tool tool("index merge", "Merge index directories (shards built apart) into one.\n\n"
                                "The result takes the first index's settings (factory, metric, BM25 parameters, model) and, for\n"
                                "factories that train, its trained quantizer; every shard must have the same dimension, metric and\n"
                                "normalization. A record id found in several shards keeps the last shard's version.");
  std::string dir;
  std::vector<std::string> inputs;
  bool force = false;
  tool.app().add_option("-o,--output", dir, "The index directory to create")->type_name("DIR")->required();
  tool.app().add_option("indexes", inputs, "The index directories to merge")->type_name("DIR...")->required();
  tool.app().add_flag("--force", force, "Replace an existing index at DIR (once the new one is complete)");
  return tool.run(argc, argv, [&] {
    index::Settings s;
    {
      index::Reader first = index::Reader::open(inputs.front(), 1);
      s = first.manifest().settings;
    }
    for (auto& in : inputs)
      if (fs::exists(dir) && fs::equivalent(in, dir)) throw usage_error(fmt::format("-o {} is one of the inputs", dir));
    index::Writer w = index::Writer::create(dir, s, force, tool.common().threads);
    arm_crash_hook(w);
    uint64_t total = 0;
    for (auto& in : inputs) {
      w.upsert_all_from(in);
      index::Reader r = index::Reader::open(in, 1);
      total += r.manifest().counts.records;
    }
    w.commit();
    print_summary(tool, w, dir,
                  fmt::format("{} records from {} indexes ({} duplicate ids replaced)", total, inputs.size(),
                              total - w.manifest().counts.records));
  });
}

// ---- info ------------------------------------------------------------------------------------------

int info_main(int argc, char** argv) {
  cli::Tool tool("index info", "Print an index's manifest and sizes as one JSON record per directory.\n\n"
                               "With --check, also cross-checks its parts (vector count, BM25 documents and stored records\n"
                               "agree; every vector's label is a stored record): exit 2 when they do not.");
  std::vector<std::string> dirs;
  bool check = false;
  tool.app().add_option("dirs", dirs, "Index directories")->type_name("DIR...")->required();
  tool.app().add_flag("--check", check, "Verify the index's parts agree");
  return tool.run(argc, argv, [&] {
    for (auto& dir : dirs) {
      index::Reader r = index::Reader::open(dir, 1);
      if (check) r.check();
      uint64_t bytes = 0;
      for (auto& e : fs::directory_iterator(dir))
        if (e.is_regular_file()) bytes += e.file_size();
      std::string man = r.manifest().to_json();
      // compact: the manifest's own JSON, re-emitted on one line with the directory and its size
      io::Record rec = io::Record::parse(man);
      io::Record out;
      out.set("dir", dir);
      for (size_t i = 0; i < rec.size(); ++i) out.append_raw(rec.raw_key(i), rec.raw_value(i));
      out.set("bytes", bytes);
      if (check) out.set("check", "ok");
      std::string line = out.to_json();
      line += '\n';
      tool.out().write(line);
    }
  });
}

struct Sub {
  const char* name;
  int (*main)(int, char**);
  const char* what;
};
const Sub kSubs[] = {
    {"build", build_main, "build an index directory from records with vectors (and text)"},
    {"add", add_main, "add or replace records (upsert by id)"},
    {"delete", delete_main, "delete records by id"},
    {"merge", merge_main, "merge index directories into one"},
    {"info", info_main, "print an index's manifest and sizes (JSON); --check verifies it"},
};

}  // namespace

int main(int argc, char** argv) {
  openmp_wait_passively(argv);
  std::string_view first = argc > 1 ? argv[1] : "";
  for (const Sub& s : kSubs)
    if (first == s.name) return s.main(argc - 1, argv + 1);
  if (first == "--help-man") {
    // every subcommand's options, each under its own heading
    for (const Sub& s : kSubs) {
      std::printf(".SS loom index %s\n", s.name);
      std::string name = s.name, flag = "--help-man";
      char* args[] = {name.data(), flag.data(), nullptr};
      s.main(2, args);
    }
    return 0;
  }
  std::string desc = "Build and change index directories: vectors in FAISS, records in SQLite, BM25 over text.\n\n"
                     "usage: loom index COMMAND [options]   (loom index COMMAND --help for its options)\n\ncommands:\n";
  for (const Sub& s : kSubs) desc += fmt::format("  {:<8}{}\n", s.name, s.what);
  cli::Tool tool("index", desc);
  std::string cmd;
  tool.app().add_option("command", cmd, "build, add, delete, merge or info")->type_name("COMMAND");
  return tool.run(argc, argv, [&] {
    if (cmd.empty()) throw usage_error("a command is needed: build, add, delete, merge or info (loom index --help)");
    throw usage_error(fmt::format("unknown command '{}': build, add, delete, merge or info", cmd));
  });
}
