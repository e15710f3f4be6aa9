#include "engine/connection.h"

#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>

#include <cerrno>
#include <cstring>

#include "engine/control.h"
#include "engine/limits.h"
#include "engine/listen.h"
#include "engine/log.h"
#include "engine/stats.h"
#include "engine/version.h"

namespace xr::engine {
namespace {

// System-wide mode: the session's socket must be served by the user's own process (SO_PEERCRED),
// checked on the very socket relayed to (the scan's check could be raced by a swapped file).
// "" when fine or not asked for.
std::string ServerUidMismatch(int fd, int64_t want_uid) {
  if (want_uid < 0) return {};
  struct ucred cred;
  socklen_t len = sizeof(cred);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return "cannot check the session's owner";
  if (static_cast<int64_t>(cred.uid) != want_uid) return "the session's socket is not served by that user's process";
  return {};
}

// Splice path: how much of the next frame is read (and seen) through a ring buffer before its
// payload is spliced.
constexpr size_t kSplicePeekBytes = 4096;

// Smoothed round-trip time of a TCP socket in microseconds (-1 when unknown / not tcp).
int64_t TcpRttUs(int fd) {
  tcp_info ti{};
  socklen_t len = sizeof ti;
  if (fd < 0 || getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0) return -1;
  return ti.tcpi_rtt;
}

int64_t UnixNow() { return static_cast<int64_t>(time(nullptr)); }

}  // namespace

Connection::Connection(Reactor* r, uint64_t id, UniqueFd client_fd, std::string peer,
                       std::shared_ptr<const SessionConfig> config, bool admitted,
                       std::shared_ptr<const FrontEndConfig> front, std::shared_ptr<const ProxyProtocolConfig> proxy)
    : r_(r),
      id_(id),
      peer_(peer),
      started_ms_(NowMs()),
      pass_(config->client_limits, config->server_limits),
      admitted_(admitted) {
  if (config->server_timeout_ms > 0) connect_timeout_ms_ = config->server_timeout_ms;
  cd_[kClientLeg].fd = std::move(client_fd);
  auto session = std::make_unique<Session>(id, std::move(peer), std::move(config), this, r->env_);
  session_ = session.get();
  handler_ = std::move(session);
  metric_transport_ = front ? ConnTransportOf(EntryName(front->entry))
                            : peer_.starts_with("unix:") ? ConnTransport::kUnix : ConnTransport::kTcp;
  RelayMetricsSet& m = RelayMetricsSet::Get();
  MoveGauge(m.connections(ConnState::kHandshaking, metric_transport_));
  to_client_bytes_ = m.bytes(ByteDir::kToClient, BytePathOf(ConnTransportName(metric_transport_)));
  to_server_bytes_ = m.bytes(ByteDir::kToServer, BytePathOf(ConnTransportName(metric_transport_)));
  if (front && !front->plain_tcp_only()) front_config_ = std::move(front);
  if (proxy) {
    proxy_header_ = std::make_unique<proxy::ProxyHeaderReader>(proxy->limits);
    proxy_timeout_ms_ = proxy->timeout_ms;
  }
  if (peer_.rfind("unix", 0) == 0) {
    // Unix-socket binds: the kernel says who connected (for the peercred auth module).
    struct ucred cred {};
    socklen_t len = sizeof cred;
    if (getsockopt(cd_[kClientLeg].fd.get(), SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
      session_->SetPeerCredentials(cred.uid, cred.gid, cred.pid);
    }
  }
  r_->env_.counters->handshaking++;  // the front end's time (TLS handshake, HTTP) takes a login slot too
}

Connection::Connection(Reactor* r, uint64_t id, UniqueFd client_fd, std::shared_ptr<ControlTarget> target)
    : r_(r), id_(id), peer_("control"), started_ms_(NowMs()), pass_(FrameLimits{kHardMaxPayload, 3}, FrameLimits{kHardMaxPayload, 3}) {
  cd_[kClientLeg].fd = std::move(client_fd);
  handler_ = std::make_unique<ControlSession>(id, std::move(target), this);
  to_client_bytes_ = RelayMetricsSet::Get().bytes(ByteDir::kToClient, BytePath::kCopy);
  to_server_bytes_ = RelayMetricsSet::Get().bytes(ByteDir::kToServer, BytePath::kCopy);
}

Connection::~Connection() {
  if (counted_relaying_) {
    r_->stats_.relaying--;
    r_->env_.counters->relaying--;
  }
  if (is_relay() && !counted_relaying_) {
    r_->env_.counters->handshaking--;
    if (admitted_) r_->env_.admission->EndLogin(AddressOf(peer_));
  }
  if (is_relay()) r_->env_.counters->closed++;
  if (admitted_) r_->env_.admission->Disconnect(AddressOf(peer_));
  MoveGauge(nullptr);
  CloseInstanceSocket();
}

void Connection::MoveGauge(metrics::Gauge* to) {
  if (state_gauge_ != nullptr) state_gauge_->Add(-1);
  state_gauge_ = to;
  if (state_gauge_ != nullptr) state_gauge_->Add(1);
}

void Connection::Start() {
  if (proxy_header_) {
    // Nothing else starts before the PROXY header has named the client (bounded in time here,
    // in size by the reader).
    deadline_ms_ = NowMs() + proxy_timeout_ms_;
  } else {
    BeginClient();
  }
  ArmRecv(kClientLeg);
}

void Connection::BeginClient() {
  if (front_config_) {
    // The session (and its login timeout) starts once the client is known to speak xpra.
    front_ = std::make_unique<FrontEnd>(front_config_, NowMs(), SourceOf(AddressOf(peer_)));
  } else {
    handler_->Start();
  }
}

void Connection::OnProxyHeaderData(std::string_view bytes) {
  using State = proxy::ProxyHeaderReader::State;
  State st = proxy_header_->Feed(bytes);
  if (st == State::kNeedMore) {
    ArmRecv(kClientLeg);
    return;
  }
  if (st == State::kFailed) {
    XR_INFO("conn", "conn={} peer={} PROXY protocol header refused: {}; closed", id_, peer_,
            proxy_header_->error().message);
    proxy_header_.reset();
    Close("PROXY protocol header");
    return;
  }
  const proxy::ProxyHeader& h = proxy_header_->header();
  std::string rest(proxy_header_->rest());
  if (h.has_addresses()) {
    std::string client = h.source.ToString();
    XR_INFO("conn", "conn={} peer={} via PROXY protocol v{} from {}", id_, client, h.version, peer_);
    peer_ = client;
    session_->SetPeer(client);
  } else {
    XR_INFO("conn", "conn={} peer={} PROXY protocol v{} header without addresses: the proxy's own address stands",
            id_, peer_, h.version);
  }
  proxy_header_.reset();
  deadline_ms_ = 0;
  std::string refusal = r_->AdmitAddress(peer_, &admitted_);
  BeginClient();
  if (!refusal.empty()) {
    XR_INFO("conn", "conn={} peer={} refused: {}", id_, peer_, refusal);
    Refuse(refusal);
    return;
  }
  if (rest.empty()) {
    ArmRecv(kClientLeg);
    return;
  }
  OnData(kClientLeg, rest);
}

// ------------------------------------------------------------------ SessionIo

void Connection::SendTracked(Dir to, std::string bytes) {
  if (!pass_.CanInsert(to)) {
    XR_DEBUG("conn", "conn={} packet for the {} dropped: stream is mid-frame", id_, SideName(to));
    return;
  }
  FrameBoundary& frames = pass_.toward(to);
  bool was_failed = frames.failed();
  frames.Feed(bytes);
  if (!was_failed && frames.failed()) {
    // The session checks what it forwards; this is for the log (passthrough acts on the next receive).
    XR_WARN("conn", "conn={} stream to the {} broken by forwarded data: {}", id_, SideName(to), frames.error());
  }
  Queue(to, std::move(bytes));
}

void Connection::RunAuth(std::function<AuthOutcome()> job) {
  Reactor* r = r_;
  uint64_t id = id_;
  bool queued = r_->pool_->Submit([r, id, job = std::move(job)]() mutable {
    AuthOutcome out = job();
    r->Post([r, id, out = std::move(out)]() mutable {
      if (Connection* c = r->Find(id)) c->OnAuthDone(std::move(out));
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

bool Connection::RunOffReactor(std::function<std::function<void()>()> job) {
  Reactor* r = r_;
  uint64_t id = id_;
  return r_->pool_->Submit([r, id, job = std::move(job)]() mutable {
    std::function<void()> done = job();
    r->Post([r, id, done = std::move(done)]() {
      if (r->Find(id) != nullptr) done();  // the connection (and its session) is still there
    });
  });
}

void Connection::SetClientCipherBlock(size_t block) { pass_.toward(kClientLeg).set_cipher_block(block); }

void Connection::ConnectServer(const registry::Target& target) {
  auto address = AddressOfTarget(target);
  if (!address.ok()) {
    handler_->OnServerConnectFailed(address.error().message);
    return;
  }
  target_ = std::make_unique<TargetAddress>(*address);
  connect_started_ms_ = NowMs();
  Leg& server = cd_[kServerLeg];
  server.fd.reset(socket(target_->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!server.fd.valid()) {
    handler_->OnServerConnectFailed(log::ErrnoText(errno));
    return;
  }
  // The connect may take the whole server timeout (the session's deadline covers connect and
  // server hello; whichever ends first reports it).
  r_->io_->ConnectWithTimeout(server.fd.get(), reinterpret_cast<const sockaddr*>(&target_->addr), target_->len,
                              connect_timeout_ms_, Reactor::Tag(id_, Reactor::kConnect),
                              Reactor::Tag(id_, Reactor::kConnectTimeout));
  inflight_ += 2;
  connect_inflight_ = true;
}

bool Connection::ReconnectServer(const registry::Target& target) {
  Leg& server = cd_[kServerLeg];
  if (server.has(Leg::kSendInFlight) || server.has(Leg::kRecvInFlight) || server.has(Leg::kPollInFlight) ||
      connect_inflight_ || closing()) {
    return false;
  }
  server = Leg{};  // the old socket closes; what was queued for it goes with it
  ConnectServer(target);
  return true;
}

void Connection::StartPassthrough() {
  pass_.Start();
  mode_ = Mode::kPassthrough;
  ArmRecv(kClientLeg);
  ArmRecv(kServerLeg);
}

void Connection::Relaying() {
  r_->stats_.relaying++;
  counted_relaying_ = true;
  r_->env_.counters->handshaking--;
  if (admitted_) r_->env_.admission->EndLogin(AddressOf(peer_));
  r_->env_.counters->relaying++;
  r_->env_.counters->relayed_total++;
  RelayMetricsSet& m = RelayMetricsSet::Get();
  MoveGauge(m.connections(ConnState::kRelaying, metric_transport_));
  m.LoginSeconds(metric_transport_, static_cast<double>(NowMs() - started_ms_) / 1000);
  if (connect_started_ms_ != 0) m.ServerHandshakeSeconds(static_cast<double>(NowMs() - connect_started_ms_) / 1000);
  if (cd_[kClientLeg].has(Leg::kPaused)) {  // held back while the session was not ready
    cd_[kClientLeg].clear(Leg::kPaused);
    ArmRecv(kClientLeg);
  }
  OpenInstanceSocket();
  liveness_.Start(NowMs());
  Instances().Put(InstanceSummary{id_, proxy_display(), peer_, log::Sanitize(session_->username()),
                                  session_->target().describe(), UnixNow()});
}

void Connection::SetDeadline(int64_t ms) { deadline_ms_ = ms > 0 ? NowMs() + ms : 0; }

void Connection::Close(std::string_view log_reason) {
  if (closing()) return;
  mode_ = Mode::kClosing;
  deadline_ms_ = NowMs() + r_->limits_.close_linger_ms;
  for (Dir d : {kClientLeg, kServerLeg}) {
    if (cd_[d].has(Leg::kRecvInFlight)) Cancel(Reactor::RecvOp(d));
  }
  for (Dir d : {kClientLeg, kServerLeg}) {
    if (cd_[d].has(Leg::kPollInFlight)) Cancel(Reactor::PollOp(d));
  }
  if (connect_inflight_) Cancel(Reactor::kConnect);
  CloseInstanceSocket();
  front_.reset();
  MaybeFinishClose();
}

// ------------------------------------------------------------------ completions

void Connection::OnCompletion(Reactor::Op op, const Completion& c) {
  int res = c.res;
  if (!(op == Reactor::kCtlAccept && c.more)) --inflight_;
  switch (op) {
    case Reactor::kCtlAccept: OnControlAccept(res, c.more); break;
    case Reactor::kClientRecv:
    case Reactor::kServerRecv: {
      Dir from = Reactor::DirOf(op);
      // The private buffer (if this receive used one) lives until the data is consumed.
      std::unique_ptr<char[]> own = cd_[from].TakePrivateBuffer();
      const char* data = c.buffer >= 0 ? r_->io_->buffer(c.buffer) : own.get();
      OnRecv(from, res, data);
      if (c.buffer >= 0) r_->io_->Recycle(c.buffer);  // the data was copied or consumed
      break;
    }
    case Reactor::kClientPoll:
    case Reactor::kServerPoll:
      cd_[Reactor::DirOf(op)].clear(Leg::kPollInFlight);
      if (res == -ECANCELED || closing()) {
        MaybeFinishClose();
      } else {
        Pump();  // an error or hang-up shows in the splice itself
      }
      break;
    case Reactor::kClientSend:
    case Reactor::kServerSend: OnSend(Reactor::DirOf(op), res); break;
    case Reactor::kConnect: OnConnect(res); break;
    case Reactor::kConnectTimeout:
    case Reactor::kCancel:
      break;  // outcome is reported on the operation itself
    default:
      XR_ERROR("engine", "conn={} unexpected completion op={} res={}", id_, static_cast<int>(op), res);
  }
}

void Connection::OnDeadline() {
  if (proxy_header_ && !closing()) {
    XR_INFO("conn", "conn={} peer={} no complete PROXY protocol header within {} ms; closed", id_, peer_,
            proxy_timeout_ms_);
    return Close("PROXY protocol header timeout");
  }
  if (front_ && !closing()) {
    XR_INFO("conn", "conn={} peer={} {}: no complete {} in time, closed", id_, peer_, front_->transport_name(),
            front_->phase());
    return Close("front end timeout");
  }
  if (closing()) {
    XR_WARN("conn", "conn={} close linger expired; dropping unsent data", id_);
    ForceClose();
    return;
  }
  deadline_ms_ = 0;
  if (mode_ == Mode::kStopping) {
    // The server never completed its frame: the client cannot be told cleanly.
    XR_WARN("conn", "conn={} {}: {}; the server's frame did not end in time to tell the client, closing", id_,
            pass_.stop_reason(), pass_.stop_detail());
    Close("stopped");
    return;
  }
  handler_->OnTimeout();
}

void Connection::StopWithReason(std::string_view why, std::string_view detail) {
  if (closing()) return;
  if (passthrough() && !pass_.toward(kClientLeg).at_boundary()) {
    mode_ = Mode::kStopping;
    pass_.HoldStop(why, detail);
    deadline_ms_ = NowMs() + r_->limits_.close_linger_ms;
    ArmRecv(kServerLeg);
    return;
  }
  handler_->Disconnect(why, detail);
  Close(why);
}

void Connection::FinishStop() {
  // Close() changes the mode: keep the words first.
  std::string why = pass_.stop_reason();
  mode_ = Mode::kPassthrough;
  handler_->Disconnect(why, pass_.stop_detail());
  Close(why);
}

// ------------------------------------------------------------------ liveness

DeadLeg Connection::CheckLiveness(int64_t now, int64_t idle_ms, bool probe) {
  if (!counted_relaying_ || closing() || mode_ == Mode::kStopping) return DeadLeg::kNone;
  LegActivity legs[2];
  for (Dir d : {kClientLeg, kServerLeg}) {
    legs[d] = LegActivity{cd_[d].bytes_in, cd_[d].bytes_out, Waiting(d), cd_[d].has(Leg::kPaused)};
  }
  if (pump_.active() && pump_.in_pipe() > 0) legs[kServerLeg].not_read = true;
  return liveness_.Check(legs, now, idle_ms, probe, [this](Dir d) {
    int queued = 0;
    return ioctl(cd_[d].fd.get(), SIOCOUTQ, &queued) == 0 ? queued : -1;
  });
}

void Connection::EndDeadLeg(DeadLeg dead, int64_t idle_ms) {
  bool client = dead == DeadLeg::kClientSilent || dead == DeadLeg::kClientStalled;
  bool silent = dead == DeadLeg::kClientSilent || dead == DeadLeg::kServerSilent;
  const char* who = client ? "the client" : "the session's server";
  std::string secs = fmt::format("{:g}", static_cast<double>(idle_ms) / 1000);
  std::string detail = silent ? fmt::format("{} sent nothing for {} s", who, secs)
                              : fmt::format("{} read nothing the relay sent it for {} s ({} bytes waiting)", who,
                                            secs, Waiting(client ? kClientLeg : kServerLeg));
  EndBoth(client ? reason::kClientPingTimeout : reason::kServerPingTimeout, detail);
}

void Connection::EndBoth(std::string_view why, std::string_view detail) {
  if (closing()) return;
  handler_->TellServer(why, detail);
  StopWithReason(why, detail);
}

void Connection::OnBadFrame(Dir from, std::string_view data) {
  Dir to = Other(from);
  FrameBoundary& f = pass_.toward(to);
  QueueView(to, data.substr(0, f.good_bytes()));
  if (from == kClientLeg) {
    handler_->TellServer(reason::kProtocolError, "the client sent invalid data: " + f.error());
    StopWithReason(reason::kProtocolError, f.error());
    return;
  }
  handler_->TellServer(reason::kProtocolError, f.error());
  std::string detail = "invalid data from the session's server: " + f.error();
  if (!pass_.toward(kClientLeg).at_boundary()) {
    // Part of the bad header already went to the client: nothing can be added cleanly.
    XR_WARN("conn", "conn={} peer={} {}: {}; closing, the client cannot be told", id_, peer_, reason::kServerError,
            detail);
    Close(reason::kServerError);
    return;
  }
  StopWithReason(reason::kServerError, detail);
}

// ------------------------------------------------------------------ xpra info

Value Connection::InfoValue() const {
  const Leg& c = cd_[kClientLeg];
  const Leg& s = cd_[kServerLeg];
  const FrameBoundary& to_client = pass_.toward(kClientLeg);
  const FrameBoundary& to_server = pass_.toward(kServerLeg);
  Value client{Dict{}};
  client.set("peer", std::string_view(peer_));
  client.set("encoding", EncodingName(session_->client_encoding()));  // rencodeplus for a 6.x client
  client.set("encryption", session_->encrypted() ? "AES" : "");
  client.set("transport", std::string_view(transport_info_.name));
  if (*transport_info_.tls_version != '\0') {
    Value tlsv{Dict{}};
    tlsv.set("version", std::string_view(transport_info_.tls_version));
    tlsv.set("cipher", std::string_view(transport_info_.tls_cipher));
    tlsv.set("sni", std::string_view(transport_info_.sni));
    // Who seals and opens the records: the relay's TLS 1.3 record layer, or OpenSSL (TLS 1.2).
    tlsv.set("record-layer", tls_own_records_ ? "relay" : "openssl");
    client.set("tls", std::move(tlsv));
  }
  client.set("bytes-received", static_cast<long long>(c.bytes_in));
  client.set("bytes-sent", static_cast<long long>(c.bytes_out));
  client.set("packets-sent", static_cast<long long>(to_client.packets()));
  client.set("packets-received", static_cast<long long>(to_server.packets()));
  client.set("latency-us", static_cast<long long>(TcpRttUs(c.fd.get())));
  Value server{Dict{}};
  server.set("target", std::string_view(session_->target().describe()));
  server.set("display", log::Sanitize(session_->target().display, 256));
  server.set("encoder", EncoderName(to_client.last_flags()));
  server.set("compression", LevelCompressorName(to_client.last_level()));
  server.set("client-encoder", EncoderName(to_server.last_flags()));
  server.set("client-compression", LevelCompressorName(to_server.last_level()));
  server.set("bytes-received", static_cast<long long>(s.bytes_in));
  server.set("bytes-sent", static_cast<long long>(s.bytes_out));
  server.set("packets-sent", static_cast<long long>(to_server.packets()));
  server.set("packets-received", static_cast<long long>(to_client.packets()));
  server.set("latency-us",
             static_cast<long long>(TcpRttUs(session_->target().kind == registry::Target::Kind::kTcp ? s.fd.get() : -1)));
  Value out{Dict{}};
  if (session_->bridging()) out.set("bridge", session_->BridgeInfo());
  out.set("instance", static_cast<long long>(id_));
  out.set("display", proxy_display());
  out.set("connection", static_cast<long long>(id_));
  out.set("username", log::Sanitize(session_->username()));
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

// ------------------------------------------------------------------ legs

void Connection::ArmRecv(Dir d) {
  Leg& leg = cd_[d];
  if (!leg.readable() || closing()) return;
  if (d == kServerLeg && (pump_.active() || connect_inflight_)) return;  // the pump owns it / not connected yet
  uint64_t tag = Reactor::Tag(id_, Reactor::RecvOp(d));
  if (leg.private_buffer() != nullptr) {
    // The ring ran dry on this leg's last receive: read into the leg's own buffer once.
    r_->io_->Recv(leg.fd.get(), leg.private_buffer(), Leg::kPrivateRecvBytes, tag);
  } else if (RecvHot(leg) && r_->hot_recv_pause_ == 0) {
    // Bytes consumed on arrival (decrypted, encrypted, framed): a cache-hot buffer.
    r_->io_->RecvHot(leg.fd.get(), leg.recv_limit, tag);
  } else {
    // No buffer of our own: the backend picks a provided one when data arrives.
    if (RecvHot(leg)) {  // hot-eligible, during the reactor's pause: this one takes the ring
      --r_->hot_recv_pause_;
      leg.set(Leg::kHotEmpty);
    }
    r_->io_->RecvProvided(leg.fd.get(), leg.recv_limit, tag);
  }
  leg.set(Leg::kRecvInFlight);
  ++inflight_;
}

bool Connection::RecvHot(const Leg& leg) const {
  // Both legs of a TLS or WebSocket client's connection: every receive is decrypted or
  // encrypted (framed) before OnRecv returns. Plain legs keep the main ring (large copies
  // there go by splice).
  return !leg.has(Leg::kHotEmpty) && !cd_[kClientLeg].transport->plain();
}

void Connection::Cancel(Reactor::Op op) {
  r_->io_->Cancel(Reactor::Tag(id_, op), Reactor::Tag(id_, Reactor::kCancel));
  ++inflight_;
}

void Connection::Queue(Dir to, std::string bytes) {
  if (!MayQueue(to, bytes.size())) return;
  Status s = cd_[to].transport->Encode(&bytes);
  EnqueueEncoded(to, s, std::move(bytes));
}

void Connection::QueueView(Dir to, std::string_view data) {
  if (!MayQueue(to, data.size())) return;
  std::string bytes;
  Status s = cd_[to].transport->EncodeFrom(data, &bytes);
  EnqueueEncoded(to, s, std::move(bytes));
}

bool Connection::MayQueue(Dir to, size_t n) const {
  if (n == 0 || cd_[to].has(Leg::kFailed)) return false;
  return !(to == kClientLeg && front_);  // no xpra bytes into a TLS or HTTP stream not yet handed over
}

void Connection::EnqueueEncoded(Dir to, const Status& encoded, std::string bytes) {
  Leg& leg = cd_[to];
  if (!encoded.ok()) {
    XR_WARN("conn", "conn={} {} transport: {}", id_, SideName(to), encoded.error().message);
    leg.Fail();
    return Close("transport failed");
  }
  if (!leg.Enqueue(std::move(bytes))) return;
  if (leg.fd.valid() && !(to == kServerLeg && connect_inflight_)) ArmSend(to);
}

void Connection::ArmSend(Dir d) {
  Leg& leg = cd_[d];
  if (leg.has(Leg::kSendInFlight) || leg.queue_empty() || !leg.fd.valid() || leg.has(Leg::kFailed)) return;
  std::string_view bytes = leg.pending();
  r_->io_->Send(leg.fd.get(), bytes.data(), bytes.size(), Reactor::Tag(id_, Reactor::SendOp(d)));
  leg.set(Leg::kSendInFlight);
  ++inflight_;
}

void Connection::ArmPoll(Dir d, unsigned events) {
  Leg& leg = cd_[d];
  if (leg.has(Leg::kPollInFlight) || !leg.fd.valid()) return;
  r_->io_->Poll(leg.fd.get(), events, Reactor::Tag(id_, Reactor::PollOp(d)));
  leg.set(Leg::kPollInFlight);
  ++inflight_;
}

void Connection::OnRecv(Dir from, int res, const char* buf) {
  Leg& leg = cd_[from];
  leg.clear(Leg::kRecvInFlight);
  if (res == -ECANCELED || closing()) {
    MaybeFinishClose();
    return;
  }
  if (res == -EAGAIN || res == -EINTR) {
    ArmRecv(from);
    return;
  }
  if (res == -ENOBUFS && RecvHot(leg)) {
    // The few hot buffers are all in use this instant: this leg's next receive takes one
    // from the main ring, and so do the reactor's next kHotRecvPause hot-eligible receives.
    leg.set(Leg::kHotEmpty);
    r_->hot_recv_pause_ = Reactor::kHotRecvPause;
    ArmRecv(from);
    return;
  }
  leg.clear(Leg::kHotEmpty);
  if (res == -ENOBUFS) {
    // Every ring buffer is in use this instant. Waiting for the ring would let saturating
    // streams win every race for it (they re-arm first, with data already queued), so the
    // next receive goes into a buffer of this leg's own, allocated only for it.
    r_->NoteRingEmpty();
    leg.UsePrivateBuffer();
    ArmRecv(from);
    return;
  }
  if (res <= 0) {
    leg.set(Leg::kEof);
    if (res < 0) leg.set(Leg::kFailed);
    return LegEnded(from, res == 0 ? "end of stream" : log::ErrnoText(-res));
  }
  leg.bytes_in += static_cast<uint64_t>(res);
  std::string_view bytes(buf, static_cast<size_t>(res));
  if (from == kClientLeg && proxy_header_) return OnProxyHeaderData(bytes);
  OnData(from, bytes);
}

void Connection::OnData(Dir from, std::string_view bytes) {
  Leg& leg = cd_[from];
  if (from == kClientLeg && front_) {
    if (!OnFrontEndData(bytes)) return;
    if (closing()) return;
    if (front_ && (front_->has_pending() || leg.queued() > r_->limits_.high_water)) {
      // HTTP answers the client is not reading (pipelined requests): go on once they drain.
      leg.set(Leg::kPaused);
      return;
    }
    ArmRecv(from);
    return;
  }
  std::string scratch;
  auto decoded = leg.transport->Decode(bytes, &scratch);
  if (!decoded.ok()) {
    leg.set(Leg::kEof);
    leg.set(Leg::kFailed);
    return LegEnded(from, decoded.error().message);
  }
  std::string_view data = *decoded;
  bool own_backlog = false;
  if (std::string own = leg.transport->TakeOwnOutput(); !own.empty()) {
    if (leg.Enqueue(std::move(own))) ArmSend(from);
    // A peer that makes the transport answer (WebSocket pings) faster than it reads the
    // answers is not read on until they drain (OnSend), so the answers queued stay bounded.
    own_backlog = leg.queued() > r_->limits_.high_water;
  }
  if (passthrough()) {
    if (!OnPassthroughData(from, data)) return;
  } else if (from == kClientLeg) {
    if (handler_->relaying()) to_server_bytes_->Inc(data.size());
    handler_->OnClientData(data);
    if (!closing() && handler_->client_backlogged()) {
      // Back-pressure before relaying: the client's frames are not read on while the session
      // cannot pass them on; Relaying() reads again.
      leg.set(Leg::kPaused);
      return;
    }
  } else {
    handler_->OnServerData(data);
    if (!closing() && handler_->relaying()) {
      r_->stats_.traffic.bytes_to_client.Add(data.size());
      to_client_bytes_->Inc(data.size());
    }
  }
  if (closing()) return;
  if (own_backlog) {
    leg.set(Leg::kPaused);
    leg.set(Leg::kOwnBacklog);
    return;
  }
  // Back-pressure: read on only while the other leg is not backed up.
  if (cd_[Other(from)].queued() > r_->limits_.high_water) {
    leg.set(Leg::kPaused);
    return;
  }
  ArmRecv(from);
}

bool Connection::OnFrontEndData(std::string_view wire) {
  Leg& leg = cd_[kClientLeg];
  std::vector<std::string> sends;
  std::string xpra;
  FrontEnd::Result res = front_->Feed(wire, NowMs(), &sends, &xpra);
  for (std::string& s : sends) {
    if (leg.Enqueue(std::move(s))) ArmSend(kClientLeg);
  }
  switch (res) {
    case FrontEnd::Result::kMore: return true;
    case FrontEnd::Result::kClose:
      XR_INFO("conn", "conn={} peer={} {}: {}, closed", id_, peer_, front_->transport_name(), front_->why());
      Close("front end");
      return false;
    case FrontEnd::Result::kXpra: break;
  }
  transport_info_.name = front_->transport_name();
  metric_transport_ = ConnTransportOf(transport_info_.name);
  MoveGauge(RelayMetricsSet::Get().connections(ConnState::kHandshaking, metric_transport_));
  to_client_bytes_ = RelayMetricsSet::Get().bytes(ByteDir::kToClient, BytePathOf(transport_info_.name));
  to_server_bytes_ = RelayMetricsSet::Get().bytes(ByteDir::kToServer, BytePathOf(transport_info_.name));
  if (const tls::TlsSession* t = front_->tls_session()) {
    transport_info_.tls_version = t->version_name();
    transport_info_.tls_cipher = t->cipher_name();
    transport_info_.sni = t->server_name();
    tls_own_records_ = t->own_records();
  }
  if (std::string_view(transport_info_.name) != "tcp") {
    XR_INFO("conn", "conn={} peer={} transport {}{}{}", id_, peer_, transport_info_.name,
            *transport_info_.tls_version == '\0' ? "" : fmt::format(" {} {}", transport_info_.tls_version, transport_info_.tls_cipher),
            transport_info_.sni.empty() ? "" : " sni=" + transport_info_.sni);
  }
  session_->SetTransportEncrypted(front_->encrypted());
  leg.transport = front_->TakeTransport();
  front_.reset();
  handler_->Start();
  if (!xpra.empty()) handler_->OnClientData(xpra);
  return !closing();
}

bool Connection::OnPassthroughData(Dir from, std::string_view data) {
  if (from == kClientLeg) {
    if (mode_ == Mode::kStopping) {  // the client's stream no longer matters
      ArmRecv(kClientLeg);
      return false;
    }
    r_->stats_.traffic.bytes_to_server.Add(data.size());
    to_server_bytes_->Inc(data.size());
    FrameBoundary& frames = pass_.toward(kServerLeg);
    frames.Feed(data);
    if (frames.failed()) {
      OnBadFrame(kClientLeg, data);
      return false;
    }
    inband_.WatchClient(data, NowMs());
    QueueView(kServerLeg, data);
    return true;
  }
  FrameBoundary& frames = pass_.toward(kClientLeg);
  if (mode_ == Mode::kStopping) {
    size_t n = frames.FeedToBoundary(data);
    QueueView(kClientLeg, data.substr(0, n));
    if (!frames.at_boundary()) return true;
    FinishStop();
    return false;
  }
  r_->stats_.traffic.bytes_to_client.Add(data.size());
  to_client_bytes_->Inc(data.size());
  if (inband_.expecting()) {
    inband_.Forward(data, *this, id_);
    return true;
  }
  frames.Feed(data);
  if (frames.failed()) {
    OnBadFrame(kServerLeg, data);
    return false;
  }
  QueueView(kClientLeg, data);
  if (MaybeStartSplice()) return false;
  // The limit stops the next receive where a splice could start. Only both legs plain can
  // splice: a TLS or WebSocket client leg gets whole buffers, else every large frame would
  // end in a short receive, and a short record and send of its own.
  const bool can_splice = cd_[kClientLeg].transport->plain() && cd_[kServerLeg].transport->plain();
  cd_[kServerLeg].recv_limit = can_splice ? pass_.ServerRecvLimit(r_->limits_.splice_min, kSplicePeekBytes) : 0;
  return true;
}

void Connection::ForwardToClient(std::string bytes) {
  if (closing()) return;
  FrameBoundary& frames = pass_.toward(kClientLeg);
  frames.Feed(bytes);
  if (frames.failed()) return OnBadFrame(kServerLeg, bytes);
  Queue(kClientLeg, std::move(bytes));
}

void Connection::LegEnded(Dir d, const std::string& why) {
  if (d == kClientLeg) {
    handler_->OnClientClosed(why);
  } else {
    handler_->OnServerClosed(why);
    if (connect_inflight_) return;  // the handler connects again (ReconnectServer)
  }
  Close(why);
}

void Connection::OnSend(Dir to, int res) {
  Leg& leg = cd_[to];
  leg.clear(Leg::kSendInFlight);
  if (res == -EAGAIN || res == -EINTR) {
    ArmSend(to);
    return;
  }
  if (res < 0) {
    leg.Fail();
    if (res != -ECANCELED && !closing()) {
      std::string why = log::ErrnoText(-res);
      if (to == kClientLeg) {
        handler_->OnClientClosed(why);
      } else {
        handler_->OnServerClosed(why);
      }
    }
    Close("send failed");
    MaybeFinishClose();
    return;
  }
  leg.Sent(static_cast<size_t>(res));
  ArmSend(to);
  if (to == kClientLeg && pump_.active() && leg.queue_empty()) Pump();
  if (front_ && to == kClientLeg && leg.has(Leg::kPaused) && leg.queued() < r_->limits_.low_water) {
    leg.clear(Leg::kPaused);  // the front end's own answers drained
    if (front_->has_pending() && !OnFrontEndData({})) return;
    if (closing()) return MaybeFinishClose();
    if (front_ && (front_->has_pending() || leg.queued() > r_->limits_.high_water)) {
      leg.set(Leg::kPaused);
    } else {
      ArmRecv(kClientLeg);
    }
  }
  if (leg.has(Leg::kOwnBacklog) && leg.queued() < r_->limits_.low_water) {
    leg.clear(Leg::kOwnBacklog);  // its own answers drained: read it again
    leg.clear(Leg::kPaused);
    ArmRecv(to);
  }
  // Resume the paused reader feeding this leg.
  Leg& source = cd_[Other(to)];
  if (source.has(Leg::kPaused) && leg.queued() < r_->limits_.low_water) {
    source.clear(Leg::kPaused);
    ArmRecv(Other(to));
  }
  MaybeFinishClose();
}

void Connection::OnConnect(int res) {
  connect_inflight_ = false;
  const bool tcp = target_ && target_->tcp;
  target_.reset();  // the kernel is done with the address
  if (closing()) {
    MaybeFinishClose();
    return;
  }
  Leg& server = cd_[kServerLeg];
  if (res < 0) {
    std::string why = res == -ECANCELED ? "timed out" : log::ErrnoText(-res);
    server.fd.reset();
    handler_->OnServerConnectFailed(why);
    return;
  }
  if (std::string why = ServerUidMismatch(server.fd.get(), session_->target().server_uid); !why.empty()) {
    server.fd.reset();
    handler_->OnServerConnectFailed(why);
    return;
  }
  int one = 1;
  if (tcp && setsockopt(server.fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0) {
    XR_DEBUG("net", "TCP_NODELAY on the server socket: {}", log::ErrnoText(errno));
  }
  handler_->OnServerConnected();
  ArmSend(kServerLeg);
  ArmRecv(kServerLeg);
}

// ------------------------------------------------------------------ splice path
//
// When the server->client stream is inside a frame with at least `splice_min` payload bytes
// to come, those bytes move socket -> pipe -> socket and never enter user space (SplicePump).
// The relay still reads each frame's header and the start of its payload through a ring
// buffer (at most kSplicePeekBytes), so it keeps following frame boundaries and sees every
// small packet whole. Splicing runs on the reactor thread with both sockets non-blocking;
// backend polls report readiness. Only where both legs' transports are plain.

bool Connection::MaybeStartSplice() {
  size_t left = pass_.toward(kClientLeg).payload_remaining();
  if (r_->limits_.splice_min == 0 || left < r_->limits_.splice_min || mode_ != Mode::kPassthrough ||
      inband_.expecting()) {
    return false;
  }
  if (!cd_[kClientLeg].transport->plain() || !cd_[kServerLeg].transport->plain()) return false;
  if (!pump_.open() && !pump_.Open(cd_[kServerLeg].fd.get(), cd_[kClientLeg].fd.get(), id_)) return false;
  mode_ = Mode::kSplicing;
  pump_.Start(left);
  Pump();
  return true;
}

void Connection::Pump() {
  if (!pump_.active() || closing()) return;
  Leg& client = cd_[kClientLeg];
  Leg& server = cd_[kServerLeg];
  SplicePump::Result r =
      pump_.Pump(*r_->io_, server.fd.get(), client.fd.get(), client.queue_empty() && !client.has(Leg::kSendInFlight));
  client.bytes_out += r.to_sink;
  server.bytes_in += r.from_source;
  pass_.toward(kClientLeg).Skip(r.from_source);
  r_->stats_.traffic.bytes_to_client.Add(r.from_source);
  r_->stats_.traffic.bytes_spliced.Add(r.from_source);
  if (r.from_source > 0) RelayMetricsSet::Get().bytes(ByteDir::kToClient, BytePath::kSplice)->Inc(r.from_source);
  if (r.wait_sink) ArmPoll(kClientLeg, POLLOUT);
  if (r.wait_source) ArmPoll(kServerLeg, POLLIN);
  switch (r.end) {
    case SplicePump::Result::End::kNone: return;
    case SplicePump::Result::End::kSinkFailed:
      client.set(Leg::kFailed);
      return LegEnded(kClientLeg, r.error == 0 ? "end of stream" : log::ErrnoText(-r.error));
    case SplicePump::Result::End::kSourceEnded:
      server.set(Leg::kEof);
      if (r.error != 0) server.set(Leg::kFailed);
      return LegEnded(kServerLeg, r.error == 0 ? "end of stream" : log::ErrnoText(-r.error));
    case SplicePump::Result::End::kFrameDone:
      // The frame is through: back to reading the next header through a ring buffer.
      if (mode_ == Mode::kStopping) return FinishStop();
      mode_ = Mode::kPassthrough;
      server.recv_limit = kSplicePeekBytes;
      ArmRecv(kServerLeg);
      return;
  }
}

// ------------------------------------------------------------------ close

void Connection::MaybeFinishClose() {
  if (mode_ != Mode::kClosing) return;
  const Leg& c = cd_[kClientLeg];
  const Leg& s = cd_[kServerLeg];
  bool client_done = c.queue_empty() || c.has(Leg::kFailed) || !c.fd.valid();
  bool server_done = s.queue_empty() || s.has(Leg::kFailed) || !s.fd.valid() || connect_inflight_;
  if (client_done && server_done && !c.has(Leg::kSendInFlight) && !s.has(Leg::kSendInFlight)) ForceClose();
}

void Connection::ForceClose() {
  if (mode_ == Mode::kClosed) return;
  mode_ = Mode::kClosed;
  for (Leg& leg : cd_) {
    if (!leg.fd.valid()) continue;
    shutdown(leg.fd.get(), SHUT_WR);
    // Drain what the peer already sent so close() sends FIN, not RST (which could make the
    // peer drop our last packet, the disconnect).
    char sink[4096];
    for (int i = 0; i < 64 && recv(leg.fd.get(), sink, sizeof sink, MSG_DONTWAIT) > 0; ++i) {
    }
  }
  for (Dir d : {kClientLeg, kServerLeg}) {
    if (cd_[d].has(Leg::kRecvInFlight)) Cancel(Reactor::RecvOp(d));
  }
  for (Dir d : {kClientLeg, kServerLeg}) {
    if (cd_[d].has(Leg::kSendInFlight)) Cancel(Reactor::SendOp(d));
  }
  if (connect_inflight_) Cancel(Reactor::kConnect);
  for (Leg& leg : cd_) leg.fd.reset();
  pump_.Close();
  CloseInstanceSocket();
  deadline_ms_ = 0;
  if (is_relay()) {
    const Leg& c = cd_[kClientLeg];
    const Leg& s = cd_[kServerLeg];
    uint64_t spliced = pump_.spliced();
    XR_INFO("conn", "conn={} peer={} user={} closed: client {} bytes in / {} out, server {} in / {} out{}, {} s", id_,
            peer_, session_->username().empty() ? "-" : log::Sanitize(session_->username()), c.bytes_in, c.bytes_out, s.bytes_in,
            s.bytes_out, spliced ? fmt::format(" ({} spliced)", spliced) : std::string(),
            (NowMs() - started_ms_) / 1000);
  }
}

// ------------------------------------------------------------------ in-band info

Value Connection::ProxyInfo() const {
  Value latency{Dict{}};
  latency.set("client", static_cast<long long>(TcpRttUs(cd_[kClientLeg].fd.get()) / 1000));
  if (session_->target().kind == registry::Target::Kind::kTcp) {
    latency.set("server", static_cast<long long>(TcpRttUs(cd_[kServerLeg].fd.get()) / 1000));
  }
  Value proxy{Dict{}};
  proxy.set("version", kRelayVersion);
  proxy.set("implementation", "xpra-relay");
  proxy.set("instance", proxy_display());
  proxy.set("latency", std::move(latency));
  return proxy;
}

// ------------------------------------------------------------------ the :proxy-N control endpoint

void Connection::OpenInstanceSocket() {
  instance_.Open(r_->control_, id_);
  ArmControlAccept();
}

void Connection::ArmControlAccept() {
  if (instance_.fd() < 0 || instance_.armed) return;
  r_->io_->Accept(instance_.fd(), Reactor::Tag(id_, Reactor::kCtlAccept));
  instance_.armed = true;
  ++inflight_;
}

void Connection::CloseInstanceSocket() {
  if (instance_.armed && instance_.fd() >= 0 && !instance_.cancelled) {
    instance_.cancelled = true;
    Cancel(Reactor::kCtlAccept);
  }
  instance_.Close();
  if (is_relay() && counted_relaying_) Instances().Remove(id_);
}

void Connection::OnControlAccept(int res, bool more) {
  if (!more) instance_.armed = false;
  if (res >= 0) {
    UniqueFd fd(res);
    if (!closing()) {
      Reactor* r = r_;
      uint64_t id = id_;
      std::string display = proxy_display();
      auto info = [r, id]() -> std::optional<Value> {
        Connection* c = r->Find(id);
        if (c == nullptr) return std::nullopt;
        return c->InfoValue();
      };
      auto stop = [r, id, display]() {
        Connection* c = r->Find(id);
        if (c == nullptr) return false;
        XR_INFO("conn", "conn={} stopped by request on {}", id, display);
        c->StopWithReason(reason::kServerShutdown, "this session was stopped by the relay's operator");
        return true;
      };
      r_->AcceptControl(std::move(fd), std::make_shared<InstanceControl>(display, info, stop));
    }
  }
  if (!instance_.armed && !closing() && !instance_.cancelled) ArmControlAccept();
}

}  // namespace xr::engine

namespace xr::engine {

bool Connection::Relayed(RelayedConnection* out) const {
  if (!is_relay() || !counted_relaying_ || closing() || mode_ == Mode::kStopping) return false;
  out->id = id_;
  out->instance = proxy_display();
  out->username = log::Sanitize(session_->username());
  out->target = session_->target().describe();
  out->transport = transport_info_.name;
  out->peer = peer_;
  out->started_unix = UnixNow() - (NowMs() - started_ms_) / 1000;
  out->bytes_to_client = cd_[kClientLeg].bytes_out;
  out->bytes_to_server = cd_[kServerLeg].bytes_out;
  return true;
}

}  // namespace xr::engine
