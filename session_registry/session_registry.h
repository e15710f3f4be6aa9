#pragma once
// Session registry: turns the sessions an auth module returned into the one server the client
// gets relayed to, as xpra's proxy_server.py proxy_session() and parse_display_name() do.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "auth/auth_module.h"
#include "base/status.h"
#include "session_registry/socket_dirs.h"

namespace xr::registry {

class SessionLauncher;

// Where a session's server listens.
struct Target {
  enum class Kind { kTcp, kUnix } kind = Kind::kUnix;
  std::string host;       // kTcp: "127.0.0.1", "::1" (no brackets), a name
  uint16_t port = 0;      // kTcp
  std::string path;       // kUnix: socket path
  std::string display;    // how clients name it: ":100" or the entry text without its userinfo
  std::string username;   // kTcp: from "tcp://user[:password]@host..." (for the server's hello)
  std::string password;   // kTcp: from the URI; answers the server's own challenge. Never logged.
  size_t session_index = 0;  // SelectTarget: which SessionEntry it came from (session_options, env)
  // kUnix found in system-wide mode: the uid the session's server must run as; the engine checks
  // it again (SO_PEERCRED) on the socket it connects, so a socket swapped since the scan is refused.
  int64_t server_uid = -1;

  // "tcp://127.0.0.1:15200/" or "unix:/run/xpra/host-100" (never contains the password).
  std::string describe() const;
};

struct RegistryOptions {
  std::vector<std::string> socket_dirs;  // "~/" and $UID, $XDG_RUNTIME_DIR, ... are expanded
  std::string hostname;                  // socket name prefix; default: DefaultSocketHostname()
  std::string own_display;               // the relay's own display (":20"): never a target
  // System-wide mode (--system-wide, see user_sessions.h): sessions with no displays are the
  // authenticated user's own, found by uid in that user's socket dirs.
  bool system_wide = false;
  ScanLimits scan;
  std::shared_ptr<SessionLauncher> launcher;  // null: sessions are never started on demand
};

// Parses one displays entry:
//   ":100" / "100"           local display: the live DIR/HOSTNAME-100 socket in the socket dirs
//   "tcp://[user[:pass]@]host[:port]/[N]"  (port default 14500, host default 127.0.0.1;
//                            with N the target is named ":N" for selection)
//   "socket:///path", "socket:/path", "/path"   a unix socket
// Bad syntax -> kMalformed; ssl/ws/wss/ssh/udp/vsock -> kUnsupported; a local display with no
// live socket -> kNotFound. May block briefly (probes unix sockets with connect()).
Expected<Target> ParseEntry(std::string_view entry, const RegistryOptions& opts);

// An entry as it may be shown (to a client, a log line, `xpra info`): the userinfo of a URI
// ("user:password@") removed: "tcp://u:pw@host:1/" -> "tcp://host:1/". Other text unchanged.
std::string RedactUserinfo(std::string_view entry);

// The name clients use for an entry without resolving it: ":100" for ":100", "100" and
// "tcp://host:port/100"; otherwise the entry text itself, its userinfo removed (RedactUserinfo).
std::string DisplayNameOf(std::string_view entry);

// The displays the sessions offer, in order and without duplicates; entries with no displays
// contribute the live HOSTNAME-N sockets of the socket dirs (owned by the entry's uid when
// uid > 0). ":proxy-*" and the relay's own display are left out.
std::vector<std::string> AvailableDisplays(const std::vector<auth::SessionEntry>& sessions,
                                           const RegistryOptions& opts);

// Picks the client's target (may block: probes unix sockets; call it on a worker thread):
// the requested display (":200", "200" or the exact entry text) must be among the sessions'
// displays; an empty request takes the only one. Errors (all kNotFound):
//   "please specify a display, more than one is available: :200, :201"
//   "display ':300' not found, available: :200, :201"
//   "no sessions found for this user"
//   "invalid display" (the relay's own display)
// plus ParseEntry's errors for the chosen entry.
Expected<Target> SelectTarget(const std::vector<auth::SessionEntry>& sessions, std::string_view requested,
                              const RegistryOptions& opts);

}  // namespace xr::registry
