#include "engine/splice_pump.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "engine/log.h"

namespace xr::engine {

bool SplicePump::Open(int source_fd, int sink_fd, uint64_t conn) {
  int p[2];
  if (pipe2(p, O_NONBLOCK | O_CLOEXEC) != 0) {
    XR_DEBUG("conn", "conn={} no pipe for splice ({}); copying", conn, log::ErrnoText(errno));
    return false;
  }
  pipe_r_.reset(p[0]);
  pipe_w_.reset(p[1]);
  // A pipe left at the default size still works: splice moves it in smaller steps.
  if (fcntl(pipe_w_.get(), F_SETPIPE_SZ, static_cast<int>(kPipeBytes)) < 0) {
    XR_DEBUG("conn", "conn={} pipe size stays default ({})", conn, log::ErrnoText(errno));
  }
  for (int fd : {sink_fd, source_fd}) {
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0) {
      XR_DEBUG("conn", "conn={} cannot make a leg non-blocking ({}); copying", conn, log::ErrnoText(errno));
      Close();
      return false;
    }
  }
  return true;
}

void SplicePump::Close() {
  pipe_r_.reset();
  pipe_w_.reset();
}

SplicePump::Result SplicePump::Pump(Backend& io, int source_fd, int sink_fd, bool sink_free) {
  Result r;
  while (active()) {
    bool progressed = false;
    // pipe -> sink, once everything queued ahead of the spliced bytes has been sent.
    if (in_pipe_ > 0 && sink_free) {
      ssize_t n = io.Splice(pipe_r_.get(), sink_fd, in_pipe_);
      if (n > 0) {
        in_pipe_ -= static_cast<size_t>(n);
        r.to_sink += static_cast<size_t>(n);
        progressed = true;
      } else if (n == -EAGAIN) {
        r.wait_sink = true;
      } else {
        r.end = Result::End::kSinkFailed;
        r.error = static_cast<int>(n);
        return r;
      }
    }
    // source -> pipe. EAGAIN with bytes still in the pipe may mean the pipe is full: the
    // sink side's progress re-runs the pump, so only an empty pipe waits on the source.
    if (left_ > 0 && in_pipe_ < kPipeBytes) {
      size_t want = std::min(left_, kPipeBytes - in_pipe_);
      ssize_t n = io.Splice(source_fd, pipe_w_.get(), want);
      if (n > 0) {
        left_ -= static_cast<size_t>(n);
        in_pipe_ += static_cast<size_t>(n);
        spliced_ += static_cast<uint64_t>(n);
        r.from_source += static_cast<size_t>(n);
        progressed = true;
      } else if (n == -EAGAIN) {
        if (in_pipe_ == 0) r.wait_source = true;
      } else {
        r.end = Result::End::kSourceEnded;
        r.error = static_cast<int>(n);
        return r;
      }
    }
    if (!active()) {
      r.end = Result::End::kFrameDone;
      return r;
    }
    if (!progressed) return r;
  }
  return r;
}

}  // namespace xr::engine
