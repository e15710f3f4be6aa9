#include "engine/reactor.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>

#include <cerrno>
#include <cstring>

#include "codec/header.h"
#include "engine/log.h"

namespace xr::engine {

int64_t NowMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000 + ts.tv_nsec / 1000000;
}

std::string ListenerSpec::describe() const {
  if (kind == Kind::kUnix) return "unix:" + path;
  return fmt::format("tcp:{}:{}", host, port);
}

namespace {

constexpr int64_t kTickMs = 100;
constexpr int64_t kAcceptBackoffMs = 500;
std::atomic<uint64_t> g_next_connection_id{1};

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

// Follows frame boundaries of a plain byte stream, so a packet can be inserted safely.
class FrameBoundary {
 public:
  void Feed(std::string_view data) {
    while (!data.empty() && !broken_) {
      if (remaining_ > 0) {
        size_t n = std::min<size_t>(remaining_, data.size());
        remaining_ -= n;
        data.remove_prefix(n);
        continue;
      }
      size_t n = std::min(kHeaderSize - have_, data.size());
      std::memcpy(header_ + have_, data.data(), n);
      have_ += n;
      data.remove_prefix(n);
      if (have_ == kHeaderSize) {
        auto h = DecodeHeader(std::string_view(header_, kHeaderSize));
        if (!h.ok()) {
          broken_ = true;
          return;
        }
        remaining_ = h->wire_payload_size();
        have_ = 0;
      }
    }
  }
  bool at_boundary() const { return !broken_ && have_ == 0 && remaining_ == 0; }

 private:
  char header_[kHeaderSize];
  size_t have_ = 0;
  size_t remaining_ = 0;
  bool broken_ = false;
};

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
    setsockopt(probe.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (probe.valid() && bind(probe.get(), res->ai_addr, res->ai_addrlen) != 0 && errno == EADDRINUSE) {
      return MakeError(ErrorCode::kIo, fmt::format("cannot bind {}:{}: address already in use", host, port));
    }
  }
  UniqueFd fd(socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return MakeError(ErrorCode::kIo, fmt::format("socket: {}", std::strerror(errno)));
  setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (reuseport) setsockopt(fd.get(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  if (bind(fd.get(), res->ai_addr, res->ai_addrlen) != 0) {
    return MakeError(ErrorCode::kIo, fmt::format("cannot bind {}:{}: {}", host, port, std::strerror(errno)));
  }
  if (listen(fd.get(), 4096) != 0) return MakeError(ErrorCode::kIo, fmt::format("listen: {}", std::strerror(errno)));
  return fd;
}

Expected<UniqueFd> OpenUnixListener(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) return MakeError(ErrorCode::kMalformed, "unix socket path too long: " + path);
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return MakeError(ErrorCode::kIo, fmt::format("socket: {}", std::strerror(errno)));
  ::unlink(path.c_str());
  mode_t old = umask(0177);
  int rc = bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  umask(old);
  if (rc != 0) return MakeError(ErrorCode::kIo, fmt::format("cannot bind {}: {}", path, std::strerror(errno)));
  if (listen(fd.get(), 1024) != 0) return MakeError(ErrorCode::kIo, fmt::format("listen: {}", std::strerror(errno)));
  return fd;
}

}  // namespace

// ------------------------------------------------------------------ Connection

class Connection final : public SessionIo {
 public:
  struct Leg {
    UniqueFd fd;
    std::unique_ptr<char[]> buf;
    bool recv_inflight = false;
    bool send_inflight = false;
    bool paused = false;  // recv not re-armed because the other leg is backed up
    bool eof = false;
    bool failed = false;
    std::deque<std::string> outq;
    size_t out_off = 0;
    size_t out_bytes = 0;
    uint64_t bytes_in = 0;
    uint64_t bytes_out = 0;
  };

  Connection(Reactor* r, uint64_t id, UniqueFd client_fd, std::string peer,
             std::shared_ptr<const SessionConfig> config)
      : r_(r), id_(id) {
    client_.fd = std::move(client_fd);
    session_ = std::make_unique<Session>(id, std::move(peer), std::move(config), this);
  }

  uint64_t id() const { return id_; }
  bool reapable() const { return closed_fds_ && inflight_ == 0; }
  int64_t deadline() const { return deadline_ms_; }

  void Start() {
    session_->Start();
    ArmRecv(client_, Reactor::kClientRecv);
  }

  // ---- SessionIo
  void SendToClient(std::string bytes) override {
    if (passthrough_ && !to_client_frames_.at_boundary()) {
      XR_DEBUG("conn", "conn={} packet for the client dropped: stream is mid-frame", id_);
      return;
    }
    if (passthrough_) to_client_frames_.Feed(bytes);
    Queue(client_, Reactor::kClientSend, std::move(bytes));
  }
  void SendToServer(std::string bytes) override { Queue(server_, Reactor::kServerSend, std::move(bytes)); }
  void RunAuth(std::function<AuthOutcome()> job) override {
    Reactor* r = r_;
    uint64_t id = id_;
    bool queued = r_->pool_->Submit([r, id, job = std::move(job)]() mutable {
      AuthOutcome out = job();
      r->Post([r, id, out = std::move(out)]() mutable {
        auto it = r->conns_.find(id);
        if (it != r->conns_.end()) it->second->session_->OnAuthDone(std::move(out));
      });
    });
    if (!queued) {
      AuthOutcome busy;
      busy.client_reason = reason::kServerError;
      busy.detail = "the relay is too busy to authenticate now, try again";
      busy.log_detail = "auth queue full";
      session_->OnAuthDone(std::move(busy));
    }
  }
  void ConnectServer(const registry::Target& target) override;
  void StartPassthrough() override {
    passthrough_ = true;
    r_->stats_.relaying++;
    counted_relaying_ = true;
    ArmRecv(client_, Reactor::kClientRecv);
    ArmRecv(server_, Reactor::kServerRecv);
  }
  void SetDeadline(int64_t ms) override { deadline_ms_ = ms > 0 ? NowMs() + ms : 0; }
  void Close(std::string_view log_reason) override {
    if (closing_) return;
    closing_ = true;
    deadline_ms_ = NowMs() + r_->limits_.close_linger_ms;
    CancelRecv(client_, Reactor::kClientRecv);
    CancelRecv(server_, Reactor::kServerRecv);
    if (connect_inflight_) Cancel(Reactor::kConnect);
    MaybeFinishClose();
  }

  // ---- completions
  void OnCompletion(Reactor::Op op, int res, uint32_t flags) {
    --inflight_;
    switch (op) {
      case Reactor::kClientRecv: OnRecv(client_, server_, true, res); break;
      case Reactor::kServerRecv: OnRecv(server_, client_, false, res); break;
      case Reactor::kClientSend: OnSend(client_, Reactor::kClientSend, true, res); break;
      case Reactor::kServerSend: OnSend(server_, Reactor::kServerSend, false, res); break;
      case Reactor::kConnect: OnConnect(res); break;
      case Reactor::kConnectTimeout:
      case Reactor::kCancel:
        break;  // outcome is reported on the operation itself
      default:
        XR_ERROR("engine", "conn={} unexpected completion op={} res={}", id_, static_cast<int>(op), res);
    }
    (void)flags;
  }

  void OnDeadline() {
    if (closing_) {
      XR_WARN("conn", "conn={} close linger expired; dropping unsent data", id_);
      ForceClose();
      return;
    }
    deadline_ms_ = 0;
    session_->OnTimeout();
  }

  // Graceful stop of the whole relay: tell the client, flush, close.
  void Shutdown() {
    if (closing_) return;
    session_->Disconnect(reason::kServerShutdown, "the relay is shutting down");
    Close("shutdown");
  }

  ~Connection() override {
    if (counted_relaying_) r_->stats_.relaying--;
  }

 private:
  void ArmRecv(Leg& leg, Reactor::Op op) {
    if (!leg.fd.valid() || leg.recv_inflight || leg.eof || leg.failed || closing_) return;
    if (!leg.buf) leg.buf = std::make_unique<char[]>(r_->limits_.recv_buffer);
    io_uring_sqe* sqe = r_->ring_.GetSqe();
    io_uring_prep_recv(sqe, leg.fd.get(), leg.buf.get(), r_->limits_.recv_buffer, 0);
    io_uring_sqe_set_data64(sqe, Reactor::Tag(id_, op));
    leg.recv_inflight = true;
    ++inflight_;
  }

  void Cancel(Reactor::Op op) {
    io_uring_sqe* sqe = r_->ring_.GetSqe();
    io_uring_prep_cancel64(sqe, Reactor::Tag(id_, op), 0);
    io_uring_sqe_set_data64(sqe, Reactor::Tag(id_, Reactor::kCancel));
    ++inflight_;
  }

  void CancelRecv(Leg& leg, Reactor::Op op) {
    if (leg.recv_inflight) Cancel(op);
  }

  void Queue(Leg& leg, Reactor::Op op, std::string bytes) {
    if (bytes.empty() || leg.failed) return;
    leg.out_bytes += bytes.size();
    leg.outq.push_back(std::move(bytes));
    if (leg.fd.valid() && !(&leg == &server_ && connect_inflight_)) ArmSend(leg, op);
  }

  void ArmSend(Leg& leg, Reactor::Op op) {
    if (leg.send_inflight || leg.outq.empty() || !leg.fd.valid() || leg.failed) return;
    const std::string& front = leg.outq.front();
    io_uring_sqe* sqe = r_->ring_.GetSqe();
    io_uring_prep_send(sqe, leg.fd.get(), front.data() + leg.out_off, front.size() - leg.out_off, MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, Reactor::Tag(id_, op));
    leg.send_inflight = true;
    ++inflight_;
  }

  void OnRecv(Leg& leg, Leg& other, bool from_client, int res) {
    leg.recv_inflight = false;
    if (res == -ECANCELED || closing_) {
      MaybeFinishClose();
      return;
    }
    if (res == -EAGAIN || res == -EINTR) {
      ArmRecv(leg, from_client ? Reactor::kClientRecv : Reactor::kServerRecv);
      return;
    }
    if (res <= 0) {
      leg.eof = true;
      if (res < 0) leg.failed = true;
      std::string why = res == 0 ? "end of stream" : std::strerror(-res);
      if (from_client) {
        session_->OnClientClosed(why);
      } else {
        session_->OnServerClosed(why);
      }
      Close(why);
      return;
    }
    leg.bytes_in += static_cast<uint64_t>(res);
    std::string_view data(leg.buf.get(), static_cast<size_t>(res));
    if (passthrough_) {
      if (from_client) {
        r_->stats_.bytes_to_server += res;
        Queue(server_, Reactor::kServerSend, std::string(data));
      } else {
        r_->stats_.bytes_to_client += res;
        to_client_frames_.Feed(data);
        Queue(client_, Reactor::kClientSend, std::string(data));
      }
    } else if (from_client) {
      session_->OnClientData(data);
    } else {
      session_->OnServerData(data);
      if (!passthrough_ && !closing_ && session_->state() == Session::State::kRelay) r_->stats_.bytes_to_client += res;
    }
    if (closing_) return;
    // Back-pressure: read on only while the other leg is not backed up.
    if (other.out_bytes > r_->limits_.high_water) {
      leg.paused = true;
      return;
    }
    ArmRecv(leg, from_client ? Reactor::kClientRecv : Reactor::kServerRecv);
    (void)other;
  }

  void OnSend(Leg& leg, Reactor::Op op, bool to_client, int res) {
    leg.send_inflight = false;
    if (res == -EAGAIN || res == -EINTR) {
      ArmSend(leg, op);
      return;
    }
    if (res < 0) {
      leg.failed = true;
      leg.outq.clear();
      leg.out_bytes = 0;
      if (res != -ECANCELED && !closing_) {
        std::string why = std::strerror(-res);
        if (to_client) {
          session_->OnClientClosed(why);
        } else {
          session_->OnServerClosed(why);
        }
      }
      Close("send failed");
      MaybeFinishClose();
      return;
    }
    leg.bytes_out += static_cast<uint64_t>(res);
    leg.out_off += static_cast<size_t>(res);
    leg.out_bytes -= static_cast<size_t>(res);
    if (leg.out_off == leg.outq.front().size()) {  // else: short send, continue from out_off
      leg.outq.pop_front();
      leg.out_off = 0;
    }
    ArmSend(leg, op);
    // Resume the paused reader feeding this leg.
    Leg& source = to_client ? server_ : client_;
    if (source.paused && leg.out_bytes < r_->limits_.low_water) {
      source.paused = false;
      ArmRecv(source, to_client ? Reactor::kServerRecv : Reactor::kClientRecv);
    }
    MaybeFinishClose();
  }

  void OnConnect(int res) {
    connect_inflight_ = false;
    if (closing_) {
      MaybeFinishClose();
      return;
    }
    if (res < 0) {
      std::string why = res == -ECANCELED ? "timed out" : std::strerror(-res);
      server_.fd.reset();
      session_->OnServerConnectFailed(why);
      return;
    }
    int one = 1;
    if (target_is_tcp_) setsockopt(server_.fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    session_->OnServerConnected();
    ArmSend(server_, Reactor::kServerSend);
    ArmRecv(server_, Reactor::kServerRecv);
  }

  void MaybeFinishClose() {
    if (!closing_ || closed_fds_) return;
    bool client_done = client_.outq.empty() || client_.failed || !client_.fd.valid();
    bool server_done = server_.outq.empty() || server_.failed || !server_.fd.valid() || connect_inflight_;
    if (client_done && server_done && !client_.send_inflight && !server_.send_inflight) ForceClose();
  }

  void ForceClose() {
    if (closed_fds_) return;
    closed_fds_ = true;
    for (Leg* leg : {&client_, &server_}) {
      if (!leg->fd.valid()) continue;
      shutdown(leg->fd.get(), SHUT_WR);
      // Drain what the peer already sent so close() sends FIN, not RST (which could make the
      // peer drop our last packet, the disconnect).
      char sink[4096];
      for (int i = 0; i < 64 && recv(leg->fd.get(), sink, sizeof sink, MSG_DONTWAIT) > 0; ++i) {
      }
    }
    if (client_.recv_inflight) Cancel(Reactor::kClientRecv);
    if (server_.recv_inflight) Cancel(Reactor::kServerRecv);
    if (client_.send_inflight) Cancel(Reactor::kClientSend);
    if (server_.send_inflight) Cancel(Reactor::kServerSend);
    if (connect_inflight_) Cancel(Reactor::kConnect);
    client_.fd.reset();
    server_.fd.reset();
    deadline_ms_ = 0;
    XR_DEBUG("conn", "conn={} closed: client {} in/{} out, server {} in/{} out", id_, client_.bytes_in,
             client_.bytes_out, server_.bytes_in, server_.bytes_out);
  }

  Reactor* r_;
  uint64_t id_;
  Leg client_;
  Leg server_;
  std::unique_ptr<Session> session_;
  FrameBoundary to_client_frames_;
  sockaddr_storage target_addr_{};
  socklen_t target_len_ = 0;
  __kernel_timespec connect_ts_{};
  bool target_is_tcp_ = false;
  bool connect_inflight_ = false;
  bool passthrough_ = false;
  bool counted_relaying_ = false;
  bool closing_ = false;
  bool closed_fds_ = false;
  int inflight_ = 0;
  int64_t deadline_ms_ = 0;

  friend class Reactor;
};

void Connection::ConnectServer(const registry::Target& target) {
  std::memset(&target_addr_, 0, sizeof target_addr_);
  int family;
  if (target.kind == registry::Target::Kind::kUnix) {
    auto* un = reinterpret_cast<sockaddr_un*>(&target_addr_);
    un->sun_family = AF_UNIX;
    if (target.path.size() >= sizeof un->sun_path) {
      session_->OnServerConnectFailed("socket path too long");
      return;
    }
    std::memcpy(un->sun_path, target.path.c_str(), target.path.size() + 1);
    target_len_ = sizeof(sockaddr_un);
    family = AF_UNIX;
  } else {
    std::string host = target.host == "localhost" || target.host.empty() ? "127.0.0.1" : target.host;
    auto* in4 = reinterpret_cast<sockaddr_in*>(&target_addr_);
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&target_addr_);
    if (inet_pton(AF_INET, host.c_str(), &in4->sin_addr) == 1) {
      in4->sin_family = AF_INET;
      in4->sin_port = htons(target.port);
      target_len_ = sizeof(sockaddr_in);
      family = AF_INET;
    } else if (inet_pton(AF_INET6, host.c_str(), &in6->sin6_addr) == 1) {
      in6->sin6_family = AF_INET6;
      in6->sin6_port = htons(target.port);
      target_len_ = sizeof(sockaddr_in6);
      family = AF_INET6;
    } else {
      session_->OnServerConnectFailed("target host must be a numeric address (got '" + target.host + "')");
      return;
    }
    target_is_tcp_ = true;
  }
  server_.fd.reset(socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!server_.fd.valid()) {
    session_->OnServerConnectFailed(std::strerror(errno));
    return;
  }
  io_uring_sqe* sqe = r_->ring_.GetSqe();
  io_uring_prep_connect(sqe, server_.fd.get(), reinterpret_cast<sockaddr*>(&target_addr_), target_len_);
  io_uring_sqe_set_data64(sqe, Reactor::Tag(id_, Reactor::kConnect));
  sqe->flags |= IOSQE_IO_LINK;
  ++inflight_;
  connect_inflight_ = true;
  io_uring_sqe* tsqe = r_->ring_.GetSqe();
  int64_t ms = 10000;
  connect_ts_.tv_sec = ms / 1000;
  connect_ts_.tv_nsec = (ms % 1000) * 1000000;
  io_uring_prep_link_timeout(tsqe, &connect_ts_, 0);
  io_uring_sqe_set_data64(tsqe, Reactor::Tag(id_, Reactor::kConnectTimeout));
  ++inflight_;
}

// ------------------------------------------------------------------ Reactor

Reactor::Reactor(int index, WorkerPool* pool, ReactorLimits limits)
    : index_(index), pool_(pool), limits_(limits) {}

Reactor::~Reactor() { conns_.clear(); }

Status Reactor::Init(const std::vector<ListenerSpec>& specs, bool shared, bool own_unix) {
  if (Status s = ring_.Init(4096); !s.ok()) return s;
  wake_fd_.reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wake_fd_.valid()) return MakeError(ErrorCode::kIo, fmt::format("eventfd: {}", std::strerror(errno)));
  for (const auto& spec : specs) {
    Expected<UniqueFd> fd = MakeError(ErrorCode::kInternal, "");
    if (spec.kind == ListenerSpec::Kind::kTcp) {
      fd = OpenTcpListener(spec.host, spec.port, shared, /*check_free=*/own_unix);
    } else {
      if (!own_unix) continue;
      fd = OpenUnixListener(spec.path);
    }
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
  io_uring_sqe* sqe = ring_.GetSqe();
  io_uring_prep_multishot_accept(sqe, l.fd.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  io_uring_sqe_set_data64(sqe, Tag(index, kAccept));
  l.armed = true;
}

void Reactor::OnAccept(size_t index, const io_uring_cqe* cqe) {
  Listener& l = listeners_[index];
  if (!(cqe->flags & IORING_CQE_F_MORE)) l.armed = false;
  int res = cqe->res;
  if (res < 0) {
    if (res == -EMFILE || res == -ENFILE || res == -ENOBUFS || res == -ENOMEM) {
      XR_WARN("net", "accept on {}: {}; pausing accepts for {} ms", l.spec.describe(), std::strerror(-res), kAcceptBackoffMs);
      l.retry_at_ms = NowMs() + kAcceptBackoffMs;
    } else if (res != -ECANCELED && res != -EBADF && res != -EINVAL) {
      XR_WARN("net", "accept on {}: {}", l.spec.describe(), std::strerror(-res));
    }
    if (!l.armed && !stopping_ && l.retry_at_ms == 0) ArmAccept(index);
    return;
  }
  UniqueFd fd(res);
  if (stopping_ || conns_.size() >= limits_.max_connections) {
    XR_WARN("net", "connection on {} refused: {}", l.spec.describe(),
            stopping_ ? "relay is stopping" : "too many connections");
    return;
  }
  if (l.spec.kind == ListenerSpec::Kind::kTcp) {
    int one = 1;
    setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  std::string peer = l.spec.kind == ListenerSpec::Kind::kUnix ? "unix:" + l.spec.path : PeerName(fd.get());
  uint64_t id = g_next_connection_id.fetch_add(1);
  XR_INFO("conn", "conn={} peer={} accepted on {}", id, peer, l.spec.describe());
  auto conn = std::make_unique<Connection>(this, id, std::move(fd), peer, l.spec.session);
  Connection* c = conn.get();
  conns_.emplace(id, std::move(conn));
  stats_.accepted++;
  stats_.active++;
  c->Start();
  if (!l.armed && !stopping_) ArmAccept(index);
}

void Reactor::ArmTick() {
  tick_ts_.tv_sec = 0;
  tick_ts_.tv_nsec = kTickMs * 1000000;
  io_uring_sqe* sqe = ring_.GetSqe();
  io_uring_prep_timeout(sqe, &tick_ts_, 0, 0);
  io_uring_sqe_set_data64(sqe, Tag(0, kTick));
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
  for (auto& [id, c] : conns_) {
    if (c->deadline() != 0 && now >= c->deadline()) expired.push_back(c.get());
  }
  for (Connection* c : expired) {
    c->OnDeadline();
    Reap(c);
  }
  ArmTick();
}

void Reactor::ArmWake() {
  io_uring_sqe* sqe = ring_.GetSqe();
  io_uring_prep_read(sqe, wake_fd_.get(), &wake_buf_, sizeof wake_buf_, 0);
  io_uring_sqe_set_data64(sqe, Tag(0, kWake));
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

void Reactor::BeginStop() {
  stopping_ = true;
  stop_deadline_ms_ = NowMs() + limits_.close_linger_ms + 1000;
  for (auto& l : listeners_) {
    if (l.spec.kind == ListenerSpec::Kind::kUnix) ::unlink(l.spec.path.c_str());
    l.fd.reset();  // the multishot accept completes with an error
  }
  std::vector<Connection*> all;
  for (auto& [id, c] : conns_) all.push_back(c.get());
  for (Connection* c : all) {
    c->Shutdown();
    Reap(c);
  }
}

void Reactor::Reap(Connection* c) {
  if (!c->reapable()) return;
  stats_.active--;
  stats_.closed++;
  conns_.erase(c->id());
}

void Reactor::Dispatch(io_uring_cqe* cqe) {
  uint64_t data = io_uring_cqe_get_data64(cqe);
  Op op = static_cast<Op>(data & 0xff);
  uint64_t id = data >> 8;
  switch (op) {
    case kAccept: OnAccept(static_cast<size_t>(id), cqe); return;
    case kTick: OnTick(); return;
    case kWake: OnWake(); return;
    default: break;
  }
  auto it = conns_.find(id);
  if (it == conns_.end()) {
    XR_ERROR("engine", "completion for unknown connection {} op={} res={}", id, static_cast<int>(op), cqe->res);
    return;
  }
  Connection* c = it->second.get();
  c->OnCompletion(op, cqe->res, cqe->flags);
  Reap(c);
}

bool Reactor::Run() {
  if (Status s = ring_.Enable(); !s.ok()) {
    XR_ERROR("engine", "reactor {}: {}", index_, s.error().message);
    return false;
  }
  bool ok = true;
  for (size_t i = 0; i < listeners_.size(); ++i) ArmAccept(i);
  ArmTick();
  ArmWake();
  while (true) {
    if (stopping_ && (conns_.empty() || NowMs() > stop_deadline_ms_)) break;
    int rc = ring_.SubmitAndWait();
    if (rc < 0 && rc != -EINTR && rc != -ETIME && rc != -EAGAIN && rc != -EBUSY) {
      // Not a passing condition: retrying would spin. Stop this reactor loudly.
      XR_ERROR("engine", "reactor {}: io_uring_submit_and_wait failed: {}; stopping", index_, std::strerror(-rc));
      ok = false;
      break;
    }
    io_uring_cqe* cqe;
    unsigned head;
    unsigned count = 0;
    io_uring_for_each_cqe(ring_.get(), head, cqe) {
      Dispatch(cqe);
      ++count;
    }
    io_uring_cq_advance(ring_.get(), count);
  }
  XR_INFO("engine", "reactor {} stopped ({} connections left)", index_, conns_.size());
  return ok;
}

}  // namespace xr::engine
