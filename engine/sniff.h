#pragma once
// Sniff: classifies a connection's first bytes the way xpra 3.1.3's server does
// (server/server_core.py handle_new_connection / may_wrap_socket / guess_header_protocol; the
// exact rules and paths are in docs/protocol-notes.md "One port: how xpra 3.1.3 sniffs").
// Pure function of the bytes seen so far: the caller feeds what has arrived, and calls again
// with more bytes while the answer is kNeedMore (bounded by SniffLimits).

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace xr {

enum class SniffKind : uint8_t {
  kNeedMore,  // not decisive yet: wait for more bytes (or the sniff timeout)
  kXpra,      // xpra packet header ('P' not starting "POST ")
  kTls,       // a TLS handshake record (0x16 0x03 ...)
  kHttp,      // an HTTP/1.x request line
  kUnknown,   // nothing the relay serves (see SniffDescribe for a readable reason)
};

// Short stable name ("xpra", "tls", "http", "need-more", "unknown") for logs and tests.
const char* SniffKindName(SniffKind kind);

struct SniffLimits {
  // Bytes looked at before giving up (xpra peeks PEEK_SIZE = 8192, net/socket_util.py:174).
  size_t max_bytes = 8192;
  // How long a peer may stay undecided, from accept (xpra: XPRA_PEEK_TIMEOUT_MS = 1000,
  // net/socket_util.py:26-27). Enforced by the caller's timer; kept here with the other bounds.
  uint32_t timeout_ms = 1000;
};

// Classifies `first` (every byte received so far, from the start of the connection).
// kNeedMore only while first.size() < limits.max_bytes; never reads past max_bytes.
SniffKind Sniff(std::string_view first, const SniffLimits& limits = {});

// True when a TLS ClientHello (the bytes after a 0x16 record header) offers ALPN "http/1.1":
// xpra's shortcut to treat a TLS connection as HTTPS before decrypting anything
// (server_core.py:1076, :1297: peek_data.find(b"\x08http/1.1")). Looks only at the
// ALPN-encoded name (length byte 8 + "http/1.1"), as xpra does.
bool ClientHelloOffersHttp11(std::string_view first);

// A readable reason for a kUnknown (or any) classification, in the words of xpra's
// guess_header_protocol (server_core.py:1326-1340): "SSL packet?", "SSH packet",
// "HTTP GET request", "character 0x41, not an xpra client?". Never echoes peer bytes beyond
// the first byte's value and a recognised method token.
std::string SniffDescribe(std::string_view first);

}  // namespace xr
