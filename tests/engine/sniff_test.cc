#include "engine/sniff.h"

#include <doctest/doctest.h>

#include <string>
#include <string_view>

namespace xr {
namespace {

using namespace std::string_literals;

// The answer once all of `s` has arrived, and the check that every shorter prefix was either
// kNeedMore or already the same answer (bytes arriving one at a time).
SniffKind SniffBytewise(std::string_view s, SniffLimits limits = {}) {
  SniffKind decided = SniffKind::kNeedMore;
  for (size_t n = 1; n <= s.size(); ++n) {
    SniffKind k = Sniff(s.substr(0, n), limits);
    if (decided != SniffKind::kNeedMore) CHECK(k == decided);
    if (k != SniffKind::kNeedMore) decided = k;
  }
  SniffKind whole = Sniff(s, limits);
  CHECK(whole == (decided == SniffKind::kNeedMore ? Sniff(s, limits) : decided));
  return whole;
}

TEST_CASE("sniff: xpra header") {
  const std::string hello = "P\x01\x00\x00\x00\x00\x02\x45"s;
  CHECK(Sniff(hello) == SniffKind::kXpra);
  CHECK(SniffBytewise(hello) == SniffKind::kXpra);
  CHECK(Sniff("P") == SniffKind::kNeedMore);  // 'P' alone could still be "POST "
  CHECK(Sniff("P\x00"s) == SniffKind::kXpra);
  CHECK(Sniff("P\x07"s) == SniffKind::kXpra);
}

TEST_CASE("sniff: TLS record header") {
  const std::string hello = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc"s;
  CHECK(Sniff(hello) == SniffKind::kTls);
  CHECK(SniffBytewise(hello) == SniffKind::kTls);
  CHECK(Sniff("\x16"s) == SniffKind::kNeedMore);
  CHECK(Sniff("\x16\x03"s) == SniffKind::kNeedMore);
  CHECK(Sniff("\x16\x03\x03"s) == SniffKind::kTls);
}

TEST_CASE("sniff: 0x16 with a version that is not TLS is refused") {
  CHECK(Sniff("\x16\x02\x01"s) == SniffKind::kUnknown);
  CHECK(Sniff("\x16\x02"s) == SniffKind::kUnknown);
  CHECK(Sniff("\x16\x03\x05"s) == SniffKind::kUnknown);
  CHECK(SniffBytewise("\x16\x03\x09\x00\x10"s) == SniffKind::kUnknown);
}

TEST_CASE("sniff: HTTP methods, whole and byte by byte") {
  for (const char* req : {"GET / HTTP/1.1\r\n", "HEAD /index.html HTTP/1.1\r\n", "POST /x HTTP/1.1\r\n",
                          "PUT /x HTTP/1.1\r\n", "PATCH /x HTTP/1.1\r\n", "OPTIONS * HTTP/1.1\r\n"}) {
    CAPTURE(req);
    CHECK(Sniff(req) == SniffKind::kHttp);
    CHECK(SniffBytewise(req) == SniffKind::kHttp);
  }
  CHECK(Sniff("GE") == SniffKind::kNeedMore);
  CHECK(Sniff("GET") == SniffKind::kNeedMore);
  CHECK(Sniff("GET ") == SniffKind::kHttp);
  CHECK(Sniff("PO") == SniffKind::kNeedMore);
  CHECK(Sniff("POST") == SniffKind::kNeedMore);
}

TEST_CASE("sniff: an extension method token is HTTP (the HTTP layer answers 501)") {
  CHECK(Sniff("BREW /pot HTTP/1.1\r\n") == SniffKind::kHttp);
}

TEST_CASE("sniff: a method token over 16 letters is unknown") {
  CHECK(Sniff("ABCDEFGHIJKLMNOP ") == SniffKind::kHttp);
  CHECK(Sniff("ABCDEFGHIJKLMNOPQ") == SniffKind::kUnknown);
  CHECK(SniffBytewise("ABCDEFGHIJKLMNOPQ / HTTP/1.1") == SniffKind::kUnknown);
}

TEST_CASE("sniff: lower-case, empty token, SSH and binary noise are unknown") {
  CHECK(Sniff("get / HTTP/1.1") == SniffKind::kUnknown);
  CHECK(Sniff(" GET /") == SniffKind::kUnknown);
  CHECK(Sniff("SSH-2.0-OpenSSH_9.2\r\n") == SniffKind::kUnknown);
  CHECK(Sniff("G\x00"s) == SniffKind::kUnknown);
  CHECK(Sniff("\x00\x01\x02"s) == SniffKind::kUnknown);
  CHECK(Sniff("PX\x01"s) == SniffKind::kUnknown);  // 'P', a letter, then not a method
}

TEST_CASE("sniff: nothing yet is not decisive") { CHECK(Sniff("") == SniffKind::kNeedMore); }

TEST_CASE("sniff: undecided at max_bytes becomes unknown") {
  SniffLimits limits;
  limits.max_bytes = 3;
  CHECK(Sniff("GE", limits) == SniffKind::kNeedMore);
  CHECK(Sniff("GET", limits) == SniffKind::kUnknown);
  CHECK(Sniff("GET / HTTP/1.1", limits) == SniffKind::kUnknown);  // bytes past the bound never count
  CHECK(Sniff("\x16\x03\x01", limits) == SniffKind::kTls);
}

TEST_CASE("sniff: ALPN http/1.1 in a ClientHello") {
  const std::string alpn = "\x00\x10\x00\x0b\x00\x09\x08http/1.1"s;
  CHECK(ClientHelloOffersHttp11("\x16\x03\x01\x00\x40"s + alpn));
  CHECK_FALSE(ClientHelloOffersHttp11("\x16\x03\x01\x00\x40\x00\x10\x00\x05\x00\x03\x02h2"s));
  CHECK_FALSE(ClientHelloOffersHttp11("http/1.1"));  // the length byte is part of the match
}

TEST_CASE("sniff: descriptions as xpra words them, without echoing peer bytes") {
  CHECK(SniffDescribe("\x16\x03\x01"s) == "SSL packet?");
  CHECK(SniffDescribe("SSH-2.0-x") == "SSH packet");
  CHECK(SniffDescribe("GET /secret HTTP/1.1") == "HTTP GET request");
  CHECK(SniffDescribe("\x41\x42zz"s) == "character 0x41, not an xpra client?");
  CHECK(SniffDescribe("") == "no data");
  CHECK(SniffKindName(SniffKind::kTls) == std::string("tls"));
}

}  // namespace
}  // namespace xr
