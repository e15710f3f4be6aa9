#pragma once
// Local xpra session sockets, as xpra's platform/dotxpra.py finds them: a session for display
// ":N" listens on DIR/HOSTNAME-N in one of the socket dirs; it is LIVE when connect() succeeds.

#include <cstddef>
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

// Bounds on one scan of a user's socket dirs (system-wide mode: the dirs hold other users' and
// peers' files, so nothing they put there may make a scan unbounded).
struct ScanLimits {
  size_t max_dirs = 16;               // socket dirs looked at per user (the rest ignored)
  size_t max_entries_per_dir = 4096;  // directory entries read per dir
  size_t max_sockets_per_dir = 64;    // HOSTNAME-* sockets probed per dir
};

// ProbeSocket, and for a live socket the uid of the process listening on it (SO_PEERCRED;
// -1 when it cannot be read).
SocketState ProbeSocketPeer(const std::string& path, int64_t* peer_uid);

// A user's live sessions in `dirs` (expanded for that user), for system-wide mode: an entry is
// taken only when lstat() says it is a socket (a symlink never is) owned by `uid`, connect()
// succeeds and the process listening runs as `uid` (SO_PEERCRED). Dirs that resolve to the same
// real path are read once; at most `limits` are looked at. With `matching_display` (":100")
// only that name is looked at. Blocking (connect probes): call it on a worker thread.
std::vector<SocketInfo> ListUserSockets(const std::vector<std::string>& dirs, std::string_view hostname,
                                        int64_t uid, const ScanLimits& limits,
                                        std::string_view matching_display = {});

}  // namespace xr::registry
