#pragma once
// Listening sockets (tcp, unix) and peer names: the socket calls of the listener layer.

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "base/status.h"
#include "base/fd.h"

namespace xr::engine {

// A non-blocking tcp listener on host:port. `reuseport`: SO_REUSEPORT (one listener per
// reactor); `check_free`: refuse a port another process already listens on.
Expected<UniqueFd> OpenTcpListener(const std::string& host, uint16_t port, bool reuseport, bool check_free);
// A non-blocking unix listener at `path` (replacing a stale file), never world-accessible
// even for a moment; `mode` is applied after bind.
Expected<UniqueFd> OpenUnixListener(const std::string& path, mode_t mode = 0600);
// "1.2.3.4:5678", "[::1]:5678", "unix" or "?" for a connected socket's peer.
std::string PeerName(int fd);

}  // namespace xr::engine
