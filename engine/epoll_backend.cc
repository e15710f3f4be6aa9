#include "engine/epoll_backend.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include <fmt/format.h>

#include "engine/log.h"

namespace xr::engine {
namespace {

// Accepts taken per readiness event before the other fds get their turn.
constexpr int kAcceptBurst = 64;
constexpr uint32_t kReadable = EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP;
constexpr uint32_t kWritable = EPOLLOUT | EPOLLERR | EPOLLHUP;

int64_t MonotonicMs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000 + ts.tv_nsec / 1000000;
}

}  // namespace

Status EpollBackend::Init() {
  epoll_.reset(epoll_create1(EPOLL_CLOEXEC));
  if (!epoll_.valid()) return MakeError(ErrorCode::kIo, fmt::format("epoll_create1: {}", log::ErrnoText(errno)));
  return Status::Ok();
}

Status EpollBackend::Start(unsigned buffers, size_t buffer_size) {
  data_.reset(new char[size_t{buffers} * buffer_size]);
  buf_size_ = buffer_size;
  free_bufs_.clear();
  for (unsigned i = buffers; i > 0; --i) free_bufs_.push_back(static_cast<int>(i - 1));
  return Status::Ok();
}

// ------------------------------------------------------------------ operation slots

uint32_t EpollBackend::NewOp(Kind kind, int fd, uint64_t tag) {
  uint32_t id;
  if (!free_ops_.empty()) {
    id = free_ops_.back();
    free_ops_.pop_back();
  } else {
    id = static_cast<uint32_t>(ops_.size());
    ops_.emplace_back();
  }
  Op& op = ops_[id];
  uint32_t gen = op.gen + 1;
  op = Op{};
  op.gen = gen;
  op.kind = kind;
  op.live = true;
  op.fd = fd;
  op.tag = tag;
  op.events = (kind == Kind::kConnect || kind == Kind::kSend) ? EPOLLOUT : EPOLLIN;
  return id;
}

void EpollBackend::FreeOp(uint32_t id) {
  Op& op = ops_[id];
  if (!op.live) return;
  op.live = false;
  auto range = by_tag_.equal_range(op.tag);
  for (auto it = range.first; it != range.second; ++it) {
    if (it->second == id) {
      by_tag_.erase(it);
      break;
    }
  }
  if (op.fd >= 0 && static_cast<size_t>(op.fd) < fds_.size()) {
    auto& w = fds_[static_cast<size_t>(op.fd)].waiting;
    auto it = std::find(w.begin(), w.end(), id);
    if (it != w.end()) {
      *it = w.back();
      w.pop_back();
    }
  }
  free_ops_.push_back(id);
}

void EpollBackend::Emit(uint64_t tag, int res, bool more, int buffer) {
  next_.push_back(Completion{tag, res, more, buffer});
}

void EpollBackend::WithdrawPartner(uint32_t id) {
  uint32_t p = ops_[id].partner;
  if (p == kNone) return;
  ops_[id].partner = kNone;
  ops_[p].partner = kNone;
  Finish(p, -ECANCELED);
}

void EpollBackend::Finish(uint32_t id, int res, int buffer) {
  Emit(ops_[id].tag, res, false, buffer);
  FreeOp(id);
}

EpollBackend::FdState& EpollBackend::StateOf(int fd) {
  if (static_cast<size_t>(fd) >= fds_.size()) fds_.resize(static_cast<size_t>(fd) + 1);
  return fds_[static_cast<size_t>(fd)];
}

void EpollBackend::FreshFd(int fd) {
  FdState& s = StateOf(fd);
  s.registered = false;
  s.readable = true;
  s.writable = true;
  std::vector<uint32_t> stale;
  stale.swap(s.waiting);
  for (uint32_t id : stale) {
    WithdrawPartner(id);
    Finish(id, -EBADF);
  }
}

void EpollBackend::Park(uint32_t id) {
  int fd = ops_[id].fd;
  FdState& s = StateOf(fd);
  if (!s.registered) {
    // Edge-triggered, both directions, for the fd's life: no epoll_ctl per wait. Adding checks
    // the fd's readiness at once, so nothing that arrived since the try is missed. EEXIST:
    // this very file is registered already.
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    ev.data.u64 = static_cast<uint64_t>(fd);
    if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) != 0 && errno != EEXIST) {
      int err = errno;
      WithdrawPartner(id);
      Finish(id, -err);
      return;
    }
    s.registered = true;
  }
  s.waiting.push_back(id);
  by_tag_.emplace(ops_[id].tag, id);
}

void EpollBackend::Begin(uint32_t id) {
  // An fd seen drained waits for its next edge: no system call that would say EAGAIN.
  const FdState& s = StateOf(ops_[id].fd);
  const uint32_t ev = ops_[id].events;
  bool maybe_ready = ((ev & EPOLLIN) && s.readable) || ((ev & EPOLLOUT) && s.writable);
  if (s.registered && !maybe_ready) {
    Park(id);
    return;
  }
  if (!Try(id, 0)) Park(id);
}

// ------------------------------------------------------------------ trying an operation

bool EpollBackend::Try(uint32_t id, uint32_t revents) {
  Op& op = ops_[id];
  const int fd = op.fd;
  switch (op.kind) {
    case Kind::kAccept: {
      for (int i = 0; i < kAcceptBurst; ++i) {
        int s = accept4(fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (s >= 0) {
          FreshFd(s);
          Emit(ops_[id].tag, s, /*more=*/true);
          continue;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
          StateOf(fd).readable = false;
          return false;
        }
        if (errno == EINTR || errno == ECONNABORTED) continue;
        Finish(id, -errno);  // the multishot accept ends here, as io_uring's does
        return true;
      }
      // More may be waiting; edge-triggered readiness will not say so again.
      again_.push_back(fd);
      return false;
    }
    case Kind::kConnect: {
      if (!(revents & kWritable)) return false;
      int err = 0;
      socklen_t len = sizeof err;
      if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
      WithdrawPartner(id);  // the timeout is withdrawn once the connect is done
      Finish(id, -err);
      return true;
    }
    case Kind::kRecvProvided: {
      if (free_bufs_.empty()) {
        Finish(id, -ENOBUFS);
        return true;
      }
      int b = free_bufs_.back();
      size_t len = op.len == 0 ? buf_size_ : std::min(op.len, buf_size_);
      ssize_t n = recv(fd, data_.get() + static_cast<size_t>(b) * buf_size_, len, MSG_DONTWAIT);
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        StateOf(fd).readable = false;
        return false;
      }
      if (n > 0) {
        free_bufs_.pop_back();
        Finish(id, static_cast<int>(n), b);
      } else {
        Finish(id, n == 0 ? 0 : -errno);
      }
      return true;
    }
    case Kind::kRecv:
    case Kind::kRead: {
      ssize_t n = op.kind == Kind::kRecv ? recv(fd, op.buf, op.len, MSG_DONTWAIT) : read(fd, op.buf, op.len);
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        StateOf(fd).readable = false;
        return false;
      }
      Finish(id, n < 0 ? -errno : static_cast<int>(n));
      return true;
    }
    case Kind::kSend: {
      ssize_t n = send(fd, op.data, op.len, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        StateOf(fd).writable = false;
        return false;
      }
      if (n > 0 && static_cast<size_t>(n) < op.len) StateOf(fd).writable = false;  // the socket buffer is full
      Finish(id, n < 0 ? -errno : static_cast<int>(n));
      return true;
    }
    case Kind::kPoll: {
      uint32_t ready;
      if (revents == 0) {
        pollfd p{fd, static_cast<short>(op.len), 0};
        if (poll(&p, 1, 0) < 0) {
          Finish(id, -errno);
          return true;
        }
        ready = static_cast<uint16_t>(p.revents);
      } else {
        // epoll's event bits are poll's.
        ready = revents & (static_cast<uint32_t>(op.len) | POLLERR | POLLHUP);
      }
      if (ready == 0) return false;
      Finish(id, static_cast<int>(ready));
      return true;
    }
    case Kind::kConnectTimeout:
    case Kind::kTimer:
      return false;  // completed by ExpireTimers
  }
  return false;
}

// ------------------------------------------------------------------ the operations

void EpollBackend::Accept(int listen_fd, uint64_t tag) {
  // A listener may have taken the number of a socket closed while still watched: forget
  // that one, and register this file anew (EEXIST says it already is).
  FreshFd(listen_fd);
  Begin(NewOp(Kind::kAccept, listen_fd, tag));
}

void EpollBackend::ConnectWithTimeout(int fd, const sockaddr* addr, socklen_t len, int64_t timeout_ms, uint64_t tag,
                                      uint64_t timeout_tag) {
  FreshFd(fd);
  int rc = connect(fd, addr, len) == 0 ? 0 : -errno;
  if (rc != -EINPROGRESS) {
    // Done at once (a unix socket, a refused port): the timeout is withdrawn with it.
    Emit(tag, rc);
    Emit(timeout_tag, -ECANCELED);
    return;
  }
  uint32_t c = NewOp(Kind::kConnect, fd, tag);
  uint32_t t = NewOp(Kind::kConnectTimeout, -1, timeout_tag);
  ops_[c].partner = t;
  ops_[t].partner = c;
  by_tag_.emplace(timeout_tag, t);
  timers_.push(Deadline{MonotonicMs() + timeout_ms, t, ops_[t].gen});
  Park(c);
}

void EpollBackend::RecvProvided(int fd, size_t max_len, uint64_t tag) {
  uint32_t id = NewOp(Kind::kRecvProvided, fd, tag);
  ops_[id].len = max_len;
  Begin(id);
}

void EpollBackend::Recv(int fd, char* buf, size_t len, uint64_t tag) {
  uint32_t id = NewOp(Kind::kRecv, fd, tag);
  ops_[id].buf = buf;
  ops_[id].len = len;
  Begin(id);
}

void EpollBackend::Read(int fd, void* buf, size_t len, uint64_t tag) {
  uint32_t id = NewOp(Kind::kRead, fd, tag);
  ops_[id].buf = static_cast<char*>(buf);
  ops_[id].len = len;
  Begin(id);
}

void EpollBackend::Send(int fd, const char* data, size_t len, uint64_t tag) {
  uint32_t id = NewOp(Kind::kSend, fd, tag);
  ops_[id].data = data;
  ops_[id].len = len;
  Begin(id);
}

void EpollBackend::Poll(int fd, unsigned events, uint64_t tag) {
  uint32_t id = NewOp(Kind::kPoll, fd, tag);
  ops_[id].len = events;  // the poll events asked for
  ops_[id].events = ((events & POLLIN) ? uint32_t{EPOLLIN} : 0u) | ((events & POLLOUT) ? uint32_t{EPOLLOUT} : 0u);
  Begin(id);
}

void EpollBackend::Timer(int64_t ms, uint64_t tag) {
  uint32_t id = NewOp(Kind::kTimer, -1, tag);
  by_tag_.emplace(tag, id);
  timers_.push(Deadline{MonotonicMs() + ms, id, ops_[id].gen});
}

void EpollBackend::Cancel(uint64_t target, uint64_t tag) {
  std::vector<uint32_t> found;
  auto range = by_tag_.equal_range(target);
  for (auto it = range.first; it != range.second; ++it) found.push_back(it->second);
  for (uint32_t id : found) {
    if (!ops_[id].live) continue;  // a connect's timeout, already withdrawn with it
    // Cancelling a connect withdraws its timeout; cancelling the timeout leaves the connect.
    if (ops_[id].kind == Kind::kConnect) {
      WithdrawPartner(id);
    } else if (ops_[id].partner != kNone) {
      ops_[ops_[id].partner].partner = kNone;
    }
    Finish(id, -ECANCELED);
  }
  Emit(tag, found.empty() ? -ENOENT : 0);
}

ssize_t EpollBackend::Splice(int from_fd, int to_fd, size_t len) {
  ssize_t n = splice(from_fd, nullptr, to_fd, nullptr, len, SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
  return n < 0 ? -errno : n;
}

void EpollBackend::Forget(int fd) {
  if (fd < 0 || static_cast<size_t>(fd) >= fds_.size() || !fds_[static_cast<size_t>(fd)].registered) return;
  // The file outlives this number (a shared listener): its registration would otherwise stay
  // and report events under a number a later socket may take.
  if (epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr) != 0) {
    XR_DEBUG("engine", "epoll_ctl DEL {}: {}", fd, log::ErrnoText(errno));
  }
  FreshFd(fd);
}

// ------------------------------------------------------------------ waiting

void EpollBackend::OnReady(int fd, uint32_t revents) {
  if (fd < 0 || static_cast<size_t>(fd) >= fds_.size()) return;
  // Trying an operation may finish others of this fd (a connect's timeout): walk a copy (on
  // the stack: an fd has a handful waiting at most), and skip what is gone.
  FdState& s = fds_[static_cast<size_t>(fd)];
  if (revents & kReadable) s.readable = true;
  if (revents & kWritable) s.writable = true;
  const std::vector<uint32_t>& w = s.waiting;
  uint32_t ids[8];
  std::vector<uint32_t> many;
  const uint32_t* list = ids;
  const size_t count = w.size();
  if (count <= std::size(ids)) {
    std::copy(w.begin(), w.end(), ids);
  } else {
    many = w;
    list = many.data();
  }
  for (size_t i = 0; i < count; ++i) {
    uint32_t id = list[i];
    const Op& op = ops_[id];
    if (!op.live || op.fd != fd) continue;
    uint32_t wanted = ((op.events & EPOLLIN) ? kReadable : 0) | ((op.events & EPOLLOUT) ? kWritable : 0);
    if (revents & wanted) Try(id, revents);
  }
}

void EpollBackend::ExpireTimers() {
  int64_t now = MonotonicMs();
  while (!timers_.empty() && timers_.top().at_ms <= now) {
    Deadline d = timers_.top();
    timers_.pop();
    Op& op = ops_[d.op];
    if (!op.live || op.gen != d.gen) continue;  // cancelled, or withdrawn with its connect
    WithdrawPartner(d.op);  // a connect that did not finish in time
    Finish(d.op, -ETIME);
  }
}

int EpollBackend::TimeoutMs() const {
  // Skip deadlines of cancelled timers lazily: at worst an early wake-up.
  if (timers_.empty()) return -1;
  int64_t left = timers_.top().at_ms - MonotonicMs();
  return left <= 0 ? 0 : static_cast<int>(std::min<int64_t>(left, 60000));
}

int EpollBackend::Wait() {
  epoll_event events[256];
  while (true) {
    int timeout = (!next_.empty() || !again_.empty()) ? 0 : TimeoutMs();
    int n = epoll_wait(epoll_.get(), events, static_cast<int>(std::size(events)), timeout);
    if (n < 0 && errno != EINTR) return -errno;
    for (int i = 0; i < n; ++i) OnReady(static_cast<int>(events[i].data.u64), events[i].events);
    if (!again_.empty()) {
      std::vector<int> again;
      again.swap(again_);
      for (int fd : again) OnReady(fd, EPOLLIN);
    }
    ExpireTimers();
    if (!next_.empty()) {
      if (ready_pos_ == ready_.size()) {
        ready_.clear();
        ready_pos_ = 0;
      }
      ready_.insert(ready_.end(), next_.begin(), next_.end());
      next_.clear();
      return 0;
    }
    if (n < 0) return -EINTR;
  }
}

size_t EpollBackend::Reap(Completion* out, size_t max) {
  size_t count = std::min(max, ready_.size() - ready_pos_);
  std::copy_n(ready_.begin() + static_cast<long>(ready_pos_), count, out);
  ready_pos_ += count;
  return count;
}

}  // namespace xr::engine
