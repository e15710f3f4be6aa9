#pragma once
// Which I/O backend runs (--io=auto|uring|epoll) and why: io_uring is probed once at start-up;
// `auto` falls back to epoll when it is missing or blocked (a container's seccomp profile).

#include <memory>
#include <string>

#include "base/status.h"
#include "engine/backend.h"

namespace xr::engine {

enum class IoMode { kAuto, kUring, kEpoll };

struct BackendChoice {
  IoMode backend = IoMode::kUring;  // kUring or kEpoll, never kAuto
  std::string log_line;             // the one start-up line: which backend runs and why
  const char* name() const { return backend == IoMode::kEpoll ? "epoll" : "io_uring"; }
};

// "auto" / "uring" / "epoll" (as --io takes them).
Expected<IoMode> ParseIoMode(const std::string& text);
// Picks the backend for `mode`, probing io_uring unless epoll was asked for. --io=uring where
// io_uring cannot run fails with the reason and the fix.
Expected<BackendChoice> ChooseBackend(IoMode mode);
// A new, initialised (not started) backend of kind `backend` (kUring or kEpoll).
Expected<std::unique_ptr<Backend>> MakeBackend(IoMode backend);

}  // namespace xr::engine
