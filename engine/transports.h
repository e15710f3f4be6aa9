#pragma once
// The TLS and WebSocket transports for a connection's client leg (engine/transport.h's seam),
// built on engine/tls.h and codec/websocket.h, and a stack of two for wss (TLS outside,
// WebSocket inside). Neither is plain, so a leg using one never takes the splice path.
//
// How a leg gets one (the sniffing front end, not here): sniff the first bytes
// (engine/sniff.h); on TLS, a TlsTransport; inside it (or on a plain port) the HTTP head is
// parsed (codec/http_request.h) and, for a WebSocket upgrade, the 101 sent alone
// (ws::AcceptHandshake) before a WebSocketTransport takes the bytes after the head.
//
// On a Decode error the transport may hold a last message for the peer (a TLS alert, a
// WebSocket close with its code): the leg should send TakeOwnOutput() before closing.

#include <memory>
#include <string>
#include <string_view>

#include "base/status.h"
#include "codec/websocket.h"
#include "engine/tls.h"
#include "engine/transport.h"

namespace xr::engine {

// TLS over the leg's socket: ciphertext in, plaintext out; handshake records, tickets and
// alerts come out of TakeOwnOutput().
class TlsTransport final : public Transport {
 public:
  explicit TlsTransport(tls::TlsSession session) : session_(std::move(session)) {}
  const char* name() const override { return "tls"; }
  bool plain() const override { return false; }
  // Plaintext now readable, in *scratch (empty while the handshake runs).
  Expected<std::string_view> Decode(std::string_view wire, std::string* scratch) override;
  // Plaintext -> the records to send (held inside the session until the handshake completes).
  Status Encode(std::string* bytes) override;
  // Encrypts `app` where it lies: no plaintext copy before SSL_write.
  Status EncodeFrom(std::string_view app, std::string* out) override;
  std::string TakeOwnOutput() override;
  const tls::TlsSession& session() const { return session_; }
  tls::TlsSession& session() { return session_; }

 private:
  tls::TlsSession session_;
};

// WebSocket frames after the 101: frames in, xpra bytes out; xpra bytes -> one binary frame;
// pongs and closes from TakeOwnOutput().
class WebSocketTransport final : public Transport {
 public:
  explicit WebSocketTransport(ws::StreamLimits limits = {}) : stream_(limits) {}
  const char* name() const override { return "ws"; }
  bool plain() const override { return false; }
  Expected<std::string_view> Decode(std::string_view wire, std::string* scratch) override;
  Status Encode(std::string* bytes) override;
  // Frames `app` where it lies: one copy, into the frame.
  Status EncodeFrom(std::string_view app, std::string* out) override;
  std::string TakeOwnOutput() override { return stream_.TakeOwnOutput(); }
  ws::ServerStream& stream() { return stream_; }

 private:
  ws::ServerStream stream_;
};

// Two transports, one inside the other (wss: TLS outside, WebSocket inside). The inner one's
// own output (pongs, a close) is encoded by the outer one, after the outer one's own.
class StackedTransport final : public Transport {
 public:
  StackedTransport(std::unique_ptr<Transport> outer, std::unique_ptr<Transport> inner, std::string name)
      : outer_(std::move(outer)), inner_(std::move(inner)), name_(std::move(name)) {}
  const char* name() const override { return name_.c_str(); }
  bool plain() const override { return false; }
  Expected<std::string_view> Decode(std::string_view wire, std::string* scratch) override;
  Status Encode(std::string* bytes) override;
  Status EncodeFrom(std::string_view app, std::string* out) override;
  std::string TakeOwnOutput() override;
  Transport& outer() { return *outer_; }
  Transport& inner() { return *inner_; }

 private:
  std::unique_ptr<Transport> outer_;
  std::unique_ptr<Transport> inner_;
  std::string name_;
  std::string middle_;  // the outer layer's output, the inner layer's input
};

}  // namespace xr::engine
