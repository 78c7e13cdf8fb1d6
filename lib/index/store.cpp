// The index directory: a SQLite store (the source of truth), FAISS and BM25 files per generation.
// See store.h for the layout and the crash-safety argument.
#include "loom/index/store.h"

#include <fcntl.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstring>
#include <ctime>
#include <exception>
#include <filesystem>
#include <functional>
#include <numeric>
#include <optional>
#include <random>
#include <unordered_map>
#include <unordered_set>

#include <faiss/AutoTune.h>
#include <faiss/IVFlib.h>
#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIDMap.h>
#include <faiss/IndexIVF.h>
#include <faiss/IndexPreTransform.h>
#include <faiss/impl/FaissException.h>
#include <faiss/impl/IDSelector.h>
#include <faiss/clone_index.h>
#include <faiss/index_factory.h>
#include <faiss/index_io.h>
#include <fmt/format.h>
#include <omp.h>

#include "kernels/cpu/flat_search.h"
#include "loom/chat/value.h"
#include "loom/core/error.h"
#include "loom/core/parallel.h"
#include "loom/io/base64.h"
#include "loom/io/json.h"

namespace fs = std::filesystem;
using fidx = faiss::Index::idx_t;

namespace loom::index {

const char* metric_name(Metric m) { return m == Metric::L2 ? "l2" : "ip"; }

namespace {

constexpr const char* kManifest = "manifest.json";
constexpr const char* kStore = "store.sqlite";
constexpr const char* kLock = "lock";
constexpr const char* kFormat = "loom-index";

std::string now_iso() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string faiss_name(uint64_t gen) { return fmt::format("vectors.{}.faiss", gen); }
std::string bm25_name(uint64_t gen) { return fmt::format("bm25.{}.bin", gen); }

void fsync_path(const std::string& path, bool dir) {
  int fd = ::open(path.c_str(), dir ? O_RDONLY | O_DIRECTORY : O_RDONLY);
  if (fd < 0) throw runtime_error(fmt::format("cannot open to sync: {}", std::strerror(errno)), path);
  int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) throw runtime_error(fmt::format("fsync failed: {}", std::strerror(errno)), path);
}

// Writes `bytes` to path via a temporary name, synced, then renamed.
void write_file_atomic(const std::string& path, std::string_view bytes) {
  std::string tmp = path + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) throw runtime_error(fmt::format("cannot write: {}", std::strerror(errno)), tmp);
  bool ok = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size() && std::fflush(f) == 0 && ::fsync(fileno(f)) == 0;
  ok = (std::fclose(f) == 0) && ok;
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw runtime_error(fmt::format("cannot write: {}", std::strerror(errno)), path);
  }
}

// ---- SQLite -------------------------------------------------------------------------------------

class Db {
 public:
  Db() = default;
  Db(const std::string& path, bool readonly) : path_(path) {
    int flags = readonly ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    if (sqlite3_open_v2(path.c_str(), &db_, flags | SQLITE_OPEN_NOMUTEX, nullptr) != SQLITE_OK) {
      std::string msg = db_ ? sqlite3_errmsg(db_) : "cannot open";
      sqlite3_close(db_);
      db_ = nullptr;
      throw input_error(fmt::format("cannot open the index store: {}", msg), path);
    }
    sqlite3_busy_timeout(db_, 60000);
  }
  Db(Db&& o) noexcept : db_(std::exchange(o.db_, nullptr)), path_(std::move(o.path_)) {}
  Db& operator=(Db&& o) noexcept {
    std::swap(db_, o.db_);
    std::swap(path_, o.path_);
    return *this;
  }
  ~Db() {
    if (db_) sqlite3_close_v2(db_);
  }
  sqlite3* get() const { return db_; }
  const std::string& path() const { return path_; }

  [[noreturn]] void fail(const std::string& what) const {
    int code = sqlite3_errcode(db_);
    std::string msg = fmt::format("{}: {}", what, sqlite3_errmsg(db_));
    if (code == SQLITE_CORRUPT || code == SQLITE_NOTADB) throw input_error("the index store is corrupt: " + msg, path_);
    throw runtime_error(msg, path_);
  }
  void exec(const char* sql) {
    char* err = nullptr;
    if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
      std::string msg = err ? err : "";
      sqlite3_free(err);
      int code = sqlite3_errcode(db_);
      if (code == SQLITE_CORRUPT || code == SQLITE_NOTADB)
        throw input_error(fmt::format("the index store is corrupt: {}", msg), path_);
      throw runtime_error(fmt::format("{}: {}", sql, msg), path_);
    }
  }

 private:
  sqlite3* db_ = nullptr;
  std::string path_;
};

class Stmt {
 public:
  Stmt(const Db& db, const char* sql) : db_(&db) {
    if (sqlite3_prepare_v2(db.get(), sql, -1, &s_, nullptr) != SQLITE_OK) db.fail(sql);
  }
  ~Stmt() { sqlite3_finalize(s_); }
  Stmt(const Stmt&) = delete;
  Stmt& bind(int i, int64_t v) { sqlite3_bind_int64(s_, i, v); return *this; }
  Stmt& bind(int i, std::string_view v) { sqlite3_bind_text(s_, i, v.data(), int(v.size()), SQLITE_TRANSIENT); return *this; }
  Stmt& bind_blob(int i, const void* p, size_t n) { sqlite3_bind_blob64(s_, i, p, n, SQLITE_TRANSIENT); return *this; }
  Stmt& bind_null(int i) { sqlite3_bind_null(s_, i); return *this; }
  // true while a row is available
  bool step() {
    int rc = sqlite3_step(s_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    db_->fail("store query");
  }
  void run() {
    step();
    reset();
  }
  void reset() {
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
  }
  int64_t i64(int c) const { return sqlite3_column_int64(s_, c); }
  bool is_null(int c) const { return sqlite3_column_type(s_, c) == SQLITE_NULL; }
  std::string_view text(int c) const {
    auto p = reinterpret_cast<const char*>(sqlite3_column_text(s_, c));
    return p ? std::string_view(p, size_t(sqlite3_column_bytes(s_, c))) : std::string_view();
  }
  std::string_view blob(int c) const {
    auto p = static_cast<const char*>(sqlite3_column_blob(s_, c));
    return p ? std::string_view(p, size_t(sqlite3_column_bytes(s_, c))) : std::string_view();
  }

 private:
  const Db* db_;
  sqlite3_stmt* s_ = nullptr;
};

std::optional<std::string> get_meta(const Db& db, const char* key) {
  Stmt s(db, "SELECT value FROM meta WHERE key = ?1");
  s.bind(1, key);
  if (!s.step()) return std::nullopt;
  return std::string(s.text(0));
}
void set_meta(const Db& db, const char* key, std::string_view value) {
  Stmt s(db, "INSERT INTO meta(key, value) VALUES(?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value");
  s.bind(1, key).bind(2, value).run();
}

// ---- FAISS --------------------------------------------------------------------------------------

// FaissException messages read "Error in <function> at <file>:<line>: Error: '<check>' failed: <why>":
// keep <why> (or what follows the location).
std::string faiss_what(const std::exception& e) {
  std::string s = e.what();
  auto p = s.rfind("' failed: ");
  if (p != std::string::npos) return s.substr(p + 10);
  p = s.find(": Error: ");
  if (p != std::string::npos) return s.substr(p + 9);
  p = s.find(".cpp:");
  if (p != std::string::npos && (p = s.find(": ", p)) != std::string::npos) return s.substr(p + 2);
  return s;
}

faiss::MetricType faiss_metric(Metric m) { return m == Metric::L2 ? faiss::METRIC_L2 : faiss::METRIC_INNER_PRODUCT; }

// Sets nprobe / efSearch on an index (0: left as it is); a value the index cannot take (nprobe
// without inverted lists, efSearch without a graph) is a usage error.
void set_search_params(faiss::Index* idx, int nprobe, int ef, const std::string& factory) {
  faiss::ParameterSpace ps;
  try {
    if (nprobe) ps.set_index_parameter(idx, "nprobe", nprobe);
  } catch (const std::exception&) {
    throw usage_error(fmt::format("--nprobe: the index ({}) has no inverted lists", factory));
  }
  try {
    if (ef) ps.set_index_parameter(idx, "efSearch", ef);
  } catch (const std::exception&) {
    throw usage_error(fmt::format("--ef: the index ({}) is not an HNSW graph", factory));
  }
}

// An index that takes our labels: IVF indexes store ids natively; the others get an IDMap2.
std::unique_ptr<faiss::Index> make_faiss(const Settings& s) {
  std::unique_ptr<faiss::Index> idx;
  try {
    idx.reset(faiss::index_factory(int(s.dim), s.factory.c_str(), faiss_metric(s.metric)));
  } catch (const std::exception& e) {
    throw usage_error(fmt::format("--factory {}: FAISS cannot build it: {}", s.factory, faiss_what(e)));
  }
  set_search_params(idx.get(), s.nprobe, s.ef_search, s.factory);  // the defaults must apply to it
  if (!dynamic_cast<faiss::IndexIDMap*>(idx.get()) && !faiss::ivflib::try_extract_index_ivf(idx.get())) {
    auto map = std::make_unique<faiss::IndexIDMap2>(idx.release());
    map->own_fields = true;
    idx = std::move(map);
  }
  return idx;
}

std::unique_ptr<faiss::Index> read_faiss(const std::string& path) {
  try {
    return std::unique_ptr<faiss::Index>(faiss::read_index(path.c_str()));
  } catch (const std::exception& e) {
    if (!fs::exists(path)) throw runtime_error("the vector index file is missing", path);
    throw input_error(fmt::format("corrupt vector index: {}", faiss_what(e)), path);
  }
}

void write_faiss(const faiss::Index& idx, const std::string& path) {
  std::string tmp = path + ".tmp";
  try {
    faiss::write_index(&idx, tmp.c_str());
  } catch (const std::exception& e) {
    std::remove(tmp.c_str());
    throw runtime_error(fmt::format("cannot write the vector index: {}", faiss_what(e)), path);
  }
  fsync_path(tmp, false);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) throw runtime_error(fmt::format("cannot rename: {}", std::strerror(errno)), path);
}

// FAISS prints its own warnings on stderr (k-means: one line per clustering, thousands for a PQ
// with OPQ). While training, stderr goes to a temporary file; its distinct lines are kept for the
// caller to report once.
class StderrCapture {
 public:
  StderrCapture() {
    std::fflush(stderr);
    file_ = std::tmpfile();
    saved_ = ::dup(2);
    if (file_ && saved_ >= 0) ::dup2(fileno(file_), 2);
  }
  ~StderrCapture() { restore(); }
  std::vector<std::string> lines() {
    restore();
    std::vector<std::string> out;
    if (!file_) return out;
    std::rewind(file_);
    char buf[1024];
    while (std::fgets(buf, sizeof buf, file_)) {
      std::string l(buf);
      while (!l.empty() && (l.back() == '\n' || l.back() == '\r')) l.pop_back();
      if (!l.empty() && std::find(out.begin(), out.end(), l) == out.end()) out.push_back(l);
    }
    return out;
  }

 private:
  void restore() {
    if (saved_ >= 0) {
      std::fflush(stderr);
      ::dup2(saved_, 2);
      ::close(saved_);
      saved_ = -1;
    }
  }
  FILE* file_ = nullptr;
  int saved_ = -1;
};

// ---- the manifest -------------------------------------------------------------------------------

const chat::Value& need(const chat::Value& obj, std::string_view key, const std::string& where) {
  const chat::Value* v = obj.is_dict() ? obj.get(key) : nullptr;
  if (!v) throw input_error(fmt::format("manifest: missing \"{}\"", key), where);
  return *v;
}
std::string need_str(const chat::Value& obj, std::string_view key, const std::string& where) {
  const chat::Value& v = need(obj, key, where);
  if (!v.is_string()) throw input_error(fmt::format("manifest: \"{}\" is not a string", key), where);
  return v.str();
}
double need_num(const chat::Value& obj, std::string_view key, const std::string& where) {
  const chat::Value& v = need(obj, key, where);
  if (!v.is_number()) throw input_error(fmt::format("manifest: \"{}\" is not a number", key), where);
  return v.as_float();
}

// A whole number in [0, max].
uint64_t need_uint(const chat::Value& obj, std::string_view key, const std::string& where, double max = 9007199254740992.0) {
  const chat::Value& n = need(obj, key, where);
  if (n.kind() == chat::Value::Kind::Int && n.as_int() >= 0 && double(n.as_int()) <= max) return uint64_t(n.as_int());
  double v = need_num(obj, key, where);
  if (!(v >= 0 && v <= max) || v != std::floor(v))
    throw input_error(fmt::format("manifest: \"{}\" must be a whole number from 0 to {}", key, max), where);
  return uint64_t(v);
}

}  // namespace

std::string Manifest::to_json() const {
  const Settings& s = settings;
  json::Writer w;
  w.begin_object();
  w.key("format"); w.value(kFormat);
  w.key("format_version"); w.value(format_version);
  w.key("dimension"); w.value(uint64_t(s.dim));
  w.key("metric"); w.value(metric_name(s.metric));
  w.key("normalize"); w.value(s.normalize);
  w.key("factory"); w.value(s.factory);
  w.key("search_defaults");
  w.begin_object();
  w.key("nprobe"); w.value(s.nprobe);
  w.key("efSearch"); w.value(s.ef_search);
  w.end_object();
  w.key("training"); w.begin_object();
  w.key("train_size"); w.value(uint64_t(s.train_size));
  w.key("seed"); w.value(s.seed);
  w.end_object();
  w.key("model");
  if (s.model.name.empty()) {
    w.null();
  } else {
    w.begin_object();
    w.key("name"); w.value(s.model.name);
    w.key("pooling"); w.value(s.model.pooling);
    w.key("normalize"); w.value(s.model.normalize);
    w.key("query_prefix"); w.value(s.model.query_prefix);
    w.end_object();
  }
  w.key("fields"); w.begin_object();
  w.key("text"); w.value(s.text_field);
  w.key("vector"); w.value(s.vector_field);
  w.end_object();
  w.key("bm25");
  if (!s.bm25) {
    w.null();
  } else {
    w.begin_object();
    w.key("method"); w.value("lucene");
    w.key("k1"); w.value(s.bm25_params.k1);
    w.key("b"); w.value(s.bm25_params.b);
    w.key("stemmer"); w.value(s.bm25_params.stemmer);
    w.key("stopwords"); w.value(s.bm25_params.stopwords);
    w.end_object();
  }
  w.key("counts"); w.begin_object();
  w.key("records"); w.value(counts.records);
  w.key("vectors"); w.value(counts.vectors);
  w.key("bm25_docs"); w.value(counts.bm25_docs);
  w.end_object();
  w.key("generation"); w.value(generation);
  w.key("created"); w.value(created);
  w.key("updated"); w.value(updated);
  w.end_object();
  // one key per line: readable in a terminal, still one JSON document
  std::string flat = w.take(), out;
  int depth = 0;
  bool in_str = false, esc = false;
  for (char c : flat) {
    if (in_str) {
      out += c;
      if (esc) esc = false;
      else if (c == '\\') esc = true;
      else if (c == '"') in_str = false;
      continue;
    }
    if (c == '"') in_str = true;
    if (c == '}') out += '\n' + std::string(size_t(--depth) * 2, ' ');
    out += c;
    if (c == ':') out += ' ';
    if (c == '{') out += '\n' + std::string(size_t(++depth) * 2, ' ');
    if (c == ',') out += '\n' + std::string(size_t(depth) * 2, ' ');
  }
  // empty objects never occur; keep the output simple
  return out + '\n';
}

Manifest Manifest::from_json(std::string_view text, const std::string& where) {
  chat::Value v;
  try {
    v = chat::Value::parse_json(text);
  } catch (const Error& e) {
    throw input_error(fmt::format("manifest is not valid JSON: {}", e.what()), where);
  }
  if (!v.is_dict()) throw input_error("manifest is not a JSON object", where);
  if (need_str(v, "format", where) != kFormat) throw input_error("not a loom index manifest", where);
  Manifest m;
  m.format_version = int(need_uint(v, "format_version", where, 1e6));
  if (m.format_version != 1)
    throw input_error(fmt::format("index format version {} is not supported (this loom reads 1)", m.format_version), where);
  Settings& s = m.settings;
  s.dim = uint32_t(need_uint(v, "dimension", where, 1e6));
  std::string metric = need_str(v, "metric", where);
  if (metric != "ip" && metric != "l2") throw input_error(fmt::format("manifest: unknown metric \"{}\"", metric), where);
  s.metric = metric == "l2" ? Metric::L2 : Metric::InnerProduct;
  const chat::Value& norm = need(v, "normalize", where);
  s.normalize = norm.kind() == chat::Value::Kind::Bool && norm.as_bool();
  s.factory = need_str(v, "factory", where);
  const chat::Value& sd = need(v, "search_defaults", where);
  s.nprobe = int(need_uint(sd, "nprobe", where, 1e9));
  s.ef_search = int(need_uint(sd, "efSearch", where, 1e9));
  const chat::Value& tr = need(v, "training", where);
  s.train_size = size_t(need_uint(tr, "train_size", where));
  s.seed = need_uint(tr, "seed", where);
  const chat::Value& model = need(v, "model", where);
  if (model.is_dict()) {
    s.model.name = need_str(model, "name", where);
    s.model.pooling = need_str(model, "pooling", where);
    const chat::Value& mn = need(model, "normalize", where);
    s.model.normalize = mn.kind() == chat::Value::Kind::Bool && mn.as_bool();
    s.model.query_prefix = need_str(model, "query_prefix", where);
  }
  const chat::Value& fields = need(v, "fields", where);
  s.text_field = need_str(fields, "text", where);
  s.vector_field = need_str(fields, "vector", where);
  const chat::Value& bm = need(v, "bm25", where);
  s.bm25 = bm.is_dict();
  if (s.bm25) {
    s.bm25_params.k1 = need_num(bm, "k1", where);
    s.bm25_params.b = need_num(bm, "b", where);
    s.bm25_params.stemmer = need_str(bm, "stemmer", where);
    s.bm25_params.stopwords = need_str(bm, "stopwords", where);
  }
  const chat::Value& c = need(v, "counts", where);
  m.counts.records = need_uint(c, "records", where);
  m.counts.vectors = need_uint(c, "vectors", where);
  m.counts.bm25_docs = need_uint(c, "bm25_docs", where);
  m.generation = need_uint(v, "generation", where);
  m.created = need_str(v, "created", where);
  m.updated = need_str(v, "updated", where);
  return m;
}

std::vector<float> parse_vector(std::string_view raw, std::string_view field) {
  std::vector<float> v;
  auto bad = [&](const std::string& why) {
    return input_error(fmt::format("field \"{}\": {}", field, why));
  };
  if (!raw.empty() && raw[0] == '"') {
    std::string b64;
    json::unescape_string(raw, b64);
    auto bytes = io::base64_decode(b64);
    if (!bytes) throw bad("a string that is not base64");
    if (bytes->size() % 4) throw bad(fmt::format("base64 of {} bytes: not a whole number of float32 values", bytes->size()));
    v.resize(bytes->size() / 4);
    std::memcpy(v.data(), bytes->data(), bytes->size());
  } else if (!raw.empty() && raw[0] == '[') {
    const char* p = raw.data() + 1;
    const char* end = raw.data() + raw.size() - 1;  // the closing ']' (raw is validated, compact JSON)
    while (p < end) {
      double d;
      auto [q, ec] = std::from_chars(p, end, d);
      if (ec != std::errc()) {
        if (ec == std::errc::result_out_of_range) throw bad(fmt::format("element {} is out of range", v.size()));
        throw bad(fmt::format("element {} is not a number", v.size()));
      }
      v.push_back(float(d));
      p = q;
      if (p < end && *p == ',') ++p;
    }
  } else {
    throw bad("expected an array of numbers or a base64 string");
  }
  for (size_t i = 0; i < v.size(); ++i)
    if (!std::isfinite(v[i])) throw bad(fmt::format("element {} is {}", i, std::isnan(v[i]) ? "NaN" : "infinite"));
  return v;
}

bool is_index_dir(const std::string& dir) {
  return fs::is_regular_file(fs::path(dir) / kManifest) && fs::is_regular_file(fs::path(dir) / kStore);
}

namespace {

void check_index_dir(const std::string& dir) {
  if (!fs::exists(dir)) throw usage_error(fmt::format("{}: no such index directory", dir));
  if (!fs::is_directory(dir)) throw usage_error(fmt::format("{}: not a directory", dir));
  if (!fs::exists(fs::path(dir) / kManifest))
    throw input_error("not a loom index (no manifest.json)", dir);
  if (!fs::exists(fs::path(dir) / kStore)) throw input_error("not a loom index (no store.sqlite)", dir);
}

Manifest read_store_manifest(const Db& db) {
  auto text = get_meta(db, "manifest");
  if (!text) throw input_error("the index store holds no manifest", db.path());
  return Manifest::from_json(*text, db.path());
}

void schema(Db& db) {
  db.exec(
      "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
      "CREATE TABLE IF NOT EXISTS records(label INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE,"
      " record TEXT NOT NULL, text TEXT, vector BLOB);");
}

// An exclusive flock on DIR/lock for the writer's lifetime.
class DirLock {
 public:
  DirLock() = default;
  explicit DirLock(const std::string& dir) {
    std::string path = (fs::path(dir) / kLock).string();
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) throw runtime_error(fmt::format("cannot open the lock file: {}", std::strerror(errno)), path);
    if (::flock(fd_, LOCK_EX) != 0) throw runtime_error(fmt::format("cannot lock: {}", std::strerror(errno)), path);
  }
  DirLock(DirLock&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  DirLock& operator=(DirLock&& o) noexcept {
    std::swap(fd_, o.fd_);
    return *this;
  }
  ~DirLock() {
    if (fd_ >= 0) ::close(fd_);
  }

 private:
  int fd_ = -1;
};

void l2_normalize(float* v, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; ++i) s += double(v[i]) * v[i];
  if (s > 0) {
    float inv = float(1.0 / std::sqrt(s));
    for (size_t i = 0; i < n; ++i) v[i] *= inv;
  }
}

}  // namespace

// ==== Writer =====================================================================================

struct Writer::Impl {
  std::string dir;        // where the index is published
  std::string work_dir;   // where this writer writes (dir itself, or a temporary sibling for create)
  bool creating = false, replace = false;
  DirLock lock;
  Db db;
  Manifest man;
  unsigned threads = 1;
  int64_t next_label = 0;
  // staged changes
  std::vector<int64_t> add_labels;
  std::vector<float> add_vecs;
  std::vector<std::pair<int64_t, std::string>> add_texts;  // BM25
  std::vector<int64_t> removed;
  int64_t first_new_label = 0;            // labels from here on were staged by this writer
  std::unordered_set<int64_t> unstaged;   // staged, then replaced or deleted again
  bool committed = false;
  std::function<void(const char*)> hook;
  std::vector<std::string> warnings;
  std::unique_ptr<faiss::Index> fresh;  // a new index's FAISS index, made once the dimension is known
  std::unique_ptr<Stmt> find_id, insert, del;

  void prepare() {
    find_id = std::make_unique<Stmt>(db, "SELECT label FROM records WHERE id = ?1");
    insert = std::make_unique<Stmt>(db, "INSERT INTO records(label, id, record, text, vector) VALUES(?1, ?2, ?3, ?4, ?5)");
    del = std::make_unique<Stmt>(db, "DELETE FROM records WHERE label = ?1");
  }

  std::optional<int64_t> label_of(const std::string& id) {
    find_id->bind(1, id);
    std::optional<int64_t> r;
    if (find_id->step()) r = find_id->i64(0);
    find_id->reset();
    return r;
  }

  void drop(int64_t label) {
    del->bind(1, label).run();
    // a label staged by this writer is dropped from the staged adds at commit; an older one is
    // removed from the vectors and BM25 (labels only grow, so the label says which it is)
    if (label >= first_new_label) {
      unstaged.insert(label);
    } else {
      removed.push_back(label);
    }
  }

  // The staged adds without those replaced or deleted again before the commit (one pass).
  void compact_staged() {
    if (unstaged.empty()) return;
    const size_t d = man.settings.dim;
    size_t out = 0;
    for (size_t i = 0; i < add_labels.size(); ++i) {
      if (unstaged.count(add_labels[i])) continue;
      if (out != i) std::memmove(&add_vecs[out * d], &add_vecs[i * d], d * sizeof(float));
      add_labels[out++] = add_labels[i];
    }
    add_labels.resize(out);
    add_vecs.resize(out * d);
    std::erase_if(add_texts, [&](const auto& t) { return unstaged.count(t.first) > 0; });
    unstaged.clear();
  }

  ~Impl() {
    if (!committed) {
      find_id.reset();
      insert.reset();
      del.reset();
      if (db.get()) {
        sqlite3_exec(db.get(), "ROLLBACK", nullptr, nullptr, nullptr);
      }
      db = Db();
      if (creating) {
        std::error_code ec;
        fs::remove_all(work_dir, ec);
      }
    }
  }
};

Writer::Writer() : impl_(std::make_unique<Impl>()) {}
Writer::~Writer() = default;
Writer::Writer(Writer&&) noexcept = default;
const Manifest& Writer::manifest() const { return impl_->man; }
const std::vector<std::string>& Writer::warnings() const { return impl_->warnings; }
void Writer::set_model(ModelInfo model) { impl_->man.settings.model = std::move(model); }
void Writer::set_commit_hook(std::function<void(const char*)> hook) { impl_->hook = std::move(hook); }

Writer Writer::create(const std::string& dir, const Settings& settings, bool replace, unsigned threads) {
  if (fs::exists(dir)) {
    if (!replace) throw usage_error(fmt::format("{} exists already (use --force to replace the index there)", dir));
    if (!is_index_dir(dir)) throw usage_error(fmt::format("{} exists and is not a loom index: not replacing it", dir));
  }
  Writer w;
  Impl& m = *w.impl_;
  m.dir = dir;
  m.creating = true;
  m.replace = replace;
  m.threads = threads;
  fs::path p = fs::absolute(dir);
  fs::path parent = p.parent_path();
  if (!fs::is_directory(parent)) throw usage_error(fmt::format("{}: no such directory", parent.string()));
  const std::string stem = fmt::format(".{}.tmp-", p.filename().string());
  m.work_dir = (parent / fmt::format("{}{}", stem, ::getpid())).string();
  std::error_code ec;
  // what builds of this index killed midway left (their process is gone): removed
  for (auto& ent : fs::directory_iterator(parent, ec)) {
    std::string name = ent.path().filename().string();
    if (!name.starts_with(stem)) continue;
    long pid = std::strtol(name.c_str() + stem.size(), nullptr, 10);
    if (pid > 0 && (pid == ::getpid() || (::kill(pid_t(pid), 0) != 0 && errno == ESRCH))) fs::remove_all(ent.path(), ec);
  }
  if (!fs::create_directory(m.work_dir, ec))
    throw runtime_error(fmt::format("cannot create a directory: {}", ec.message()), m.work_dir);
  m.db = Db((fs::path(m.work_dir) / kStore).string(), false);
  m.db.exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;");
  schema(m.db);
  m.db.exec("BEGIN IMMEDIATE");
  m.man.settings = settings;
  m.man.created = now_iso();
  m.prepare();
  return w;
}

Writer Writer::open(const std::string& dir, unsigned threads) {
  check_index_dir(dir);
  Writer w;
  Impl& m = *w.impl_;
  m.dir = m.work_dir = dir;
  m.threads = threads;
  m.lock = DirLock(dir);
  m.db = Db((fs::path(dir) / kStore).string(), false);
  m.db.exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;");
  m.db.exec("BEGIN IMMEDIATE");
  m.man = read_store_manifest(m.db);
  auto next = get_meta(m.db, "next_label");
  if (!next) throw input_error("the index store has no next_label", m.db.path());
  auto [end, ec] = std::from_chars(next->data(), next->data() + next->size(), m.next_label);
  if (ec != std::errc() || end != next->data() + next->size() || m.next_label < 0)
    throw input_error("the index store's next_label is not a number", m.db.path());
  m.first_new_label = m.next_label;
  // files of other generations are left by crashed writers (or readers still held them): remove
  for (auto& ent : fs::directory_iterator(dir)) {
    std::string name = ent.path().filename().string();
    bool ours = (name.starts_with("vectors.") && (name.ends_with(".faiss") || name.ends_with(".faiss.tmp"))) ||
                (name.starts_with("bm25.") && (name.ends_with(".bin") || name.ends_with(".bin.tmp")));
    if (ours && name != faiss_name(m.man.generation) && name != bm25_name(m.man.generation)) {
      std::error_code ec;
      fs::remove(ent.path(), ec);
    }
  }
  m.prepare();
  return w;
}

bool Writer::upsert(Entry&& e) {
  Impl& m = *impl_;
  Settings& s = m.man.settings;
  if (s.dim == 0) {
    if (e.vec.empty()) throw input_error(fmt::format("record has no \"{}\" field: the index needs vectors", s.vector_field));
    s.dim = uint32_t(e.vec.size());
  }
  if (m.creating && !m.fresh) m.fresh = make_faiss(s);
  if (e.vec.size() != s.dim)
    throw input_error(e.vec.empty() ? fmt::format("record has no \"{}\" field: the index needs vectors", s.vector_field)
                                    : fmt::format("field \"{}\" has {} dimensions; the index has {}", s.vector_field,
                                                  e.vec.size(), s.dim));
  if (s.normalize) l2_normalize(e.vec.data(), e.vec.size());
  bool replaced = false;
  if (auto old = m.label_of(e.id)) {
    m.drop(*old);
    replaced = true;
  }
  int64_t label = m.next_label++;
  m.insert->bind(1, label).bind(2, e.id).bind(3, e.json);
  if (e.text) m.insert->bind(4, *e.text);
  else m.insert->bind_null(4);
  m.insert->bind_blob(5, e.vec.data(), e.vec.size() * sizeof(float));
  m.insert->run();
  m.add_labels.push_back(label);
  m.add_vecs.insert(m.add_vecs.end(), e.vec.begin(), e.vec.end());
  if (s.bm25 && e.text) m.add_texts.emplace_back(label, std::move(*e.text));
  return replaced;
}

bool Writer::remove(const std::string& id) {
  Impl& m = *impl_;
  auto old = m.label_of(id);
  if (!old) return false;
  m.drop(*old);
  return true;
}

void Writer::commit() {
  Impl& m = *impl_;
  Settings& s = m.man.settings;
  const uint64_t gen = m.man.generation + 1;
  auto step = [&](const char* what) {
    if (m.hook) m.hook(what);
  };
  omp_set_num_threads(int(std::max(1u, m.threads)));
  if (s.dim == 0) throw input_error("no records: nothing to index (the dimension is unknown)");
  m.compact_staged();

  // 1. vectors
  std::unique_ptr<faiss::Index> idx;
  const std::string old_faiss = (fs::path(m.work_dir) / faiss_name(m.man.generation)).string();
  if (m.creating) {
    idx = m.fresh ? std::move(m.fresh) : make_faiss(s);
  } else {
    idx = read_faiss(old_faiss);
  }
  try {
    if (!m.removed.empty()) {
      bool removed = false;
      try {
        std::vector<fidx> ids(m.removed.begin(), m.removed.end());
        faiss::IDSelectorBatch sel(ids.size(), ids.data());
        idx->remove_ids(sel);
        removed = true;
      } catch (const faiss::FaissException&) {
      }
      if (!removed) {
        // an index that cannot remove (HNSW): rebuilt from the stored vectors, keeping its training
        idx->reset();
        Stmt all(m.db, "SELECT label, vector FROM records ORDER BY label");
        std::vector<fidx> labels;
        std::vector<float> vecs;
        while (all.step()) {
          int64_t l = all.i64(0);
          if (l >= m.first_new_label) continue;  // staged: added below
          std::string_view b = all.blob(1);
          if (b.size() != s.dim * sizeof(float)) throw input_error("a stored vector has the wrong size", m.db.path());
          labels.push_back(l);
          size_t o = vecs.size();
          vecs.resize(o + s.dim);
          std::memcpy(vecs.data() + o, b.data(), b.size());
        }
        if (!labels.empty()) idx->add_with_ids(fidx(labels.size()), vecs.data(), labels.data());
      }
    }
    const size_t n_add = m.add_labels.size();
    if (!idx->is_trained) {
      size_t n_train = s.train_size && s.train_size < n_add ? s.train_size : n_add;
      std::vector<float> sample;
      const float* train = m.add_vecs.data();
      if (n_train < n_add) {
        std::vector<size_t> pick(n_add);
        for (size_t i = 0; i < n_add; ++i) pick[i] = i;
        std::mt19937_64 rng(s.seed);
        for (size_t i = 0; i < n_train; ++i) std::swap(pick[i], pick[i + rng() % (n_add - i)]);
        std::sort(pick.begin(), pick.begin() + long(n_train));
        sample.resize(n_train * s.dim);
        for (size_t i = 0; i < n_train; ++i) std::memcpy(&sample[i * s.dim], &m.add_vecs[pick[i] * s.dim], s.dim * sizeof(float));
        train = sample.data();
      }
      StderrCapture capture;
      try {
        idx->train(fidx(n_train), train);
      } catch (...) {
        for (auto& l : capture.lines()) m.warnings.push_back("FAISS: " + l);
        throw;
      }
      for (auto& l : capture.lines()) m.warnings.push_back("FAISS: " + l);
    }
    if (n_add) {
      std::vector<fidx> ids(m.add_labels.begin(), m.add_labels.end());
      idx->add_with_ids(fidx(n_add), m.add_vecs.data(), ids.data());
    }
  } catch (const faiss::FaissException& e) {
    throw input_error(fmt::format("FAISS ({}): {}", s.factory, faiss_what(e)));
  }
  write_faiss(*idx, (fs::path(m.work_dir) / faiss_name(gen)).string());
  m.man.counts.vectors = uint64_t(idx->ntotal);
  idx.reset();
  step("faiss");

  // 2. BM25
  if (s.bm25) {
    Bm25Index bm = m.creating ? Bm25Index(s.bm25_params)
                              : Bm25Index::load((fs::path(m.work_dir) / bm25_name(m.man.generation)).string());
    if (!m.removed.empty()) bm.remove(std::vector<uint64_t>(m.removed.begin(), m.removed.end()));
    Analyzer an(s.bm25_params);
    std::vector<std::vector<std::string>> terms(m.add_texts.size());
    ThreadPool pool(m.threads);
    pool.for_each(terms.size(), [&](size_t i) { terms[i] = an.terms(m.add_texts[i].second); });
    for (size_t i = 0; i < terms.size(); ++i) bm.add(uint64_t(m.add_texts[i].first), terms[i]);
    std::string path = (fs::path(m.work_dir) / bm25_name(gen)).string();
    bm.save(path + ".tmp");
    fsync_path(path + ".tmp", false);
    if (std::rename((path + ".tmp").c_str(), path.c_str()) != 0)
      throw runtime_error(fmt::format("cannot rename: {}", std::strerror(errno)), path);
    m.man.counts.bm25_docs = bm.size();
  }
  step("bm25");

  // 3. the store: counts, generation, manifest; one commit makes it all current
  {
    Stmt c(m.db, "SELECT count(*) FROM records");
    c.step();
    m.man.counts.records = uint64_t(c.i64(0));
  }
  m.man.generation = gen;
  m.man.updated = now_iso();
  if (m.man.created.empty()) m.man.created = m.man.updated;
  set_meta(m.db, "manifest", m.man.to_json());
  set_meta(m.db, "next_label", std::to_string(m.next_label));
  m.find_id.reset();
  m.insert.reset();
  m.del.reset();
  m.db.exec("COMMIT");
  m.committed = true;
  step("store");
  write_file_atomic((fs::path(m.work_dir) / kManifest).string(), m.man.to_json());
  fsync_path(m.work_dir, true);

  if (m.creating) {
    m.db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
    m.db = Db();
    std::error_code ec;
    std::string old;
    if (m.replace && fs::exists(m.dir)) {
      // one atomic swap (Linux renameat2): readers find the old index or the new one, never none
      if (::renameat2(AT_FDCWD, m.work_dir.c_str(), AT_FDCWD, m.dir.c_str(), RENAME_EXCHANGE) == 0) {
        old = m.work_dir;
      } else {
        fs::path p = fs::absolute(m.dir);
        old = (p.parent_path() / fmt::format(".{}.old-{}", p.filename().string(), ::getpid())).string();
        fs::rename(m.dir, old, ec);
        if (ec) throw runtime_error(fmt::format("cannot move the old index aside: {}", ec.message()), m.dir);
      }
    }
    if (old != m.work_dir) {
      fs::rename(m.work_dir, m.dir, ec);
      if (ec) throw runtime_error(fmt::format("cannot move the new index into place: {}", ec.message()), m.dir);
    }
    fsync_path(fs::absolute(m.dir).parent_path().string(), true);
    if (!old.empty()) fs::remove_all(old, ec);
  } else {
    std::error_code ec;
    fs::remove(fs::path(m.work_dir) / faiss_name(gen - 1), ec);
    fs::remove(fs::path(m.work_dir) / bm25_name(gen - 1), ec);
  }
}

// ==== Reader =====================================================================================

struct Reader::Impl {
  std::string dir;
  Db db;
  Manifest man;
  std::unique_ptr<faiss::Index> faiss;
  std::optional<Bm25Index> bm25;
  std::optional<Analyzer> analyzer;
  unsigned threads = 1;
  std::unique_ptr<Stmt> get_record;  // prepared once (record() runs for every hit); after db: finalized first
};

Reader::Reader() : impl_(std::make_unique<Impl>()) {}
Reader::~Reader() = default;
Reader::Reader(Reader&&) noexcept = default;
const Manifest& Reader::manifest() const { return impl_->man; }
bool Reader::has_bm25() const { return impl_->bm25.has_value(); }

Reader Reader::open(const std::string& dir, unsigned threads) {
  check_index_dir(dir);
  for (int attempt = 0;; ++attempt) {
    Reader r;
    Impl& m = *r.impl_;
    m.dir = dir;
    m.threads = std::max(1u, threads);
    // the store's inode before and after the files are read: a rebuild (--force) that swapped the
    // whole directory meanwhile would otherwise pair this store with the new index's files
    auto inode = [&] {
      struct stat st {};
      return ::stat((fs::path(dir) / kStore).c_str(), &st) == 0 ? st.st_ino : ino_t(0);
    };
    const ino_t before = inode();
    m.db = Db((fs::path(dir) / kStore).string(), false);
    m.db.exec("BEGIN");  // a read snapshot, held while the reader lives
    m.man = read_store_manifest(m.db);
    std::string fpath = (fs::path(dir) / faiss_name(m.man.generation)).string();
    std::string bpath = (fs::path(dir) / bm25_name(m.man.generation)).string();
    try {
      if (!fs::exists(fpath) || (m.man.settings.bm25 && !fs::exists(bpath)))
        throw runtime_error("the files of the index's generation are missing", fpath);
      m.faiss = read_faiss(fpath);
      if (m.man.settings.bm25) {
        m.bm25 = Bm25Index::load(bpath);
        m.analyzer.emplace(m.man.settings.bm25_params);
      }
    } catch (const Error&) {
      // a writer published a newer generation and removed these files meanwhile: start over
      if (attempt < 20 && (!fs::exists(fpath) || !fs::exists(bpath) || inode() != before)) continue;
      throw;
    }
    if (inode() != before && attempt < 20) continue;
    return r;
  }
}

namespace {

// Admits inner positions of an IDMap2 whose labels are in a sorted list.
struct TranslatedSelector : faiss::IDSelector {
  const std::vector<fidx>& id_map;
  const std::vector<int64_t>& allowed;
  TranslatedSelector(const std::vector<fidx>& m, const std::vector<int64_t>& a) : id_map(m), allowed(a) {}
  bool is_member(fidx i) const override {
    return std::binary_search(allowed.begin(), allowed.end(), id_map[size_t(i)]);
  }
};
struct SortedSelector : faiss::IDSelector {
  const std::vector<int64_t>& allowed;
  explicit SortedSelector(const std::vector<int64_t>& a) : allowed(a) {}
  bool is_member(fidx i) const override { return std::binary_search(allowed.begin(), allowed.end(), i); }
};

// Search parameters of the right type for `idx` carrying the selector (FAISS checks the type).
void search_selected(const faiss::Index* idx, const faiss::IDSelector* sel, size_t n, const float* q, size_t k, float* D,
                     fidx* I) {
  if (auto hnsw = dynamic_cast<const faiss::IndexHNSW*>(idx)) {
    faiss::SearchParametersHNSW p;
    p.efSearch = hnsw->hnsw.efSearch;
    p.sel = const_cast<faiss::IDSelector*>(sel);
    idx->search(fidx(n), q, fidx(k), D, I, &p);
  } else if (auto ivf = dynamic_cast<const faiss::IndexIVF*>(idx)) {
    faiss::SearchParametersIVF p;
    p.nprobe = ivf->nprobe;
    p.max_codes = ivf->max_codes;
    p.sel = const_cast<faiss::IDSelector*>(sel);
    idx->search(fidx(n), q, fidx(k), D, I, &p);
  } else if (auto pre = dynamic_cast<const faiss::IndexPreTransform*>(idx)) {
    // transform the queries here, then search the inner index with the selector
    const float* xt = pre->apply_chain(fidx(n), q);
    std::unique_ptr<const float[]> del(xt == q ? nullptr : xt);
    search_selected(pre->index, sel, n, xt, k, D, I);
  } else {
    faiss::SearchParameters p;
    p.sel = const_cast<faiss::IDSelector*>(sel);
    idx->search(fidx(n), q, fidx(k), D, I, &p);
  }
}

// A Flat index's vectors and their labels, searched by loom's own exact scan rather than FAISS's:
// FAISS scores query batches with BLAS, whose rounding depends on where a vector sits in the
// matrix and how many queries come along, so the same record could score a different last bit in
// an updated index, a merged one, or another batch. The scan scores every pair in one fixed
// order (kernels/cpu/flat_search.h). Null for any other index (those stay with FAISS).
struct FlatView {
  const faiss::IndexFlat* flat = nullptr;
  const std::vector<fidx>* id_map = nullptr;  // position -> label (null: the position is the label)
  kernels::FlatMetric metric = kernels::FlatMetric::InnerProduct;
};
std::optional<FlatView> flat_view(const faiss::Index* idx) {
  FlatView v;
  if (auto map = dynamic_cast<const faiss::IndexIDMap*>(idx)) {
    v.id_map = &map->id_map;
    idx = map->index;
  }
  v.flat = dynamic_cast<const faiss::IndexFlat*>(idx);
  if (!v.flat) return std::nullopt;
  if (v.flat->metric_type == faiss::METRIC_L2)
    v.metric = kernels::FlatMetric::L2;
  else if (v.flat->metric_type != faiss::METRIC_INNER_PRODUCT)
    return std::nullopt;
  return v;
}

void exact_search(const FlatView& v, const float* q, size_t n, size_t k, const std::vector<int64_t>* allowed,
                  unsigned threads, std::vector<int64_t>& labels, std::vector<float>& scores) {
  static_assert(sizeof(fidx) == sizeof(int64_t));
  const size_t d = size_t(v.flat->d), nb = size_t(v.flat->ntotal);
  const float* xb = v.flat->get_xb();
  const int64_t* lab = v.id_map ? reinterpret_cast<const int64_t*>(v.id_map->data()) : nullptr;
  std::vector<int64_t> rows;  // with a filter: the positions whose labels it admits
  if (allowed)
    for (size_t i = 0; i < nb; ++i)
      if (std::binary_search(allowed->begin(), allowed->end(), lab ? lab[i] : int64_t(i))) rows.push_back(int64_t(i));
  const int64_t* sel = allowed ? rows.data() : nullptr;
  const size_t m = allowed ? rows.size() : nb, parts = std::max(1u, threads);
  std::vector<kernels::TopK> tops(n, kernels::TopK(k, v.metric));
  // a failure on a worker thread (out of memory) is rethrown here, not left to terminate
  std::vector<std::exception_ptr> failed(parts);
  auto on_threads = [&](const std::function<void(size_t)>& fn) {
    parallel_for(parts, threads, [&](size_t t) {
      try {
        fn(t);
      } catch (...) {
        failed[t] = std::current_exception();
      }
    });
    for (auto& e : failed)
      if (e) std::rethrow_exception(e);
  };
  if (n >= 4 * parts || m < 64 * parts) {  // queries enough for every thread: split them
    on_threads([&](size_t t) {
      const size_t q0 = n * t / parts, q1 = n * (t + 1) / parts;
      kernels::flat_scan(q + q0 * d, q1 - q0, d, xb, sel, m, lab, v.metric, tops.data() + q0);
    });
  } else {  // a few queries: split the rows, then merge each query's k best
    std::vector<std::vector<kernels::TopK>> part(parts, tops);
    on_threads([&](size_t t) {
      const size_t r0 = m * t / parts, r1 = m * (t + 1) / parts;
      // a row range: positions r0.. (or the filter's entries r0..)
      if (sel) {
        kernels::flat_scan(q, n, d, xb, sel + r0, r1 - r0, lab, v.metric, part[t].data());
      } else if (lab) {
        kernels::flat_scan(q, n, d, xb + r0 * d, nullptr, r1 - r0, lab + r0, v.metric, part[t].data());
      } else {  // no id map: the positions are the labels
        std::vector<int64_t> range(r1 - r0);
        std::iota(range.begin(), range.end(), int64_t(r0));
        kernels::flat_scan(q, n, d, xb, range.data(), range.size(), nullptr, v.metric, part[t].data());
      }
    });
    for (size_t t = 0; t < parts; ++t)
      for (size_t i = 0; i < n; ++i) tops[i].merge(part[t][i]);
  }
  for (size_t i = 0; i < n; ++i) tops[i].write(labels.data() + i * k, scores.data() + i * k);
}

}  // namespace

void Reader::search(const float* queries, size_t n, size_t k, const SearchParams& params, const std::vector<int64_t>* allowed,
                    std::vector<int64_t>& labels, std::vector<float>& scores) const {
  const Impl& m = *impl_;
  const size_t d = m.man.settings.dim;
  labels.assign(n * k, -1);
  scores.assign(n * k, 0.f);
  if (!m.faiss || k == 0 || n == 0) return;
  std::vector<float> q(queries, queries + n * d);
  if (m.man.settings.normalize)
    for (size_t i = 0; i < n; ++i) l2_normalize(q.data() + i * d, d);
  omp_set_num_threads(int(m.threads));
  const Settings& st = m.man.settings;  // per-search values, else the index's defaults (checked at build)
  set_search_params(m.faiss.get(), params.nprobe ? params.nprobe : st.nprobe, params.ef_search ? params.ef_search : st.ef_search,
                    st.factory);
  if (auto flat = flat_view(m.faiss.get())) {
    exact_search(*flat, q.data(), n, k, allowed, m.threads, labels, scores);
    return;
  }
  std::vector<fidx> I(n * k);
  try {
    if (!allowed) {
      m.faiss->search(fidx(n), q.data(), fidx(k), scores.data(), I.data());
    } else if (auto map = dynamic_cast<const faiss::IndexIDMap2*>(m.faiss.get())) {
      TranslatedSelector sel(map->id_map, *allowed);
      search_selected(map->index, &sel, n, q.data(), k, scores.data(), I.data());
      for (auto& i : I)
        if (i >= 0) i = map->id_map[size_t(i)];
    } else {
      SortedSelector sel(*allowed);
      search_selected(m.faiss.get(), &sel, n, q.data(), k, scores.data(), I.data());
    }
  } catch (const faiss::FaissException& e) {
    throw runtime_error(fmt::format("FAISS search failed: {}", faiss_what(e)), m.dir);
  }
  for (size_t i = 0; i < n * k; ++i) labels[i] = I[i];
}

std::vector<std::pair<uint64_t, float>> Reader::search_bm25(std::string_view text, size_t k,
                                                            const std::vector<int64_t>* allowed) const {
  const Impl& m = *impl_;
  if (!m.bm25) return {};
  std::function<bool(uint64_t)> keep;
  if (allowed) keep = [allowed](uint64_t l) { return std::binary_search(allowed->begin(), allowed->end(), int64_t(l)); };
  return m.bm25->search(m.analyzer->terms(text), k, keep);
}

std::string Reader::record(uint64_t label) const {
  Impl& m = *impl_;
  if (!m.get_record) m.get_record = std::make_unique<Stmt>(m.db, "SELECT record FROM records WHERE label = ?1");
  Stmt& s = *m.get_record;
  s.bind(1, int64_t(label));
  if (!s.step()) {
    s.reset();
    throw input_error(fmt::format("the vector index names label {} that the store does not hold", label), m.dir);
  }
  std::string json(s.text(0));
  s.reset();
  return json;
}

void Reader::for_each(const std::function<void(uint64_t, std::string_view, std::string_view)>& fn) const {
  Stmt s(impl_->db, "SELECT label, id, record FROM records ORDER BY label");
  while (s.step()) fn(uint64_t(s.i64(0)), s.text(1), s.text(2));
}

void Reader::check() const {
  const Impl& m = *impl_;
  Stmt c(m.db, "SELECT count(*) FROM records");
  c.step();
  uint64_t rows = uint64_t(c.i64(0));
  if (rows != m.man.counts.records)
    throw input_error(fmt::format("the store holds {} records; its manifest says {}", rows, m.man.counts.records), m.dir);
  if (m.faiss && uint64_t(m.faiss->ntotal) != rows)
    throw input_error(fmt::format("the vector index holds {} vectors; the store {} records", m.faiss->ntotal, rows), m.dir);
  if (m.bm25) {
    Stmt t(m.db, "SELECT count(*) FROM records WHERE text IS NOT NULL");
    t.step();
    if (uint64_t(t.i64(0)) != m.bm25->size())
      throw input_error(fmt::format("the BM25 index holds {} documents; the store {} texts", m.bm25->size(), t.i64(0)), m.dir);
  }
  // every label the vector index returns must be a stored record: spot-check through the id map
  if (auto map = dynamic_cast<const faiss::IndexIDMap2*>(m.faiss.get())) {
    Stmt s(m.db, "SELECT 1 FROM records WHERE label = ?1");
    for (fidx l : map->id_map) {
      s.bind(1, int64_t(l));
      bool ok = s.step();
      s.reset();
      if (!ok) throw input_error(fmt::format("the vector index holds label {} that the store does not", l), m.dir);
    }
  }
}

// (after Reader::Impl: a merge reads the other index through it)
void Writer::upsert_all_from(const std::string& other_dir) {
  Reader r = Reader::open(other_dir, impl_->threads);
  Impl& m = *impl_;
  if (m.creating && !m.fresh && m.add_labels.empty() && r.impl_->faiss && r.impl_->faiss->is_trained &&
      r.manifest().settings.factory == m.man.settings.factory && r.manifest().settings.dim == m.man.settings.dim) {
    // the first shard's trained index (its IVF centroids, PQ codebooks), emptied: no retraining
    try {
      m.fresh.reset(faiss::clone_index(r.impl_->faiss.get()));
      m.fresh->reset();
    } catch (const faiss::FaissException&) {
      m.fresh.reset();  // an index FAISS cannot clone: trained again at commit
    }
  }
  const Settings& mine = impl_->man.settings;
  const Settings& theirs = r.manifest().settings;
  if (mine.dim && theirs.dim && mine.dim != theirs.dim)
    throw input_error(fmt::format("{} has {} dimensions; the merged index has {}", other_dir, theirs.dim, mine.dim));
  if (mine.metric != theirs.metric)
    throw input_error(fmt::format("{} uses metric {}; the merged index uses {}", other_dir, metric_name(theirs.metric),
                                  metric_name(mine.metric)));
  if (mine.normalize != theirs.normalize)
    throw input_error(fmt::format("{} {} its vectors; the merged index {}", other_dir,
                                  theirs.normalize ? "normalizes" : "does not normalize",
                                  mine.normalize ? "does" : "does not"));
  Db db((fs::path(other_dir) / kStore).string(), true);
  Stmt s(db, "SELECT id, record, text, vector FROM records ORDER BY label");
  while (s.step()) {
    Entry e;
    e.id = std::string(s.text(0));
    e.json = std::string(s.text(1));
    if (!s.is_null(2)) e.text = std::string(s.text(2));
    std::string_view b = s.blob(3);
    e.vec.resize(b.size() / sizeof(float));
    std::memcpy(e.vec.data(), b.data(), e.vec.size() * sizeof(float));
    upsert(std::move(e));
  }
}

}  // namespace loom::index
