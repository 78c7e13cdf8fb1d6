// loom::index — the index directory that `loom index` writes and `loom retrieve` reads.
//
// A directory holds one searchable collection of records:
//
//   DIR/manifest.json        what the index is (format, dimension, metric, normalization, the
//                            embedding model, the FAISS factory string and search defaults, BM25
//                            parameters, counts, generation, timestamps); a copy for people and
//                            scripts, rewritten after every change
//   DIR/store.sqlite         the records (id, the record's JSON without its vector, the vector as
//                            float32 bytes), and the same manifest: the store is the one source of
//                            truth, changed in one SQLite transaction per write
//   DIR/vectors.<G>.faiss    the FAISS index of generation G (labels = the store's row labels)
//   DIR/bm25.<G>.bin         the BM25 inverted index of generation G (see bm25.h)
//   DIR/lock                 held (flock) by the one writer at a time
//
// Crash safety. A write builds generation G+1 beside G: the new FAISS and BM25 files are written
// under temporary names, synced and renamed to their generation's names, and only then does the
// store's transaction, which changes the records and sets the generation to G+1, commit. A writer
// killed at any moment leaves either G (the transaction rolls back; the orphaned G+1 files are
// removed by the next writer) or G+1. Readers take a snapshot: one SQLite read transaction (WAL
// mode) that fixes the generation and the records, then the files of that generation; a reader
// that finds them already replaced starts over. So readers keep working while a writer adds, and
// never see a mix of two states.
//
// Labels: each stored record gets a 64-bit label, never reused; an upsert of an existing id gives
// the new version a new label and removes the old one everywhere (vectors, store, BM25).
//
// Vectors: `dim` float32 values each. With normalize, vectors (and queries) are L2-normalized
// before they reach FAISS, so an inner-product index ranks by cosine similarity.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "loom/index/bm25.h"

namespace loom::index {

enum class Metric { InnerProduct, L2 };
const char* metric_name(Metric m);  // "ip", "l2"

// The embedding model that made the index's vectors: queries given as text are embedded with it.
struct ModelInfo {
  std::string name;          // as given to -m (a name under $LOOM_MODELS or a path); empty = unknown
  std::string pooling;       // token vectors to one: mean, cls, last, max, mean_sqrt_len
  bool normalize = true;     // vectors L2-normalized after pooling
  std::string query_prefix;  // put before query texts (e5: "query: ")
};

// Fixed when the index is built.
struct Settings {
  std::string factory = "Flat";  // FAISS index_factory string
  Metric metric = Metric::InnerProduct;
  bool normalize = false;
  uint32_t dim = 0;  // 0 at build: taken from the first vector
  bool bm25 = true;
  Bm25Params bm25_params;
  std::string text_field = "text";       // the field BM25 indexes (and hits show as text)
  std::string vector_field = "embedding";
  ModelInfo model;
  // search defaults (0: FAISS's own)
  int nprobe = 0;
  int ef_search = 0;
  // training of factories that need it (IVF, PQ...): at most this many vectors, sampled with seed
  size_t train_size = 0;  // 0: all of them
  uint64_t seed = 1;
};

struct Counts {
  uint64_t records = 0, vectors = 0, bm25_docs = 0;
};

// The manifest: settings plus what changes with each write.
struct Manifest {
  int format_version = 1;
  Settings settings;
  Counts counts;
  uint64_t generation = 0;
  std::string created, updated;  // ISO 8601 UTC
  std::string to_json() const;    // pretty, as written to manifest.json
  static Manifest from_json(std::string_view json, const std::string& where);
};

// A record on its way in: its id, its JSON without the vector field, its text (BM25), its vector.
struct Entry {
  std::string id;
  std::string json;
  std::optional<std::string> text;
  std::vector<float> vec;
};

// Reads a vector field's value: a JSON array of numbers or base64 of little-endian float32.
// Throws loom::Error (bad input) for anything else, NaN or infinite values included.
std::vector<float> parse_vector(std::string_view raw, std::string_view field);

// One writer of an index directory. Changes are staged with upsert()/remove() (the records go into
// an open store transaction at once; vectors and BM25 terms wait in memory) and become visible
// together at commit(). Destroying a writer without commit() discards everything it staged.
class Writer {
 public:
  // A new index at `dir` (which must not exist, unless `replace`: an existing loom index there is
  // replaced once the new one is complete). The first upsert fixes the dimension when
  // settings.dim is 0.
  static Writer create(const std::string& dir, const Settings& settings, bool replace, unsigned threads);
  // An existing index (waits for another writer to finish).
  static Writer open(const std::string& dir, unsigned threads);
  ~Writer();
  Writer(Writer&&) noexcept;

  const Manifest& manifest() const;
  // The model recorded for text queries (build sets it once the dimension is known).
  void set_model(ModelInfo model);
  // Adds or replaces the record with e.id. Returns true when it replaced one.
  bool upsert(Entry&& e);
  // Removes the record with this id; false when there is none.
  bool remove(const std::string& id);
  // Every record of another index (merge): upserted in its label order. For a new index, the first
  // one merged also gives its trained FAISS state (IVF centroids, PQ codebooks), emptied.
  void upsert_all_from(const std::string& other_dir);
  // Publishes the staged changes as the next generation.
  void commit();
  // What FAISS said while training (its k-means warnings), each distinct line once.
  const std::vector<std::string>& warnings() const;
  // With a hook, commit() calls it between its steps ("faiss", "bm25", "store") — crash tests.
  void set_commit_hook(std::function<void(const char*)> hook);

 private:
  Writer();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

struct SearchParams {
  int nprobe = 0;     // 0: the index's default
  int ef_search = 0;  // 0: the index's default
};

// A consistent read-only view of an index (see Crash safety).
class Reader {
 public:
  friend class Writer;
  static Reader open(const std::string& dir, unsigned threads);
  ~Reader();
  Reader(Reader&&) noexcept;

  const Manifest& manifest() const;
  bool has_bm25() const;

  // Dense search of n queries (n * dim floats, normalized here when the index normalizes):
  // k results per query into labels/scores (n * k each; label -1 where fewer exist). Scores are
  // inner products for ip, squared distances for l2. Flat indexes are scanned by loom itself
  // (each pair's score in one fixed order, ties by label: the same bits whatever the batch or the
  // index's history); the others by FAISS. `allowed` (sorted labels), when given, restricts it.
  void search(const float* queries, size_t n, size_t k, const SearchParams& params,
              const std::vector<int64_t>* allowed, std::vector<int64_t>& labels, std::vector<float>& scores) const;
  // BM25 search of one query text.
  std::vector<std::pair<uint64_t, float>> search_bm25(std::string_view text, size_t k,
                                                      const std::vector<int64_t>* allowed) const;
  // A stored record's JSON (without its vector).
  std::string record(uint64_t label) const;
  // Every stored record, in label order: fn(label, id, json).
  void for_each(const std::function<void(uint64_t, std::string_view, std::string_view)>& fn) const;
  // Cross-checks the parts (FAISS count, BM25 documents, store rows agree). Throws on a mismatch.
  void check() const;

 private:
  Reader();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// True when `dir` looks like a loom index (has manifest.json and store.sqlite).
bool is_index_dir(const std::string& dir);

}  // namespace loom::index
