#include "session_registry/socket_dirs.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstdint>
#include <cstring>
#include <optional>
#include <set>

namespace xr::registry {
namespace {

std::optional<struct passwd> PasswdOf(uid_t uid, std::vector<char>* buf) {
  long size = sysconf(_SC_GETPW_R_SIZE_MAX);
  buf->assign(size > 0 ? static_cast<size_t>(size) : 16384, '\0');
  struct passwd pw;
  struct passwd* result = nullptr;
  while (getpwuid_r(uid, &pw, buf->data(), buf->size(), &result) == ERANGE) {
    buf->resize(buf->size() * 2);
  }
  if (result == nullptr) return std::nullopt;
  return pw;
}

bool IsVarChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

struct UserVars {
  std::string uid, gid, user, home, runtime_dir;
};

UserVars VarsFor(int64_t uid) {
  UserVars v;
  const bool self = uid < 0 || static_cast<uid_t>(uid) == getuid();
  const uid_t u = self ? getuid() : static_cast<uid_t>(uid);
  std::vector<char> buf;
  std::optional<struct passwd> pw = PasswdOf(u, &buf);
  v.uid = std::to_string(u);
  v.gid = std::to_string(pw ? pw->pw_gid : getgid());
  v.user = pw ? pw->pw_name : "";
  const char* home = std::getenv("HOME");
  if (self && home != nullptr && *home != '\0') {
    v.home = home;
  } else if (pw) {
    v.home = pw->pw_dir;
  }
  const char* xdg = std::getenv("XDG_RUNTIME_DIR");
  if (self && xdg != nullptr && *xdg != '\0') {
    v.runtime_dir = xdg;
  } else {
    v.runtime_dir = "/run/user/" + v.uid;
  }
  return v;
}

std::optional<std::string> LookupVar(const std::string& name, const UserVars& v) {
  if (name == "UID") return v.uid;
  if (name == "GID") return v.gid;
  if ((name == "USER" || name == "USERNAME") && !v.user.empty()) return v.user;
  if (name == "HOME" && !v.home.empty()) return v.home;
  if (name == "XDG_RUNTIME_DIR") return v.runtime_dir;
  if (name == "PID") return std::to_string(getpid());
  const char* env = std::getenv(name.c_str());
  if (env != nullptr) return std::string(env);
  return std::nullopt;
}

std::string RealPath(const std::string& path) {
  char buf[PATH_MAX];
  if (realpath(path.c_str(), buf) == nullptr) return path;
  return buf;
}

}  // namespace

const char* SocketStateName(SocketState state) {
  switch (state) {
    case SocketState::kLive: return "LIVE";
    case SocketState::kDead: return "DEAD";
    case SocketState::kUnknown: return "UNKNOWN";
    case SocketState::kInaccessible: return "INACCESSIBLE";
  }
  return "UNKNOWN";
}

SocketState ProbeSocket(const std::string& path) { return ProbeSocketPeer(path, nullptr); }

SocketState ProbeSocketPeer(const std::string& path, int64_t* peer_uid) {
  if (peer_uid != nullptr) *peer_uid = -1;
  struct sockaddr_un addr;
  std::memset(&addr, 0, sizeof(addr));
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) return SocketState::kUnknown;
  std::memcpy(addr.sun_path, path.data(), path.size());
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return SocketState::kDead;
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return SocketState::kUnknown;
  SocketState state = SocketState::kLive;
  if (connect(fd, reinterpret_cast<const struct sockaddr*>(&addr), sizeof(addr)) != 0) {
    switch (errno) {
      case EACCES: state = SocketState::kInaccessible; break;
      case ECONNREFUSED: state = SocketState::kUnknown; break;
      case EAGAIN: state = SocketState::kDead; break;
      case ENOENT: state = SocketState::kDead; break;
      default: state = SocketState::kUnknown; break;
    }
  } else if (peer_uid != nullptr) {
    struct ucred cred;
    socklen_t len = sizeof(cred);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) *peer_uid = static_cast<int64_t>(cred.uid);
  }
  close(fd);
  return state;
}

std::string DefaultSocketHostname() {
  const char* env = std::getenv("XPRA_SOCKET_HOSTNAME");
  if (env != nullptr && *env != '\0') return env;
  char buf[HOST_NAME_MAX + 1] = {};
  if (gethostname(buf, sizeof(buf) - 1) != 0) return "localhost";
  return buf;
}

std::string ExpandSocketDir(std::string_view dir, int64_t uid) {
  const UserVars vars = VarsFor(uid);
  std::string in(dir);
  if (in == "~" || in.rfind("~/", 0) == 0) in = vars.home + in.substr(1);
  std::string out;
  for (size_t i = 0; i < in.size();) {
    if (in[i] != '$') {
      out += in[i++];
      continue;
    }
    size_t start = i + 1;
    size_t end = start;
    bool braced = false;
    if (start < in.size() && in[start] == '{') {
      braced = true;
      end = in.find('}', start + 1);
      if (end == std::string::npos) {
        out += in.substr(i);
        break;
      }
      ++start;
    } else {
      while (end < in.size() && IsVarChar(in[end])) ++end;
    }
    const std::string name = in.substr(start, end - start);
    const size_t next = braced ? end + 1 : end;
    std::optional<std::string> value = name.empty() ? std::nullopt : LookupVar(name, vars);
    if (value) {
      out += *value;
    } else {
      out += in.substr(i, next - i);
    }
    i = next;
  }
  return out;
}

namespace {

// Calls visit(path, name after the prefix) for each HOSTNAME-N candidate in `dirs` (dotxpra's
// socket_details walk): dirs in order, the same real dir once, names sorted within a dir, at
// most `limits` looked at. With `matching_display` only that name is visited.
template <typename Visit>
void WalkSocketDirs(const std::vector<std::string>& dirs, std::string_view hostname,
                    std::string_view matching_display, const ScanLimits& limits, Visit visit) {
  std::set<std::string> seen;
  const std::string prefix = std::string(hostname) + "-";
  std::string wanted;
  if (!matching_display.empty()) {
    wanted = prefix + std::string(matching_display.front() == ':' ? matching_display.substr(1) : matching_display);
  }
  size_t dirs_seen = 0;
  for (const std::string& dir : dirs) {
    if (dir.empty()) continue;
    if (++dirs_seen > limits.max_dirs) break;
    struct stat dst;
    if (stat(dir.c_str(), &dst) != 0 || !S_ISDIR(dst.st_mode)) continue;
    if (!seen.insert(RealPath(dir)).second) continue;
    std::vector<std::string> names;
    if (!wanted.empty()) {
      names.push_back(wanted);
    } else {
      DIR* d = opendir(dir.c_str());
      if (d == nullptr) continue;  // EACCES: a dir this identity may not read (see docs/security.md)
      size_t entries = 0;
      while (struct dirent* e = readdir(d)) {
        if (++entries > limits.max_entries_per_dir) break;
        std::string name = e->d_name;
        if (name.size() > prefix.size() && name.compare(0, prefix.size(), prefix) == 0) names.push_back(name);
      }
      closedir(d);
      std::sort(names.begin(), names.end());
      if (names.size() > limits.max_sockets_per_dir) names.resize(limits.max_sockets_per_dir);
    }
    for (const std::string& name : names) {
      visit(dir.back() == '/' ? dir + name : dir + "/" + name, name.substr(prefix.size()));
    }
  }
}

constexpr ScanLimits kUnlimited{SIZE_MAX, SIZE_MAX, SIZE_MAX};

}  // namespace

std::vector<SocketInfo> ListSockets(const std::vector<std::string>& dirs, std::string_view hostname,
                                    int64_t check_uid, std::string_view matching_display) {
  std::vector<SocketInfo> out;
  WalkSocketDirs(dirs, hostname, matching_display, kUnlimited, [&](const std::string& path, const std::string& n) {
    struct stat st;
    if (stat(path.c_str(), &st) != 0 || !S_ISSOCK(st.st_mode)) return;
    if (check_uid >= 0 && static_cast<int64_t>(st.st_uid) != check_uid) return;
    out.push_back(SocketInfo{ProbeSocket(path), ":" + n, path});
  });
  return out;
}

std::vector<SocketInfo> ListUserSockets(const std::vector<std::string>& dirs, std::string_view hostname,
                                        int64_t uid, const ScanLimits& limits, std::string_view matching_display) {
  std::vector<SocketInfo> out;
  if (uid < 0) return out;
  WalkSocketDirs(dirs, hostname, matching_display, limits, [&](const std::string& path, const std::string& n) {
    struct stat st;
    if (lstat(path.c_str(), &st) != 0 || !S_ISSOCK(st.st_mode)) return;  // a symlink is never taken
    if (static_cast<int64_t>(st.st_uid) != uid) return;
    int64_t peer = -1;
    if (ProbeSocketPeer(path, &peer) != SocketState::kLive || peer != uid) return;
    out.push_back(SocketInfo{SocketState::kLive, ":" + n, path});
  });
  return out;
}

}  // namespace xr::registry
