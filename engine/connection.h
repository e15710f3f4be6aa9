#pragma once
// Connection: the coordinator of one accepted client. It owns the two legs (cd[2], indexed
// by Dir), carries out what its protocol handler (a relay Session, or a ControlSession on a
// control socket) asks through SessionIo, and hands bytes to the relay path its mode names:
//
//   kSession ----StartPassthrough----> kPassthrough <--frame spliced--> kSplicing
//      |                                     |  stop mid-frame               |
//      |                                     v                               v
//      |                                 kStopping (the frame ends first; splicing may go on)
//      |                                     |
//      '------------------Close--------------'--> kClosing (flush, 5 s linger) --> kClosed
//
// kClosed: sockets shut down and closed; the reactor frees the connection once no operation
// is in flight. The parts live in their own units: Leg (engine/leg.h), Passthrough, SplicePump,
// Liveness, InbandInfo and the :proxy-N InstanceSocket.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include <sys/socket.h>

#include "engine/front_end.h"
#include "engine/inband_info.h"
#include "engine/instance_control.h"
#include "engine/leg.h"
#include "engine/listen.h"
#include "engine/liveness.h"
#include "engine/passthrough.h"
#include "engine/reactor.h"
#include "engine/relay_metrics.h"
#include "engine/session.h"
#include "engine/splice_pump.h"

namespace xr::engine {

class Connection final : public SessionIo, private InbandInfo::Sink {
 public:
  enum class Mode : uint8_t {
    kSession,      // the handler reads every byte (login; relaying an AES client leg)
    kPassthrough,  // both legs plain: bytes copied across, frame headers followed
    kSplicing,     // passthrough, the rest of a large server frame moving by splice
    kStopping,     // passthrough ending: the disconnect waits for the server's frame to end
    kClosing,      // flushing what is queued (bounded by the close linger), then kClosed
    kClosed,       // sockets closed; freed once no operation is in flight
  };

  // A relayed connection.
  // `front` (optional): the listener's front end (sniff, TLS, HTTP, WebSocket) before the session.
  // `proxy` (optional): a PROXY protocol header comes first; its source address replaces
  // `peer`, and the per-address admission (not done yet: `admitted` false) happens then.
  Connection(Reactor* r, uint64_t id, UniqueFd client_fd, std::string peer,
             std::shared_ptr<const SessionConfig> config, bool admitted,
             std::shared_ptr<const FrontEndConfig> front = nullptr,
             std::shared_ptr<const ProxyProtocolConfig> proxy = nullptr);
  // A client of a control socket.
  Connection(Reactor* r, uint64_t id, UniqueFd client_fd, std::shared_ptr<ControlTarget> target);
  ~Connection() override;

  uint64_t id() const { return id_; }
  bool is_relay() const { return session_ != nullptr; }
  bool reapable() const { return mode_ == Mode::kClosed && inflight_ == 0; }
  int64_t deadline() const { return front_ ? front_->deadline() : deadline_ms_; }
  Mode mode() const { return mode_; }

  void Start();
  // A completion of one of this connection's operations.
  void OnCompletion(Reactor::Op op, const Completion& c);
  // The deadline passed.
  void OnDeadline();
  // The result of RunAuth, back on the reactor thread.
  void OnAuthDone(AuthOutcome out) { handler_->OnAuthDone(std::move(out)); }
  // Turns the connection away at once with a readable reason.
  void Refuse(std::string_view why) { handler_->Disconnect(reason::kServerError, why); }
  // Graceful stop of the whole relay: tell the client, flush, close.
  void Shutdown() { StopWithReason(reason::kServerShutdown, "the relay is shutting down"); }
  // Ends a relayed connection on request (xpra stop :proxy-N, relay shutdown). In passthrough
  // the disconnect packet waits for the server->client stream to reach a frame boundary.
  void StopWithReason(std::string_view why, std::string_view detail);
  // The reactor's tick: which leg, if any, of a relaying connection is dead (see Liveness).
  DeadLeg CheckLiveness(int64_t now, int64_t idle_ms, bool probe);
  // Ends a connection with a dead leg: both ends are told which side went quiet and for how long.
  void EndDeadLeg(DeadLeg dead, int64_t idle_ms);
  // `xpra info :proxy-N` for this connection.
  Value InfoValue() const;
  // A relaying connection's row for the cluster (false, nothing written, for any other).
  bool Relayed(RelayedConnection* out) const;
  // ":proxy-N"
  std::string instance_name() const { return proxy_display(); }

  // ---- SessionIo
  void SendToClient(std::string bytes) override { SendTracked(kClientLeg, std::move(bytes)); }
  void SendToServer(std::string bytes) override { SendTracked(kServerLeg, std::move(bytes)); }
  void RunAuth(std::function<AuthOutcome()> job) override;
  bool RunOffReactor(std::function<std::function<void()>()> job) override;
  void SetClientCipherBlock(size_t block) override;
  void ConnectServer(const registry::Target& target) override;
  bool ReconnectServer(const registry::Target& target) override;
  void StartPassthrough() override;
  void Relaying() override;
  int client_fd() const override { return cd_[kClientLeg].fd.get(); }
  void SetDeadline(int64_t ms) override;
  void Close(std::string_view log_reason) override;

 private:
  bool closing() const override { return mode_ >= Mode::kClosing; }
  bool passthrough() const { return mode_ >= Mode::kPassthrough && mode_ <= Mode::kStopping; }
  // Queues a packet the relay itself writes, keeping the leg's frame follower in step (both
  // streams are followed from the first byte the relay writes, so passthrough starts in step).
  void SendTracked(Dir to, std::string bytes);
  void ArmRecv(Dir d);
  // Whether leg `leg`'s next receive takes a cache-hot buffer (Backend::RecvHot).
  bool RecvHot(const Leg& leg) const;
  void ArmSend(Dir d);
  void ArmPoll(Dir d, unsigned events);
  void Cancel(Reactor::Op op);
  void Queue(Dir to, std::string bytes);
  // Queue from a view the caller keeps (a receive buffer): the transport encodes from it
  // directly (TLS encrypts it where it lies), with no plaintext copy first.
  void QueueView(Dir to, std::string_view data);
  // Whether `n` bytes may be queued for leg `to` now (nothing, a failed leg, a front end's stream: no).
  bool MayQueue(Dir to, size_t n) const;
  // Queues what the transport encoded (or closes on its error) and arms the send.
  void EnqueueEncoded(Dir to, const Status& encoded, std::string bytes);
  void OnRecv(Dir from, int res, const char* buf);
  // Bytes received on leg `from` (after the PROXY header, if any), whatever path they take next.
  void OnData(Dir from, std::string_view bytes);
  // Client bytes while the PROXY protocol header is read; then admission and the front end
  // or session start as for any accepted client.
  void OnProxyHeaderData(std::string_view bytes);
  // The front end (when the listener has one) or the session starts on the client's bytes.
  void BeginClient();
  // Moves this connection's count in xpra_relay_connections to `to`.
  void MoveGauge(metrics::Gauge* to);
  // Client bytes while the front end decides what the client is. False when the receive path
  // ends here (the connection closes).
  bool OnFrontEndData(std::string_view wire);
  // Passthrough: bytes from leg `from`. False when the receive path ends here (no
  // back-pressure check, no re-arm: the connection stops, closes or splices).
  bool OnPassthroughData(Dir from, std::string_view data);
  void OnSend(Dir to, int res);
  void OnConnect(int res);
  // A leg's socket ended or failed (`why`): the handler tells whoever is still there; close.
  void LegEnded(Dir d, const std::string& why);
  // Ends a relaying connection: the server is told first (if its stream is at a frame
  // boundary), then the client as StopWithReason does.
  void EndBoth(std::string_view why, std::string_view detail);
  // A frame header on the leg `from` broke that leg's limits (or was not a header). The bytes
  // before it go on, nothing after; both ends are told when their streams allow it; close.
  void OnBadFrame(Dir from, std::string_view data);
  // The held stop's disconnect, now that the server's stream is at a frame boundary.
  void FinishStop();
  // Splice path: starts splicing the rest of the current server frame when worth it.
  bool MaybeStartSplice();
  void Pump();
  // Bytes the relay holds for leg `d`'s socket: its send queue, and for the client the
  // spliced bytes still in the pipe.
  size_t Waiting(Dir d) const { return cd_[d].queued() + (d == kClientLeg ? pump_.in_pipe() : 0); }
  void MaybeFinishClose();
  void ForceClose();
  // :proxy-N
  void OpenInstanceSocket();
  void ArmControlAccept();
  void CloseInstanceSocket();
  void OnControlAccept(int res, bool more);
  std::string proxy_display() const { return instance_.display(); }
  // InbandInfo::Sink
  FrameBoundary& to_client_frames() override { return pass_.toward(kClientLeg); }
  void QueueToClient(std::string bytes) override { Queue(kClientLeg, std::move(bytes)); }
  void ForwardToClient(std::string bytes) override;
  void BadServerFrame(std::string_view data) override { OnBadFrame(kServerLeg, data); }
  Value ProxyInfo() const override;

  // What the client leg came in as, for logs and `xpra info`.
  struct ClientTransportInfo {
    const char* name = "tcp";  // tcp, ssl, ws, wss (FrontEnd::transport_name)
    const char* tls_version = "";  // OpenSSL's own static names
    const char* tls_cipher = "";
    std::string sni;
  };

  Reactor* r_;
  uint64_t id_;
  std::string peer_;
  int64_t started_ms_;
  Mode mode_ = Mode::kSession;
  Leg cd_[2];
  std::unique_ptr<ClientHandler> handler_;
  std::shared_ptr<const FrontEndConfig> front_config_;
  std::unique_ptr<FrontEnd> front_;  // until the client is known to speak xpra
  std::unique_ptr<proxy::ProxyHeaderReader> proxy_header_;  // until the PROXY header is read
  ClientTransportInfo transport_info_;
  Session* session_ = nullptr;  // handler_ when this is a relayed connection
  Passthrough pass_;
  SplicePump pump_;
  Liveness liveness_;
  InbandInfo inband_;
  InstanceSocket instance_;
  // Accounting: counted as relaying (else as handshaking) in the relay's counters, undone on
  // destruction.
  bool counted_relaying_ = false;
  bool admitted_ = false;  // counted in the per-address cap and, until relaying, the per-source login cap
  bool tls_own_records_ = false;  // the client leg's TLS records are the relay's (tls::TlsSession::own_records)
  // Connect: the server's address lives here until the connect completes (then freed: 144
  // bytes an idle connection does not hold).
  std::unique_ptr<TargetAddress> target_;
  int64_t connect_timeout_ms_ = 10000;
  int64_t proxy_timeout_ms_ = 0;
  // Metrics: the connections gauge this connection counts in, its transport, and the byte
  // counters of its client leg's path (resolved once; the data path only adds).
  metrics::Gauge* state_gauge_ = nullptr;
  ConnTransport metric_transport_ = ConnTransport::kTcp;
  metrics::Counter* to_client_bytes_ = nullptr;
  metrics::Counter* to_server_bytes_ = nullptr;
  int64_t connect_started_ms_ = 0;
  bool connect_inflight_ = false;
  int inflight_ = 0;
  int64_t deadline_ms_ = 0;
};

}  // namespace xr::engine
