// test-faiss-query — queries a FAISS index file with FAISS itself, as a user's script would, so
// the tests can hold loom-retrieve's dense results to FAISS's own (loom's code is not linked).
//
//   test-faiss-query FILE.faiss K [--nprobe N] [--ef N] [--allow LABELS] < queries.jsonl
//
// Each input line is a JSON object whose "embedding" is an array of numbers; all are searched in one
// call (as index.search(xq, k) on a matrix); each output line is
// {"labels":[...],"scores":[...]} (scores as the shortest float32 text). --allow takes a file of
// labels (one per line): the search is restricted to them through FAISS's IDSelector.
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <faiss/AutoTune.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIDMap.h>
#include <faiss/IndexIVF.h>
#include <faiss/impl/IDSelector.h>
#include <faiss/index_io.h>

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: test-faiss-query FILE.faiss K [--nprobe N] [--ef N] [--allow LABELS] < queries.jsonl\n");
    return 2;
  }
  std::unique_ptr<faiss::Index> index(faiss::read_index(argv[1]));
  const long k = std::atol(argv[2]);
  std::vector<faiss::Index::idx_t> allowed;
  bool restrict = false;
  faiss::ParameterSpace ps;
  for (int i = 3; i + 1 < argc; i += 2) {
    std::string opt = argv[i];
    if (opt == "--nprobe") ps.set_index_parameter(index.get(), "nprobe", std::atof(argv[i + 1]));
    else if (opt == "--ef") ps.set_index_parameter(index.get(), "efSearch", std::atof(argv[i + 1]));
    else if (opt == "--allow") {
      restrict = true;
      FILE* f = std::fopen(argv[i + 1], "r");
      long long l;
      while (f && std::fscanf(f, "%lld", &l) == 1) allowed.push_back(l);
      if (f) std::fclose(f);
    }
  }
  const size_t d = size_t(index->d);
  // every query first, then one search call for all of them, as a script calling
  // index.search(xq, k) on a matrix does (transforms like PCA round differently per batch size)
  std::vector<float> xq;
  size_t n = 0;
  std::string line;
  while (std::getline(std::cin, line)) {
    auto p = line.find("\"embedding\":[");
    if (p == std::string::npos) continue;
    const char* s = line.data() + p + 13;
    std::vector<float> q;
    while (*s && *s != ']') {
      double v;
      auto [e, ec] = std::from_chars(s, line.data() + line.size(), v);
      if (ec != std::errc()) return 2;
      q.push_back(float(v));
      s = e;
      if (*s == ',') ++s;
    }
    if (q.size() != d) return 2;
    xq.insert(xq.end(), q.begin(), q.end());
    ++n;
  }
  {
    const float* qs = xq.data();
    std::vector<float> D(n * size_t(k));
    std::vector<faiss::Index::idx_t> I(n * size_t(k));
    if (!restrict) {
      index->search(faiss::Index::idx_t(n), qs, k, D.data(), I.data());
    } else {
      // FAISS's own way: a selector over the ids the index holds
      faiss::IDSelectorBatch sel(allowed.size(), allowed.data());
      auto map = dynamic_cast<faiss::IndexIDMap2*>(index.get());
      faiss::Index* inner = map ? map->index : index.get();
      std::vector<faiss::Index::idx_t> positions;
      if (map)
        for (size_t j = 0; j < map->id_map.size(); ++j)
          if (sel.is_member(map->id_map[j])) positions.push_back(faiss::Index::idx_t(j));
      faiss::IDSelectorBatch inner_sel(positions.size(), positions.data());
      faiss::IDSelector* use = map ? static_cast<faiss::IDSelector*>(&inner_sel) : &sel;
      if (auto h = dynamic_cast<faiss::IndexHNSW*>(inner)) {
        faiss::SearchParametersHNSW sp;
        sp.efSearch = h->hnsw.efSearch;
        sp.sel = use;
        inner->search(faiss::Index::idx_t(n), qs, k, D.data(), I.data(), &sp);
      } else if (auto ivf = dynamic_cast<faiss::IndexIVF*>(inner)) {
        faiss::SearchParametersIVF sp;
        sp.nprobe = ivf->nprobe;
        sp.sel = use;
        inner->search(faiss::Index::idx_t(n), qs, k, D.data(), I.data(), &sp);
      } else {
        faiss::SearchParameters sp;
        sp.sel = use;
        inner->search(faiss::Index::idx_t(n), qs, k, D.data(), I.data(), &sp);
      }
      if (map)
        for (auto& x : I)
          if (x >= 0) x = map->id_map[size_t(x)];
    }
    for (size_t row = 0; row < n; ++row) {
      std::string out = "{\"labels\":[", scores = "],\"scores\":[";
      bool first = true;
      for (size_t j = row * size_t(k); j < (row + 1) * size_t(k); ++j) {
        if (I[j] < 0) continue;
        if (!first) out += ',', scores += ',';
        first = false;
        out += std::to_string(I[j]);
        char buf[32];
        auto r = std::to_chars(buf, buf + sizeof buf, D[j]);
        scores.append(buf, r.ptr);
      }
      std::cout << out << scores << "]}\n";
    }
  }
  return 0;
}
