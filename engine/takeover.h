#pragma once
// Socket takeover: a new relay process takes the listening sockets of the running one, as
// HAProxy's -x does, so a restart refuses no connection and drops no session.
//
// The wire, on the running relay's own control socket (its :DISPLAY):
//   new -> old  "XR-TAKEOVER/1\n"             (instead of an xpra packet, which starts with 'P')
//   old -> new  one record per listening socket: kRecordSize bytes "L <id>\n" (NUL-padded),
//               the socket attached to its first byte (SCM_RIGHTS); then "E <count>\n",
//               or "X <reason>\n" when the old relay refuses
//   new -> old  "READY\n" once its reactors accept on the sockets: the old relay then stops
//               accepting (without closing what the new one shares) and drains its sessions.
// A connection that closes before READY leaves the old relay as it was.

#include <string>
#include <utility>
#include <vector>

#include "base/fd.h"
#include "base/status.h"

namespace xr::engine::takeover {

inline constexpr const char* kRequest = "XR-TAKEOVER/1\n";
inline constexpr const char* kReady = "READY\n";
inline constexpr size_t kRecordSize = 512;
// Listening sockets one takeover passes at most (binds x reactor threads): bounds the receiver.
inline constexpr size_t kMaxSockets = 4096;
inline constexpr int kIoTimeoutMs = 10000;

// A listening socket handed over: its listener id (ListenerSpec::id()) and the socket.
struct HandedSocket {
  std::string id;
  UniqueFd fd;
};

// The running relay's side: sends each (id, fd) as a record, then the end record, on
// `conn` (blocking, each send bounded by kIoTimeoutMs). The fds stay open here.
Status SendSockets(int conn, const std::vector<std::pair<std::string, int>>& sockets);
// Refuses a takeover with a reason the new relay prints.
Status SendRefusal(int conn, const std::string& reason);

// The new relay's side: connects to the running relay's control socket `path`, asks for its
// sockets and receives them. `*conn` keeps the connection for Confirm.
Expected<std::vector<HandedSocket>> RequestSockets(const std::string& path, UniqueFd* conn);
// Receives the records of SendSockets/SendRefusal from `conn` (blocking, bounded).
Expected<std::vector<HandedSocket>> ReceiveSockets(int conn);
// Tells the old relay this one accepts now (it stops accepting and drains).
Status Confirm(int conn);

}  // namespace xr::engine::takeover
