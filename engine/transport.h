#pragma once
// Transport: what one leg's socket carries around the application's bytes (HAProxy's
// xprt_ops, Envoy's TransportSocket). Plain sockets today; TLS and WebSocket plug in here.
// A connection holds one per leg and never looks at what is below it, except to ask whether
// it is plain: only between two plain legs may bytes move socket to socket by splice.

#include <memory>
#include <string>
#include <string_view>

#include "base/status.h"

namespace xr::engine {

class Transport {
 public:
  virtual ~Transport() = default;
  // A short name for logs and `xpra info` ("plain", "tls", "ws").
  virtual const char* name() const = 0;
  // True when the bytes on the wire are the application's bytes unchanged (no framing or
  // cipher of the transport's own): the condition for the splice path.
  virtual bool plain() const = 0;
  // Turns bytes received from the socket into application bytes. Returns a view of `wire`
  // itself when nothing changes (plain: no copy), else of *scratch, which it may fill;
  // possibly empty (more wire bytes needed). An error ends the leg with its message.
  virtual Expected<std::string_view> Decode(std::string_view wire, std::string* scratch) = 0;
  // Turns application bytes into the bytes to send, in place (plain: unchanged).
  virtual Status Encode(std::string* bytes) = 0;
  // Encode from a view: *out (empty on entry) gets the bytes to send for `app`, which the
  // caller keeps (a receive buffer), so a transport that rewrites the bytes anyway (TLS
  // encrypts them) reads them where they lie instead of from a copy. Default: copy, Encode.
  virtual Status EncodeFrom(std::string_view app, std::string* out) {
    out->assign(app);
    return Encode(out);
  }
  // Bytes the transport itself must send now (a handshake, an alert), moved out; empty when none.
  virtual std::string TakeOwnOutput() { return {}; }
};

// The raw socket: bytes pass unchanged.
class PlainTransport final : public Transport {
 public:
  const char* name() const override { return "plain"; }
  bool plain() const override { return true; }
  Expected<std::string_view> Decode(std::string_view wire, std::string*) override { return wire; }
  Status Encode(std::string*) override { return Status::Ok(); }
};

}  // namespace xr::engine
