#include "engine/sd_notify.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <string>

#include "base/fd.h"
#include "engine/log.h"

namespace xr::engine {
namespace {

std::string StatusLine(std::string_view status) {
  std::string line = "STATUS=";
  for (char c : status) line += (c == '\n' || c == '\r') ? ' ' : c;
  return line;
}

std::string With(std::string state, std::string_view status) {
  if (!status.empty()) state += "\n" + StatusLine(status);
  return state;
}

}  // namespace

SdNotifier SdNotifier::FromEnvironment() {
  const char* s = std::getenv("NOTIFY_SOCKET");
  return SdNotifier(s ? s : "");
}

Status SdNotifier::Send(std::string_view state) const {
  if (!enabled()) return Status::Ok();
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_.size() >= sizeof addr.sun_path || socket_.size() < 2 || (socket_[0] != '/' && socket_[0] != '@')) {
    return MakeError(ErrorCode::kMalformed, "NOTIFY_SOCKET '" + socket_ + "' is neither an absolute path nor @name");
  }
  std::memcpy(addr.sun_path, socket_.data(), socket_.size());
  socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + socket_.size());
  if (socket_[0] == '@') {
    addr.sun_path[0] = '\0';  // abstract: no terminating NUL counted
  } else {
    len += 1;
  }
  UniqueFd fd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return MakeError(ErrorCode::kIo, std::string("notify socket: ") + log::ErrnoText(errno));
  ssize_t n = ::sendto(fd.get(), state.data(), state.size(), MSG_NOSIGNAL, reinterpret_cast<sockaddr*>(&addr), len);
  if (n < 0) return MakeError(ErrorCode::kIo, "notify " + socket_ + ": " + log::ErrnoText(errno));
  if (static_cast<size_t>(n) != state.size()) return MakeError(ErrorCode::kIo, "notify " + socket_ + ": short send");
  return Status::Ok();
}

Status SdNotifier::Ready(std::string_view status) const { return Send(With("READY=1", status)); }

Status SdNotifier::Reloading(std::string_view status) const {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  uint64_t usec = static_cast<uint64_t>(ts.tv_sec) * 1000000u + static_cast<uint64_t>(ts.tv_nsec) / 1000u;
  return Send(With("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(usec), status));
}

Status SdNotifier::Stopping(std::string_view status) const { return Send(With("STOPPING=1", status)); }

void SdNotifier::WarnIfFailed(const Status& s) {
  if (!s.ok()) XR_WARN("main", "systemd notification: {}", s.error().message);
}

Status SdNotifier::SetStatus(std::string_view status) const { return Send(StatusLine(status)); }

}  // namespace xr::engine
