#pragma once
// SplicePump: moves the rest of one large frame from a source socket to a sink socket through
// a pipe with splice(2), so its bytes never enter user space (the zero-copy server->client
// path). It does no I/O waiting of its own: Pump moves what the sockets allow right now and
// says what to wait for (the caller arms polls) and how many bytes moved each way.

#include <cstddef>
#include <cstdint>

#include "engine/backend.h"
#include "base/fd.h"

namespace xr::engine {

class SplicePump {
 public:
  // The pipe's size: what may sit between the two sockets.
  static constexpr size_t kPipeBytes = size_t{256} * 1024;

  // What one Pump call did.
  struct Result {
    enum class End {
      kNone,          // more to move: wait as told
      kFrameDone,     // every byte of the frame reached the sink
      kSourceEnded,   // the source ended (error 0) or failed (error = -errno)
      kSinkFailed,    // the sink failed (error = -errno, or 0 when it took nothing)
    };
    End end = End::kNone;
    int error = 0;
    size_t from_source = 0;    // bytes read from the source into the pipe
    size_t to_sink = 0;        // bytes written from the pipe to the sink
    bool wait_sink = false;    // poll the sink for POLLOUT
    bool wait_source = false;  // poll the source for POLLIN
  };

  // Creates the pipe and makes both sockets non-blocking (splice on a blocking socket would
  // block the reactor). False when that fails: the caller copies instead. `conn` is for logs.
  bool Open(int source_fd, int sink_fd, uint64_t conn);
  bool open() const { return pipe_r_.valid(); }
  // Starts moving `frame_bytes` more bytes (the rest of the current frame). Needs open().
  void Start(size_t frame_bytes) { left_ = frame_bytes; }
  // Whether a frame is being moved (bytes still to read from the source, or in the pipe).
  bool active() const { return left_ > 0 || in_pipe_ > 0; }
  // Moves bytes as far as the sockets allow. `sink_free`: nothing else waits to go to the sink
  // ahead of the pipe's bytes (the sink's send queue is empty), so the pipe may be drained.
  Result Pump(Backend& io, int source_fd, int sink_fd, bool sink_free);
  // Bytes in the pipe, not yet at the sink.
  size_t in_pipe() const { return in_pipe_; }
  // Bytes of the frame still to read from the source.
  size_t left() const { return left_; }
  // Bytes this pump moved in all.
  uint64_t spliced() const { return spliced_; }
  // Closes the pipe.
  void Close();

 private:
  UniqueFd pipe_r_, pipe_w_;
  size_t left_ = 0;
  size_t in_pipe_ = 0;
  uint64_t spliced_ = 0;
};

}  // namespace xr::engine
