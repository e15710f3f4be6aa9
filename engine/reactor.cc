#include "engine/reactor.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <linux/sockios.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>

#include <bitset>
#include <cerrno>
#include <cstring>

#include "codec/bencode.h"
#include "codec/compression.h"
#include "codec/frame_reader.h"
#include "codec/header.h"
#include "codec/packet.h"
#include "codec/rencode.h"
#include "engine/control.h"
#include "engine/limits.h"
#include "engine/log.h"
#include "engine/stats.h"
#include "engine/uring_backend.h"
#include "engine/version.h"
#include "session_registry/socket_dirs.h"

namespace xr::engine {


std::string ListenerSpec::describe() const {
  if (kind == Kind::kUnix) return "unix:" + path;
  if (kind == Kind::kControl) return "control:" + path;
  return fmt::format("tcp:{}:{}", host, port);
}

namespace {

constexpr int64_t kTickMs = 100;
constexpr int64_t kAcceptBackoffMs = 500;
// A leg's own receive buffer, used only for the one receive after the ring ran dry.
constexpr size_t kPrivateRecvBytes = size_t{16} * 1024;
// Splice path: the pipe between the two sockets, and how much of the next frame is read (and
// seen) through a ring buffer before its payload is spliced.
constexpr size_t kPipeBytes = size_t{256} * 1024;
constexpr size_t kSplicePeekBytes = 4096;
std::atomic<uint64_t> g_next_connection_id{1};
// Control-socket clients get ids from their own range, so relayed connections are numbered
// :proxy-1, :proxy-2, ... without gaps.
std::atomic<uint64_t> g_next_control_id{uint64_t{1} << 40};
// :proxy-N numbers: unique for the life of the process, and never one whose socket another
// process (a second relay sharing the socket dir) is listening on.
std::atomic<uint64_t> g_next_proxy_number{1};

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

// Follows frame boundaries of a plain byte stream, so a packet can be inserted safely, counts
// packets and notes the encoder/compressor in use. It also holds the stream to its leg's
// limits, as xpra's own protocol does: a header that is not one, a packet larger than
// max_payload, more than max_pending_chunks chunks (index > 0) before their main packet, or a
// chunk index repeated, makes it failed(); nothing from that header on may be forwarded.
class FrameBoundary {
 public:
  explicit FrameBoundary(FrameLimits limits = {kHardMaxPayload, 3}) : limits_(limits) {}
  // Consumes `data`. When it fails, good_bytes() of `data` (those before the bad header) may
  // still be forwarded.
  void Feed(std::string_view data) { good_ = Advance(data, false); }
  // Consumes `data` up to the next frame boundary (all of it if none is reached); returns
  // how many bytes were consumed (at most up to a bad header).
  size_t FeedToBoundary(std::string_view data) { return good_ = Advance(data, true); }
  // Whether the bytes forwarded so far end on a frame boundary.
  bool at_boundary() const { return failed() ? clean_ : have_ == 0 && remaining_ == 0; }
  bool failed() const { return !error_.empty(); }
  const std::string& error() const { return error_; }
  size_t good_bytes() const { return good_; }
  size_t max_payload() const { return limits_.max_payload; }
  // Payload bytes of the current frame not seen yet (0 at a boundary or inside a header).
  size_t payload_remaining() const { return failed() || have_ != 0 ? 0 : remaining_; }
  // Accounts for `n` payload bytes that moved without being seen (n <= payload_remaining()).
  void Skip(size_t n) { remaining_ -= std::min(n, remaining_); }
  uint64_t packets() const { return packets_; }
  // Payload size of the last frame whose header was read.
  size_t last_payload() const { return last_payload_; }
  uint8_t last_flags() const { return last_flags_; }
  uint8_t last_level() const { return last_level_; }

 private:
  size_t Advance(std::string_view data, bool stop_at_boundary) {
    if (failed()) return 0;
    size_t consumed = 0;
    while (consumed < data.size()) {
      if (stop_at_boundary && consumed > 0 && at_boundary()) break;
      std::string_view rest = data.substr(consumed);
      if (remaining_ > 0) {
        size_t n = std::min<size_t>(remaining_, rest.size());
        remaining_ -= n;
        consumed += n;
        continue;
      }
      bool header_starts_here = have_ == 0;
      size_t header_at = consumed;
      size_t n = std::min(kHeaderSize - have_, rest.size());
      std::memcpy(header_ + have_, rest.data(), n);
      have_ += n;
      consumed += n;
      if (have_ < kHeaderSize) break;
      have_ = 0;
      auto h = DecodeHeader(std::string_view(header_, kHeaderSize));
      error_ = h.ok() ? Check(*h) : h.error().message;
      if (failed()) {
        // Clean only if no byte of the bad header went out with an earlier Feed.
        clean_ = header_starts_here;
        return header_starts_here ? header_at : 0;
      }
      remaining_ = h->wire_payload_size();
      last_payload_ = remaining_;
      if (h->index == 0) {
        ++packets_;
        last_flags_ = h->flags;
        last_level_ = h->level;
      }
    }
    return consumed;
  }

  // Why header `h` breaks the limits ("" if it does not), in the words of the codec's
  // FrameReader and PacketDecoder; notes a chunk.
  std::string Check(const FrameHeader& h) {
    if (h.wire_payload_size() > limits_.max_payload) {
      return fmt::format("frame of {} bytes exceeds the {} byte limit", h.wire_payload_size(), limits_.max_payload);
    }
    if (h.index == 0) {
      chunks_.reset();
      return {};
    }
    if (chunks_.test(h.index)) return fmt::format("chunk {} twice before its main packet", h.index);
    chunks_.set(h.index);
    if (chunks_.count() > limits_.max_pending_chunks) {
      return fmt::format("more than {} chunks before their main packet", limits_.max_pending_chunks);
    }
    return {};
  }

  FrameLimits limits_;
  char header_[kHeaderSize];
  size_t have_ = 0;
  size_t remaining_ = 0;
  size_t last_payload_ = 0;
  std::bitset<256> chunks_;  // chunk indices seen since the last main packet
  std::string error_;
  size_t good_ = 0;
  bool clean_ = false;
  uint64_t packets_ = 0;
  uint8_t last_flags_ = 0;
  uint8_t last_level_ = 0;
};

const char* EncoderName(uint8_t flags) {
  if (flags & flags::kYaml) return "yaml";
  return (flags & flags::kRencode) ? "rencode" : "bencode";
}

const char* LevelCompressorName(uint8_t level) { return CompressorName(CompressorForLevel(level)); }

// Smoothed round-trip time of a TCP socket in microseconds (-1 when unknown / not tcp).
int64_t TcpRttUs(int fd) {
  tcp_info ti{};
  socklen_t len = sizeof ti;
  if (fd < 0 || getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0) return -1;
  return ti.tcpi_rtt;
}

int64_t UnixNow() { return static_cast<int64_t>(time(nullptr)); }

// Collects complete frames of a plain byte stream whose payload is at most `max_payload`
// (larger ones are skipped), for inspection.
class SmallFrameCapture {
 public:
  explicit SmallFrameCapture(size_t max_payload) : max_payload_(max_payload) {}
  // Consumes `data`; complete small frames are appended to *out.
  void Feed(std::string_view data, std::vector<RawFrame>* out) {
    while (!data.empty() && !broken_) {
      if (remaining_ > 0) {
        size_t n = std::min<size_t>(remaining_, data.size());
        if (capturing_) frame_.payload.append(data.substr(0, n));
        remaining_ -= n;
        data.remove_prefix(n);
        if (remaining_ == 0 && capturing_) {
          out->push_back(std::move(frame_));
          frame_ = RawFrame{};
          capturing_ = false;
        }
        continue;
      }
      size_t n = std::min(kHeaderSize - have_, data.size());
      std::memcpy(header_ + have_, data.data(), n);
      have_ += n;
      data.remove_prefix(n);
      if (have_ < kHeaderSize) break;
      have_ = 0;
      auto h = DecodeHeader(std::string_view(header_, kHeaderSize));
      if (!h.ok()) {
        broken_ = true;
        break;
      }
      remaining_ = h->wire_payload_size();
      capturing_ = h->index == 0 && !h->encrypted() && remaining_ <= max_payload_ && remaining_ > 0;
      if (capturing_) frame_.header = *h;
    }
  }

 private:
  size_t max_payload_;
  char header_[kHeaderSize];
  size_t have_ = 0;
  size_t remaining_ = 0;
  bool capturing_ = false;
  bool broken_ = false;
  RawFrame frame_;
};

// Decodes a main (index 0) plain frame into its packet; nullopt when it cannot.
std::optional<Value> DecodeFrame(const RawFrame& f) {
  std::string plain;
  std::string_view payload = f.payload;
  if ((f.header.level & 0x0f) != 0) {
    auto d = Decompress(f.header.level, payload, kHardMaxPayload);
    if (!d.ok()) return std::nullopt;
    plain = std::move(*d);
    payload = plain;
  }
  if (f.header.flags & flags::kYaml) return std::nullopt;
  auto v = (f.header.flags & flags::kRencode) ? rencode::Decode(payload) : bencode::Decode(payload);
  if (!v.ok() || !v->is_list() || v->as_list().empty() || !v->as_list()[0].is_string()) return std::nullopt;
  return std::move(*v);
}


// FIFO of byte strings. Unlike std::deque it allocates nothing while empty, so an idle
// connection's two queues cost only their own few bytes.
class SendQueue {
 public:
  bool empty() const { return head_ == items_.size(); }
  std::string& front() { return items_[head_]; }
  void push_back(std::string s) { items_.push_back(std::move(s)); }
  void pop_front() {
    std::string().swap(items_[head_]);
    if (++head_ == items_.size()) clear();
  }
  void clear() {
    std::vector<std::string>().swap(items_);
    head_ = 0;
  }

 private:
  std::vector<std::string> items_;
  size_t head_ = 0;
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

Expected<UniqueFd> OpenUnixListener(const std::string& path, mode_t mode = 0600) {
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

}  // namespace

// ------------------------------------------------------------------ Connection

// The :proxy-N endpoint of one relayed connection; runs on that connection's reactor.
class InstanceControl final : public ControlTarget {
 public:
  InstanceControl(Reactor* r, uint64_t id, std::string display) : r_(r), id_(id), display_(std::move(display)) {}
  Value Info() override;
  bool Stop() override;
  std::string name() const override { return display_; }

 private:
  Reactor* r_;
  uint64_t id_;
  std::string display_;
};

class Connection final : public SessionIo {
 public:
  struct Leg {
    UniqueFd fd;
    bool recv_inflight = false;
    bool send_inflight = false;
    bool paused = false;  // recv not re-armed because the other leg is backed up
    bool eof = false;
    bool failed = false;
    SendQueue outq;
    size_t out_off = 0;
    size_t out_bytes = 0;
    uint64_t bytes_in = 0;
    uint64_t bytes_out = 0;
    // Liveness, for the idle check on the reactor's tick: when bytes_in last moved, and when
    // bytes_out last moved (or nothing was waiting to go out); the counts the tick last saw.
    int64_t last_in_ms = 0;
    int64_t last_out_ms = 0;
    uint64_t seen_in = 0;
    uint64_t seen_out = 0;
    int out_mark = -1;  // the kernel's send queue length when last probed (SIOCOUTQ)
    // After -ENOBUFS (every ring buffer taken, typically by saturating streams) the next
    // receive uses this buffer of the connection's own, so a leg never waits for the ring to
    // drain: handshakes and quiet legs make progress while others stream. Freed right after.
    std::unique_ptr<char[]> private_buf;
    size_t recv_limit = 0;  // bytes the next receive may read (0: a whole ring buffer)
    bool poll_inflight = false;  // splice path: waiting for readiness
  };

  // A relayed connection.
  Connection(Reactor* r, uint64_t id, UniqueFd client_fd, std::string peer,
             std::shared_ptr<const SessionConfig> config, bool admitted)
      : r_(r),
        id_(id),
        peer_(peer),
        started_ms_(NowMs()),
        to_client_frames_(config->server_limits),
        to_server_frames_(config->client_limits),
        admitted_(admitted) {
    connect_timeout_ms_ = config->server_timeout_ms > 0 ? config->server_timeout_ms : connect_timeout_ms_;
    client_.fd = std::move(client_fd);
    auto session = std::make_unique<Session>(id, std::move(peer), std::move(config), this);
    session_ = session.get();
    handler_ = std::move(session);
    Counters().handshaking++;
  }

  // A client of a control socket.
  Connection(Reactor* r, uint64_t id, UniqueFd client_fd, std::shared_ptr<ControlTarget> target)
      : r_(r), id_(id), peer_("control"), started_ms_(NowMs()) {
    client_.fd = std::move(client_fd);
    handler_ = std::make_unique<ControlSession>(id, std::move(target), this);
  }

  uint64_t id() const { return id_; }
  bool is_relay() const { return session_ != nullptr; }
  bool reapable() const { return closed_fds_ && inflight_ == 0; }
  int64_t deadline() const { return deadline_ms_; }

  void Start() {
    handler_->Start();
    ArmRecv(client_, Reactor::kClientRecv);
  }

  // ---- SessionIo
  // Both streams are followed from the first byte the relay writes, so passthrough starts in
  // step with them (the session hands over frames it had only partly read).
  void SendToClient(std::string bytes) override {
    SendTracked(client_, Reactor::kClientSend, to_client_frames_, "client", std::move(bytes));
  }
  void SendToServer(std::string bytes) override {
    SendTracked(server_, Reactor::kServerSend, to_server_frames_, "server", std::move(bytes));
  }
  // Queues a packet the relay itself writes, keeping the leg's frame tracker in step.
  void SendTracked(Leg& leg, Reactor::Op op, FrameBoundary& frames, const char* side, std::string bytes) {
    if (passthrough_ && !frames.at_boundary()) {
      XR_DEBUG("conn", "conn={} packet for the {} dropped: stream is mid-frame", id_, side);
      return;
    }
    bool was_failed = frames.failed();
    frames.Feed(bytes);
    if (!was_failed && frames.failed()) {
      // The session checks what it forwards; this is for the log (passthrough acts on the next receive).
      XR_WARN("conn", "conn={} stream to the {} broken by forwarded data: {}", id_, side, frames.error());
    }
    Queue(leg, op, std::move(bytes));
  }
  void RunAuth(std::function<AuthOutcome()> job) override {
    Reactor* r = r_;
    uint64_t id = id_;
    bool queued = r_->pool_->Submit([r, id, job = std::move(job)]() mutable {
      AuthOutcome out = job();
      r->Post([r, id, out = std::move(out)]() mutable {
        auto it = r->conns_.find(id);
        if (it != r->conns_.end()) it->second->handler_->OnAuthDone(std::move(out));
      });
    });
    if (!queued) {
      AuthOutcome busy;
      busy.client_reason = reason::kServerError;
      busy.detail = "the relay is too busy to authenticate now, try again";
      busy.log_detail = "auth queue full";
      handler_->OnAuthDone(std::move(busy));
    }
  }
  void ConnectServer(const registry::Target& target) override;
  void StartPassthrough() override {
    passthrough_ = true;
    ArmRecv(client_, Reactor::kClientRecv);
    ArmRecv(server_, Reactor::kServerRecv);
  }
  void Relaying() override {
    r_->stats_.relaying++;
    counted_relaying_ = true;
    Counters().handshaking--;
    Counters().relaying++;
    Counters().relayed_total++;
    counted_handshake_done_ = true;
    OpenInstanceSocket();
    int64_t now = NowMs();
    for (Leg* leg : {&client_, &server_}) leg->last_in_ms = leg->last_out_ms = now;
    Instances().Put(InstanceSummary{id_, proxy_display(), peer_, session_->username(), session_->target().describe(),
                                    UnixNow()});
  }
  std::string proxy_display() const { return ":proxy-" + std::to_string(proxy_number_); }
  void SetDeadline(int64_t ms) override { deadline_ms_ = ms > 0 ? NowMs() + ms : 0; }
  void Close(std::string_view log_reason) override {
    if (closing_) return;
    closing_ = true;
    deadline_ms_ = NowMs() + r_->limits_.close_linger_ms;
    CancelRecv(client_, Reactor::kClientRecv);
    CancelRecv(server_, Reactor::kServerRecv);
    if (client_.poll_inflight) Cancel(Reactor::kClientPoll);
    if (server_.poll_inflight) Cancel(Reactor::kServerPoll);
    if (connect_inflight_) Cancel(Reactor::kConnect);
    CloseInstanceSocket();
    MaybeFinishClose();
  }

  // ---- completions
  void OnCompletion(Reactor::Op op, const Completion& c) {
    int res = c.res;
    if (!(op == Reactor::kCtlAccept && c.more)) --inflight_;
    switch (op) {
      case Reactor::kCtlAccept: OnControlAccept(res, c.more); break;
      case Reactor::kClientRecv:
      case Reactor::kServerRecv: {
        bool from_client = op == Reactor::kClientRecv;
        const char* data = nullptr;
        Leg& leg = from_client ? client_ : server_;
        // The private buffer (if this receive used one) lives until the data is consumed.
        std::unique_ptr<char[]> own = std::move(leg.private_buf);
        if (c.buffer >= 0) {
          data = r_->io_->buffer(c.buffer);
        } else if (own) {
          data = own.get();
        }
        OnRecv(leg, from_client ? server_ : client_, from_client, res, data);
        if (c.buffer >= 0) r_->io_->Recycle(c.buffer);  // the data was copied or consumed
        break;
      }
      case Reactor::kClientPoll:
      case Reactor::kServerPoll: {
        Leg& leg = op == Reactor::kClientPoll ? client_ : server_;
        leg.poll_inflight = false;
        if (res == -ECANCELED || closing_) {
          MaybeFinishClose();
        } else {
          Pump();  // an error or hang-up shows in the splice itself
        }
        break;
      }
      case Reactor::kClientSend: OnSend(client_, Reactor::kClientSend, true, res); break;
      case Reactor::kServerSend: OnSend(server_, Reactor::kServerSend, false, res); break;
      case Reactor::kConnect: OnConnect(res); break;
      case Reactor::kConnectTimeout:
      case Reactor::kCancel:
        break;  // outcome is reported on the operation itself
      default:
        XR_ERROR("engine", "conn={} unexpected completion op={} res={}", id_, static_cast<int>(op), res);
    }
  }

  void OnDeadline() {
    if (closing_) {
      XR_WARN("conn", "conn={} close linger expired; dropping unsent data", id_);
      ForceClose();
      return;
    }
    deadline_ms_ = 0;
    if (stop_pending_) {
      // The server never completed its frame: the client cannot be told cleanly.
      XR_WARN("conn", "conn={} {}: {}; the server's frame did not end in time to tell the client, closing", id_,
              stop_reason_, stop_detail_);
      stop_pending_ = false;
      Close("stopped");
      return;
    }
    handler_->OnTimeout();
  }

  // Turns the connection away at once with a readable reason.
  void Refuse(std::string_view why) { handler_->Disconnect(reason::kServerError, why); }

  // Graceful stop of the whole relay: tell the client, flush, close.
  void Shutdown() { StopWithReason(reason::kServerShutdown, "the relay is shutting down"); }

  // Ends a relayed connection on request (xpra stop :proxy-N, relay shutdown). In passthrough
  // the disconnect packet waits for the server->client stream to reach a frame boundary.
  void StopWithReason(std::string_view why, std::string_view detail) {
    if (closing_) return;
    if (passthrough_ && !to_client_frames_.at_boundary()) {
      stop_pending_ = true;
      stop_reason_ = std::string(why);
      stop_detail_ = std::string(detail);
      deadline_ms_ = NowMs() + r_->limits_.close_linger_ms;
      ArmRecv(server_, Reactor::kServerRecv);
      return;
    }
    handler_->Disconnect(why, detail);
    Close(why);
  }

  // ---- per-leg limits while relaying (kept apart from the data path: stamps, a tick check, frame checks)

  // Which leg, if any, of a relaying connection is dead: it sent the relay nothing for
  // `idle_ms`, or what is queued for it made no progress for that long (its peer does not
  // read). Progress is read off the legs' byte counts, which every data path keeps (receives,
  // sends, splices), so nothing is timed per packet. A leg the relay is not reading (paused by
  // back-pressure, or its spliced bytes still in the pipe) does not age; nor does an empty
  // queue. Called on the reactor's 100 ms tick; cheap. A queue that has not moved for a second
  // asks the kernel, once a second and before it is declared dead, whether its socket's own
  // queue did: a slow reader drains the socket long before the kernel wakes a blocked sender
  // (that waits for half the send buffer, megabytes on a fast link).
  enum class DeadLeg { kNone, kClientSilent, kClientStalled, kServerSilent, kServerStalled };
  DeadLeg FindDeadLeg(int64_t now, int64_t idle_ms, bool probe) {
    if (!counted_relaying_ || closing_ || stop_pending_) return DeadLeg::kNone;
    for (Leg* leg : {&client_, &server_}) {
      if (leg->bytes_in != leg->seen_in) {
        leg->seen_in = leg->bytes_in;
        leg->last_in_ms = now;
      }
      if (leg->bytes_out != leg->seen_out) {
        leg->seen_out = leg->bytes_out;
        leg->last_out_ms = now;
      }
      if (leg->paused || (leg == &server_ && splicing_ && in_pipe_ > 0)) leg->last_in_ms = now;
      if (Waiting(*leg) == 0) {
        leg->last_out_ms = now;
      } else if ((probe && now - leg->last_out_ms >= 1000) || now - leg->last_out_ms >= idle_ms) {
        int queued = 0;
        if (ioctl(leg->fd.get(), SIOCOUTQ, &queued) == 0 && queued != leg->out_mark) {
          leg->out_mark = queued;
          leg->last_out_ms = now;
        }
      }
    }
    if (now - client_.last_in_ms >= idle_ms) return DeadLeg::kClientSilent;
    if (now - client_.last_out_ms >= idle_ms) return DeadLeg::kClientStalled;
    if (now - server_.last_in_ms >= idle_ms) return DeadLeg::kServerSilent;
    if (now - server_.last_out_ms >= idle_ms) return DeadLeg::kServerStalled;
    return DeadLeg::kNone;
  }

  // Bytes the relay holds for `leg`'s peer: its send queue, and for the client the spliced
  // bytes still in the pipe.
  size_t Waiting(const Leg& leg) const { return leg.out_bytes + (&leg == &client_ ? in_pipe_ : 0); }

  // Ends a connection with a dead leg: both ends are told which side went quiet and for how long.
  void EndDeadLeg(DeadLeg dead, int64_t idle_ms) {
    bool client = dead == DeadLeg::kClientSilent || dead == DeadLeg::kClientStalled;
    bool silent = dead == DeadLeg::kClientSilent || dead == DeadLeg::kServerSilent;
    const Leg& leg = client ? client_ : server_;
    const char* who = client ? "the client" : "the session's server";
    std::string secs = fmt::format("{:g}", static_cast<double>(idle_ms) / 1000);
    std::string detail =
        silent ? fmt::format("{} sent nothing for {} s", who, secs)
               : fmt::format("{} read nothing the relay sent it for {} s ({} bytes waiting)", who, secs, Waiting(leg));
    EndBoth(client ? reason::kClientPingTimeout : reason::kServerPingTimeout, detail);
  }

  // Ends a relaying connection: the server is told first (if its stream is at a frame
  // boundary), then the client as StopWithReason does.
  void EndBoth(std::string_view why, std::string_view detail) {
    if (closing_) return;
    handler_->TellServer(why, detail);
    StopWithReason(why, detail);
  }

  // A frame header on the leg from the client (`from_client`) or the server broke that leg's
  // limits (or was not a header). The bytes before it go on, nothing after; both ends are told
  // when their streams allow it, and the connection closes.
  // The words match the session's for the same faults during login.
  void OnBadFrame(bool from_client, std::string_view data) {
    FrameBoundary& f = from_client ? to_server_frames_ : to_client_frames_;
    Queue(from_client ? server_ : client_, from_client ? Reactor::kServerSend : Reactor::kClientSend,
          std::string(data.substr(0, f.good_bytes())));
    if (from_client) {
      handler_->TellServer(reason::kProtocolError, "the client sent invalid data: " + f.error());
      StopWithReason(reason::kProtocolError, f.error());
      return;
    }
    handler_->TellServer(reason::kProtocolError, f.error());
    std::string detail = "invalid data from the session's server: " + f.error();
    if (!to_client_frames_.at_boundary()) {
      // Part of the bad header already went to the client: nothing can be added cleanly.
      XR_WARN("conn", "conn={} peer={} {}: {}; closing, the client cannot be told", id_, peer_, reason::kServerError,
              detail);
      Close(reason::kServerError);
      return;
    }
    StopWithReason(reason::kServerError, detail);
  }

  // `xpra info :proxy-N` for this connection.
  Value InfoValue() const {
    Value client{Dict{}};
    client.set("peer", std::string_view(peer_));
    client.set("encoding", session_->client_encoding() == Encoding::kRencode ? "rencode" : "bencode");
    client.set("encryption", session_->encrypted() ? "AES" : "");
    client.set("bytes-received", static_cast<long long>(client_.bytes_in));
    client.set("bytes-sent", static_cast<long long>(client_.bytes_out));
    client.set("packets-sent", static_cast<long long>(to_client_frames_.packets()));
    client.set("packets-received", static_cast<long long>(to_server_frames_.packets()));
    client.set("latency-us", static_cast<long long>(TcpRttUs(client_.fd.get())));
    Value server{Dict{}};
    server.set("target", std::string_view(session_->target().describe()));
    server.set("display", std::string_view(session_->target().display));
    server.set("encoder", EncoderName(to_client_frames_.last_flags()));
    server.set("compression", LevelCompressorName(to_client_frames_.last_level()));
    server.set("client-encoder", EncoderName(to_server_frames_.last_flags()));
    server.set("client-compression", LevelCompressorName(to_server_frames_.last_level()));
    server.set("bytes-received", static_cast<long long>(server_.bytes_in));
    server.set("bytes-sent", static_cast<long long>(server_.bytes_out));
    server.set("packets-sent", static_cast<long long>(to_server_frames_.packets()));
    server.set("packets-received", static_cast<long long>(to_client_frames_.packets()));
    server.set("latency-us", static_cast<long long>(TcpRttUs(session_->target().kind == registry::Target::Kind::kTcp ? server_.fd.get() : -1)));
    Value out{Dict{}};
    out.set("instance", static_cast<long long>(id_));
    out.set("display", proxy_display());
    out.set("connection", static_cast<long long>(id_));
    out.set("username", std::string_view(session_->username()));
    out.set("uptime", static_cast<long long>((NowMs() - started_ms_) / 1000));
    out.set("state", SessionStateName(session_->state()));
    out.set("client", std::move(client));
    out.set("server", std::move(server));
    Value proxy{Dict{}};
    proxy.set("version", kRelayVersion);
    proxy.set("implementation", "xpra-relay");
    out.set("proxy", std::move(proxy));
    return out;
  }

  ~Connection() override {
    if (counted_relaying_) {
      r_->stats_.relaying--;
      Counters().relaying--;
    }
    if (is_relay() && !counted_handshake_done_) Counters().handshaking--;
    if (is_relay()) Counters().closed++;
    if (admitted_) GlobalAdmission().Disconnect(AddressOf(peer_));
    CloseInstanceSocket();
  }

 private:
  void ArmRecv(Leg& leg, Reactor::Op op) {
    if (!leg.fd.valid() || leg.recv_inflight || leg.eof || leg.failed || closing_) return;
    if (&leg == &server_ && splicing_) return;  // the splice pump owns the server leg
    if (leg.private_buf) {
      // The ring ran dry on this leg's last receive: read into the leg's own buffer once.
      r_->io_->Recv(leg.fd.get(), leg.private_buf.get(), kPrivateRecvBytes, Reactor::Tag(id_, op));
    } else {
      // No buffer of our own: the backend picks a provided one when data arrives.
      r_->io_->RecvProvided(leg.fd.get(), leg.recv_limit, Reactor::Tag(id_, op));
    }
    leg.recv_inflight = true;
    ++inflight_;
  }

  void Cancel(Reactor::Op op) {
    r_->io_->Cancel(Reactor::Tag(id_, op), Reactor::Tag(id_, Reactor::kCancel));
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
    r_->io_->Send(leg.fd.get(), front.data() + leg.out_off, front.size() - leg.out_off, Reactor::Tag(id_, op));
    leg.send_inflight = true;
    ++inflight_;
  }

  void OnRecv(Leg& leg, Leg& other, bool from_client, int res, const char* buf) {
    leg.recv_inflight = false;
    if (res == -ECANCELED || closing_) {
      MaybeFinishClose();
      return;
    }
    if (res == -EAGAIN || res == -EINTR) {
      ArmRecv(leg, from_client ? Reactor::kClientRecv : Reactor::kServerRecv);
      return;
    }
    if (res == -ENOBUFS) {
      // Every ring buffer is in use this instant. Waiting for the ring would let saturating
      // streams win every race for it (they re-arm first, with data already queued), so the
      // next receive goes into a buffer of this leg's own, allocated only for it.
      r_->NoteRingEmpty();
      leg.private_buf = std::make_unique_for_overwrite<char[]>(kPrivateRecvBytes);
      ArmRecv(leg, from_client ? Reactor::kClientRecv : Reactor::kServerRecv);
      return;
    }
    if (res <= 0) {
      leg.eof = true;
      if (res < 0) leg.failed = true;
      return LegEnded(from_client, res == 0 ? "end of stream" : log::ErrnoText(-res));
    }
    leg.bytes_in += static_cast<uint64_t>(res);
    std::string_view data(buf, static_cast<size_t>(res));
    if (passthrough_) {
      if (from_client) {
        if (stop_pending_) {  // the client's stream no longer matters
          ArmRecv(leg, Reactor::kClientRecv);
          return;
        }
        Counters().bytes_to_server += static_cast<uint64_t>(res);
        to_server_frames_.Feed(data);
        if (to_server_frames_.failed()) return OnBadFrame(true, data);
        WatchClientPackets(data);
        Queue(server_, Reactor::kServerSend, std::string(data));
      } else if (stop_pending_) {
        size_t n = to_client_frames_.FeedToBoundary(data);
        Queue(client_, Reactor::kClientSend, std::string(data.substr(0, n)));
        if (to_client_frames_.at_boundary()) {
          stop_pending_ = false;
          handler_->Disconnect(stop_reason_, stop_detail_);
          Close(stop_reason_);
          return;
        }
      } else if (expect_info_) {
        Counters().bytes_to_client += static_cast<uint64_t>(res);
        ForwardWatchingInfo(data);
      } else {
        Counters().bytes_to_client += static_cast<uint64_t>(res);
        to_client_frames_.Feed(data);
        if (to_client_frames_.failed()) return OnBadFrame(false, data);
        Queue(client_, Reactor::kClientSend, std::string(data));
        if (MaybeStartSplice()) return;
        // After a large frame the next is likely large too: read only to the end of this one
        // and the start of the next, so the rest of the next can be spliced.
        size_t min = r_->limits_.splice_min;
        leg.recv_limit = min != 0 && to_client_frames_.last_payload() >= min
                             ? to_client_frames_.payload_remaining() + kSplicePeekBytes
                             : 0;
      }
    } else if (from_client) {
      handler_->OnClientData(data);
    } else {
      handler_->OnServerData(data);
      if (!closing_ && handler_->relaying()) {
        Counters().bytes_to_client += static_cast<uint64_t>(res);
      }
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

  // A leg's socket ended or failed (`why`): the session tells whoever is still there; close.
  void LegEnded(bool client, const std::string& why) {
    if (client) {
      handler_->OnClientClosed(why);
    } else {
      handler_->OnServerClosed(why);
    }
    Close(why);
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
        std::string why = log::ErrnoText(-res);
        if (to_client) {
          handler_->OnClientClosed(why);
        } else {
          handler_->OnServerClosed(why);
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
    if (to_client && splicing_ && leg.outq.empty()) Pump();
    // Resume the paused reader feeding this leg.
    Leg& source = to_client ? server_ : client_;
    if (source.paused && leg.out_bytes < r_->limits_.low_water) {
      source.paused = false;
      ArmRecv(source, to_client ? Reactor::kServerRecv : Reactor::kClientRecv);
    }
    MaybeFinishClose();
  }

  // ---- zero-copy server->client path (passthrough, both legs plain)
  //
  // When the server->client stream is inside a frame with at least `splice_min` payload bytes
  // to come, those bytes move socket -> pipe -> socket with splice(2) and never enter user
  // space. The relay still reads each frame's header and the start of its payload through a
  // ring buffer (at most kSplicePeekBytes), so it keeps following frame boundaries and sees
  // every small packet whole. splice runs synchronously on the reactor thread with both
  // sockets non-blocking; io_uring poll requests report readiness (IORING_OP_SPLICE is not
  // pollable and would block an io-wq thread per stream).

  // Starts splicing the rest of the current frame when it is worth it; true when started.
  bool MaybeStartSplice() {
    size_t left = to_client_frames_.payload_remaining();
    if (r_->limits_.splice_min == 0 || left < r_->limits_.splice_min || stop_pending_ || expect_info_) return false;
    if (!pipe_r_.valid() && !OpenPipe()) return false;
    splicing_ = true;
    splice_left_ = left;
    Pump();
    return true;
  }

  bool OpenPipe() {
    int p[2];
    if (pipe2(p, O_NONBLOCK | O_CLOEXEC) != 0) {
      XR_DEBUG("conn", "conn={} no pipe for splice ({}); copying", id_, log::ErrnoText(errno));
      return false;
    }
    pipe_r_.reset(p[0]);
    pipe_w_.reset(p[1]);
    // A pipe left at the default size still works: splice moves it in smaller steps.
    if (fcntl(pipe_w_.get(), F_SETPIPE_SZ, static_cast<int>(kPipeBytes)) < 0) {
      XR_DEBUG("conn", "conn={} pipe size stays default ({})", id_, log::ErrnoText(errno));
    }
    for (Leg* leg : {&client_, &server_}) {
      // splice(2) on a blocking socket would block the reactor: without O_NONBLOCK, copy.
      int fl = fcntl(leg->fd.get(), F_GETFL);
      if (fl < 0 || fcntl(leg->fd.get(), F_SETFL, fl | O_NONBLOCK) != 0) {
        XR_DEBUG("conn", "conn={} cannot make a leg non-blocking ({}); copying", id_, log::ErrnoText(errno));
        pipe_r_.reset();
        pipe_w_.reset();
        return false;
      }
    }
    return true;
  }

  void ArmPoll(Leg& leg, Reactor::Op op, unsigned events) {
    if (leg.poll_inflight || !leg.fd.valid()) return;
    r_->io_->Poll(leg.fd.get(), events, Reactor::Tag(id_, op));
    leg.poll_inflight = true;
    ++inflight_;
  }

  // Moves spliced bytes as far as the sockets allow, then waits for readiness. Called when a
  // splice starts, on poll completions, and when the client's send queue has drained.
  void Pump() {
    while (splicing_ && !closing_) {
      bool progressed = false;
      // pipe -> client, once everything queued ahead of the spliced bytes has been sent.
      if (in_pipe_ > 0 && client_.outq.empty() && !client_.send_inflight) {
        ssize_t n = r_->io_->Splice(pipe_r_.get(), client_.fd.get(), in_pipe_);
        if (n > 0) {
          in_pipe_ -= static_cast<size_t>(n);
          client_.bytes_out += static_cast<uint64_t>(n);
          progressed = true;
        } else if (n == -EAGAIN) {
          ArmPoll(client_, Reactor::kClientPoll, POLLOUT);
        } else {
          client_.failed = true;
          return LegEnded(true, n == 0 ? "end of stream" : log::ErrnoText(static_cast<int>(-n)));
        }
      }
      // server -> pipe. EAGAIN with bytes still in the pipe may mean the pipe is full: the
      // client side's progress re-runs the pump, so only an empty pipe waits on the server.
      if (splice_left_ > 0 && in_pipe_ < kPipeBytes) {
        size_t want = std::min(splice_left_, kPipeBytes - in_pipe_);
        ssize_t n = r_->io_->Splice(server_.fd.get(), pipe_w_.get(), want);
        if (n > 0) {
          splice_left_ -= static_cast<size_t>(n);
          in_pipe_ += static_cast<size_t>(n);
          server_.bytes_in += static_cast<uint64_t>(n);
          to_client_frames_.Skip(static_cast<size_t>(n));
          spliced_ += static_cast<uint64_t>(n);
          Counters().bytes_to_client += static_cast<uint64_t>(n);
          Counters().bytes_spliced += static_cast<uint64_t>(n);
          progressed = true;
        } else if (n == -EAGAIN) {
          if (in_pipe_ == 0) ArmPoll(server_, Reactor::kServerPoll, POLLIN);
        } else {
          server_.eof = true;
          if (n < 0) server_.failed = true;
          return LegEnded(false, n == 0 ? "end of stream" : log::ErrnoText(static_cast<int>(-n)));
        }
      }
      if (splice_left_ == 0 && in_pipe_ == 0) {
        // The frame is through: back to reading the next header through a ring buffer.
        splicing_ = false;
        if (stop_pending_) {
          stop_pending_ = false;
          handler_->Disconnect(stop_reason_, stop_detail_);
          Close(stop_reason_);
          return;
        }
        server_.recv_limit = kSplicePeekBytes;
        ArmRecv(server_, Reactor::kServerRecv);
        return;
      }
      if (!progressed) return;
    }
  }

  void OnConnect(int res) {
    connect_inflight_ = false;
    if (closing_) {
      MaybeFinishClose();
      return;
    }
    if (res < 0) {
      std::string why = res == -ECANCELED ? "timed out" : log::ErrnoText(-res);
      server_.fd.reset();
      handler_->OnServerConnectFailed(why);
      return;
    }
    int one = 1;
    if (target_is_tcp_) setsockopt(server_.fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    handler_->OnServerConnected();
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
    pipe_r_.reset();
    pipe_w_.reset();
    CloseInstanceSocket();
    deadline_ms_ = 0;
    if (is_relay()) {
      XR_INFO("conn", "conn={} peer={} user={} closed: client {} bytes in / {} out, server {} in / {} out{}, {} s", id_,
              peer_, session_->username().empty() ? "-" : session_->username(), client_.bytes_in, client_.bytes_out,
              server_.bytes_in, server_.bytes_out,
              spliced_ ? fmt::format(" ({} spliced)", spliced_) : std::string(), (NowMs() - started_ms_) / 1000);
    }
  }

  // ---- in-band info: the server's info-response gets a "proxy" subtree, as xpra proxy does

  // Client->server traffic is small (input, acks, pings): its small packets are decoded to
  // notice an info-request.
  void WatchClientPackets(std::string_view data) {
    std::vector<RawFrame> frames;
    client_capture_.Feed(data, &frames);
    for (const auto& f : frames) {
      auto p = DecodeFrame(f);
      if (p && p->as_list()[0].as_string() == "info-request") {
        expect_info_ = true;
        info_frames_ = 0;
      }
    }
  }

  void ForwardToClient(std::string bytes) {
    if (closing_) return;
    to_client_frames_.Feed(bytes);
    if (to_client_frames_.failed()) return OnBadFrame(false, bytes);
    Queue(client_, Reactor::kClientSend, std::move(bytes));
  }

  // While an info-response is expected, server->client frames pass whole through a reader so
  // that one can be rewritten; afterwards the stream is plain passthrough again.
  void ForwardWatchingInfo(std::string_view data) {
    if (!info_reader_) {
      if (!to_client_frames_.at_boundary()) {
        size_t n = to_client_frames_.FeedToBoundary(data);
        if (to_client_frames_.failed()) return OnBadFrame(false, data);
        Queue(client_, Reactor::kClientSend, std::string(data.substr(0, n)));
        data.remove_prefix(n);
        if (!to_client_frames_.at_boundary()) return;
      }
      info_reader_ = std::make_unique<FrameReader>(FrameLimits{to_client_frames_.max_payload(), 3});
      chunks_before_main_ = 0;
    }
    info_reader_->Feed(data);
    while (expect_info_ && !closing_) {
      auto f = info_reader_->Next();
      if (!f.ok() || !f->has_value()) {
        if (!f.ok()) expect_info_ = false;  // not ours to judge: pass the bytes on unchanged
        break;
      }
      RawFrame frame = std::move(**f);
      if (frame.header.index != 0) {
        ++chunks_before_main_;
        ForwardToClient(SerializeFrame(frame.header, frame.payload));
        continue;
      }
      std::string out;
      auto packet = chunks_before_main_ == 0 ? DecodeFrame(frame) : std::nullopt;
      chunks_before_main_ = 0;
      if (packet && packet->as_list()[0].as_string() == "info-response" && packet->as_list().size() > 1 &&
          packet->as_list()[1].is_dict()) {
        packet->as_list()[1].set("proxy", ProxyInfo());
        EncodeOptions opts;
        opts.encoding = (frame.header.flags & flags::kRencode) ? Encoding::kRencode : Encoding::kBencode;
        if ((frame.header.level & 0x0f) != 0) {
          opts.compressor = CompressorForLevel(frame.header.level);
          opts.level = frame.header.level & 0x0f;
        }
        if (!EncodePacket(*packet, opts, nullptr, &out).ok()) out.clear();
        expect_info_ = false;
        XR_DEBUG("conn", "conn={} info-response augmented with proxy info", id_);
      }
      ForwardToClient(out.empty() ? SerializeFrame(frame.header, frame.payload) : std::move(out));
      if (++info_frames_ > 10000) expect_info_ = false;  // the server never answered
    }
    if (!expect_info_ && !closing_) {
      std::string rest = info_reader_->TakeBuffered();
      info_reader_.reset();
      if (!rest.empty()) ForwardToClient(std::move(rest));
    }
  }

  Value ProxyInfo() const {
    Value latency{Dict{}};
    latency.set("client", static_cast<long long>(TcpRttUs(client_.fd.get()) / 1000));
    if (session_->target().kind == registry::Target::Kind::kTcp) {
      latency.set("server", static_cast<long long>(TcpRttUs(server_.fd.get()) / 1000));
    }
    Value proxy{Dict{}};
    proxy.set("version", kRelayVersion);
    proxy.set("implementation", "xpra-relay");
    proxy.set("instance", proxy_display());
    proxy.set("latency", std::move(latency));
    return proxy;
  }

  // ---- the :proxy-N control endpoint
  void OpenInstanceSocket() {
    const ControlConfig& cc = r_->control_;
    proxy_number_ = g_next_proxy_number.fetch_add(1);
    if (cc.socket_dir.empty() || !cc.instance_sockets || ctl_fd_.valid()) return;
    ctl_path_ = ControlSocketPath(cc, proxy_display());
    for (int tries = 0; registry::ProbeSocket(ctl_path_) == registry::SocketState::kLive; ++tries) {
      if (tries == 1000) {
        XR_WARN("control", "conn={} no control socket: every :proxy-N name tried is in use", id_);
        ctl_path_.clear();
        return;
      }
      if (tries == 0) {
        XR_WARN("control", "{} is in use by another process (a relay sharing {}?); taking the next number",
                ctl_path_, cc.socket_dir);
      }
      proxy_number_ = g_next_proxy_number.fetch_add(1);
      ctl_path_ = ControlSocketPath(cc, proxy_display());
    }
    auto fd = OpenUnixListener(ctl_path_, cc.mode);
    if (!fd.ok()) {
      XR_WARN("control", "conn={} no control socket: {}", id_, fd.error().message);
      ctl_path_.clear();
      return;
    }
    ctl_fd_ = std::move(*fd);
    ArmControlAccept();
  }

  void ArmControlAccept() {
    if (!ctl_fd_.valid() || ctl_armed_) return;
    r_->io_->Accept(ctl_fd_.get(), Reactor::Tag(id_, Reactor::kCtlAccept));
    ctl_armed_ = true;
    ++inflight_;
  }

  void CloseInstanceSocket() {
    if (ctl_armed_ && ctl_fd_.valid() && !ctl_cancelled_) {
      ctl_cancelled_ = true;
      Cancel(Reactor::kCtlAccept);
    }
    if (!ctl_path_.empty()) {
      ::unlink(ctl_path_.c_str());
      ctl_path_.clear();
    }
    ctl_fd_.reset();
    if (is_relay() && counted_relaying_) Instances().Remove(id_);
  }

  void OnControlAccept(int res, bool more) {
    if (!more) ctl_armed_ = false;
    if (res >= 0) {
      UniqueFd fd(res);
      if (!closing_) r_->AcceptControl(std::move(fd), std::make_shared<InstanceControl>(r_, id_, proxy_display()));
    }
    if (!ctl_armed_ && !closing_ && !ctl_cancelled_) ArmControlAccept();
  }

  Reactor* r_;
  uint64_t id_;
  std::string peer_;
  int64_t started_ms_;
  Leg client_;
  Leg server_;
  std::unique_ptr<ClientHandler> handler_;
  Session* session_ = nullptr;  // handler_ when this is a relayed connection
  FrameBoundary to_client_frames_;
  FrameBoundary to_server_frames_;
  UniqueFd ctl_fd_;
  std::string ctl_path_;
  bool ctl_armed_ = false;
  bool ctl_cancelled_ = false;
  bool stop_pending_ = false;
  std::string stop_reason_;
  std::string stop_detail_;
  bool counted_handshake_done_ = false;
  bool admitted_ = false;  // counted in the per-address cap
  uint64_t proxy_number_ = 0;  // N of :proxy-N
  SmallFrameCapture client_capture_{64 * 1024};
  bool expect_info_ = false;
  int info_frames_ = 0;
  int chunks_before_main_ = 0;
  std::unique_ptr<FrameReader> info_reader_;
  sockaddr_storage target_addr_{};
  socklen_t target_len_ = 0;
  int64_t connect_timeout_ms_ = 10000;
  bool target_is_tcp_ = false;
  bool connect_inflight_ = false;
  bool passthrough_ = false;
  // Splice path state (see Pump).
  UniqueFd pipe_r_, pipe_w_;
  bool splicing_ = false;
  size_t splice_left_ = 0;  // payload bytes of the current frame still to read by splice
  size_t in_pipe_ = 0;      // bytes in the pipe, not yet sent to the client
  uint64_t spliced_ = 0;    // bytes this connection moved by splice
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
      handler_->OnServerConnectFailed("socket path too long");
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
      handler_->OnServerConnectFailed("target host must be a numeric address (got '" + target.host + "')");
      return;
    }
    target_is_tcp_ = true;
  }
  server_.fd.reset(socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!server_.fd.valid()) {
    handler_->OnServerConnectFailed(log::ErrnoText(errno));
    return;
  }
  // The connect may take the whole server timeout (the session's deadline covers connect and
  // server hello; whichever ends first reports it).
  r_->io_->ConnectWithTimeout(server_.fd.get(), reinterpret_cast<sockaddr*>(&target_addr_), target_len_,
                              connect_timeout_ms_, Reactor::Tag(id_, Reactor::kConnect),
                              Reactor::Tag(id_, Reactor::kConnectTimeout));
  inflight_ += 2;
  connect_inflight_ = true;
}

Value InstanceControl::Info() {
  Connection* c = r_->Find(id_);
  if (c == nullptr) {
    Value v{Dict{}};
    v.set("error", "instance " + name() + " has ended");
    return v;
  }
  return c->InfoValue();
}

bool InstanceControl::Stop() {
  Connection* c = r_->Find(id_);
  if (c == nullptr) return false;
  XR_INFO("conn", "conn={} stopped by request on {}", id_, name());
  c->StopWithReason(reason::kServerShutdown, "this session was stopped by the relay's operator");
  return true;
}

std::string ControlSocketPath(const ControlConfig& c, std::string_view display) {
  std::string name(display);
  if (!name.empty() && name.front() == ':') name.erase(0, 1);
  return c.socket_dir + "/" + c.hostname + "-" + name;
}

// ------------------------------------------------------------------ Reactor

Reactor::Reactor(int index, WorkerPool* pool, ReactorLimits limits, ControlConfig control)
    : index_(index), pool_(pool), limits_(limits), control_(std::move(control)) {}

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
  auto backend = std::make_unique<UringBackend>();
  if (Status s = backend->Init(4096); !s.ok()) return s;
  io_ = std::move(backend);
  wake_fd_.reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wake_fd_.valid()) return MakeError(ErrorCode::kIo, fmt::format("eventfd: {}", log::ErrnoText(errno)));
  for (const auto& spec : specs) {
    Expected<UniqueFd> fd = MakeError(ErrorCode::kInternal, "");
    if (spec.kind == ListenerSpec::Kind::kTcp) {
      fd = OpenTcpListener(spec.host, spec.port, shared, /*check_free=*/own_unix);
    } else {
      if (!own_unix) continue;
      fd = OpenUnixListener(spec.path, spec.kind == ListenerSpec::Kind::kControl ? control_.mode : 0600);
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
  // Over a limit: the client still gets a readable disconnect packet, then the connection closes.
  std::string refusal;
  bool admitted = false;
  if (Counters().handshaking.load() >= limits_.max_handshakes) {
    refusal = "too many logins in progress, try again shortly";
  } else if (!GlobalAdmission().Connect(AddressOf(peer))) {
    refusal = "too many connections from your address";
  } else {
    admitted = true;
  }
  XR_INFO("conn", "conn={} peer={} accepted on {}{}", id, peer, l.spec.describe(),
          refusal.empty() ? "" : " (refused: " + refusal + ")");
  auto conn = std::make_unique<Connection>(this, id, std::move(fd), peer, l.spec.session, admitted);
  Connection* c = conn.get();
  conns_.emplace(id, std::move(conn));
  stats_.accepted++;
  stats_.active++;
  Counters().accepted++;
  c->Start();
  if (!refusal.empty()) {
    c->Refuse(refusal);
    Reap(c);
  }
  if (!l.armed && !stopping_) ArmAccept(index);
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
  std::vector<std::pair<Connection*, Connection::DeadLeg>> dead;
  const int64_t idle_ms = limits_.idle_timeout_ms;
  const bool probe = ++ticks_ % (1000 / kTickMs) == 0;
  for (auto& [id, c] : conns_) {
    if (c->deadline() != 0 && now >= c->deadline()) {
      expired.push_back(c.get());
    } else if (idle_ms > 0) {
      if (auto d = c->FindDeadLeg(now, idle_ms, probe); d != Connection::DeadLeg::kNone) dead.emplace_back(c.get(), d);
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
  stats_.recv_nobufs++;
  Counters().recv_nobufs++;
  int64_t now = NowMs();
  if (ring_empty_logged_ms_ != 0 && now - ring_empty_logged_ms_ < 60000) return;
  ring_empty_logged_ms_ = now;
  XR_INFO("engine",
          "reactor {}: all {} shared receive buffers in use ({} times so far); receives fall back to "
          "per-connection buffers (more: --recv-buffers)",
          index_, limits_.recv_buffers, stats_.recv_nobufs.load());
}

void Reactor::BeginStop() {
  stopping_ = true;
  stop_deadline_ms_ = NowMs() + limits_.close_linger_ms + 1000;
  for (auto& l : listeners_) {
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
      XR_ERROR("engine", "reactor {}: io_uring_submit_and_wait failed: {}; stopping", index_, log::ErrnoText(-rc));
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
