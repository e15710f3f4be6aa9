#include "engine/takeover.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "engine/log.h"

namespace xr::engine::takeover {
namespace {

Status SetTimeouts(int fd) {
  timeval tv{kIoTimeoutMs / 1000, 0};
  if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) != 0 ||
      setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0) {
    return MakeError(ErrorCode::kIo, fmt::format("takeover socket timeouts: {}", log::ErrnoText(errno)));
  }
  return Status::Ok();
}

// Sends one record (text NUL-padded to kRecordSize), with `fd` attached when >= 0.
Status SendRecord(int conn, const std::string& text, int fd) {
  char buf[kRecordSize] = {0};
  std::memcpy(buf, text.data(), std::min(text.size(), kRecordSize - 1));
  size_t off = 0;
  while (off < kRecordSize) {
    iovec iov{buf + off, kRecordSize - off};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {0};
    if (off == 0 && fd >= 0) {
      msg.msg_control = control;
      msg.msg_controllen = sizeof control;
      cmsghdr* c = CMSG_FIRSTHDR(&msg);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int));
      std::memcpy(CMSG_DATA(c), &fd, sizeof fd);
    }
    ssize_t n = sendmsg(conn, &msg, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return MakeError(ErrorCode::kIo, fmt::format("sending a socket: {}", log::ErrnoText(errno)));
    off += static_cast<size_t>(n);
  }
  return Status::Ok();
}

// Receives one record; *fd gets the socket attached to it (or stays empty).
Status ReceiveRecord(int conn, std::string* text, UniqueFd* fd) {
  char buf[kRecordSize];
  size_t off = 0;
  while (off < kRecordSize) {
    iovec iov{buf + off, kRecordSize - off};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 4)];
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t n = recvmsg(conn, &msg, MSG_CMSG_CLOEXEC);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return MakeError(ErrorCode::kIo, fmt::format("receiving the sockets: {}", log::ErrnoText(errno)));
    if (n == 0) return MakeError(ErrorCode::kIo, "the running relay closed the connection");
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < count; ++i) {
        int got;
        std::memcpy(&got, CMSG_DATA(c) + i * sizeof(int), sizeof got);
        // One socket per record: any other is closed, never leaked.
        if (off == 0 && i == 0 && !fd->valid()) {
          fd->reset(got);
        } else {
          ::close(got);
        }
      }
    }
    if (msg.msg_flags & MSG_CTRUNC) return MakeError(ErrorCode::kMalformed, "a takeover record carried too many sockets");
    off += static_cast<size_t>(n);
  }
  *text = std::string(buf, strnlen(buf, kRecordSize));
  return Status::Ok();
}

}  // namespace

Status SendSockets(int conn, const std::vector<std::pair<std::string, int>>& sockets) {
  if (Status s = SetTimeouts(conn); !s.ok()) return s;
  if (sockets.size() > kMaxSockets) return SendRefusal(conn, fmt::format("over {} listening sockets", kMaxSockets));
  for (const auto& [id, fd] : sockets) {
    if (id.size() + 3 >= kRecordSize || id.find('\n') != std::string::npos) {
      return MakeError(ErrorCode::kMalformed, "listener id too long: " + id);
    }
    if (Status s = SendRecord(conn, "L " + id + "\n", fd); !s.ok()) return s;
  }
  return SendRecord(conn, fmt::format("E {}\n", sockets.size()), -1);
}

Status SendRefusal(int conn, const std::string& reason) {
  if (Status s = SetTimeouts(conn); !s.ok()) return s;
  return SendRecord(conn, "X " + reason + "\n", -1);
}

Expected<std::vector<HandedSocket>> ReceiveSockets(int conn) {
  if (Status s = SetTimeouts(conn); !s.ok()) return s.error();
  std::vector<HandedSocket> out;
  while (true) {
    std::string text;
    UniqueFd fd;
    if (Status s = ReceiveRecord(conn, &text, &fd); !s.ok()) return s.error();
    if (text.size() < 3 || text.back() != '\n' || text[1] != ' ') {
      return MakeError(ErrorCode::kMalformed, "the running relay sent a malformed takeover record");
    }
    std::string body = text.substr(2, text.size() - 3);
    if (text[0] == 'X') return MakeError(ErrorCode::kIo, "the running relay refused the takeover: " + body);
    if (text[0] == 'E') {
      if (body != std::to_string(out.size())) {
        return MakeError(ErrorCode::kMalformed, fmt::format("takeover: {} sockets announced, {} received", body, out.size()));
      }
      return out;
    }
    if (text[0] != 'L' || !fd.valid()) {
      return MakeError(ErrorCode::kMalformed, "the running relay sent a takeover record without its socket");
    }
    if (out.size() == kMaxSockets) return MakeError(ErrorCode::kTooLarge, fmt::format("takeover: over {} sockets", kMaxSockets));
    out.push_back(HandedSocket{std::move(body), std::move(fd)});
  }
}

Expected<std::vector<HandedSocket>> RequestSockets(const std::string& path, UniqueFd* conn) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) return MakeError(ErrorCode::kMalformed, "--takeover: socket path too long: " + path);
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return MakeError(ErrorCode::kIo, fmt::format("socket: {}", log::ErrnoText(errno)));
  if (Status s = SetTimeouts(fd.get()); !s.ok()) return s.error();
  if (connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    return MakeError(ErrorCode::kIo, fmt::format("--takeover: cannot reach the running relay at {}: {}", path,
                                                 log::ErrnoText(errno)));
  }
  const std::string req = kRequest;
  if (send(fd.get(), req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
    return MakeError(ErrorCode::kIo, fmt::format("--takeover: cannot ask {}: {}", path, log::ErrnoText(errno)));
  }
  auto got = ReceiveSockets(fd.get());
  if (!got.ok()) return MakeError(got.error().code, "--takeover " + path + ": " + got.error().message);
  *conn = std::move(fd);
  return got;
}

Status Confirm(int conn) {
  const std::string ready = kReady;
  if (send(conn, ready.data(), ready.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(ready.size())) {
    return MakeError(ErrorCode::kIo, fmt::format("telling the old relay to drain: {}", log::ErrnoText(errno)));
  }
  return Status::Ok();
}

}  // namespace xr::engine::takeover
