#pragma once
// Local xpra session sockets, as xpra's platform/dotxpra.py finds them: a session for display
// ":N" listens on DIR/HOSTNAME-N in one of the socket dirs; it is LIVE when connect() succeeds.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace xr::registry {

enum class SocketState {
  kLive,          // connect() succeeded
  kDead,          // no such file, or the listen backlog is full (EAGAIN)
  kUnknown,       // ECONNREFUSED (nobody listening, or a server still starting) or another error
  kInaccessible,  // EACCES
};

// Short name for logs ("LIVE", "DEAD", "UNKNOWN", "INACCESSIBLE").
const char* SocketStateName(SocketState state);

// Probes a unix socket with a non-blocking connect() (dotxpra's get_server_state).
SocketState ProbeSocket(const std::string& path);

struct SocketInfo {
  SocketState state = SocketState::kDead;
  std::string display;  // ":100" (the name after "HOSTNAME-")
  std::string path;     // full socket path
};

// $XPRA_SOCKET_HOSTNAME, else gethostname() (dotxpra_common's SOCKET_HOSTNAME).
std::string DefaultSocketHostname();

// Expands a socket dir for user `uid` (-1: the relay's own user) like xpra's osexpand():
// "~/" -> that user's home, $UID/$GID/$USER/$USERNAME/$HOME/$XDG_RUNTIME_DIR/$PID (also ${...}),
// then any other environment variable; unknown variables are left as they are.
std::string ExpandSocketDir(std::string_view dir, int64_t uid);

// Every HOSTNAME-* unix socket in `dirs` (already expanded) in dir order, names sorted within a
// dir, directories that resolve to the same real path visited once (dotxpra's socket_details).
// Sockets not owned by `check_uid` are skipped when check_uid >= 0 (-1: any owner); with `matching_display`
// (":100") only that display is probed.
std::vector<SocketInfo> ListSockets(const std::vector<std::string>& dirs, std::string_view hostname,
                                    int64_t check_uid, std::string_view matching_display = {});

}  // namespace xr::registry
