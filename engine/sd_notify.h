#pragma once
// A small client of systemd's service notification protocol (sd_notify(3)), without
// libsystemd: one datagram per state change to the unix socket named by $NOTIFY_SOCKET
// (a path, or "@name" for an abstract socket). With Type=notify the relay says READY=1 once it
// listens, RELOADING=1 (with MONOTONIC_USEC) and READY=1 around a SIGHUP reload, and
// STOPPING=1 when it stops. Without $NOTIFY_SOCKET every call does nothing.

#include <string>
#include <string_view>

#include "base/status.h"

namespace xr::engine {

class SdNotifier {
 public:
  // From $NOTIFY_SOCKET (disabled when unset or empty).
  static SdNotifier FromEnvironment();
  // To an explicit socket: "/run/x.sock" or "@abstract-name"; "" disables.
  explicit SdNotifier(std::string socket) : socket_(std::move(socket)) {}

  bool enabled() const { return !socket_.empty(); }
  const std::string& socket() const { return socket_; }

  // Sends `state` ("KEY=value" lines separated by '\n') as one datagram. Ok when disabled.
  // Errors (kMalformed for a socket name that is neither a path nor "@name" or too long for
  // sun_path; kIo for a failed send) say which socket.
  Status Send(std::string_view state) const;
  Status Ready(std::string_view status = {}) const;      // READY=1 [+ STATUS=...]
  Status Reloading(std::string_view status = {}) const;  // RELOADING=1, MONOTONIC_USEC=now
  Status Stopping(std::string_view status = {}) const;   // STOPPING=1
  Status SetStatus(std::string_view status) const;       // STATUS=... (one line; newlines become spaces)

  // For callers that carry on either way: logs a failed notification as a warning.
  static void WarnIfFailed(const Status& s);

 private:
  std::string socket_;
};

}  // namespace xr::engine
