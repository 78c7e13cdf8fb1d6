// Index directories (lib/index/store.h): dense results against FAISS reading the same file, upserts
// and deletes against an index built from scratch, crash safety at every step of a commit (a child
// process killed with SIGKILL), snapshot reads beside a writer, damaged directories.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include <faiss/Index.h>
#include <faiss/IVFlib.h>
#include <faiss/IndexIVF.h>
#include <faiss/index_io.h>
#include <gtest/gtest.h>

#include "loom/core/error.h"
#include "loom/index/store.h"
#include "loom/io/base64.h"

namespace fs = std::filesystem;
using namespace loom;
using namespace loom::index;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    char tmpl[] = "/tmp/loom-index-test-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string sub(const std::string& name) const { return (path / name).string(); }
};

const char* kWords[] = {"log", "rotate", "daemon", "kernel", "network", "socket", "disk", "cache", "query", "vector"};

Entry entry(size_t i, uint32_t dim, uint64_t seed, const std::string& prefix = "d") {
  std::mt19937_64 rng(seed * 1000003 + i);
  std::normal_distribution<float> g;
  Entry e;
  e.id = prefix + std::to_string(i);
  std::string text;
  for (int w = 0; w < 3 + int(rng() % 5); ++w) text += std::string(w ? " " : "") + kWords[rng() % 10];
  e.text = text;
  e.json = "{\"id\":\"" + e.id + "\",\"text\":\"" + text + "\"}";
  e.vec.resize(dim);
  for (auto& x : e.vec) x = g(rng);
  return e;
}

std::vector<float> queries(size_t n, uint32_t dim) {
  std::mt19937_64 rng(99);
  std::normal_distribution<float> g;
  std::vector<float> q(n * dim);
  for (auto& x : q) x = g(rng);
  return q;
}

std::string faiss_file(const std::string& dir) {
  for (auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".faiss") return e.path().string();
  return "";
}

void build(const std::string& dir, const Settings& s, size_t n, uint64_t seed = 1) {
  Writer w = Writer::create(dir, s, false, 2);
  for (size_t i = 0; i < n; ++i) w.upsert(entry(i, s.dim ? s.dim : 16, seed));
  w.commit();
}

// id -> score of a dense search, through the store's records
std::vector<std::pair<std::string, float>> dense_ids(const Reader& r, const float* q, size_t k) {
  std::vector<int64_t> labels;
  std::vector<float> scores;
  r.search(q, 1, k, {}, nullptr, labels, scores);
  std::vector<std::pair<std::string, float>> out;
  for (size_t i = 0; i < k; ++i) {
    if (labels[i] < 0) continue;
    std::string json = r.record(uint64_t(labels[i]));
    auto p = json.find("\"id\":\"") + 6;
    out.emplace_back(json.substr(p, json.find('"', p) - p), scores[i]);
  }
  return out;
}

}  // namespace

TEST(IndexStore, DenseEqualsFaissReadingTheSameFile) {
  for (const char* factory : {"Flat", "HNSW16", "IVF16,Flat", "IVF16,PQ4np", "PQ4np", "PCA8,Flat"}) {
    for (Metric metric : {Metric::InnerProduct, Metric::L2}) {
      TempDir t;
      Settings s;
      s.factory = factory;
      s.metric = metric;
      s.dim = 16;
      build(t.sub("ix"), s, 800);
      Reader r = Reader::open(t.sub("ix"), 2);
      ASSERT_EQ(r.manifest().counts.vectors, 800u) << factory;
      std::unique_ptr<faiss::Index> direct(faiss::read_index(faiss_file(t.sub("ix")).c_str()));
      const size_t n = 20, k = 10;
      auto q = queries(n, 16);
      std::vector<int64_t> labels;
      std::vector<float> scores;
      r.search(q.data(), n, k, {}, nullptr, labels, scores);
      std::vector<faiss::Index::idx_t> I(n * k);
      std::vector<float> D(n * k);
      direct->search(faiss::Index::idx_t(n), q.data(), faiss::Index::idx_t(k), D.data(), I.data());
      size_t found = 0;
      for (size_t i = 0; i < n * k; ++i) {
        found += labels[i] >= 0;
        if (std::string(factory) == "Flat") {
          // loom's own exact scan: FAISS's hits, scores within float rounding (FAISS's BLAS
          // products round in another order); labels may trade places only between near-ties
          ASSERT_NEAR(scores[i], D[i], 1e-5 * (1 + std::fabs(D[i]))) << "Flat result " << i;
          if (labels[i] != I[i]) {
            const size_t q0 = i / k * k;
            auto at = std::find(I.begin() + q0, I.begin() + q0 + k, labels[i]);
            const float other = at != I.begin() + q0 + k ? D[size_t(at - I.begin())] : D[q0 + k - 1];
            EXPECT_NEAR(scores[i], other, 1e-5 * (1 + std::fabs(other))) << "Flat result " << i << ": not a near-tie";
          }
          continue;
        }
        EXPECT_EQ(labels[i], I[i]) << factory << " result " << i;
        EXPECT_EQ(scores[i], D[i]) << factory << " result " << i;
      }
      EXPECT_GT(found, n * k / 2) << factory;  // not vacuous
    }
  }
}

// Flat: a few queries split the rows across the threads, many split the queries; with or
// without a filter both give the same bits (and a record's score does not depend on its batch)
TEST(IndexStore, FlatRowSplitEqualsQuerySplit) {
  for (Metric metric : {Metric::InnerProduct, Metric::L2}) {
    TempDir t;
    Settings s;
    s.factory = "Flat";
    s.metric = metric;
    s.dim = 16;
    build(t.sub("ix"), s, 800);
    Reader r = Reader::open(t.sub("ix"), 2);
    const size_t k = 10, few = 3, many = 12;  // 3 < 4 x 2 threads: rows split; 12: queries split
    auto q = queries(many, 16);
    std::vector<int64_t> allowed;
    for (int64_t l = 0; l < 800; l += 3) allowed.push_back(l);
    const std::vector<int64_t>* none = nullptr;
    for (const std::vector<int64_t>* filter : {none, static_cast<const std::vector<int64_t>*>(&allowed)}) {
      std::vector<int64_t> la, lb;
      std::vector<float> sa, sb;
      r.search(q.data(), few, k, {}, filter, la, sa);
      r.search(q.data(), many, k, {}, filter, lb, sb);
      ASSERT_EQ(la.size(), few * k);
      EXPECT_EQ(la, std::vector<int64_t>(lb.begin(), lb.begin() + few * k)) << (filter ? "filtered" : "all");
      EXPECT_EQ(sa, std::vector<float>(sb.begin(), sb.begin() + few * k)) << (filter ? "filtered" : "all");
      for (int64_t l : la) {
        EXPECT_GE(l, 0);
        if (filter) {
          EXPECT_EQ(l % 3, 0) << "a label the filter does not admit";
        }
      }
    }
  }
}

TEST(IndexStore, UpsertAndDeleteEqualAFreshBuild) {
  for (const char* factory : {"Flat", "HNSW16"}) {  // HNSW cannot remove: the writer rebuilds it
    TempDir t;
    Settings s;
    s.factory = factory;
    s.dim = 16;
    build(t.sub("ix"), s, 300);
    {
      Writer w = Writer::open(t.sub("ix"), 2);
      for (size_t i = 250; i < 350; ++i) EXPECT_EQ(w.upsert(entry(i, 16, 2)), i < 300);  // 50 replaced, 50 new
      for (size_t i = 0; i < 40; ++i) EXPECT_TRUE(w.remove("d" + std::to_string(i)));
      EXPECT_FALSE(w.remove("no-such-id"));
      w.commit();
    }
    // the same final state, built at once
    {
      Writer w = Writer::create(t.sub("fresh"), s, false, 2);
      for (size_t i = 40; i < 250; ++i) w.upsert(entry(i, 16, 1));
      for (size_t i = 250; i < 350; ++i) w.upsert(entry(i, 16, 2));
      w.commit();
    }
    Reader a = Reader::open(t.sub("ix"), 1), b = Reader::open(t.sub("fresh"), 1);
    a.check();
    EXPECT_EQ(a.manifest().counts.records, 310u);
    EXPECT_EQ(a.manifest().counts.vectors, 310u);
    EXPECT_EQ(a.manifest().counts.bm25_docs, 310u);
    EXPECT_EQ(a.manifest().generation, 2u);
    auto q = queries(10, 16);
    for (size_t i = 0; i < 10; ++i) {
      auto x = dense_ids(a, q.data() + i * 16, 10), y = dense_ids(b, q.data() + i * 16, 10);
      ASSERT_EQ(x.size(), 10u);
      if (std::string(factory) == "Flat") {
        EXPECT_EQ(x, y) << "query " << i;
      }
      for (auto& [id, score] : x) EXPECT_GE(std::stoi(id.substr(1)), 40) << "a deleted record came back";
    }
    // BM25 statistics follow the changes: the same scores as the fresh index
    for (const char* text : {"log rotate", "kernel cache vector", "daemon"}) {
      auto x = a.search_bm25(text, 20, nullptr), y = b.search_bm25(text, 20, nullptr);
      ASSERT_EQ(x.size(), y.size());
      ASSERT_FALSE(x.empty());
      for (size_t i = 0; i < x.size(); ++i) EXPECT_FLOAT_EQ(x[i].second, y[i].second) << text;
    }
  }
}

TEST(IndexStore, FilteredSearchKeepsOnlyAllowedLabels) {
  for (const char* factory : {"Flat", "HNSW16", "IVF8,Flat", "PCA8,Flat"}) {
    TempDir t;
    Settings s;
    s.factory = factory;
    s.dim = 16;
    if (std::string(factory).starts_with("IVF")) s.nprobe = 8;  // every list: as exact as a scan
    build(t.sub("ix"), s, 400);
    Reader r = Reader::open(t.sub("ix"), 1);
    std::vector<int64_t> allowed;
    for (int64_t l = 0; l < 400; l += 3) allowed.push_back(l);
    auto q = queries(5, 16);
    std::vector<int64_t> labels;
    std::vector<float> scores;
    r.search(q.data(), 5, 10, {}, &allowed, labels, scores);
    size_t n = 0;
    for (int64_t l : labels)
      if (l >= 0) {
        EXPECT_EQ(l % 3, 0) << factory;
        ++n;
      }
    EXPECT_EQ(n, 50u) << factory;
    if (std::string(factory) == "Flat") {
      // exact: the best allowed inner products, computed here
      for (size_t i = 0; i < 5; ++i) {
        std::vector<std::pair<float, int64_t>> all;
        for (int64_t l : allowed) {
          Entry e = entry(size_t(l), 16, 1);
          float dot = 0;
          for (size_t j = 0; j < 16; ++j) dot += e.vec[j] * q[i * 16 + j];
          all.emplace_back(dot, l);
        }
        std::sort(all.begin(), all.end(), [](auto& a, auto& b) { return a.first > b.first; });
        for (size_t j = 0; j < 10; ++j) {
          EXPECT_EQ(labels[i * 10 + j], all[j].second);
          EXPECT_NEAR(scores[i * 10 + j], all[j].first, 1e-4);
        }
      }
    }
  }
}

// A writer killed (SIGKILL) after each step of its commit leaves the old state or the new one.
TEST(IndexStore, KilledWriterLeavesOldOrNewState) {
  for (const char* step : {"faiss", "bm25", "store"}) {
    TempDir t;
    Settings s;
    s.dim = 16;
    build(t.sub("ix"), s, 100);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      try {
        Writer w = Writer::open(t.sub("ix"), 1);
        for (size_t i = 50; i < 170; ++i) w.upsert(entry(i, 16, 3));
        w.remove("d0");
        std::string at = step;
        w.set_commit_hook([at](const char* s) {
          if (at == s) ::raise(SIGKILL);
        });
        w.commit();
      } catch (...) {
      }
      _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << step;
    Reader r = Reader::open(t.sub("ix"), 1);
    r.check();
    const bool new_state = std::string(step) == "store";
    EXPECT_EQ(r.manifest().counts.records, new_state ? 169u : 100u) << step;
    EXPECT_EQ(r.manifest().generation, new_state ? 2u : 1u) << step;
    // the next writer cleans up what the killed one left and works
    {
      Writer w = Writer::open(t.sub("ix"), 1);
      w.upsert(entry(500, 16, 4));
      w.commit();
    }
    Reader r2 = Reader::open(t.sub("ix"), 1);
    r2.check();
    EXPECT_EQ(r2.manifest().counts.records, new_state ? 170u : 101u);
    size_t gen_files = 0;
    for (auto& e : fs::directory_iterator(t.sub("ix"))) {
      std::string name = e.path().filename().string();
      gen_files += name.starts_with("vectors.") || name.starts_with("bm25.");
      EXPECT_FALSE(name.ends_with(".tmp")) << name;
    }
    EXPECT_EQ(gen_files, 2u) << "only the current generation's files remain";
  }
}

TEST(IndexStore, KilledBuildLeavesNothingThatLooksWhole) {
  TempDir t;
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    try {
      Settings s;
      Writer w = Writer::create(t.sub("ix"), s, false, 1);
      for (size_t i = 0; i < 50; ++i) w.upsert(entry(i, 16, 1));
      w.set_commit_hook([](const char* s) {
        if (std::string(s) == "store") ::raise(SIGKILL);
      });
      w.commit();
    } catch (...) {
    }
    _exit(0);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status));
  EXPECT_FALSE(fs::exists(t.sub("ix")));
  EXPECT_FALSE(is_index_dir(t.sub("ix")));
  auto leftovers = [&] {
    size_t n = 0;
    for (auto& e : fs::directory_iterator(t.path)) n += e.path().filename().string().starts_with(".ix.tmp-");
    return n;
  };
  EXPECT_EQ(leftovers(), 1u);  // the killed build's work directory
  // the next build of the same index removes it, and succeeds
  Settings s;
  build(t.sub("ix"), s, 10);
  EXPECT_EQ(leftovers(), 0u);
  EXPECT_TRUE(is_index_dir(t.sub("ix")));
}

TEST(IndexStore, ReaderKeepsItsSnapshotWhileAWriterCommits) {
  TempDir t;
  Settings s;
  s.dim = 16;
  build(t.sub("ix"), s, 100);
  Reader before = Reader::open(t.sub("ix"), 1);
  {
    Writer w = Writer::open(t.sub("ix"), 1);
    for (size_t i = 0; i < 100; ++i) w.upsert(entry(i, 16, 7, "d"));  // every record replaced
    w.commit();
  }
  auto q = queries(1, 16);
  auto old_hits = dense_ids(before, q.data(), 5);
  ASSERT_EQ(old_hits.size(), 5u);
  // the old reader still answers from generation 1: its vectors, its records
  Reader after = Reader::open(t.sub("ix"), 1);
  EXPECT_EQ(before.manifest().generation, 1u);
  EXPECT_EQ(after.manifest().generation, 2u);
  auto new_hits = dense_ids(after, q.data(), 5);
  EXPECT_NE(old_hits, new_hits);
  Entry e = entry(size_t(std::stoi(old_hits[0].first.substr(1))), 16, 1);
  float dot = 0;
  for (size_t j = 0; j < 16; ++j) dot += e.vec[j] * q[j];
  EXPECT_NEAR(old_hits[0].second, dot, 1e-4);
}

TEST(IndexStore, DamagedDirectoriesAreClearErrors) {
  TempDir t;
  Settings s;
  s.dim = 16;
  build(t.sub("ix"), s, 20);
  auto expect_error = [](const std::function<void()>& fn, Error::Kind kind, const std::string& fragment) {
    try {
      fn();
      ADD_FAILURE() << "no error; expected: " << fragment;
    } catch (const Error& e) {
      EXPECT_EQ(int(e.kind()), int(kind)) << e.located();
      EXPECT_NE(e.located().find(fragment), std::string::npos) << e.located();
    }
  };
  expect_error([&] { Reader::open(t.sub("nothing"), 1); }, Error::Kind::Usage, "no such index directory");
  fs::create_directory(t.sub("foreign"));
  std::ofstream(t.sub("foreign/notes.txt")) << "hello";
  expect_error([&] { Reader::open(t.sub("foreign"), 1); }, Error::Kind::BadInput, "not a loom index");
  expect_error([&] { Writer::create(t.sub("foreign"), s, true, 1); }, Error::Kind::Usage, "not a loom index");
  expect_error([&] { Writer::create(t.sub("ix"), s, false, 1); }, Error::Kind::Usage, "exists already");
  // a vector file cut short
  fs::copy(t.sub("ix"), t.sub("cut"), fs::copy_options::recursive);
  std::string f = faiss_file(t.sub("cut"));
  fs::resize_file(f, fs::file_size(f) / 2);
  expect_error([&] { Reader::open(t.sub("cut"), 1); }, Error::Kind::BadInput, "corrupt vector index");
  // a store that is not SQLite
  fs::copy(t.sub("ix"), t.sub("junk"), fs::copy_options::recursive);
  for (auto& e : fs::directory_iterator(t.sub("junk")))
    if (e.path().filename().string().starts_with("store.sqlite")) fs::remove(e.path());
  std::ofstream(t.sub("junk/store.sqlite")) << std::string(4096, 'x');
  expect_error([&] { Reader::open(t.sub("junk"), 1); }, Error::Kind::BadInput, "store.sqlite");
  // dimension mismatch
  Writer w = Writer::open(t.sub("ix"), 1);
  expect_error([&] { w.upsert(entry(1, 8, 1)); }, Error::Kind::BadInput, "has 8 dimensions; the index has 16");
}

TEST(IndexStore, ParseVector) {
  EXPECT_EQ(parse_vector("[1,2.5,-3e-1]", "e"), (std::vector<float>{1.f, 2.5f, -0.3f}));
  float v[2] = {0.25f, -7.f};
  std::string b64 = "\"" + io::base64_encode(std::string(reinterpret_cast<char*>(v), 8)) + "\"";
  EXPECT_EQ(parse_vector(b64, "e"), (std::vector<float>{0.25f, -7.f}));
  float nan = std::nanf("");
  std::string bad = "\"" + io::base64_encode(std::string(reinterpret_cast<char*>(&nan), 4)) + "\"";
  for (auto [raw, why] : std::vector<std::pair<std::string, std::string>>{
           {bad, "NaN"}, {"[1e39]", "infinite"}, {"\"abc\"", "not base64"}, {"{}", "expected an array"},
           {"[\"1\"]", "not a number"}}) {
    try {
      parse_vector(raw, "embedding");
      ADD_FAILURE() << raw;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(why), std::string::npos) << raw << ": " << e.what();
    }
  }
  try {
    parse_vector("\"AAAA\"", "embedding");  // 3 bytes
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not a whole number of float32"), std::string::npos) << e.what();
  }
}

TEST(IndexStore, ManifestRoundTrip) {
  Manifest m;
  m.settings.factory = "IVF64,PQ8";
  m.settings.metric = Metric::L2;
  m.settings.normalize = true;
  m.settings.dim = 384;
  m.settings.model = {"minilm", "cls", false, "query: "};
  m.settings.bm25_params = {1.2, 0.5, "none", "none"};
  m.settings.nprobe = 7;
  m.counts = {10, 10, 9};
  m.generation = 4;
  m.created = "2026-01-01T00:00:00Z";
  m.updated = "2026-01-02T00:00:00Z";
  Manifest r = Manifest::from_json(m.to_json(), "m");
  EXPECT_EQ(r.to_json(), m.to_json());
  EXPECT_EQ(r.settings.factory, "IVF64,PQ8");
  EXPECT_EQ(r.settings.model.query_prefix, "query: ");
  EXPECT_EQ(r.settings.model.pooling, "cls");
  EXPECT_FALSE(r.settings.model.normalize);
  EXPECT_EQ(r.settings.bm25_params.k1, 1.2);
  EXPECT_THROW(Manifest::from_json("{\"format\":\"other\"}", "m"), Error);
  EXPECT_THROW(Manifest::from_json("[", "m"), Error);
}

// Merging shards: the first shard's trained quantizer is kept (no retraining), every record is there.
TEST(IndexStore, MergeKeepsTheFirstShardsTraining) {
  TempDir t;
  Settings s;
  s.factory = "IVF8,Flat";
  s.dim = 16;
  s.nprobe = 8;
  build(t.sub("a"), s, 300, 1);
  {
    Writer w = Writer::create(t.sub("b"), s, false, 1);
    for (size_t i = 0; i < 300; ++i) w.upsert(entry(i, 16, 2, "b"));
    w.commit();
  }
  {
    Writer w = Writer::create(t.sub("m"), s, false, 1);
    w.upsert_all_from(t.sub("a"));
    w.upsert_all_from(t.sub("b"));
    w.commit();
  }
  Reader m = Reader::open(t.sub("m"), 1);
  m.check();
  EXPECT_EQ(m.manifest().counts.records, 600u);
  auto centroids = [](const std::string& file) {
    std::unique_ptr<faiss::Index> idx(faiss::read_index(file.c_str()));
    auto* ivf = faiss::ivflib::extract_index_ivf(idx.get());
    std::vector<float> c(ivf->nlist * size_t(ivf->d));
    ivf->quantizer->reconstruct_n(0, faiss::Index::idx_t(ivf->nlist), c.data());
    return c;
  };
  auto ca = centroids(faiss_file(t.sub("a"))), cb = centroids(faiss_file(t.sub("b"))), cm = centroids(faiss_file(t.sub("m")));
  EXPECT_EQ(cm, ca);
  EXPECT_NE(cm, cb);
  // every record answers a search for its own vector (nprobe = nlist: exact)
  for (size_t i : {0, 150, 299}) {
    Entry e = entry(i, 16, 2, "b");
    std::vector<int64_t> labels;
    std::vector<float> scores;
    std::vector<int64_t> allowed;
    m.for_each([&](uint64_t label, std::string_view id, std::string_view) {
      if (id == e.id) allowed.push_back(int64_t(label));
    });
    ASSERT_EQ(allowed.size(), 1u);
    m.search(e.vec.data(), 1, 1, {}, &allowed, labels, scores);
    EXPECT_EQ(labels[0], allowed[0]);
  }
}
