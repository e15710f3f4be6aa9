#pragma once
// UringBackend: the Backend on io_uring. One ring per reactor (SINGLE_ISSUER + DEFER_TASKRUN
// where the kernel has them), a provided-buffer ring for receives, every opcode probed at
// start-up. The only file of the engine that names io_uring.

#include <liburing.h>

#include <deque>
#include <memory>
#include <string>

#include "base/status.h"
#include "engine/backend.h"

namespace xr::engine {

// Ring: RAII owner of one io_uring, with the feature probe done once at start-up.
class Ring {
 public:
  Ring() = default;
  ~Ring();
  Ring(const Ring&) = delete;
  Ring& operator=(const Ring&) = delete;

  // Creates the ring (SINGLE_ISSUER + DEFER_TASKRUN when the kernel has them) and checks
  // every opcode the relay uses; the error says what is missing and how to fix it.
  Status Init(unsigned entries);
  // Enables the ring; the calling thread becomes its only submitter. Call on the using thread.
  Status Enable();
  // `n` free submission entries in a row (n <= 8), so linked entries are never split by a
  // submit; submits pending entries first when the SQ has fewer free. Never null.
  io_uring_sqe* GetSqes(unsigned n = 1);
  // Submits pending entries and waits for at least one completion (or a signal/EINTR).
  int SubmitAndWait();
  io_uring* get() { return &ring_; }
  bool defer_taskrun() const { return defer_taskrun_; }
  // After a failed Init or Enable: what would make io_uring work here.
  const std::string& fix() const { return fix_; }

 private:
  io_uring ring_{};
  bool initialized_ = false;
  bool defer_taskrun_ = false;
  std::string fix_;
};

// BufferRing: a provided-buffer ring. Receives name its group and the kernel picks a buffer
// only when data arrives, so an idle connection holds no receive buffer at all.
class BufferRing {
 public:
  BufferRing() = default;
  ~BufferRing();
  BufferRing(const BufferRing&) = delete;
  BufferRing& operator=(const BufferRing&) = delete;

  // Registers `entries` (a power of two) buffers of `buf_size` bytes as group `group`.
  // Buffer ids start at `first_bid` (rings sharing one id space: a completion names the id,
  // not the group).
  Status Init(io_uring* ring, uint16_t group, unsigned entries, size_t buf_size, uint16_t first_bid = 0);
  // Whether `bid` is one of this ring's buffers.
  bool owns(uint16_t bid) const { return bid >= first_bid_ && unsigned{bid} - first_bid_ < entries_; }
  // The buffer the kernel filled (its id comes from the completion's flags).
  char* buffer(uint16_t bid) const { return data_ + size_t{static_cast<uint16_t>(bid - first_bid_)} * buf_size_; }
  // Hands buffer `bid` back to the kernel.
  void Recycle(uint16_t bid);
  uint16_t group() const { return group_; }
  size_t buf_size() const { return buf_size_; }

 private:
  io_uring* ring_ = nullptr;
  io_uring_buf_ring* br_ = nullptr;
  size_t ring_bytes_ = 0;
  char* data_ = nullptr;
  size_t data_bytes_ = 0;
  unsigned entries_ = 0;
  size_t buf_size_ = 0;
  uint16_t group_ = 0;
  uint16_t first_bid_ = 0;
};

class UringBackend final : public Backend {
 public:
  UringBackend() = default;
  // Creates the ring with `entries` submission entries (any thread); Start enables it.
  Status Init(unsigned entries);

  Status Start(unsigned buffers, size_t buffer_size) override;
  void Accept(int listen_fd, uint64_t tag) override;
  void ConnectWithTimeout(int fd, const sockaddr* addr, socklen_t len, int64_t timeout_ms, uint64_t tag,
                          uint64_t timeout_tag) override;
  void RecvProvided(int fd, size_t max_len, uint64_t tag) override;
  // From a second ring of kHotBuffers buffers: a ring hands its buffers out in turn, so 256
  // of 64 KiB (16 MiB) are cold in cache by the time one comes round again; 8 stay in L2.
  void RecvHot(int fd, size_t max_len, uint64_t tag) override;
  void Recv(int fd, char* buf, size_t len, uint64_t tag) override;
  void Read(int fd, void* buf, size_t len, uint64_t tag) override;
  void Send(int fd, const char* data, size_t len, uint64_t tag) override;
  void Poll(int fd, unsigned events, uint64_t tag) override;
  void Timer(int64_t ms, uint64_t tag) override;
  void Cancel(uint64_t target, uint64_t tag) override;
  ssize_t Splice(int from_fd, int to_fd, size_t len) override;
  const char* buffer(int id) const override { return RingOf(id).buffer(static_cast<uint16_t>(id)); }
  void Recycle(int id) override { RingOf(id).Recycle(static_cast<uint16_t>(id)); }
  size_t buffer_size() const override { return bufs_.buf_size(); }
  int Wait() override;
  size_t Reap(Completion* out, size_t max) override;

 private:
  // Storage for a timeout's timespec until the kernel has read it (at submission).
  __kernel_timespec* KeepTimespec(int64_t ms);

  static constexpr unsigned kHotBuffers = 8;
  void PrepRecvSelect(int fd, size_t max_len, uint64_t tag, const BufferRing& from);
  const BufferRing& RingOf(int id) const { return hot_.owns(static_cast<uint16_t>(id)) ? hot_ : bufs_; }
  BufferRing& RingOf(int id) { return hot_.owns(static_cast<uint16_t>(id)) ? hot_ : bufs_; }

  Ring ring_;
  BufferRing bufs_;
  BufferRing hot_;  // RecvHot's (group 2, ids after bufs_')
  std::deque<__kernel_timespec> timespecs_;
};

// Whether io_uring works here (a ring made, enabled and entered once); when not, why in one
// line (blocked by a seccomp filter, disabled by sysctl, missing from the kernel) and the fix.
struct UringSupport {
  bool ok = false;
  std::string reason;
  std::string fix;
};
UringSupport ProbeIoUring();

}  // namespace xr::engine
