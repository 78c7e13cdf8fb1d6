// loom::eval retrieval metrics: reading qrels and runs, trec_eval's measures (see retrieval.h).
//
// Bit-exactness with trec_eval rests on doing its arithmetic in its order: every sum runs over
// ranks in rank order (and the means over queries in byte order of their ids), every ratio is the
// same division. Prefix sums give each cutoff the partial sum trec_eval has at that cutoff. No
// multiply-add may be fused (it would round once where trec_eval rounds twice), hence the pragmas.
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include "loom/eval/retrieval.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <initializer_list>
#include <limits>
#include <optional>
#include <unordered_map>

#include <fmt/format.h>

#include "loom/core/error.h"
#include "loom/io/json.h"
#include "loom/io/jsonl.h"
#include "loom/io/stream.h"

namespace loom::eval {

// The file's bytes (TREC ids are views into them) and the decoded JSON ids.
struct TextStore {
  io::FileBytes file;
  std::string owned;  // bytes handed to parse_*()
  std::vector<std::unique_ptr<char[]>> blocks;
  char* cur = nullptr;
  size_t left = 0;

  std::string_view bytes() const { return owned.empty() ? file.view() : std::string_view(owned); }
  std::string_view keep(std::string_view s) {
    if (s.empty()) return {};
    if (s.size() > left) {
      size_t n = std::max<size_t>(s.size(), 1 << 20);
      blocks.push_back(std::make_unique<char[]>(n));
      cur = blocks.back().get();
      left = n;
    }
    std::memcpy(cur, s.data(), s.size());
    std::string_view v(cur, s.size());
    cur += s.size();
    left -= s.size();
    return v;
  }
};

namespace {

// ---- small helpers --------------------------------------------------------------------------------

uint64_t hash_bytes(std::string_view s) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ULL;
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  return h;
}

// String -> int, open addressing with linear probing; reset() per query, so one table serves all.
class StrTable {
 public:
  void reset(size_t n) {
    size_t cap = 16;
    while (cap < 2 * n) cap <<= 1;
    if (slots_.size() < cap || slots_.size() > 8 * cap) slots_.resize(cap);
    std::fill(slots_.begin(), slots_.begin() + cap, Slot{});
    mask_ = cap - 1;
  }
  // Inserts key -> value; returns nullptr, or the value already there (which is kept).
  const int* insert(std::string_view key, int value) {
    uint64_t h = hash_bytes(key) | 1;  // 0 marks an empty slot
    for (size_t i = h & mask_;; i = (i + 1) & mask_) {
      Slot& s = slots_[i];
      if (s.hash == 0) {
        s = {h, key, value};
        return nullptr;
      }
      if (s.hash == h && s.key == key) return &s.value;
    }
  }
  const int* find(std::string_view key) const {
    uint64_t h = hash_bytes(key) | 1;
    for (size_t i = h & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.hash == 0) return nullptr;
      if (s.hash == h && s.key == key) return &s.value;
    }
  }

 private:
  struct Slot {
    uint64_t hash = 0;
    std::string_view key;
    int value = 0;
  };
  std::vector<Slot> slots_;
  size_t mask_ = 0;
};

// Query id -> index, in order of first appearance, with a shortcut for runs of equal ids (the
// lines of a query usually follow one another).
class QueryIndex {
 public:
  // Index of `id`, and whether it is new.
  std::pair<size_t, bool> get(std::string_view id) {
    if (last_ < ids_.size() && ids_[last_] == id) return {last_, false};
    auto [it, added] = map_.try_emplace(id, ids_.size());
    if (added) ids_.push_back(id);
    last_ = it->second;
    return {last_, added};
  }

 private:
  std::unordered_map<std::string_view, size_t> map_;
  std::vector<std::string_view> ids_;
  size_t last_ = 0;
};

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }

// 1-based line of the byte at `at` within `text`.
size_t line_of(std::string_view text, const char* at) {
  return 1 + static_cast<size_t>(std::count(text.data(), at, '\n'));
}

std::string_view skip_bom(std::string_view s) {
  if (s.substr(0, 3) == "\xEF\xBB\xBF") s.remove_prefix(3);
  return s;
}

bool looks_like_jsonl(std::string_view s) {
  for (char c : s) {
    if (c == '{') return true;
    if (!is_space(c) && c != '\n') return false;
  }
  return false;
}

// Integer relevance: optional sign and decimal digits, the whole field, within int.
bool parse_int(std::string_view f, int& out) {
  if (!f.empty() && f[0] == '+') f.remove_prefix(1);
  if (f.empty() || f[0] == '+') return false;
  auto r = std::from_chars(f.data(), f.data() + f.size(), out);
  return r.ec == std::errc() && r.ptr == f.data() + f.size();
}

// A score: what strtod reads in full (std::from_chars first: the same value, faster), not NaN.
bool parse_score(std::string_view f, double& out) {
  auto r = std::from_chars(f.data(), f.data() + f.size(), out);
  if (r.ec != std::errc() || r.ptr != f.data() + f.size()) {
    // strtod also takes a leading '+', hexadecimal and out-of-range values (as +-inf or 0).
    std::string s(f);
    char* end = nullptr;
    out = std::strtod(s.c_str(), &end);
    if (s.empty() || end != s.c_str() + s.size() || is_space(s[0])) return false;
  }
  return !std::isnan(out);
}

std::string quoted(std::string_view s) {
  std::string out;
  json::append_string_unchecked(out, s.size() > 200 ? s.substr(0, 200) : s);
  return out;
}

// Splits a TREC line into at most `max` whitespace-separated fields; returns how many there were
// (counting past `max`).
size_t split_fields(std::string_view line, std::string_view* fields, size_t max) {
  size_t n = 0, i = 0;
  while (true) {
    while (i < line.size() && is_space(line[i])) ++i;
    if (i == line.size()) return n;
    size_t start = i;
    while (i < line.size() && !is_space(line[i])) ++i;
    if (n < max) fields[n] = line.substr(start, i - start);
    ++n;
  }
}

// Calls fn(line, line_number) for every line of text that is not blank (whitespace only), the
// line without its leading whitespace; `comments`: lines starting with '#' are skipped too.
template <typename Fn>
void for_each_line(std::string_view text, bool comments, Fn&& fn) {
  const char* p = text.data();
  const char* end = p + text.size();
  size_t line_no = 0;
  while (p < end) {
    const char* nl = static_cast<const char*>(std::memchr(p, '\n', static_cast<size_t>(end - p)));
    if (!nl) nl = end;
    ++line_no;
    std::string_view line(p, static_cast<size_t>(nl - p));
    p = nl + 1;
    size_t i = 0;
    while (i < line.size() && is_space(line[i])) ++i;
    if (i == line.size() || (comments && line[i] == '#')) continue;
    fn(line.substr(i), line_no);
  }
}

// Calls fn(record, line_number) for every non-blank line of JSONL text.
template <typename Fn>
void for_each_record(std::string_view text, const std::string& name, Fn&& fn) {
  io::Record rec;
  for_each_line(text, false, [&](std::string_view line, size_t line_no) {
    while (!line.empty() && is_space(line.back())) line.remove_suffix(1);
    try {
      rec = io::Record::parse(line);
      fn(rec, line_no);
    } catch (Error& e) {
      throw e.at(name, line_no);
    }
  });
}

// ---- compact JSON (as a Record holds it: validated, no insignificant whitespace) ------------------

// End of the value starting at p.
const char* skip_value(const char* p, const char* end) {
  if (*p == '"') {
    for (++p; *p != '"'; ++p)
      if (*p == '\\') ++p;
    return p + 1;
  }
  if (*p == '{' || *p == '[') {
    int depth = 0;
    for (; p < end; ++p) {
      char c = *p;
      if (c == '"') {
        p = skip_value(p, end) - 1;
      } else if (c == '{' || c == '[') {
        ++depth;
      } else if ((c == '}' || c == ']') && --depth == 0) {
        return p + 1;
      }
    }
    return end;
  }
  while (p < end && *p != ',' && *p != '}' && *p != ']') ++p;
  return p;
}

// Calls fn(raw_key, raw_value) for each member of the object `obj` (compact JSON text).
template <typename Fn>
void for_each_member(std::string_view obj, Fn&& fn) {
  const char* p = obj.data() + 1;
  const char* end = obj.data() + obj.size() - 1;  // at the closing '}'
  while (p < end) {
    const char* k = p;
    p = skip_value(p, end);
    std::string_view key(k, static_cast<size_t>(p - k));
    const char* v = ++p;  // past ':'
    p = skip_value(p, end);
    fn(key, std::string_view(v, static_cast<size_t>(p - v)));
    if (p < end) ++p;  // past ','
  }
}

// Calls fn(raw_element, index) for each element of the array `arr`.
template <typename Fn>
void for_each_element(std::string_view arr, Fn&& fn) {
  const char* p = arr.data() + 1;
  const char* end = arr.data() + arr.size() - 1;
  size_t i = 0;
  while (p < end) {
    const char* v = p;
    p = skip_value(p, end);
    fn(std::string_view(v, static_cast<size_t>(p - v)), i++);
    if (p < end) ++p;
  }
}

bool is_integer_text(std::string_view v) {
  size_t i = !v.empty() && v[0] == '-';
  if (i == v.size()) return false;
  for (; i < v.size(); ++i)
    if (v[i] < '0' || v[i] > '9') return false;
  return true;
}

// An id: a JSON string (decoded) or integer (its digits), kept in the store; nullopt for other JSON.
std::optional<std::string_view> keep_id(TextStore& store, std::string_view raw, std::string& scratch) {
  if (!raw.empty() && raw[0] == '"') {
    std::string_view body = raw.substr(1, raw.size() - 2);
    if (body.find('\\') == std::string_view::npos) return store.keep(body);
    scratch.clear();
    json::unescape_string(raw, scratch);
    return store.keep(scratch);
  }
  if (is_integer_text(raw)) return store.keep(raw);
  return std::nullopt;
}

Error not_an_id(std::string_view what, std::string_view raw) {
  return input_error(fmt::format("{} must be a string or an integer, not {}", what, raw.substr(0, 100)));
}

std::optional<std::string_view> first_field(const io::Record& rec, std::initializer_list<std::string_view> keys) {
  for (std::string_view k : keys) {
    auto v = rec.raw(k);
    if (v && *v != "null") return v;
  }
  return std::nullopt;
}

Error not_a_rel(std::string_view doc, std::string_view raw) {
  return input_error(fmt::format("the relevance of {} must be an integer, not {}", quoted(doc), raw.substr(0, 100)));
}

std::shared_ptr<TextStore> load(const std::string& path) {
  auto store = std::make_shared<TextStore>();
  store->file = io::FileBytes::load(path);
  return store;
}

// ---- qrels ------------------------------------------------------------------------------------------

Qrels parse_qrels_store(std::shared_ptr<TextStore> store, const std::string& name) {
  Qrels q;
  std::string_view text = skip_bom(store->bytes());
  QueryIndex index;
  auto add = [&](std::string_view qid, std::string_view doc, int rel) {
    auto [i, added] = index.get(qid);
    if (added) q.queries.push_back({qid, {}});
    q.queries[i].judgments.push_back({doc, rel});
  };
  bool jsonl = looks_like_jsonl(text);
  std::vector<std::vector<size_t>> lines;  // JSONL: per query, the line of each judgment
  if (!jsonl) {
    for_each_line(text, true, [&](std::string_view line, size_t line_no) {
      std::string_view f[4];
      size_t n = split_fields(line, f, 4);
      if (n != 4)
        throw input_error(fmt::format("expected 4 columns (query_id iteration doc_id relevance), found {}", n), name, line_no);
      int rel = 0;
      if (!parse_int(f[3], rel)) throw input_error(fmt::format("relevance {} is not an integer", quoted(f[3])), name, line_no);
      add(f[0], f[2], rel);
    });
  } else {
    std::string scratch;
    for_each_record(text, name, [&](const io::Record& rec, size_t line_no) {
      auto qraw = first_field(rec, {"query_id", "qid"});
      if (!qraw) throw input_error("record has no \"query_id\" (or \"qid\")");
      auto qid = keep_id(*store, *qraw, scratch);
      if (!qid) throw not_an_id("query_id", *qraw);
      auto rraw = first_field(rec, {"relevance", "rel"});
      if (!rraw) throw input_error("record has no \"relevance\" (or \"rel\")");
      auto note = [&](std::string_view doc, std::string_view rel_raw) {
        int rel = 0;
        if (!parse_int(rel_raw, rel)) throw not_a_rel(doc, rel_raw);
        add(*qid, doc, rel);
        size_t i = index.get(*qid).first;
        if (lines.size() <= i) lines.resize(i + 1);
        lines[i].push_back(line_no);
      };
      if ((*rraw)[0] == '{') {
        for_each_member(*rraw, [&](std::string_view k, std::string_view v) {
          note(*keep_id(*store, k, scratch), v);  // a key: always a string
        });
      } else {
        auto draw = first_field(rec, {"doc_id", "docid"});
        if (!draw) throw input_error("record has no \"doc_id\" (or \"docid\")");
        auto doc = keep_id(*store, *draw, scratch);
        if (!doc) throw not_an_id("doc_id", *draw);
        note(*doc, *rraw);
      }
    });
  }
  // Duplicates, reported at the line of the later judgment.
  StrTable seen;
  for (size_t i = 0; i < q.queries.size(); ++i) {
    const auto& js = q.queries[i].judgments;
    seen.reset(js.size());
    for (size_t j = 0; j < js.size(); ++j)
      if (seen.insert(js[j].doc, 0))
        throw input_error(fmt::format("document {} is judged twice for query {}", quoted(js[j].doc), quoted(q.queries[i].id)),
                          name, jsonl ? lines[i][j] : line_of(text, js[j].doc.data()));
  }
  q.store = std::move(store);
  return q;
}

// ---- runs -------------------------------------------------------------------------------------------

Run parse_run_store(std::shared_ptr<TextStore> store, const std::string& name) {
  Run run;
  std::string_view text = skip_bom(store->bytes());
  QueryIndex index;
  bool jsonl = looks_like_jsonl(text);
  std::vector<size_t> query_line;  // JSONL: the record of each query
  if (!jsonl) {
    for_each_line(text, true, [&](std::string_view line, size_t line_no) {
      std::string_view f[6];
      size_t n = split_fields(line, f, 6);
      if (n != 6)
        throw input_error(fmt::format("expected 6 columns (query_id Q0 doc_id rank score run_name), found {}", n), name,
                          line_no);
      double score = 0;
      if (!parse_score(f[4], score)) throw input_error(fmt::format("score {} is not a number", quoted(f[4])), name, line_no);
      auto [i, added] = index.get(f[0]);
      if (added) run.queries.push_back({f[0], {}});
      run.queries[i].hits.push_back({f[2], score});
    });
  } else {
    std::string scratch;
    for_each_record(text, name, [&](const io::Record& rec, size_t line_no) {
      auto qraw = first_field(rec, {"query_id", "qid", "id"});
      if (!qraw) throw input_error("record has no \"id\" (or \"query_id\", \"qid\")");
      auto qid = keep_id(*store, *qraw, scratch);
      if (!qid) throw not_an_id("the query id", *qraw);
      auto [qi, added] = index.get(*qid);
      if (!added)
        throw input_error(fmt::format("query {} appears again (first at line {})", quoted(*qid), query_line[qi]));
      query_line.push_back(line_no);
      auto hraw = rec.raw("hits");
      if (!hraw || (*hraw)[0] != '[') throw input_error("record has no \"hits\" array (loom-retrieve's output)");
      std::vector<Hit> hits;
      for_each_element(*hraw, [&](std::string_view h, size_t k) {
        if (h[0] != '{') throw input_error(fmt::format("hits[{}] is not an object", k));
        std::string_view id, score, rank;
        int id_pri = 0;
        for_each_member(h, [&](std::string_view key, std::string_view v) {
          if (v == "null") return;
          if (key == "\"id\"") id = v, id_pri = 3;
          else if (key == "\"doc_id\"" && id_pri < 2) id = v, id_pri = 2;
          else if (key == "\"docid\"" && id_pri < 1) id = v, id_pri = 1;
          else if (key == "\"score\"") score = v;
          else if (key == "\"rank\"") rank = v;
        });
        if (id.empty()) throw input_error(fmt::format("hits[{}] has no \"id\"", k));
        auto doc = keep_id(*store, id, scratch);
        if (!doc) throw not_an_id(fmt::format("hits[{}].id", k), id);
        Hit hit{*doc, 0.0};
        if (!score.empty()) {
          if (!parse_score(score, hit.score)) throw input_error(fmt::format("hits[{}].score must be a number", k));
        } else if (!rank.empty()) {
          if (!parse_score(rank, hit.score)) throw input_error(fmt::format("hits[{}].rank must be a number", k));
          hit.score = -hit.score;
        } else {
          hit.score = -static_cast<double>(k + 1);
        }
        hits.push_back(hit);
      });
      run.queries.push_back({*qid, std::move(hits)});
    });
  }
  StrTable seen;
  for (size_t i = 0; i < run.queries.size(); ++i) {
    auto& q = run.queries[i];
    seen.reset(q.hits.size());
    for (auto& h : q.hits)
      if (seen.insert(h.doc, 0))
        throw input_error(fmt::format("document {} appears twice in the hits of query {}", quoted(h.doc), quoted(q.id)), name,
                          jsonl ? query_line[i] : line_of(text, h.doc.data()));
  }
  run.store = std::move(store);
  return run;
}

}  // namespace

Qrels read_qrels(const std::string& path) {
  return parse_qrels_store(load(path), path == "-" ? "<stdin>" : path);
}

Run read_run(const std::string& path) {
  return parse_run_store(load(path), path == "-" ? "<stdin>" : path);
}

namespace {
std::shared_ptr<TextStore> own(std::string bytes) {
  auto store = std::make_shared<TextStore>();
  if (io::is_zstd_magic(bytes)) {
    auto in = io::Input::from_memory(std::move(bytes));
    store->owned = io::read_all(*in);
  } else {
    store->owned = std::move(bytes);
  }
  return store;
}
}  // namespace

Qrels parse_qrels(std::string bytes, const std::string& name) { return parse_qrels_store(own(std::move(bytes)), name); }
Run parse_run(std::string bytes, const std::string& name) { return parse_run_store(own(std::move(bytes)), name); }

// ---- measures ---------------------------------------------------------------------------------------

namespace {

struct MetricInfo {
  Metric metric;
  const char* name;  // trec_eval's
  bool cutoffs;
};
constexpr MetricInfo kMetrics[] = {
    {Metric::NumQ, "num_q", false},         {Metric::NumRet, "num_ret", false},
    {Metric::NumRel, "num_rel", false},     {Metric::NumRelRet, "num_rel_ret", false},
    {Metric::Map, "map", false},            {Metric::Rprec, "Rprec", false},
    {Metric::RecipRank, "recip_rank", false}, {Metric::RecipRankCut, "recip_rank_cut", true},
    {Metric::P, "P", true},                 {Metric::Recall, "recall", true},
    {Metric::Ndcg, "ndcg", false},          {Metric::NdcgCut, "ndcg_cut", true},
    {Metric::MapCut, "map_cut", true},      {Metric::Success, "success", true},
};

const MetricInfo& info(Metric m) { return kMetrics[static_cast<int>(m)]; }

constexpr int kDefaultCutoffs[] = {5, 10, 15, 20, 30, 100, 200, 500, 1000};
constexpr int kSuccessCutoffs[] = {1, 5, 10};

const char* kValidNames =
    "map, Rprec, recip_rank, ndcg, num_q, num_ret, num_rel, num_rel_ret, P.K, recall.K, success.K, "
    "ndcg_cut.K, map_cut.K, recip_rank_cut.K (K: one or more cutoffs, comma-separated; P, recall, success, "
    "ndcg_cut and map_cut alone take trec_eval's default cutoffs), and the short forms P@K, recall@K, "
    "success@K, ndcg@K, map@K, mrr, mrr@K, rprec, r-precision";

bool iequal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) return false;
  return true;
}

// The metric a name (without cutoffs) stands for; `at` is true for the NAME@K forms.
std::optional<Metric> metric_named(std::string_view n, bool at) {
  struct Alias {
    const char* name;
    Metric plain, with_at;
  };
  static constexpr Alias aliases[] = {
      {"map", Metric::Map, Metric::MapCut},
      {"ndcg", Metric::Ndcg, Metric::NdcgCut},
      {"mrr", Metric::RecipRank, Metric::RecipRankCut},
      {"recip_rank", Metric::RecipRank, Metric::RecipRankCut},
      {"rprec", Metric::Rprec, Metric::Rprec},
      {"r-precision", Metric::Rprec, Metric::Rprec},
      {"p", Metric::P, Metric::P},
      {"recall", Metric::Recall, Metric::Recall},
      {"success", Metric::Success, Metric::Success},
      {"ndcg_cut", Metric::NdcgCut, Metric::NdcgCut},
      {"map_cut", Metric::MapCut, Metric::MapCut},
      {"recip_rank_cut", Metric::RecipRankCut, Metric::RecipRankCut},
      {"num_q", Metric::NumQ, Metric::NumQ},
      {"num_ret", Metric::NumRet, Metric::NumRet},
      {"num_rel", Metric::NumRel, Metric::NumRel},
      {"num_rel_ret", Metric::NumRelRet, Metric::NumRelRet},
  };
  for (const Alias& a : aliases)
    if (iequal(n, a.name)) return at ? a.with_at : a.plain;
  return std::nullopt;
}

int parse_cutoff(std::string_view s, std::string_view spec) {
  int k = 0;
  auto r = std::from_chars(s.data(), s.data() + s.size(), k);
  if (s.empty() || r.ec != std::errc() || r.ptr != s.data() + s.size() || k <= 0)
    throw usage_error(fmt::format("measure \"{}\": cutoff \"{}\" is not a positive integer", spec, s));
  return k;
}

}  // namespace

std::string Measure::name() const {
  const MetricInfo& m = info(metric);
  return m.cutoffs ? fmt::format("{}_{}", m.name, cutoff) : std::string(m.name);
}

std::vector<Measure> parse_measures(const std::vector<std::string>& specs) {
  std::vector<Measure> out;
  for (const std::string& spec : specs) {
    std::string_view rest = spec;
    Metric open = Metric::NumQ;  // the measure a bare number adds a cutoff to
    bool is_open = false;
    if (rest.empty()) throw usage_error(fmt::format("empty measure name; valid measures: {}", kValidNames));
    while (true) {
      size_t comma = rest.find(',');
      std::string_view tok = rest.substr(0, comma);
      if (tok.empty()) throw usage_error(fmt::format("measure list \"{}\" has an empty item", spec));
      if (std::all_of(tok.begin(), tok.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        if (!is_open)
          throw usage_error(fmt::format(
              "measure list \"{}\": cutoff {} follows no measure with cutoffs (write NAME.K,K or NAME@K,K)", spec, tok));
        out.push_back({open, parse_cutoff(tok, spec)});
      } else {
        size_t sep = tok.find_first_of(".@");
        std::string_view base = tok.substr(0, sep);
        bool at = sep != std::string_view::npos && tok[sep] == '@';
        auto m = metric_named(base, at);
        if (!m) throw usage_error(fmt::format("unknown measure \"{}\"; valid measures: {}", tok, kValidNames));
        const MetricInfo& mi = info(*m);
        is_open = false;
        if (sep != std::string_view::npos) {
          if (!mi.cutoffs)
            throw usage_error(fmt::format("measure \"{}\" takes no cutoff (map@K is map_cut.K, ndcg@K ndcg_cut.K, mrr@K "
                                          "recip_rank_cut.K)",
                                          tok));
          out.push_back({*m, parse_cutoff(tok.substr(sep + 1), spec)});
          open = *m;
          is_open = true;
        } else if (mi.cutoffs) {
          if (*m == Metric::RecipRankCut)
            throw usage_error(fmt::format("measure \"{}\" needs a cutoff, as in recip_rank_cut.10 or mrr@10", tok));
          if (*m == Metric::Success)
            for (int k : kSuccessCutoffs) out.push_back({*m, k});
          else
            for (int k : kDefaultCutoffs) out.push_back({*m, k});
        } else {
          out.push_back({*m, 0});
        }
      }
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
  }
  std::sort(out.begin(), out.end(), [](const Measure& a, const Measure& b) {
    return a.metric != b.metric ? a.metric < b.metric : a.cutoff < b.cutoff;
  });
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

// ---- evaluation -------------------------------------------------------------------------------------

namespace {

// What trec_eval (form_res_rels.c) records for a retrieved document: its relevance when judged
// rel >= 0, else one of these.
constexpr int kNotJudged = -1;     // RELVALUE_NONPOOL
constexpr int kJudgedNegative = -2;  // RELVALUE_UNJUDGED

struct Scorer {
  Scorer(const std::vector<Measure>& m, const Options& o) : measures(m), opt(o) {}
  const std::vector<Measure>& measures;
  const Options& opt;

  StrTable judged;
  struct Ranked {
    double score;
    std::string_view doc;
    int rel;
  };
  std::vector<Ranked> ranked;
  std::vector<int> levels;       // judged rel >= 0, sorted descending
  std::vector<long> rel_upto;    // rel_upto[i]: relevant among the first i
  std::vector<double> ap_upto;   // sum of precisions at the relevant ranks among the first i
  std::vector<double> dcg_upto;  // DCG of the first i
  std::vector<double> idcg_upto; // ideal DCG of the first i ideal ranks
  std::vector<double> log2_of;   // log2_of[i] = log2(i + 2): the discount of rank i + 1

  double gain(int rel) const {
    if (rel <= 0) return 0.0;
    return opt.gain == Gain::Exp ? std::ldexp(1.0, rel) - 1.0 : static_cast<double>(rel);
  }
  double discount(size_t i) {
    while (log2_of.size() <= i) log2_of.push_back(std::log2(static_cast<double>(log2_of.size() + 2)));
    return log2_of[i];
  }

  // Values of every measure for one query; `rq` null when the run does not have it.
  void score(const Qrels::Query& qq, const Run::Query* rq, double* out) {
    const int L = opt.relevance_level;
    judged.reset(qq.judgments.size());
    levels.clear();
    for (const Judgment& j : qq.judgments) {
      judged.insert(j.doc, j.rel);
      if (j.rel >= 0) levels.push_back(j.rel);
    }
    std::sort(levels.begin(), levels.end(), std::greater<>());
    long num_rel = 0;  // judged rel >= max(L, 0)
    for (int r : levels)
      if (r >= L) ++num_rel;

    ranked.clear();
    if (rq) {
      for (const Hit& h : rq->hits) {
        const int* r = judged.find(h.doc);
        ranked.push_back({h.score, h.doc, r ? (*r >= 0 ? *r : kJudgedNegative) : kNotJudged});
      }
      auto before = [](const Ranked& a, const Ranked& b) { return a.score != b.score ? a.score > b.score : a.doc > b.doc; };
      if (!std::is_sorted(ranked.begin(), ranked.end(), before)) std::sort(ranked.begin(), ranked.end(), before);
    }
    const size_t n = ranked.size();

    // Prefix sums over the ranking, in rank order, as trec_eval accumulates them.
    rel_upto.assign(n + 1, 0);
    ap_upto.assign(n + 1, 0.0);
    dcg_upto.assign(n + 1, 0.0);
    long rel_so_far = 0, num_rel_ret = 0;
    double ap = 0.0, dcg = 0.0;
    for (size_t i = 0; i < n; ++i) {
      int rel = ranked[i].rel;
      if (rel >= L) {
        ++rel_so_far;
        ap += static_cast<double>(rel_so_far) / static_cast<double>(i + 1);
      }
      if (rel >= 0 && rel >= L) ++num_rel_ret;
      double g = gain(rel);
      if (g > 0.0) dcg += g / discount(i);
      rel_upto[i + 1] = rel_so_far;
      ap_upto[i + 1] = ap;
      dcg_upto[i + 1] = dcg;
    }
    // Ideal DCG: the judged documents with gain, highest first.
    size_t n_ideal = 0;
    while (n_ideal < levels.size() && gain(levels[n_ideal]) > 0.0) ++n_ideal;
    idcg_upto.assign(n_ideal + 1, 0.0);
    double idcg = 0.0;
    for (size_t i = 0; i < n_ideal; ++i) {
      idcg += gain(levels[i]) / discount(i);
      idcg_upto[i + 1] = idcg;
    }

    for (size_t m = 0; m < measures.size(); ++m) {
      const size_t k = static_cast<size_t>(measures[m].cutoff);
      const size_t kn = std::min(k, n);
      double v = 0.0;
      switch (measures[m].metric) {
        case Metric::NumQ: v = rq ? 1.0 : 0.0; break;
        case Metric::NumRet: v = static_cast<double>(n); break;
        case Metric::NumRel: v = static_cast<double>(num_rel); break;
        case Metric::NumRelRet: v = static_cast<double>(num_rel_ret); break;
        case Metric::Map:
          if (rel_upto[n]) v = ap_upto[n] / static_cast<double>(num_rel);
          break;
        case Metric::MapCut:
          if (num_rel) v = ap_upto[kn] / static_cast<double>(num_rel);
          break;
        case Metric::Rprec: {
          size_t r = std::min(n, static_cast<size_t>(num_rel));
          if (r) v = static_cast<double>(rel_upto[r]) / static_cast<double>(num_rel);
          break;
        }
        case Metric::RecipRank:
        case Metric::RecipRankCut: {
          size_t limit = measures[m].metric == Metric::RecipRank ? n : kn;
          for (size_t i = 0; i < limit; ++i)
            if (ranked[i].rel >= L) {
              v = 1.0 / static_cast<double>(i + 1);
              break;
            }
          break;
        }
        case Metric::P: v = static_cast<double>(rel_upto[kn]) / static_cast<double>(k); break;
        case Metric::Recall:
          if (num_rel) v = static_cast<double>(rel_upto[kn]) / static_cast<double>(num_rel);
          break;
        case Metric::Success: v = rel_upto[kn] ? 1.0 : 0.0; break;
        case Metric::Ndcg:
          if (idcg > 0.0) v = dcg / idcg;
          break;
        case Metric::NdcgCut: {
          double ideal = idcg_upto[std::min(k, n_ideal)];
          v = ideal > 0.0 ? dcg_upto[kn] / ideal : dcg_upto[kn];
          break;
        }
      }
      out[m] = v;
    }
  }
};

}  // namespace

Evaluation evaluate(const Qrels& qrels, const Run& run, const std::vector<Measure>& measures, const Options& options) {
  Evaluation ev;
  ev.measures = measures;
  for (const Measure& m : measures) ev.names.push_back(m.name());

  std::unordered_map<std::string_view, const Run::Query*> in_run;
  in_run.reserve(run.queries.size());
  for (const auto& q : run.queries) in_run.emplace(q.id, &q);
  ev.num_run_queries = in_run.size();

  std::vector<const Qrels::Query*> order;
  order.reserve(qrels.queries.size());
  for (const auto& q : qrels.queries) order.push_back(&q);
  std::sort(order.begin(), order.end(), [](auto* a, auto* b) { return a->id < b->id; });
  ev.num_qrels_queries = order.size();

  Scorer scorer(measures, options);
  ev.queries.reserve(order.size());
  for (const Qrels::Query* qq : order) {
    auto it = in_run.find(qq->id);
    const Run::Query* rq = it == in_run.end() ? nullptr : it->second;
    Evaluation::Query& out = ev.queries.emplace_back();
    out.id = std::string(qq->id);
    out.retrieved = rq != nullptr;
    out.values.resize(measures.size());
    scorer.score(*qq, rq, out.values.data());
    if (rq) ++ev.num_evaluated;
  }

  // trec_eval's "all" with -c (meas_avg.c, m_num_*.c).
  const double nq = static_cast<double>(ev.num_qrels_queries);
  ev.all.assign(measures.size(), 0.0);
  for (size_t m = 0; m < measures.size(); ++m) {
    double sum = 0.0;
    for (const auto& q : ev.queries)
      if (q.retrieved) sum += q.values[m];
    switch (measures[m].metric) {
      case Metric::NumQ: sum = nq; break;
      case Metric::NumRet:
      case Metric::NumRelRet: break;
      case Metric::NumRel:
        sum = 0.0;
        for (const auto& q : qrels.queries)
          for (const Judgment& j : q.judgments) sum += j.rel > 0;
        break;
      default:
        if (nq > 0) sum /= nq;
    }
    ev.all[m] = sum;
  }
  return ev;
}

std::string format_trec(const Evaluation& ev, bool per_query) {
  std::string out;
  char buf[64];
  auto line = [&](size_t m, std::string_view qid, double v) {
    out += ev.names[m];
    if (ev.names[m].size() < 22) out.append(22 - ev.names[m].size(), ' ');
    out += '\t';
    out += qid;
    if (ev.measures[m].integral())
      std::snprintf(buf, sizeof buf, "\t%ld\n", static_cast<long>(v));
    else
      std::snprintf(buf, sizeof buf, "\t%6.4f\n", v);
    out += buf;
  };
  if (per_query)
    for (const auto& q : ev.queries) {
      if (!q.retrieved) continue;
      for (size_t m = 0; m < ev.measures.size(); ++m)
        if (ev.measures[m].metric != Metric::NumQ) line(m, q.id, q.values[m]);
    }
  for (size_t m = 0; m < ev.measures.size(); ++m) line(m, "all", ev.all[m]);
  return out;
}

}  // namespace loom::eval
