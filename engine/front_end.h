#pragma once
// FrontEnd: what an accepted client connection is, decided before its xpra session sees a
// byte (xpra 3.1.3's one-port rules, docs/protocol-notes.md): sniff the first bytes ('P' ->
// xpra; 0x16 -> TLS, then sniff again inside; an HTTP request with Upgrade: websocket ->
// WebSocket, the 101 sent on its own; any other HTTP request -> the static HTML5 client or a
// 4xx). Dedicated ssl/ws/wss binds skip the sniff. No I/O: the connection feeds the socket's
// bytes and sends what comes out; when the client turns out to speak xpra the leg takes the
// transport (TLS, WebSocket or both) and the session gets the first xpra bytes.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "codec/http_request.h"
#include "codec/websocket.h"
#include "engine/http_static.h"
#include "engine/limits.h"
#include "engine/sniff.h"
#include "engine/tls.h"
#include "engine/transport.h"
#include "engine/transports.h"

namespace xr::engine {

struct FrontEndConfig {
  // What a listener's connections start as: kTcp sniffs (only with a certificate: TLS, HTTP
  // and WebSocket beside xpra), the others are dedicated binds that skip the sniff (ws/wss
  // serve the HTML5 client too, as xpra's do).
  enum class Entry : uint8_t { kTcp, kSsl, kWs, kWss };
  Entry entry = Entry::kTcp;
  std::shared_ptr<tls::ContextHolder> tls;       // null: no certificate, TLS refused
  std::shared_ptr<const http::StaticSite> site;  // null: --html=off (GET answered 404)
  SniffLimits sniff;
  tls::TlsLimits tls_limits;
  http::RequestLimits http;
  ws::StreamLimits ws;
  ws::HandshakeOptions ws_handshake;
  uint64_t max_static_file = 16u << 20;  // larger files -> 404 (nothing in xpra's client is close)
  // Answers produced by one Feed before pipelined requests wait (has_pending()) for the
  // client to read: a client cannot make the relay queue 100 files at once.
  size_t answer_budget = 256u << 10;
  // TLS handshakes per source over time (shared by every bind; null: no limit).
  std::shared_ptr<HandshakeRate> tls_rate;

  // True when a tcp bind needs no front end at all: without a certificate (or with --ssl=off)
  // a --bind-tcp port speaks xpra only and the session reads the first byte, as before.
  bool plain_tcp_only() const { return entry == Entry::kTcp && !tls; }
};

// "tcp", "ssl", "ws", "wss".
const char* EntryName(FrontEndConfig::Entry e);

class FrontEnd {
 public:
  enum class Result : uint8_t {
    kMore,   // keep reading (deadline() bounds the wait)
    kXpra,   // the client speaks xpra: TakeTransport() for the leg, *xpra for the session
    kClose,  // send what was produced, then close; why() for the log
  };

  // `source`: the client's source (SourceOf(AddressOf(peer))) for per-source limits; empty: none.
  FrontEnd(std::shared_ptr<const FrontEndConfig> config, int64_t now_ms, std::string source = {});
  ~FrontEnd();

  // Bytes received from the socket (empty: go on with pipelined requests held back by the
  // answer budget). Appends each send to make, in order, to *sends (each one
  // its own send: the 101 travels alone); on kXpra, *xpra gets the first xpra bytes (maybe none).
  Result Feed(std::string_view wire, int64_t now_ms, std::vector<std::string>* sends, std::string* xpra);
  // Pipelined HTTP requests are waiting: call Feed("") once the client has read the answers.
  bool has_pending() const { return held_; }
  // When the current phase (sniff, TLS handshake, HTTP head, keep-alive idle) times out.
  int64_t deadline() const { return deadline_ms_; }
  // The phase that is waiting, for the timeout's log line ("sniff", "TLS handshake", ...).
  const char* phase() const;
  // Why it ended (kClose), for the log; never raw peer bytes.
  const std::string& why() const { return why_; }
  // The leg's transport once kXpra (plain, tls, ws or tls+ws).
  std::unique_ptr<Transport> TakeTransport();
  // "tcp", "ssl", "ws", "wss": what the client came in as (so far).
  const char* transport_name() const;
  bool encrypted() const { return tls_ != nullptr; }
  const tls::TlsSession* tls_session() const { return tls_ ? &tls_->session() : nullptr; }

 private:
  enum class Phase : uint8_t { kSniff, kTlsHandshake, kHttpHead, kKeepAlive, kDone };
  Result Close(std::string why) {
    why_ = std::move(why);
    phase_ = Phase::kDone;
    return Result::kClose;
  }
  Result StartTls(int64_t now_ms, std::vector<std::string>* sends, std::string* xpra);
  Result Step(int64_t now_ms, std::vector<std::string>* sends, std::string* xpra);
  Result OnRequest(int64_t now_ms, std::vector<std::string>* sends, std::string* xpra);
  // Application bytes -> one send (through TLS when there is TLS).
  void Send(std::string bytes, std::vector<std::string>* sends);
  void TakeTlsOutput(std::vector<std::string>* sends);

  std::shared_ptr<const FrontEndConfig> config_;
  Phase phase_ = Phase::kSniff;
  std::unique_ptr<TlsTransport> tls_;
  std::unique_ptr<WebSocketTransport> ws_;
  std::string buf_;  // plaintext not yet classified or parsed
  http::RequestParser parser_;
  uint32_t requests_ = 0;
  size_t answered_ = 0;  // bytes of answers produced by the current Feed
  bool held_ = false;    // requests left in buf_ because of the answer budget
  int64_t deadline_ms_ = 0;
  std::string why_;
  std::string source_;
};

}  // namespace xr::engine
