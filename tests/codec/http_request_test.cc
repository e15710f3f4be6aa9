#include "codec/http_request.h"

#include <doctest/doctest.h>

#include <string>
#include <string_view>

namespace xr::http {
namespace {

struct Parsed {
  ParseStatus status = ParseStatus::kNeedMore;
  size_t consumed = 0;
  int error_status = 0;
  std::string reason;
  Request request;
};

// Feeds `data` in pieces of `step` bytes (0 = whole).
Parsed Parse(std::string_view data, size_t step, RequestLimits limits = {}) {
  RequestParser p(limits);
  Parsed out;
  size_t pos = 0;
  do {
    size_t n = step == 0 ? data.size() : std::min(step, data.size() - pos);
    size_t used = 0;
    out.status = p.Feed(data.substr(pos, n), &used);
    out.consumed += used;
    pos += n;
  } while (out.status == ParseStatus::kNeedMore && pos < data.size());
  out.error_status = p.error_status();
  out.reason = p.error_reason();
  out.request = p.request();
  return out;
}

// Parses whole and byte by byte; both must agree; returns the whole-input outcome.
Parsed ParseBoth(std::string_view data, RequestLimits limits = {}) {
  Parsed whole = Parse(data, 0, limits);
  Parsed bytes = Parse(data, 1, limits);
  CHECK(whole.status == bytes.status);
  CHECK(whole.error_status == bytes.error_status);
  if (whole.status == ParseStatus::kDone) {
    CHECK(whole.consumed == bytes.consumed);
    CHECK(whole.request.method == bytes.request.method);
    CHECK(whole.request.target == bytes.request.target);
    CHECK(whole.request.headers.size() == bytes.request.headers.size());
  }
  return whole;
}

void ExpectError(std::string_view data, int status, RequestLimits limits = {}) {
  Parsed p = ParseBoth(data, limits);
  CHECK(p.status == ParseStatus::kError);
  CHECK(p.error_status == status);
  CHECK(!p.reason.empty());
}

const char kUpgrade[] =
    "GET /socket?x=1 HTTP/1.1\r\n"
    "Host: relay.example:443\r\n"
    "upgrade: WebSocket\r\n"
    "Connection: keep-alive, Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "Sec-WebSocket-Protocol:   binary  \r\n"
    "\r\n";

TEST_CASE("http request: a WebSocket upgrade, whole and byte by byte, stops at the head") {
  const std::string data = std::string(kUpgrade) + "\x82\x80rest";
  Parsed p = ParseBoth(data);
  REQUIRE(p.status == ParseStatus::kDone);
  CHECK(p.consumed == std::string(kUpgrade).size());
  CHECK(p.request.method == "GET");
  CHECK(p.request.target == "/socket?x=1");
  CHECK(p.request.version_minor == 1);
  REQUIRE(p.request.headers.size() == 6);
  CHECK(p.request.headers[1].name == "upgrade");
  CHECK(p.request.headers[1].value == "WebSocket");
  CHECK(*p.request.Find("SEC-WEBSOCKET-PROTOCOL") == "binary");
  CHECK(p.request.Find("cookie") == nullptr);
  CHECK(p.request.WantsWebSocket());
  CHECK(p.request.KeepAlive());
}

TEST_CASE("http request: plain GET is not an upgrade; HTTP/1.0 keep-alive rules") {
  Parsed p = ParseBoth("GET /index.html HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n");
  REQUIRE(p.status == ParseStatus::kDone);
  CHECK_FALSE(p.request.WantsWebSocket());  // no "Connection: upgrade"
  p = ParseBoth("HEAD / HTTP/1.0\r\n\r\n");
  REQUIRE(p.status == ParseStatus::kDone);
  CHECK(p.request.version_minor == 0);
  CHECK_FALSE(p.request.KeepAlive());
  p = ParseBoth("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
  CHECK(p.request.KeepAlive());
  p = ParseBoth("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
  CHECK_FALSE(p.request.KeepAlive());
}

TEST_CASE("http request: bare LF line ends and leading blank lines are accepted") {
  Parsed p = ParseBoth("\r\n\nGET / HTTP/1.1\nHost: a\n\n");
  REQUIRE(p.status == ParseStatus::kDone);
  CHECK(p.request.target == "/");
}

TEST_CASE("http request: incomplete head needs more and consumes everything") {
  Parsed p = ParseBoth("GET / HTTP/1.1\r\nHost: a\r\n");
  CHECK(p.status == ParseStatus::kNeedMore);
  CHECK(p.consumed == 25);
}

TEST_CASE("http request: Content-Length parsed; repeated equal values accepted") {
  Parsed p = ParseBoth("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\ncontent-length: 12\r\n\r\n");
  REQUIRE(p.status == ParseStatus::kDone);
  CHECK(p.request.content_length == 12u);
}

TEST_CASE("http request: reset parses the next pipelined request") {
  const std::string two = "GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n";
  RequestParser parser;
  size_t used = 0;
  REQUIRE(parser.Feed(two, &used) == ParseStatus::kDone);
  CHECK(used == two.size() / 2);
  CHECK(parser.request().target == "/a");
  size_t none = 1;
  CHECK(parser.Feed("x", &none) == ParseStatus::kDone);  // nothing more until Reset
  CHECK(none == 0);
  parser.Reset();
  size_t used2 = 0;
  REQUIRE(parser.Feed(std::string_view(two).substr(used), &used2) == ParseStatus::kDone);
  CHECK(used2 == two.size() / 2);
  CHECK(parser.request().target == "/b");
}

// --- malformed heads: one test each ---
TEST_CASE("http request: no spaces in the request line") { ExpectError("GET\r\n\r\n", 400); }
TEST_CASE("http request: two spaces between method and target") { ExpectError("GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400); }
TEST_CASE("http request: extra field after the version") { ExpectError("GET / HTTP/1.1 x\r\nHost: a\r\n\r\n", 400); }
TEST_CASE("http request: method with a separator") { ExpectError("GE(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400); }
TEST_CASE("http request: control byte in the target") { ExpectError("GET /\x01 HTTP/1.1\r\nHost: a\r\n\r\n", 400); }
TEST_CASE("http request: high byte in the target") { ExpectError("GET /\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", 400); }
TEST_CASE("http request: not an HTTP version") { ExpectError("GET / HTTX/1.1\r\nHost: a\r\n\r\n", 400); }
TEST_CASE("http request: lower-case http version") { ExpectError("GET / http/1.1\r\nHost: a\r\n\r\n", 400); }
TEST_CASE("http request: HTTP/2.0 is not supported") { ExpectError("GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505); }
TEST_CASE("http request: HTTP/1.2 is not supported") { ExpectError("GET / HTTP/1.2\r\nHost: a\r\n\r\n", 505); }
TEST_CASE("http request: bare CR inside a line") { ExpectError("GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n", 400); }
TEST_CASE("http request: NUL inside a header") { ExpectError(std::string_view("GET / HTTP/1.1\r\nHost: a\0b\r\n\r\n", 29), 400); }
TEST_CASE("http request: obsolete line folding") { ExpectError("GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", 400); }
TEST_CASE("http request: header without a colon") { ExpectError("GET / HTTP/1.1\r\nHost a\r\n\r\n", 400); }
TEST_CASE("http request: space before the colon") { ExpectError("GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400); }
TEST_CASE("http request: empty header name") { ExpectError("GET / HTTP/1.1\r\n: a\r\nHost: a\r\n\r\n", 400); }
TEST_CASE("http request: DEL in a header value") { ExpectError("GET / HTTP/1.1\r\nHost: a\x7f\r\n\r\n", 400); }
TEST_CASE("http request: 1.1 without Host") { ExpectError("GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", 400); }
TEST_CASE("http request: two Host headers") { ExpectError("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400); }
TEST_CASE("http request: Transfer-Encoding is refused") {
  ExpectError("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", 501);
}
TEST_CASE("http request: Content-Length not a number") {
  ExpectError("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1x\r\n\r\n", 400);
}
TEST_CASE("http request: Content-Length too long") {
  ExpectError("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1234567890123456\r\n\r\n", 400);
}
TEST_CASE("http request: conflicting Content-Length") {
  ExpectError("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400);
}
TEST_CASE("http request: errors are sticky") {
  RequestParser p;
  size_t used = 0;
  REQUIRE(p.Feed("BAD\r\n", &used) == ParseStatus::kError);
  CHECK(p.Feed("GET / HTTP/1.1\r\nHost: a\r\n\r\n", &used) == ParseStatus::kError);
  CHECK(p.error_status() == 400);
}

// --- limits ---
TEST_CASE("http request: request line over the limit is 414, even before its end arrives") {
  RequestLimits limits;
  limits.max_request_line = 32;
  const std::string line = "GET /" + std::string(40, 'a');  // no CRLF yet
  ExpectError(line, 414, limits);
  // exactly at the limit (CRLF included) passes
  ExpectError("GET /" + std::string(40, 'a') + " HTTP/1.1\r\nHost: a\r\n\r\n", 414, limits);
  Parsed ok = ParseBoth("GET /" + std::string(16, 'a') + " HTTP/1.1\r\nHost: a\r\n\r\n", limits);  // 32 bytes
  CHECK(ok.status == ParseStatus::kDone);
}
TEST_CASE("http request: blank lines before the request count against the request line") {
  RequestLimits limits;
  limits.max_request_line = 16;
  ExpectError(std::string(20, '\n'), 414, limits);
}
TEST_CASE("http request: too many header fields is 431") {
  RequestLimits limits;
  limits.max_header_count = 4;
  std::string head = "GET / HTTP/1.1\r\nHost: a\r\n";
  for (int i = 0; i < 3; ++i) head += "X-A: b\r\n";
  CHECK(ParseBoth(head + "\r\n", limits).status == ParseStatus::kDone);
  ExpectError(head + "X-A: b\r\n\r\n", 431, limits);
}
TEST_CASE("http request: header bytes over the limit is 431, before the line ends") {
  RequestLimits limits;
  limits.max_header_bytes = 64;
  ExpectError("GET / HTTP/1.1\r\nHost: a\r\nX-Long: " + std::string(100, 'v'), 431, limits);
  ExpectError("GET / HTTP/1.1\r\nHost: a\r\nX-Long: " + std::string(100, 'v') + "\r\n\r\n", 431, limits);
}
TEST_CASE("http request: error reasons carry no peer bytes") {
  Parsed p = ParseBoth("GET /secret-token HTTP/9.9\r\n\r\n");
  CHECK(p.error_status == 505);
  CHECK(p.reason.find("secret") == std::string::npos);
}

}  // namespace
}  // namespace xr::http
