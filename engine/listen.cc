#include "engine/listen.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include <fmt/format.h>

#include "engine/log.h"

namespace xr::engine {

std::string PeerName(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "?";
  char host[INET6_ADDRSTRLEN] = "?";
  if (ss.ss_family == AF_INET) {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
    return fmt::format("{}:{}", host, ntohs(a->sin_port));
  }
  if (ss.ss_family == AF_INET6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
    return fmt::format("[{}]:{}", host, ntohs(a->sin6_port));
  }
  if (ss.ss_family == AF_UNIX) return "unix";
  return "?";
}

Expected<UniqueFd> OpenTcpListener(const std::string& host, uint16_t port, bool reuseport, bool check_free) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  std::string service = std::to_string(port);
  int rc = getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints, &res);
  if (rc != 0) return MakeError(ErrorCode::kIo, fmt::format("cannot resolve '{}': {}", host, gai_strerror(rc)));
  std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> guard(res, freeaddrinfo);
  int one = 1;
  if (reuseport && check_free && port != 0) {
    // SO_REUSEPORT would let us share a port another process (say, a second relay) holds:
    // check first that nobody listens there.
    UniqueFd probe(socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
    // Without SO_REUSEADDR a port in TIME_WAIT looks taken: the probe then reports a false
    // "in use", never a false "free", so a failure here needs no handling of its own.
    if (probe.valid() && setsockopt(probe.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0) {
      XR_DEBUG("net", "SO_REUSEADDR on the bind probe: {}", log::ErrnoText(errno));
    }
    if (probe.valid() && bind(probe.get(), res->ai_addr, res->ai_addrlen) != 0 && errno == EADDRINUSE) {
      return MakeError(ErrorCode::kIo, fmt::format("cannot bind {}:{}: address already in use", host, port));
    }
  }
  UniqueFd fd(socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return MakeError(ErrorCode::kIo, fmt::format("socket: {}", log::ErrnoText(errno)));
  if (setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0) {
    return MakeError(ErrorCode::kIo, fmt::format("SO_REUSEADDR on {}:{}: {}", host, port, log::ErrnoText(errno)));
  }
  if (reuseport && setsockopt(fd.get(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
    return MakeError(ErrorCode::kIo, fmt::format("SO_REUSEPORT on {}:{}: {}", host, port, log::ErrnoText(errno)));
  }
  if (bind(fd.get(), res->ai_addr, res->ai_addrlen) != 0) {
    return MakeError(ErrorCode::kIo, fmt::format("cannot bind {}:{}: {}", host, port, log::ErrnoText(errno)));
  }
  if (listen(fd.get(), 4096) != 0) return MakeError(ErrorCode::kIo, fmt::format("listen: {}", log::ErrnoText(errno)));
  return fd;
}

Expected<UniqueFd> OpenUnixListener(const std::string& path, mode_t mode) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) return MakeError(ErrorCode::kMalformed, "unix socket path too long: " + path);
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return MakeError(ErrorCode::kIo, fmt::format("socket: {}", log::ErrnoText(errno)));
  ::unlink(path.c_str());
  // Never world-accessible, even for a moment: Linux creates the socket file with the socket
  // inode's mode (less the umask), so fchmod before bind sets it without touching the
  // process-wide umask (which reactor threads binding at once would race on).
  if (fchmod(fd.get(), 0600) != 0) return MakeError(ErrorCode::kIo, fmt::format("fchmod {}: {}", path, log::ErrnoText(errno)));
  if (bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    return MakeError(ErrorCode::kIo, fmt::format("cannot bind {}: {}", path, log::ErrnoText(errno)));
  }
  if (mode != 0600 && chmod(path.c_str(), mode) != 0) {
    return MakeError(ErrorCode::kIo, fmt::format("chmod {}: {}", path, log::ErrnoText(errno)));
  }
  if (listen(fd.get(), 1024) != 0) return MakeError(ErrorCode::kIo, fmt::format("listen: {}", log::ErrnoText(errno)));
  return fd;
}

Expected<TargetAddress> AddressOfTarget(const registry::Target& target) {
  TargetAddress t;
  if (target.kind == registry::Target::Kind::kUnix) {
    auto* un = reinterpret_cast<sockaddr_un*>(&t.addr);
    un->sun_family = AF_UNIX;
    if (target.path.size() >= sizeof un->sun_path) return MakeError(ErrorCode::kMalformed, "socket path too long");
    std::memcpy(un->sun_path, target.path.c_str(), target.path.size() + 1);
    t.len = sizeof(sockaddr_un);
    t.family = AF_UNIX;
    return t;
  }
  std::string host = target.host == "localhost" || target.host.empty() ? "127.0.0.1" : target.host;
  auto* in4 = reinterpret_cast<sockaddr_in*>(&t.addr);
  auto* in6 = reinterpret_cast<sockaddr_in6*>(&t.addr);
  if (inet_pton(AF_INET, host.c_str(), &in4->sin_addr) == 1) {
    in4->sin_family = AF_INET;
    in4->sin_port = htons(target.port);
    t.len = sizeof(sockaddr_in);
    t.family = AF_INET;
  } else if (inet_pton(AF_INET6, host.c_str(), &in6->sin6_addr) == 1) {
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(target.port);
    t.len = sizeof(sockaddr_in6);
    t.family = AF_INET6;
  } else {
    return MakeError(ErrorCode::kMalformed, "target host must be a numeric address (got '" + target.host + "')");
  }
  t.tcp = true;
  return t;
}

}  // namespace xr::engine
