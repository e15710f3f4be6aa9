#pragma once
// BoundedCall: runs a blocking call that may hang (a PAM stack waiting for a dead server) on a
// thread of its own and waits for it at most a timeout, so the worker pool's thread comes back.
// A call past its timeout cannot be cancelled (PAM has no cancel): its thread runs on, detached,
// and counts as stuck until the call returns; at most `max_stuck` calls of one BoundedCall may
// be stuck at once, after that new calls are refused at once (kIo) instead of piling threads up.

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <utility>

#include "base/status.h"

namespace xr::auth {

template <typename T>
class BoundedCall {
 public:
  explicit BoundedCall(int max_stuck) : shared_(std::make_shared<Shared>()), max_stuck_(max_stuck) {}

  // Runs `fn` (which owns everything it uses: it may outlive this call and this object) and waits
  // up to `timeout_ms`. kTimeout "did not answer within N ms" when it has not returned by then;
  // kIo when `max_stuck` earlier calls are still hanging or no thread can be started.
  Expected<T> Run(std::function<Expected<T>()> fn, int64_t timeout_ms) {
    auto call = std::make_shared<Call>();
    {
      std::lock_guard lock(shared_->mu);
      if (shared_->running - shared_->waited >= max_stuck_) {
        return MakeError(ErrorCode::kIo, std::to_string(shared_->running - shared_->waited) +
                                             " earlier calls are still hanging past their timeout");
      }
      shared_->running++;
      shared_->waited++;
    }
    try {
      std::thread([shared = shared_, call, fn = std::move(fn)]() mutable {
        Expected<T> r = fn();
        fn = nullptr;  // drop what it captured (secrets) before anyone is told
        std::lock_guard lock(shared->mu);
        call->result.emplace(std::move(r));
        shared->running--;
        shared->cv.notify_all();
      }).detach();
    } catch (const std::system_error& e) {
      std::lock_guard lock(shared_->mu);
      shared_->running--;
      shared_->waited--;
      return MakeError(ErrorCode::kIo, std::string("cannot start a thread: ") + e.what());
    }
    std::unique_lock lock(shared_->mu);
    const bool done = shared_->cv.wait_for(lock, std::chrono::milliseconds(timeout_ms),
                                           [&] { return call->result.has_value(); });
    shared_->waited--;
    if (!done) {
      return MakeError(ErrorCode::kTimeout, "did not answer within " + std::to_string(timeout_ms) + " ms");
    }
    return std::move(*call->result);
  }

  // Calls still running past their timeout.
  int stuck() const {
    std::lock_guard lock(shared_->mu);
    return shared_->running - shared_->waited;
  }

 private:
  struct Shared {
    mutable std::mutex mu;
    std::condition_variable cv;
    int running = 0;         // threads started and not finished
    int waited = 0;          // of those, calls whose caller still waits
  };
  struct Call {
    std::optional<Expected<T>> result;
  };
  std::shared_ptr<Shared> shared_;
  const int max_stuck_;
};

}  // namespace xr::auth
