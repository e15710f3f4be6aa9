#pragma once
// Ring: RAII owner of one io_uring, with the feature probe done once at start-up.

#include <liburing.h>

#include <string>

#include "codec/result.h"

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

// Checks once per process that io_uring works here; a readable error when it does not
// (disabled by sysctl, blocked by a container's seccomp profile, too old a kernel).
Status ProbeIoUring();

}  // namespace xr::engine
