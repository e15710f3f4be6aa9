#pragma once
// Backend: the I/O operations the engine asks for, one typed prepare function each, and the
// completions they produce. io_uring implements it today (engine/uring_backend.h); an epoll
// backend is next. Nothing here names a backend's own types: protocol code asks for "receive
// on fd with a provided buffer, tag T" and later sees a Completion carrying T.
//
// Every prepare function queues an operation; it starts at the latest on the next Wait().
// Each operation completes exactly once (multishot accepts: once per accepted socket, with
// `more` set while it stays armed), and its completion carries the caller's tag. Cancelled
// operations complete with -ECANCELED. Buffers passed in must stay valid until completion.

#include <sys/socket.h>
#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <memory>

#include "base/status.h"

namespace xr::engine {

// One finished operation.
struct Completion {
  uint64_t tag = 0;  // the tag given to the prepare function
  int res = 0;       // the operation's result (bytes, fd, 0) or -errno
  bool more = false; // a multishot operation stays armed after this completion
  int buffer = -1;   // a provided buffer holding the received bytes (-1: none)
};

class Backend {
 public:
  virtual ~Backend() = default;

  // Makes the backend usable from the calling thread, the only one that may then call it,
  // with `buffers` provided receive buffers of `buffer_size` bytes (buffers a power of two).
  virtual Status Start(unsigned buffers, size_t buffer_size) = 0;

  // Accepts connections on `listen_fd` until cancelled or failed; one completion per socket
  // (res = the new non-blocking, close-on-exec fd, or -errno), `more` while still armed.
  virtual void Accept(int listen_fd, uint64_t tag) = 0;
  // Connects `fd` to `addr` (which must outlive the completion); gives up after `timeout_ms`
  // with -ECANCELED. The connect and its timeout are queued together, never split. The
  // timeout completes separately under `timeout_tag` (its result carries no meaning).
  virtual void ConnectWithTimeout(int fd, const sockaddr* addr, socklen_t len, int64_t timeout_ms, uint64_t tag,
                                  uint64_t timeout_tag) = 0;
  // Receives at most `max_len` bytes (0: a whole buffer) into a provided buffer picked when
  // data arrives; the completion names it in `buffer` (hand it back with Recycle). -ENOBUFS
  // when every provided buffer is in use.
  virtual void RecvProvided(int fd, size_t max_len, uint64_t tag) = 0;
  // As RecvProvided, from a few buffers of the same size reused soon after they come back, so
  // the kernel copies into memory still in the CPU cache: for legs whose bytes are consumed
  // at once (decrypted, encrypted, framed) on every receive. -ENOBUFS when those few are all
  // in use: the next receive should use RecvProvided. Default: RecvProvided (a backend whose
  // buffers are already reused last-freed-first).
  virtual void RecvHot(int fd, size_t max_len, uint64_t tag) { RecvProvided(fd, max_len, tag); }
  // Receives at most `len` bytes into `buf`.
  virtual void Recv(int fd, char* buf, size_t len, uint64_t tag) = 0;
  // Reads at most `len` bytes from a non-socket fd (an eventfd) into `buf`.
  virtual void Read(int fd, void* buf, size_t len, uint64_t tag) = 0;
  // Sends `len` bytes of `data` (MSG_NOSIGNAL); res = bytes sent, possibly fewer.
  virtual void Send(int fd, const char* data, size_t len, uint64_t tag) = 0;
  // Completes once `fd` is ready for `events` (POLLIN / POLLOUT); res = the ready events.
  virtual void Poll(int fd, unsigned events, uint64_t tag) = 0;
  // Completes after `ms` milliseconds with -ETIME.
  virtual void Timer(int64_t ms, uint64_t tag) = 0;
  // Cancels every in-flight operation tagged `target`; this request completes under `tag`.
  virtual void Cancel(uint64_t target, uint64_t tag) = 0;
  // Moves at most `len` bytes from `from_fd` to `to_fd` (one of them a pipe) now, without
  // blocking and without copying through user space: bytes moved, or -errno (-EAGAIN: not ready).
  virtual ssize_t Splice(int from_fd, int to_fd, size_t len) = 0;
  // `fd` is about to be closed while its file stays open elsewhere (a listening socket kept
  // by another thread or handed to another process), its operations already cancelled: stop
  // watching it. (io_uring watches nothing between operations: nothing to do.)
  virtual void Forget(int fd) { (void)fd; }

  // The bytes of provided buffer `id`, and giving it back once they were consumed.
  virtual const char* buffer(int id) const = 0;
  virtual void Recycle(int id) = 0;
  virtual size_t buffer_size() const = 0;

  // Starts what was queued and waits until at least one operation completed. 0, or -errno
  // (-EINTR, -ETIME, -EAGAIN, -EBUSY pass; anything else means the backend is broken).
  virtual int Wait() = 0;
  // Moves up to `max` finished operations into `out`; returns how many.
  virtual size_t Reap(Completion* out, size_t max) = 0;
};

}  // namespace xr::engine
