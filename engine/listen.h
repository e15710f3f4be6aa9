#pragma once
// Listening sockets (tcp, unix), peer names and target addresses: the socket calls outside
// the backend.

#include <sys/socket.h>
#include <sys/types.h>

#include <cstdint>
#include <string>

#include "base/status.h"
#include "base/fd.h"
#include "session_registry/session_registry.h"

namespace xr::engine {

// A non-blocking tcp listener on host:port. `reuseport`: SO_REUSEPORT (one listener per
// reactor); `check_free`: refuse a port another process already listens on.
Expected<UniqueFd> OpenTcpListener(const std::string& host, uint16_t port, bool reuseport, bool check_free);
// A non-blocking unix listener at `path` (replacing a stale file), never world-accessible
// even for a moment; `mode` is applied after bind.
Expected<UniqueFd> OpenUnixListener(const std::string& path, mode_t mode = 0600);
// "1.2.3.4:5678", "[::1]:5678", "unix" or "?" for a connected socket's peer.
std::string PeerName(int fd);

// Where a session's server is: a socket address to connect to.
struct TargetAddress {
  sockaddr_storage addr{};
  socklen_t len = 0;
  int family = AF_UNSPEC;
  bool tcp = false;
};
// The address of `target` (a unix path, or a numeric host and port; "localhost" and "" are
// 127.0.0.1); an error a user can read when it has none.
Expected<TargetAddress> AddressOfTarget(const registry::Target& target);

}  // namespace xr::engine
