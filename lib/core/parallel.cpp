#include "loom/core/parallel.h"

#include <unistd.h>

#include <cstdlib>

#include <chrono>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace loom {

ThreadPool::ThreadPool(unsigned threads) {
  for (unsigned w = 1; w < threads; ++w) workers_.emplace_back([this] { worker(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard lock(m_);
    stop_ = true;
  }
  start_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::work() {
  for (size_t i; (i = next_.fetch_add(1)) < n_;) (*job_)(i);
}

void ThreadPool::worker() {
  uint64_t seen = 0;
  for (;;) {
    {
      std::unique_lock lock(m_);
      start_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
    }
    work();
    std::lock_guard lock(m_);
    if (--busy_ == 0) finished_.notify_one();
  }
}

void ThreadPool::for_each(size_t n, const std::function<void(size_t)>& fn) {
  if (workers_.empty() || n <= 1) {
    for (size_t i = 0; i < n; ++i) fn(i);
    return;
  }
  {
    std::lock_guard lock(m_);
    job_ = &fn;
    n_ = n;
    next_ = 0;
    busy_ = static_cast<unsigned>(workers_.size());
    ++generation_;
  }
  start_.notify_all();
  work();
  std::unique_lock lock(m_);
  finished_.wait(lock, [&] { return busy_ == 0; });
  job_ = nullptr;
}

namespace {
inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#endif
}
// How long an idle worker spins before it sleeps.
constexpr auto kSpin = std::chrono::microseconds(500);
}  // namespace

SpinPool::SpinPool(unsigned threads) {
  for (unsigned w = 1; w < threads; ++w) workers_.emplace_back([this] { worker(); });
}

SpinPool::~SpinPool() {
  stop_.store(true);
  generation_.fetch_add(1);
  generation_.notify_all();
  for (auto& t : workers_) t.join();
}

void SpinPool::worker() {
  uint64_t seen = 0;
  for (;;) {
    uint64_t g = generation_.load(std::memory_order_acquire);
    if (g == seen) {
      const auto until = std::chrono::steady_clock::now() + kSpin;
      for (unsigned k = 0; (g = generation_.load(std::memory_order_acquire)) == seen; ++k) {
        cpu_relax();
        if ((k & 255) == 255 && std::chrono::steady_clock::now() > until) {
          sleepers_.fetch_add(1);
          generation_.wait(seen);
          sleepers_.fetch_sub(1);
        }
      }
    }
    seen = g;
    if (stop_.load()) return;
    for (size_t i; (i = next_.fetch_add(1)) < n_;) (*job_)(i);
    done_.fetch_add(1, std::memory_order_release);
  }
}

void SpinPool::for_each(size_t n, const std::function<void(size_t)>& fn) {
  if (workers_.empty() || n <= 1) {
    for (size_t i = 0; i < n; ++i) fn(i);
    return;
  }
  job_ = &fn;
  n_ = n;
  next_.store(0);
  done_.store(0);
  generation_.fetch_add(1, std::memory_order_release);
  if (sleepers_.load() > 0) generation_.notify_all();
  for (size_t i; (i = next_.fetch_add(1)) < n_;) fn(i);
  const unsigned all = static_cast<unsigned>(workers_.size());
  for (unsigned k = 0; done_.load(std::memory_order_acquire) < all; ++k) {
    cpu_relax();
    if ((k & 1023) == 1023) std::this_thread::yield();
  }
}

void openmp_wait_passively(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY")) return;
  ::setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
  ::execv("/proc/self/exe", argv);  // returns only when it fails: then run on as we are
}

}  // namespace loom
