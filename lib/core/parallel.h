// Data-parallel loops over indices.
//
// parallel_for(n, threads, fn): fn(i) for i in [0, n) on up to `threads` new threads (the
// caller's own when threads <= 1). For one-off loops.
//
// ThreadPool: the same on threads that live as long as the pool, for loops run again and again
// (a batch of records at a time): no thread start per loop, and per-thread state (such as the
// tokenizer's word cache) survives from one batch to the next.
//
//   ThreadPool pool(4);                      // 3 workers + the calling thread
//   pool.for_each(batch.size(), [&](size_t i) { process(batch[i]); });
//
// Work is handed out one index at a time, so uneven items balance.
//
// SpinPool: the same interface for loops that come back within microseconds (a model's forward
// pass runs hundreds per token): between loops the workers spin for a while before they sleep,
// so a loop starts without a system call. Use it only where the loops are that frequent.
#pragma once
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace loom {

// Programs whose heavy lifting happens in OpenMP code (FAISS: loom-index, loom-retrieve) call this
// first thing in main(). GNU OpenMP's threads spin between parallel regions by default, which on a
// busy machine (other processes, or fewer cores than threads) slows FAISS's k-means tenfold; the
// wait policy can only be set before libgomp starts, so when OMP_WAIT_POLICY is unset the program
// re-executes itself with OMP_WAIT_POLICY=PASSIVE. A user's own setting is kept.
void openmp_wait_passively(char** argv);

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

class ThreadPool {
 public:
  // `threads` in all, the caller of for_each included (0 or 1: everything on the caller).
  explicit ThreadPool(unsigned threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  // fn(i) for every i in [0, n), on all the pool's threads; returns when all are done. fn must
  // not throw (catch inside and keep the error with the item).
  void for_each(size_t n, const std::function<void(size_t)>& fn);

 private:
  void work();
  void worker();
  std::vector<std::thread> workers_;
  std::mutex m_;
  std::condition_variable start_, finished_;
  const std::function<void(size_t)>* job_ = nullptr;
  size_t n_ = 0;
  std::atomic<size_t> next_{0};
  uint64_t generation_ = 0;
  unsigned busy_ = 0;
  bool stop_ = false;
};

class SpinPool {
 public:
  explicit SpinPool(unsigned threads);
  ~SpinPool();
  SpinPool(const SpinPool&) = delete;
  SpinPool& operator=(const SpinPool&) = delete;

  void for_each(size_t n, const std::function<void(size_t)>& fn);

 private:
  void worker();
  std::vector<std::thread> workers_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<unsigned> done_{0}, sleepers_{0};
  std::atomic<size_t> next_{0};
  std::atomic<bool> stop_{false};
  const std::function<void(size_t)>* job_ = nullptr;
  size_t n_ = 0;
};

}  // namespace loom
