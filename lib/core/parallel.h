// parallel_for: fn(i) for i in [0, n) on up to `threads` threads (the caller's thread included
// when threads <= 1). Work is handed out one index at a time, so uneven items balance.
#pragma once
#include <algorithm>
#include <atomic>
#include <cstddef>
#include <thread>
#include <vector>

namespace loom {

template <typename Fn>
void parallel_for(size_t n, unsigned threads, Fn&& fn) {
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t i; (i = next.fetch_add(1)) < n;) fn(i);
  };
  unsigned workers = static_cast<unsigned>(std::min<size_t>(threads, n));
  if (workers <= 1) return work();
  std::vector<std::thread> pool;
  for (unsigned w = 0; w < workers; ++w) pool.emplace_back(work);
  for (auto& t : pool) t.join();
}

}  // namespace loom
