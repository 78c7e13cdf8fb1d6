#include "loom/core/parallel.h"

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

}  // namespace loom
