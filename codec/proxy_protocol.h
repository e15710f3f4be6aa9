#pragma once
// PROXY protocol v1 (text) and v2 (binary) headers, as HAProxy's `send-proxy` /
// `send-proxy-v2` put them in front of a proxied connection's first byte
// (https://www.haproxy.org/download/2.8/doc/proxy-protocol.txt).
//
// Incremental and bounded: ParseProxyHeader looks at the bytes received so far and says
// "need more", "here is the header (N bytes)" or "this is not a valid header" as soon as the
// bytes decide it. A v1 header is at most 107 bytes; a v2 header at most 16 bytes plus
// ProxyLimits::max_v2_body (addresses and TLVs), checked from the length field before waiting
// for the body. Only the header is consumed: bytes after it belong to the proxied stream.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/ip.h"
#include "base/status.h"

namespace xr::proxy {

inline constexpr size_t kV1MaxLength = 107;  // "PROXY UNKNOWN ffff:...:ffff ... 65535 65535\r\n"
inline constexpr size_t kV2HeaderLength = 16;
inline constexpr std::string_view kV2Signature{"\r\n\r\n\0\r\nQUIT\n", 12};

enum class Versions { kV1 = 1, kV2 = 2, kAny = 3 };  // which versions a listener accepts

struct ProxyLimits {
  Versions accept = Versions::kAny;
  size_t max_v2_body = 1024;  // address block + TLVs; HAProxy's SSL TLVs stay well below
};

struct Endpoint {
  IpAddress address;
  uint16_t port = 0;
  std::string ToString() const;  // "192.0.2.1:5000", "[2001:db8::1]:5000"
};

struct Tlv {
  uint8_t type = 0;
  std::string value;
};

struct ProxyHeader {
  enum class Kind {
    kTcp4,     // v1 TCP4, v2 PROXY + AF_INET/STREAM
    kTcp6,     // v1 TCP6, v2 PROXY + AF_INET6/STREAM
    kUnknown,  // v1 UNKNOWN, v2 PROXY + AF_UNSPEC: no addresses; use the socket's own
    kLocal,    // v2 LOCAL (the proxy's own health check): no addresses; use the socket's own
  };
  int version = 0;       // 1 or 2
  Kind kind = Kind::kUnknown;
  size_t length = 0;     // bytes of the header, to drop from the front of the stream
  Endpoint source;       // the original client (kTcp4 / kTcp6 only)
  Endpoint destination;  // the address the client connected to (kTcp4 / kTcp6 only)
  std::vector<Tlv> tlvs; // v2 TLVs, in order (CRC32C is not checked)

  bool has_addresses() const { return kind == Kind::kTcp4 || kind == Kind::kTcp6; }
};

// `data` is everything received on the connection so far. Returns nullopt when more bytes
// are needed (data is then shorter than the bound for its version); a header when one is
// complete (its `length` <= data.size()); an Error (kMalformed, kTooLarge, kUnsupported) with
// a readable message as soon as the bytes cannot start a valid header. Never reads past
// data.size(); the same bytes always give the same answer, whether they arrive whole or not.
Expected<std::optional<ProxyHeader>> ParseProxyHeader(std::string_view data, const ProxyLimits& limits = {});

// Buffers the first bytes of a connection until its PROXY header is complete: Feed() what
// arrives, then header() and rest() (the bytes after the header, for the proxied stream).
// Holds at most the header bound plus one Feed() beyond it.
class ProxyHeaderReader {
 public:
  explicit ProxyHeaderReader(ProxyLimits limits = {}) : limits_(limits) {}
  enum class State { kNeedMore, kDone, kFailed };
  // Adds bytes; returns the new state (kDone / kFailed are final: later calls change nothing).
  State Feed(std::string_view bytes);
  State state() const { return state_; }
  const ProxyHeader& header() const { return header_; }  // kDone only
  std::string_view rest() const;                          // kDone only
  const Error& error() const { return error_; }           // kFailed only

 private:
  ProxyLimits limits_;
  State state_ = State::kNeedMore;
  std::string buf_;
  ProxyHeader header_;
  Error error_;
};

}  // namespace xr::proxy
