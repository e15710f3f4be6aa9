#pragma once
// WorkerPool: a few threads that run blocking work (SQLite, file reads, unix-socket probes) so
// that no reactor thread ever blocks. Jobs are queued FIFO; the queue is bounded.

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace xr::engine {

class WorkerPool {
 public:
  // Starts `threads` workers; at most `max_queue` jobs wait at once.
  WorkerPool(int threads, size_t max_queue);
  // Stops accepting jobs, finishes the queued ones, joins the workers.
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Queues `job`; false when the queue is full or the pool is stopping (the job is not run).
  bool Submit(std::function<void()> job);
  // Jobs queued and not yet started.
  size_t queued() const;

 private:
  void Run();

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  std::vector<std::thread> threads_;
  size_t max_queue_;
  bool stopping_ = false;
};

}  // namespace xr::engine
