#include "engine/backend_choice.h"

#include <fmt/format.h>

#include "engine/epoll_backend.h"
#include "engine/uring_backend.h"

namespace xr::engine {

Expected<IoMode> ParseIoMode(const std::string& text) {
  if (text == "auto") return IoMode::kAuto;
  if (text == "uring" || text == "io_uring") return IoMode::kUring;
  if (text == "epoll") return IoMode::kEpoll;
  return MakeError(ErrorCode::kMalformed, "--io=" + text + ": expected auto, uring or epoll");
}

Expected<BackendChoice> ChooseBackend(IoMode mode) {
  BackendChoice c;
  if (mode == IoMode::kEpoll) {
    c.backend = IoMode::kEpoll;
    c.log_line = "I/O backend: epoll (--io=epoll)";
    return c;
  }
  UringSupport uring = ProbeIoUring();
  if (uring.ok) {
    c.backend = IoMode::kUring;
    c.log_line = mode == IoMode::kUring ? "I/O backend: io_uring (--io=uring)"
                                        : "I/O backend: io_uring (--io=auto: io_uring works here)";
    return c;
  }
  if (mode == IoMode::kUring) {
    return MakeError(ErrorCode::kUnsupported,
                     fmt::format("--io=uring: {}; to run io_uring: {}; or start with --io=epoll (or --io=auto)",
                                 uring.reason, uring.fix));
  }
  c.backend = IoMode::kEpoll;
  c.log_line = fmt::format("{}: using epoll (--io=auto; for io_uring: {})", uring.reason, uring.fix);
  return c;
}

Expected<std::unique_ptr<Backend>> MakeBackend(IoMode backend) {
  if (backend == IoMode::kEpoll) {
    auto b = std::make_unique<EpollBackend>();
    if (Status s = b->Init(); !s.ok()) return s.error();
    return std::unique_ptr<Backend>(std::move(b));
  }
  auto b = std::make_unique<UringBackend>();
  if (Status s = b->Init(4096); !s.ok()) return s.error();
  return std::unique_ptr<Backend>(std::move(b));
}

}  // namespace xr::engine
