#include "engine/reactor.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "engine/connection.h"
#include "engine/control.h"
#include "engine/limits.h"
#include "engine/listen.h"
#include "engine/log.h"
#include "engine/stats.h"

namespace xr::engine {

std::string ListenerSpec::describe() const {
  if (kind == Kind::kUnix) return "unix:" + path;
  if (kind == Kind::kControl) return "control:" + path;
  return fmt::format("{}:{}:{}", front ? EntryName(front->entry) : "tcp", host, port);
}

Expected<UniqueFd> OpenListenerSocket(const ListenerSpec& spec, bool shared, bool check_free, mode_t mode) {
  if (spec.inherited_fd >= 0) {
    UniqueFd fd(fcntl(spec.inherited_fd, F_DUPFD_CLOEXEC, 0));
    if (!fd.valid()) return MakeError(ErrorCode::kIo, fmt::format("dup of the inherited {}: {}", spec.describe(), log::ErrnoText(errno)));
    return fd;
  }
  if (spec.kind == ListenerSpec::Kind::kTcp) return OpenTcpListener(spec.host, spec.port, shared, check_free);
  return OpenUnixListener(spec.path, mode);
}

namespace {

constexpr int64_t kTickMs = 100;
constexpr int64_t kAcceptBackoffMs = 500;
std::atomic<uint64_t> g_next_connection_id{1};
// Control-socket clients get ids from their own range, so relayed connections are numbered
// :proxy-1, :proxy-2, ... without gaps.
std::atomic<uint64_t> g_next_control_id{uint64_t{1} << 40};

// Whether an accepted socket's peer is one of the proxies allowed to send PROXY headers.
bool FromTrustedProxy(int fd, const ProxyProtocolConfig& proxy) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return false;
  auto address = IpAddress::FromSockaddr(reinterpret_cast<const sockaddr*>(&ss), len);
  return address && proxy.from.Contains(*address);
}

}  // namespace

// ------------------------------------------------------------------ Reactor

Reactor::Reactor(int index, WorkerPool* pool, ReactorLimits limits, ControlConfig control, SessionEnv env)
    : index_(index), pool_(pool), limits_(limits), control_(std::move(control)), env_(std::move(env)) {}

Connection* Reactor::Find(uint64_t id) {
  auto it = conns_.find(id);
  return it == conns_.end() ? nullptr : it->second.get();
}

void Reactor::AcceptControl(UniqueFd fd, std::shared_ptr<ControlTarget> target) {
  uint64_t id = g_next_control_id.fetch_add(1);
  XR_DEBUG("control", "ctl={} connection on {}", id, target->name());
  auto conn = std::make_unique<Connection>(this, id, std::move(fd), std::move(target));
  Connection* c = conn.get();
  conns_.emplace(id, std::move(conn));
  stats_.active++;
  c->Start();
}

Reactor::~Reactor() { conns_.clear(); }

Status Reactor::Init(const std::vector<ListenerSpec>& specs, bool shared, bool own_unix) {
  auto backend = MakeBackend(limits_.io);
  if (!backend.ok()) return backend.error();
  io_ = std::move(*backend);
  wake_fd_.reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wake_fd_.valid()) return MakeError(ErrorCode::kIo, fmt::format("eventfd: {}", log::ErrnoText(errno)));
  for (const auto& spec : specs) {
    if (spec.kind != ListenerSpec::Kind::kTcp && !own_unix) continue;
    Expected<UniqueFd> fd = OpenListenerSocket(spec, shared, /*check_free=*/own_unix,
                                               spec.kind == ListenerSpec::Kind::kControl ? control_.mode : 0600);
    if (!fd.ok()) return fd.error();
    Listener l;
    l.spec = spec;
    l.fd = std::move(*fd);
    if (spec.kind == ListenerSpec::Kind::kTcp && spec.port == 0) {
      sockaddr_storage ss{};
      socklen_t len = sizeof ss;
      getsockname(l.fd.get(), reinterpret_cast<sockaddr*>(&ss), &len);
      l.spec.port = ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
    }
    bound_.push_back(l.spec.describe());
    listeners_.push_back(std::move(l));
  }
  return Status::Ok();
}

void Reactor::ArmAccept(size_t index) {
  Listener& l = listeners_[index];
  if (l.armed || !l.fd.valid()) return;
  io_->Accept(l.fd.get(), Tag(index, kAccept));
  l.armed = true;
}

void Reactor::OnAccept(size_t index, const Completion& cqe) {
  Listener& l = listeners_[index];
  if (!cqe.more) l.armed = false;
  int res = cqe.res;
  if (res < 0) {
    if (res == -EMFILE || res == -ENFILE || res == -ENOBUFS || res == -ENOMEM) {
      XR_WARN("net", "accept on {}: {}; pausing accepts for {} ms", l.spec.describe(), log::ErrnoText(-res), kAcceptBackoffMs);
      l.retry_at_ms = NowMs() + kAcceptBackoffMs;
    } else if (res != -ECANCELED && res != -EBADF && res != -EINVAL) {
      XR_WARN("net", "accept on {}: {}", l.spec.describe(), log::ErrnoText(-res));
    }
    if (!l.armed && !stopping_ && l.retry_at_ms == 0) ArmAccept(index);
    return;
  }
  UniqueFd fd(res);
  if (l.spec.kind == ListenerSpec::Kind::kControl) {
    if (!stopping_ && control_.relay) AcceptControl(std::move(fd), control_.relay);
    if (!l.armed && !stopping_) ArmAccept(index);
    return;
  }
  if (stopping_ || conns_.size() >= limits_.max_connections) {
    XR_WARN("net", "connection on {} refused: {}", l.spec.describe(),
            stopping_ ? "relay is stopping" : "too many connections");
    return;
  }
  if (l.spec.kind == ListenerSpec::Kind::kTcp) {
    int one = 1;
    if (setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0) {
      XR_DEBUG("net", "TCP_NODELAY on an accepted socket: {}", log::ErrnoText(errno));
    }
  }
  std::string peer = l.spec.kind == ListenerSpec::Kind::kUnix ? "unix:" + l.spec.path : PeerName(fd.get());
  uint64_t id = g_next_connection_id.fetch_add(1);
  if (l.spec.proxy && !FromTrustedProxy(fd.get(), *l.spec.proxy)) {
    XR_WARN("conn", "conn={} peer={} refused on {}: a PROXY protocol bind, and the peer is not in "
            "--proxy-protocol-from", id, peer, l.spec.describe());
    if (!l.armed && !stopping_) ArmAccept(index);
    return;
  }
  // Over a limit: the client still gets a readable disconnect packet, then the connection closes.
  std::string refusal;
  bool admitted = false;
  if (env_.counters->handshaking.load() >= limits_.max_handshakes) {
    refusal = "too many logins in progress, try again shortly";
  } else if (!l.spec.proxy) {
    refusal = AdmitAddress(peer, &admitted);  // a PROXY protocol bind: once the header names the client
  }
  XR_INFO("conn", "conn={} peer={} accepted on {}{}", id, peer, l.spec.describe(),
          refusal.empty() ? "" : " (refused: " + refusal + ")");
  auto conn = std::make_unique<Connection>(this, id, std::move(fd), peer, l.spec.session, admitted, l.spec.front,
                                           refusal.empty() ? l.spec.proxy : nullptr);
  Connection* c = conn.get();
  conns_.emplace(id, std::move(conn));
  stats_.accepted++;
  stats_.active++;
  env_.counters->accepted++;
  c->Start();
  if (!refusal.empty()) {
    c->Refuse(refusal);
    Reap(c);
  }
  if (!l.armed && !stopping_) ArmAccept(index);
}

std::string Reactor::AdmitAddress(const std::string& peer, bool* admitted) {
  *admitted = false;
  if (!env_.admission->BeginLogin(AddressOf(peer))) {
    // Well below --max-logins: one source cannot take every login slot.
    return "too many logins from your address";
  }
  if (!env_.admission->Connect(AddressOf(peer))) {
    env_.admission->EndLogin(AddressOf(peer));
    return "too many connections from your address";
  }
  *admitted = true;
  return {};
}

void Reactor::ArmTick() {
  io_->Timer(kTickMs, Tag(0, kTick));
}

void Reactor::OnTick() {
  int64_t now = NowMs();
  if (stop_requested_.load() && !stopping_) BeginStop();
  for (size_t i = 0; i < listeners_.size(); ++i) {
    if (listeners_[i].retry_at_ms != 0 && now >= listeners_[i].retry_at_ms && !stopping_) {
      listeners_[i].retry_at_ms = 0;
      ArmAccept(i);
    }
  }
  std::vector<Connection*> expired;
  std::vector<std::pair<Connection*, DeadLeg>> dead;
  const int64_t idle_ms = limits_.idle_timeout_ms;
  const bool probe = ++ticks_ % (1000 / kTickMs) == 0;
  for (auto& [id, c] : conns_) {
    if (c->deadline() != 0 && now >= c->deadline()) {
      expired.push_back(c.get());
    } else if (idle_ms > 0) {
      if (auto d = c->CheckLiveness(now, idle_ms, probe); d != DeadLeg::kNone) dead.emplace_back(c.get(), d);
    }
  }
  for (Connection* c : expired) {
    c->OnDeadline();
    Reap(c);
  }
  for (auto [c, d] : dead) {
    c->EndDeadLeg(d, idle_ms);
    Reap(c);
  }
  ArmTick();
}

void Reactor::ArmWake() {
  io_->Read(wake_fd_.get(), &wake_buf_, sizeof wake_buf_, Tag(0, kWake));
}

void Reactor::Post(std::function<void()> fn) {
  {
    std::lock_guard lock(post_mu_);
    posted_.push_back(std::move(fn));
  }
  uint64_t one = 1;
  ssize_t n = write(wake_fd_.get(), &one, sizeof one);
  (void)n;
}

void Reactor::OnWake() {
  std::vector<std::function<void()>> fns;
  {
    std::lock_guard lock(post_mu_);
    fns.swap(posted_);
  }
  for (auto& fn : fns) fn();
  // Posted work may have closed connections.
  std::vector<Connection*> done;
  for (auto& [id, c] : conns_) {
    if (c->reapable()) done.push_back(c.get());
  }
  for (Connection* c : done) Reap(c);
  ArmWake();
}

void Reactor::Stop() {
  stop_requested_ = true;
  Post([] {});
}

void Reactor::NoteRingEmpty() {
  stats_.traffic.recv_nobufs.Add(1);
  int64_t now = NowMs();
  if (ring_empty_logged_ms_ != 0 && now - ring_empty_logged_ms_ < 60000) return;
  ring_empty_logged_ms_ = now;
  XR_INFO("engine",
          "reactor {}: all {} shared receive buffers in use ({} times so far); receives fall back to "
          "per-connection buffers (more: --recv-buffers)",
          index_, limits_.recv_buffers, stats_.traffic.recv_nobufs.get());
}

void Reactor::BeginStop() {
  stopping_ = true;
  stop_deadline_ms_ = NowMs() + limits_.close_linger_ms + 1000;
  for (auto& l : listeners_) {
    if (l.removed) continue;  // closed already (a reload, or handed over to a new relay)
    if (l.spec.kind != ListenerSpec::Kind::kTcp) ::unlink(l.spec.path.c_str());
    l.fd.reset();  // the multishot accept completes with an error
  }
  std::vector<Connection*> all;
  for (auto& [id, c] : conns_) all.push_back(c.get());
  if (!all.empty()) XR_INFO("engine", "reactor {}: stopping {} connections", index_, all.size());
  for (Connection* c : all) {
    c->Shutdown();
    Reap(c);
  }
}

void Reactor::CloseListener(size_t i, bool unlink_path) {
  Listener& l = listeners_[i];
  if (l.removed) return;
  l.removed = true;
  l.retry_at_ms = 0;
  if (l.armed) io_->Cancel(Tag(i, kAccept), Tag(i, kListenerCancel));
  // The socket may live on (in the main thread's table, or in the relay taking over): the
  // backend must stop watching it before the number goes.
  io_->Forget(l.fd.get());
  if (unlink_path && l.spec.kind != ListenerSpec::Kind::kTcp) ::unlink(l.spec.path.c_str());
  l.fd.reset();
}

void Reactor::Reconfigure(const ReactorLimits& limits, std::vector<OpenListener> wanted, bool unlink_removed) {
  ReactorLimits next = limits;
  next.io = limits_.io;
  next.recv_buffers = limits_.recv_buffers;
  next.recv_buffer = limits_.recv_buffer;
  limits_ = next;
  std::vector<bool> keep(listeners_.size(), false);
  for (auto& w : wanted) {
    std::string id = w.spec.id();
    bool found = false;
    for (size_t i = 0; i < listeners_.size(); ++i) {
      Listener& l = listeners_[i];
      if (l.removed || l.spec.id() != id) continue;
      // Same socket, new settings: a port 0 keeps the port it got.
      uint16_t port = l.spec.port;
      l.spec = w.spec;
      if (l.spec.kind == ListenerSpec::Kind::kTcp) l.spec.port = port;
      keep[i] = true;
      found = true;
    }
    if (found || !w.fd.valid()) continue;
    Listener l;
    l.spec = w.spec;
    l.fd = std::move(w.fd);
    listeners_.push_back(std::move(l));
    keep.push_back(true);
    if (!stopping_) ArmAccept(listeners_.size() - 1);
  }
  for (size_t i = 0; i < listeners_.size(); ++i) {
    if (!keep[i]) CloseListener(i, unlink_removed);
  }
  bound_.clear();
  for (const auto& l : listeners_) {
    if (!l.removed) bound_.push_back(l.spec.describe());
  }
}

std::vector<std::pair<std::string, int>> Reactor::listener_fds() const {
  std::vector<std::pair<std::string, int>> out;
  for (const auto& l : listeners_) {
    if (!l.removed && l.fd.valid()) out.emplace_back(l.spec.id(), l.fd.get());
  }
  return out;
}

void Reactor::Reap(Connection* c) {
  if (!c->reapable()) return;
  stats_.active--;
  stats_.closed++;
  conns_.erase(c->id());
}

void Reactor::Dispatch(const Completion& cqe) {
  uint64_t data = cqe.tag;
  Op op = static_cast<Op>(data & 0xff);
  uint64_t id = data >> 8;
  switch (op) {
    case kAccept: OnAccept(static_cast<size_t>(id), cqe); return;
    case kTick: OnTick(); return;
    case kWake: OnWake(); return;
    case kListenerCancel: return;  // the accept itself completes with -ECANCELED
    default: break;
  }
  auto it = conns_.find(id);
  if (it == conns_.end()) {
    XR_ERROR("engine", "completion for unknown connection {} op={} res={}", id, static_cast<int>(op), cqe.res);
    return;
  }
  Connection* c = it->second.get();
  c->OnCompletion(op, cqe);
  Reap(c);
}

bool Reactor::Run() {
  if (Status s = io_->Start(limits_.recv_buffers, limits_.recv_buffer); !s.ok()) {
    XR_ERROR("engine", "reactor {}: {}", index_, s.error().message);
    return false;
  }
  bool ok = true;
  for (size_t i = 0; i < listeners_.size(); ++i) ArmAccept(i);
  ArmTick();
  ArmWake();
  while (true) {
    if (stopping_ && (conns_.empty() || NowMs() > stop_deadline_ms_)) break;
    int rc = io_->Wait();
    if (rc < 0 && rc != -EINTR && rc != -ETIME && rc != -EAGAIN && rc != -EBUSY) {
      // Not a passing condition: retrying would spin. Stop this reactor loudly.
      XR_ERROR("engine", "reactor {}: waiting for I/O failed: {}; stopping", index_, log::ErrnoText(-rc));
      ok = false;
      break;
    }
    Completion done[256];
    size_t n;
    while ((n = io_->Reap(done, std::size(done))) > 0) {
      for (size_t i = 0; i < n; ++i) Dispatch(done[i]);
    }
  }
  XR_INFO("engine", "reactor {} stopped ({} connections left)", index_, conns_.size());
  return ok;
}

}  // namespace xr::engine

namespace xr::engine {

std::vector<RelayedConnection> Reactor::RelayedConnections() const {
  std::vector<RelayedConnection> out;
  for (const auto& [id, c] : conns_) {
    RelayedConnection r;
    if (c->Relayed(&r)) out.push_back(std::move(r));
  }
  return out;
}

bool Reactor::StopInstance(std::string_view instance, std::string_view detail) {
  for (const auto& [id, c] : conns_) {
    RelayedConnection r;
    if (!c->Relayed(&r) || r.instance != instance) continue;
    XR_INFO("conn", "conn={} stopped by the cluster ({})", id, instance);
    c->StopWithReason(reason::kServerShutdown, detail);
    return true;
  }
  return false;
}

}  // namespace xr::engine
