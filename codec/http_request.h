#pragma once
// RequestParser: an incremental HTTP/1.x request-head parser (request line + header fields,
// RFC 9112 sections 2-5) with bounds on everything a peer controls. It consumes bytes up to and
// including the blank line that ends the head and never past it, so the caller keeps whatever
// follows (WebSocket frames after an upgrade, a pipelined request). Bodies are not parsed.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace xr::http {

struct RequestLimits {
  size_t max_request_line = 8192;  // bytes of the request line (CRLF and leading blank lines included) -> 414
  size_t max_header_count = 64;    // header fields -> 431
  size_t max_header_bytes = 16384; // bytes of all header lines (CRLFs included) -> 431
  // Enforced by the connection that owns the parser (its timers and counters):
  uint32_t head_timeout_ms = 10000;       // a request head must be complete this long after its first byte -> 408
  uint32_t keepalive_idle_ms = 15000;     // idle time between requests on a kept-alive connection -> close
  uint32_t max_requests_per_connection = 100;  // then "Connection: close"
};

struct Header {
  std::string name;   // lower-cased (field names are case-insensitive)
  std::string value;  // leading and trailing spaces/tabs removed
};

struct Request {
  std::string method;  // case-sensitive token, e.g. "GET"
  std::string target;  // request-target as sent (origin-form "/path?query", or "*", or absolute)
  int version_minor = 1;  // HTTP/1.<minor>: 0 or 1
  std::vector<Header> headers;  // in arrival order
  std::optional<uint64_t> content_length;  // from Content-Length (checked: digits, one value)

  // Value of the first header named `name` (any case), or nullptr.
  const std::string* Find(std::string_view name) const;
  // Number of headers named `name` (any case).
  size_t Count(std::string_view name) const;
  // True when any header named `name` holds `token` in its comma-separated list (any case).
  bool HasToken(std::string_view name, std::string_view token) const;
  // Connection persistence (RFC 9112 9.3): 1.1 unless "Connection: close", 1.0 only with
  // "Connection: keep-alive".
  bool KeepAlive() const;
  // "Upgrade: websocket" (a token of Upgrade) together with "Connection: upgrade".
  bool WantsWebSocket() const;
};

enum class ParseStatus : uint8_t {
  kNeedMore,  // every byte given was consumed; the head is not complete yet
  kDone,      // the head is complete: request() holds it; bytes after it were not consumed
  kError,     // the head is invalid: error_status()/error_reason() say why; sticky until Reset()
};

class RequestParser {
 public:
  explicit RequestParser(RequestLimits limits = {});

  // Parses `bytes` (the next bytes of the stream). *consumed = bytes used (always all of them
  // on kNeedMore, up to the end of the head on kDone, unspecified on kError). After kDone or
  // kError, Feed does nothing until Reset().
  ParseStatus Feed(std::string_view bytes, size_t* consumed);

  // The parsed request (valid after kDone).
  const Request& request() const { return request_; }
  Request& request() { return request_; }

  // After kError: the HTTP status to answer (400, 414, 431, 501 or 505) and a short reason
  // that never contains peer bytes.
  int error_status() const { return error_status_; }
  const std::string& error_reason() const { return error_reason_; }

  // Head bytes consumed for the current request so far.
  size_t head_bytes() const { return head_bytes_; }

  // Ready for the next request on the same connection (keep-alive).
  void Reset();

 private:
  enum class Stage : uint8_t { kRequestLine, kHeaders, kDone, kError };
  ParseStatus Fail(int status, const char* reason);
  ParseStatus OnLine(std::string_view line);  // a complete line without its CRLF
  ParseStatus OnRequestLine(std::string_view line);
  ParseStatus OnHeaderLine(std::string_view line);
  ParseStatus Finish();

  RequestLimits limits_;
  Stage stage_ = Stage::kRequestLine;
  std::string line_;  // bytes of the line in progress (bounded by the limits)
  size_t request_line_bytes_ = 0;
  size_t header_bytes_ = 0;
  size_t head_bytes_ = 0;
  Request request_;
  int error_status_ = 0;
  std::string error_reason_;
};

// Case-insensitive ASCII comparison.
bool EqualsIgnoreCase(std::string_view a, std::string_view b);

// `s` without leading and trailing spaces and tabs (RFC 9110 OWS).
std::string_view TrimOws(std::string_view s);

// Calls f on each item of a comma-separated header value (OWS trimmed, empty items skipped)
// until f returns true; true when one did.
bool AnyListItem(std::string_view value, const std::function<bool(std::string_view)>& f);

}  // namespace xr::http
