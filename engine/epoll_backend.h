#pragma once
// EpollBackend: the Backend on epoll and non-blocking sockets, for hosts where io_uring is
// missing or blocked (a container's default seccomp profile). Every operation is tried at once
// with a non-blocking system call; one that would block waits on its fd's readiness (one
// edge-triggered registration per fd, made on the fd's first wait) and is tried again then.
// Completions are held until the next Wait(), as a ring's would be, so a stream that is always
// ready cannot starve the others. Provided receive buffers are a pool the backend picks from
// when data is there, so an idle connection holds none, as with io_uring's buffer ring.

#include <sys/epoll.h>

#include <cstdint>
#include <memory>
#include <queue>
#include <unordered_map>
#include <vector>

#include "base/fd.h"
#include "base/status.h"
#include "engine/backend.h"

namespace xr::engine {

class EpollBackend final : public Backend {
 public:
  EpollBackend() = default;
  // Creates the epoll instance (any thread); Start makes the receive buffers.
  Status Init();

  Status Start(unsigned buffers, size_t buffer_size) override;
  void Accept(int listen_fd, uint64_t tag) override;
  void ConnectWithTimeout(int fd, const sockaddr* addr, socklen_t len, int64_t timeout_ms, uint64_t tag,
                          uint64_t timeout_tag) override;
  void RecvProvided(int fd, size_t max_len, uint64_t tag) override;
  void Recv(int fd, char* buf, size_t len, uint64_t tag) override;
  void Read(int fd, void* buf, size_t len, uint64_t tag) override;
  void Send(int fd, const char* data, size_t len, uint64_t tag) override;
  void Poll(int fd, unsigned events, uint64_t tag) override;
  void Timer(int64_t ms, uint64_t tag) override;
  void Cancel(uint64_t target, uint64_t tag) override;
  ssize_t Splice(int from_fd, int to_fd, size_t len) override;
  void Forget(int fd) override;
  const char* buffer(int id) const override { return data_.get() + static_cast<size_t>(id) * buf_size_; }
  void Recycle(int id) override { free_bufs_.push_back(id); }
  size_t buffer_size() const override { return buf_size_; }
  int Wait() override;
  size_t Reap(Completion* out, size_t max) override;

 private:
  enum class Kind : uint8_t { kAccept, kConnect, kConnectTimeout, kRecvProvided, kRecv, kRead, kSend, kPoll, kTimer };
  static constexpr uint32_t kNone = UINT32_MAX;

  // One operation that could not finish at once: it waits on its fd, or on the clock.
  struct Op {
    Kind kind = Kind::kTimer;
    bool live = false;
    uint32_t gen = 0;           // bumped on each reuse of the slot (stale timer entries skip it)
    uint64_t tag = 0;
    int fd = -1;
    uint32_t events = 0;        // EPOLLIN / EPOLLOUT this operation waits for (0: a timer)
    char* buf = nullptr;        // Recv / Read destination
    const char* data = nullptr; // Send source
    size_t len = 0;
    uint32_t partner = kNone;   // a connect and its timeout name each other
  };
  // What this backend knows of one fd: whether the current file behind the number is in the
  // epoll set, and the operations waiting on it (a handful at most).
  struct FdState {
    bool registered = false;
    // Not seen drained since the last edge (EAGAIN, or a short send, clears them; an edge sets
    // them): an operation on a drained fd waits without trying. A short read does not clear
    // `readable`: an end of stream that came with the data has had its edge already.
    bool readable = true;
    bool writable = true;
    std::vector<uint32_t> waiting;
  };
  struct Deadline {
    int64_t at_ms;
    uint32_t op;
    uint32_t gen;
    bool operator>(const Deadline& o) const { return at_ms > o.at_ms; }
  };

  // Tries operation `id` (woken with `revents`, 0 on its first try); true when it completed.
  bool Try(uint32_t id, uint32_t revents);
  // Queues a completion for the next Wait().
  void Emit(uint64_t tag, int res, bool more = false, int buffer = -1);
  // A connect's timeout, or a timeout's connect, completes with -ECANCELED (if there is one).
  void WithdrawPartner(uint32_t id);
  // Completes operation `id` with `res` and frees its slot.
  void Finish(uint32_t id, int res, int buffer = -1);
  uint32_t NewOp(Kind kind, int fd, uint64_t tag);
  void FreeOp(uint32_t id);
  // Makes `id` wait for readiness of its fd (registering the fd on its first wait); fails the
  // operation when the fd cannot be watched.
  void Park(uint32_t id);
  // Starts an fd operation: tries it, and parks it when it would block.
  void Begin(uint32_t id);
  // `fd` names a new file (just accepted or just created for a connect): operations left
  // waiting on a closed predecessor with the same number fail with -EBADF.
  void FreshFd(int fd);
  FdState& StateOf(int fd);
  void OnReady(int fd, uint32_t revents);
  void ExpireTimers();
  int TimeoutMs() const;

  UniqueFd epoll_;
  std::unique_ptr<char[]> data_;
  size_t buf_size_ = 0;
  std::vector<int> free_bufs_;
  std::vector<Op> ops_;
  std::vector<uint32_t> free_ops_;
  std::unordered_multimap<uint64_t, uint32_t> by_tag_;  // waiting operations, for Cancel
  std::vector<FdState> fds_;
  std::priority_queue<Deadline, std::vector<Deadline>, std::greater<Deadline>> timers_;
  std::vector<int> again_;           // listeners left ready after an accept burst
  std::vector<Completion> next_;     // finished since the last Wait()
  std::vector<Completion> ready_;    // handed out by Reap()
  size_t ready_pos_ = 0;
};

}  // namespace xr::engine
