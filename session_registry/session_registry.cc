#include "session_registry/session_registry.h"

#include <algorithm>
#include <charconv>
#include <optional>

#include <pwd.h>
#include <unistd.h>

#include <cerrno>

#include "session_registry/session_launcher.h"
#include "session_registry/socket_dirs.h"
#include "session_registry/user_sessions.h"

namespace xr::registry {
namespace {

constexpr uint16_t kDefaultPort = 14500;  // xpra's DEFAULT_PORT

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool AllDigits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

// "10" or "10.0" (xpra's parse_remote_display accepts dotted display numbers).
bool IsDisplayNumber(std::string_view s) {
  const size_t dot = s.find('.');
  if (dot == std::string_view::npos) return AllDigits(s);
  return AllDigits(s.substr(0, dot)) && IsDisplayNumber(s.substr(dot + 1));
}

// Who must own a local session's socket: the entry's uid when set, else the relay's own user.
int64_t ExpectedOwner(int64_t uid) { return uid >= 0 ? uid : static_cast<int64_t>(getuid()); }

std::string Join(const std::vector<std::string>& v) {
  std::string out;
  for (const std::string& s : v) {
    if (!out.empty()) out += ", ";
    out += s;
  }
  return out;
}

std::string HostnameOf(const RegistryOptions& opts) {
  return opts.hostname.empty() ? DefaultSocketHostname() : opts.hostname;
}

std::vector<std::string> ExpandedDirs(const RegistryOptions& opts, int64_t uid) {
  std::vector<std::string> dirs;
  for (const std::string& d : opts.socket_dirs) dirs.push_back(ExpandSocketDir(d, uid));
  return dirs;
}

// The display part after "tcp://host:port/", without "?..." / "#..." suffixes.
std::string_view StripQuery(std::string_view s) {
  const size_t q = s.find_first_of("?#");
  return q == std::string_view::npos ? s : s.substr(0, q);
}

Expected<Target> ParseTcp(std::string_view entry, std::string_view rest) {
  auto bad = [&](const std::string& why) {
    return MakeError(ErrorCode::kMalformed, "invalid tcp display '" + RedactUserinfo(entry) + "': " + why +
                                                ", use tcp://[username[:password]@]host[:port][/display]");
  };
  Target t;
  t.kind = Target::Kind::kTcp;
  t.display = RedactUserinfo(entry);
  std::string_view hostpart = rest;
  if (const size_t slash = rest.find('/'); slash != std::string_view::npos) {
    hostpart = rest.substr(0, slash);
    std::string_view disp = StripQuery(rest.substr(slash + 1));
    if (disp.find('/') != std::string_view::npos) return bad("too many '/'");
    if (!disp.empty()) {
      if (!IsDisplayNumber(disp)) return bad("display must be a number");
      t.display = ":" + std::string(disp);
    }
  }
  if (const size_t at = hostpart.rfind('@'); at != std::string_view::npos) {
    std::string_view cred = hostpart.substr(0, at);
    const size_t colon = cred.find(':');
    t.username = std::string(cred.substr(0, colon));
    if (colon != std::string_view::npos) t.password = std::string(cred.substr(colon + 1));
    hostpart = hostpart.substr(at + 1);
  }
  std::string_view port_str;
  if (!hostpart.empty() && hostpart.front() == '[') {
    const size_t close = hostpart.find(']');
    if (close == std::string_view::npos) return bad("invalid host format, expected IPv6 [..]");
    std::string_view after = hostpart.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return bad("unexpected text after ']'");
      port_str = after.substr(1);
      if (port_str.empty()) return bad("empty port number");
    }
    t.host = std::string(hostpart.substr(1, close - 1));
  } else if (const size_t colons = std::count(hostpart.begin(), hostpart.end(), ':'); colons >= 2) {
    t.host = std::string(hostpart);  // a bare IPv6 address: xpra assumes no port
  } else if (colons == 1) {
    const size_t colon = hostpart.find(':');
    t.host = std::string(hostpart.substr(0, colon));
    port_str = hostpart.substr(colon + 1);
    if (port_str.empty()) return bad("empty port number");
  } else {
    t.host = std::string(hostpart);
  }
  if (t.host.empty()) t.host = "127.0.0.1";
  t.port = kDefaultPort;
  if (!port_str.empty()) {
    unsigned port = 0;
    auto [ptr, ec] = std::from_chars(port_str.data(), port_str.data() + port_str.size(), port);
    if (ec != std::errc() || ptr != port_str.data() + port_str.size() || port == 0 || port > 65535) {
      return bad("invalid port number '" + std::string(port_str) + "'");
    }
    t.port = static_cast<uint16_t>(port);
  }
  return t;
}

Expected<Target> ParseUnixPath(std::string_view entry, std::string_view path) {
  if (path.empty() || path.front() != '/') {
    return MakeError(ErrorCode::kMalformed, "invalid socket display '" + std::string(entry) +
                                                "': the socket path must be absolute (socket:///path)");
  }
  Target t;
  t.kind = Target::Kind::kUnix;
  t.path = std::string(path);
  t.display = std::string(entry);
  return t;
}

// ":N": the first live DIR/HOSTNAME-N socket (socket dirs expanded for `uid`).
Expected<Target> ResolveLocal(std::string_view display, const RegistryOptions& opts, int64_t uid) {
  const std::vector<std::string> dirs = ExpandedDirs(opts, uid);
  const std::vector<SocketInfo> found = ListSockets(dirs, HostnameOf(opts), ExpectedOwner(uid), display);
  for (const SocketInfo& s : found) {
    if (s.state == SocketState::kLive) {
      Target t;
      t.kind = Target::Kind::kUnix;
      t.path = s.path;
      t.display = std::string(display);
      return t;
    }
  }
  if (!found.empty()) {
    return MakeError(ErrorCode::kNotFound, "the session for display '" + std::string(display) +
                                               "' is not running: socket '" + found.front().path + "' is " +
                                               SocketStateName(found.front().state));
  }
  return MakeError(ErrorCode::kNotFound, "no session socket for display '" + std::string(display) + "' in " +
                                             (dirs.empty() ? std::string("(no socket dirs)") : Join(dirs)));
}

Expected<Target> ParseEntryForUid(std::string_view raw, const RegistryOptions& opts, int64_t uid) {
  const std::string_view entry = Trim(raw);
  if (entry.empty()) return MakeError(ErrorCode::kMalformed, "empty display name");
  if (entry.front() == '/') return ParseUnixPath(entry, entry);
  if (AllDigits(entry)) return ResolveLocal(":" + std::string(entry), opts, uid);
  if (entry.front() == ':') {
    std::string_view name = entry.substr(1);
    if (name.empty() || name.find('/') != std::string_view::npos) {
      return MakeError(ErrorCode::kMalformed, "invalid display name '" + RedactUserinfo(entry) + "'");
    }
    return ResolveLocal(entry, opts, uid);
  }
  if (entry.rfind("tcp://", 0) == 0) return ParseTcp(entry, entry.substr(6));
  if (entry.rfind("socket://", 0) == 0) return ParseUnixPath(entry, entry.substr(9));
  if (entry.rfind("socket:", 0) == 0) return ParseUnixPath(entry, entry.substr(7));
  for (const char* scheme : {"ssl", "ws", "wss", "ssh", "udp", "vsock", "named-pipe", "vnc"}) {
    const std::string prefix = std::string(scheme) + ":";
    if (entry.rfind(prefix, 0) == 0) {
      return MakeError(ErrorCode::kUnsupported, "display '" + RedactUserinfo(entry) + "': " + scheme +
                                                    " targets are not supported, use tcp://, socket:// or :N");
    }
  }
  return MakeError(ErrorCode::kMalformed, "unknown format for display name '" + RedactUserinfo(entry) + "'");
}

struct Candidate {
  std::string name;   // ":100" or entry text
  std::string entry;  // entry text ("" for scanned sockets)
  std::string path;   // scanned sockets: the live socket
  size_t session_index = 0;
};

bool Excluded(const std::string& name, const RegistryOptions& opts) {
  return name.rfind(":proxy-", 0) == 0 || (!opts.own_display.empty() && name == opts.own_display);
}

std::vector<Candidate> Candidates(const std::vector<auth::SessionEntry>& sessions, const RegistryOptions& opts) {
  std::vector<Candidate> out;
  auto add = [&](Candidate c) {
    if (Excluded(c.name, opts)) return;
    for (const Candidate& o : out) {
      if (o.name == c.name) return;
    }
    out.push_back(std::move(c));
  };
  for (size_t i = 0; i < sessions.size(); ++i) {
    const auth::SessionEntry& s = sessions[i];
    if (s.displays.empty()) {
      const std::vector<SocketInfo> found = ListSockets(ExpandedDirs(opts, s.uid), HostnameOf(opts), ExpectedOwner(s.uid));
      for (const SocketInfo& info : found) {
        if (info.state == SocketState::kLive) add(Candidate{info.display, "", info.path, i});
      }
      continue;
    }
    for (const std::string& d : s.displays) {
      std::string_view entry = Trim(d);
      if (entry.empty()) continue;
      add(Candidate{DisplayNameOf(entry), std::string(entry), "", i});
    }
  }
  return out;
}

std::vector<std::string> Names(const std::vector<Candidate>& candidates) {
  std::vector<std::string> names;
  for (const Candidate& c : candidates) names.push_back(c.name);
  return names;
}

}  // namespace

std::string Target::describe() const {
  if (kind == Kind::kUnix) return "unix:" + path;
  const bool v6 = host.find(':') != std::string::npos;
  return "tcp://" + (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port) + "/";
}

std::string RedactUserinfo(std::string_view entry) {
  const size_t scheme = entry.find("://");
  if (scheme == std::string_view::npos) return std::string(entry);
  const size_t start = scheme + 3;
  const size_t end = entry.find_first_of("/?#", start);
  const std::string_view authority = entry.substr(start, end == std::string_view::npos ? entry.npos : end - start);
  const size_t at = authority.rfind('@');
  if (at == std::string_view::npos) return std::string(entry);
  return std::string(entry.substr(0, start)) + std::string(entry.substr(start + at + 1));
}

Expected<Target> ParseEntry(std::string_view entry, const RegistryOptions& opts) {
  return ParseEntryForUid(entry, opts, -1);
}

std::string DisplayNameOf(std::string_view raw) {
  const std::string_view entry = Trim(raw);
  if (AllDigits(entry)) return ":" + std::string(entry);
  if (entry.rfind("tcp://", 0) == 0) {
    std::string_view rest = entry.substr(6);
    const size_t slash = rest.find('/');
    if (slash != std::string_view::npos) {
      std::string_view disp = StripQuery(rest.substr(slash + 1));
      if (IsDisplayNumber(disp)) return ":" + std::string(disp);
    }
  }
  return RedactUserinfo(entry);
}

std::vector<std::string> AvailableDisplays(const std::vector<auth::SessionEntry>& sessions,
                                           const RegistryOptions& opts) {
  return Names(Candidates(sessions, opts));
}

Expected<Target> SelectTarget(const std::vector<auth::SessionEntry>& sessions, std::string_view requested_raw,
                              const RegistryOptions& opts) {
  const std::string_view requested = Trim(requested_raw);
  const std::string wanted = requested.empty() ? std::string() : DisplayNameOf(requested);
  if (!wanted.empty() && !opts.own_display.empty() && wanted == opts.own_display) {
    return MakeError(ErrorCode::kNotFound, "invalid display");
  }
  const std::vector<Candidate> candidates = Candidates(sessions, opts);
  if (candidates.empty()) return MakeError(ErrorCode::kNotFound, "no sessions found for this user");
  const Candidate* chosen = nullptr;
  if (wanted.empty()) {
    if (candidates.size() != 1) {
      return MakeError(ErrorCode::kNotFound,
                       "please specify a display, more than one is available: " + Join(Names(candidates)));
    }
    chosen = &candidates.front();
  } else {
    for (const Candidate& c : candidates) {
      if (c.name == wanted || (!c.entry.empty() && c.entry == requested)) {
        chosen = &c;
        break;
      }
    }
    if (chosen == nullptr) {
      return MakeError(ErrorCode::kNotFound,
                       "display '" + wanted + "' not found, available: " + Join(Names(candidates)));
    }
  }
  Target t;
  if (!chosen->path.empty()) {
    t.kind = Target::Kind::kUnix;
    t.path = chosen->path;
    t.display = chosen->name;
  } else {
    Expected<Target> parsed = ParseEntryForUid(chosen->entry, opts, sessions[chosen->session_index].uid);
    if (!parsed.ok()) return parsed.error();
    t = std::move(parsed).value();
  }
  t.session_index = chosen->session_index;
  return t;
}

// ---------------------------------------------------------------- system-wide mode

namespace {

// getpwnam_r (name) or getpwuid_r (uid), the buffer grown on ERANGE up to 1 MiB.
Expected<UserAccount> Lookup(const std::string* name, uid_t uid) {
  long hint = sysconf(_SC_GETPW_R_SIZE_MAX);
  std::vector<char> buf(hint > 0 ? static_cast<size_t>(hint) : 16384);
  struct passwd pw;
  struct passwd* result = nullptr;
  while (true) {
    const int rc = name != nullptr ? getpwnam_r(name->c_str(), &pw, buf.data(), buf.size(), &result)
                                   : getpwuid_r(uid, &pw, buf.data(), buf.size(), &result);
    if (rc != ERANGE || buf.size() >= (size_t{1} << 20)) break;
    buf.resize(buf.size() * 2);
  }
  if (result == nullptr) return MakeError(ErrorCode::kNotFound, "no local account for this user");
  UserAccount u;
  u.uid = static_cast<int64_t>(pw.pw_uid);
  u.gid = static_cast<int64_t>(pw.pw_gid);
  u.name = pw.pw_name;
  u.home = pw.pw_dir;
  return u;
}

bool IsLocalDisplay(std::string_view name) { return name.size() > 1 && name.front() == ':' && IsDisplayNumber(name.substr(1)); }

std::vector<std::string> DisplaysOf(const std::vector<SocketInfo>& found) {
  std::vector<std::string> names;
  for (const SocketInfo& s : found) names.push_back(s.display);
  return names;
}

Target UserTarget(const SocketInfo& s, const UserAccount& user) {
  Target t;
  t.kind = Target::Kind::kUnix;
  t.path = s.path;
  t.display = s.display;
  t.server_uid = user.uid;
  return t;
}

}  // namespace

Expected<UserAccount> LookupUser(std::string_view name) {
  if (name.empty() || name.find('\0') != std::string_view::npos || name.size() > 256) {
    return MakeError(ErrorCode::kNotFound, "no local account for this user");
  }
  const std::string n(name);
  return Lookup(&n, 0);
}

Expected<UserAccount> LookupUserById(int64_t uid) {
  if (uid < 0 || uid > static_cast<int64_t>(UINT32_MAX - 1)) {
    return MakeError(ErrorCode::kNotFound, "no local account for this user");
  }
  return Lookup(nullptr, static_cast<uid_t>(uid));
}

std::vector<std::string> UserSocketDirs(const UserAccount& user, const RegistryOptions& opts) {
  std::vector<std::string> dirs = ExpandedDirs(opts, user.uid);
  if (dirs.size() > opts.scan.max_dirs) dirs.resize(opts.scan.max_dirs);
  return dirs;
}

std::vector<SocketInfo> UserSessions(const UserAccount& user, const RegistryOptions& opts) {
  std::vector<SocketInfo> out;
  for (SocketInfo& s : ListUserSockets(UserSocketDirs(user, opts), HostnameOf(opts), user.uid, opts.scan)) {
    if (Excluded(s.display, opts)) continue;
    const bool dup = std::any_of(out.begin(), out.end(), [&](const SocketInfo& o) { return o.display == s.display; });
    if (!dup) out.push_back(std::move(s));
  }
  return out;
}

Expected<Target> SelectUserTarget(const std::vector<auth::SessionEntry>& sessions, std::string_view username,
                                  std::string_view requested_raw, const StartRequest& start,
                                  const RegistryOptions& opts) {
  const bool module_displays = std::any_of(sessions.begin(), sessions.end(),
                                           [](const auth::SessionEntry& s) { return !s.displays.empty(); });
  if (!opts.system_wide || module_displays) return SelectTarget(sessions, requested_raw, opts);
  const std::string_view requested = Trim(requested_raw);
  const std::string wanted = requested.empty() ? std::string() : DisplayNameOf(requested);
  if (!wanted.empty() && !IsLocalDisplay(wanted)) {
    return MakeError(ErrorCode::kNotFound, "invalid display name '" + RedactUserinfo(wanted) + "', use /N");
  }
  if (!wanted.empty() && wanted == opts.own_display) return MakeError(ErrorCode::kNotFound, "invalid display");
  int64_t uid = -1, gid = -1;
  for (const auth::SessionEntry& s : sessions) {
    if (s.uid >= 0) {
      uid = s.uid;
      gid = s.gid;
      break;
    }
  }
  Expected<UserAccount> account = uid >= 0 ? LookupUserById(uid) : LookupUser(username);
  if (!account.ok()) return account.error();
  UserAccount user = std::move(*account);
  if (gid >= 0) user.gid = gid;
  if (user.uid == 0) return MakeError(ErrorCode::kNotFound, "sessions of root are not relayed");
  const std::vector<SocketInfo> found = UserSessions(user, opts);
  if (start.requested && !opts.launcher) {
    return MakeError(ErrorCode::kNotFound, "starting sessions is not enabled on this relay");
  }
  if (opts.launcher && (start.requested || found.empty())) {
    StartRequest req = start;
    if (!req.requested && IsLocalDisplay(wanted)) req.display = wanted;
    Expected<SocketInfo> started = opts.launcher->Start(user, req, [&] { return UserSessions(user, opts); });
    if (!started.ok()) return started.error();
    return UserTarget(*started, user);
  }
  if (found.empty()) return MakeError(ErrorCode::kNotFound, "no sessions found for this user");
  if (wanted.empty()) {
    if (found.size() != 1) {
      return MakeError(ErrorCode::kNotFound,
                       "please specify a display, more than one is available: " + Join(DisplaysOf(found)));
    }
    return UserTarget(found.front(), user);
  }
  for (const SocketInfo& s : found) {
    if (s.display == wanted) return UserTarget(s, user);
  }
  return MakeError(ErrorCode::kNotFound, "display '" + wanted + "' not found, available: " + Join(DisplaysOf(found)));
}

}  // namespace xr::registry
