#pragma once
// Ring: RAII owner of one io_uring, with the feature probe done once at start-up.

#include <liburing.h>

#include <string>

#include "base/status.h"

namespace xr::engine {

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
  // A free submission entry; submits pending entries first when the SQ is full. Never null.
  io_uring_sqe* GetSqe();
  // Submits pending entries and waits for at least one completion (or a signal/EINTR).
  int SubmitAndWait();
  io_uring* get() { return &ring_; }
  bool defer_taskrun() const { return defer_taskrun_; }

 private:
  io_uring ring_{};
  bool initialized_ = false;
  bool defer_taskrun_ = false;
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
  Status Init(io_uring* ring, uint16_t group, unsigned entries, size_t buf_size);
  // The buffer the kernel filled (its id comes from the completion's flags).
  char* buffer(uint16_t bid) const { return data_ + size_t{bid} * buf_size_; }
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
};

// Checks once per process that io_uring works here; a readable error when it does not
// (disabled by sysctl, blocked by a container's seccomp profile, too old a kernel).
Status ProbeIoUring();

}  // namespace xr::engine
