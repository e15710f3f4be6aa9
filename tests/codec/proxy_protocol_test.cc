#include "codec/proxy_protocol.h"

#include <doctest/doctest.h>

#include <string>

namespace xr::proxy {
namespace {

const std::string kSig(kV2Signature);

std::string Be16(uint16_t v) { return std::string{static_cast<char>(v >> 8), static_cast<char>(v & 0xff)}; }

std::string V2(uint8_t ver_cmd, uint8_t fam, const std::string& body) {
  return kSig + static_cast<char>(ver_cmd) + static_cast<char>(fam) + Be16(static_cast<uint16_t>(body.size())) + body;
}

std::string V4Block(std::string src, std::string dst, uint16_t sport, uint16_t dport) {
  return src + dst + Be16(sport) + Be16(dport);
}

// The same input whole, then byte by byte through the reader: both must agree.
struct Outcome {
  bool complete = false;
  std::optional<ProxyHeader> header;
  std::optional<Error> error;
  std::string rest;
};

Outcome Whole(const std::string& in, ProxyLimits limits = {}) {
  Outcome o;
  ProxyHeaderReader r(limits);
  r.Feed(in);
  auto direct = ParseProxyHeader(in, limits);
  if (!direct.ok()) {
    o.error = direct.error();
    CHECK(r.state() == ProxyHeaderReader::State::kFailed);
    return o;
  }
  if (direct->has_value()) {
    o.header = **direct;
    REQUIRE(r.state() == ProxyHeaderReader::State::kDone);
    o.rest = std::string(r.rest());
  } else {
    CHECK(r.state() == ProxyHeaderReader::State::kNeedMore);
  }
  return o;
}

Outcome Bytewise(const std::string& in, ProxyLimits limits = {}) {
  Outcome o;
  ProxyHeaderReader r(limits);
  size_t fed = 0;
  for (char c : in) {
    ++fed;
    if (r.Feed(std::string_view(&c, 1)) != ProxyHeaderReader::State::kNeedMore) break;
  }
  if (r.state() == ProxyHeaderReader::State::kFailed) {
    o.error = r.error();
  } else if (r.state() == ProxyHeaderReader::State::kDone) {
    o.header = r.header();
    CHECK(fed == r.header().length);  // decided on its last byte, not later
    o.rest = std::string(r.rest()) + in.substr(fed);
  }
  return o;
}

// Expects both ways to succeed with the same header; returns it.
ProxyHeader Ok(const std::string& in, ProxyLimits limits = {}) {
  Outcome w = Whole(in, limits), b = Bytewise(in, limits);
  if (w.error) FAIL(w.error->message);
  REQUIRE(w.header.has_value());
  REQUIRE(b.header.has_value());
  CHECK(w.header->length == b.header->length);
  CHECK(w.header->source.ToString() == b.header->source.ToString());
  CHECK(w.header->destination.ToString() == b.header->destination.ToString());
  CHECK(w.rest == b.rest);
  return *w.header;
}

// Expects both ways to fail with the same code; returns the message.
std::string Bad(const std::string& in, ErrorCode code = ErrorCode::kMalformed, ProxyLimits limits = {}) {
  Outcome w = Whole(in, limits), b = Bytewise(in, limits);
  REQUIRE(w.error.has_value());
  REQUIRE(b.error.has_value());
  CHECK(w.error->code == code);
  CHECK(b.error->code == code);
  CHECK(w.error->message == b.error->message);
  CHECK(w.error->message.starts_with("PROXY protocol: "));
  return w.error->message;
}

// --- v1 ---

TEST_CASE("v1 TCP4: addresses, ports, and the bytes after the header stay for the stream") {
  ProxyHeader h = Ok("PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\nxpra-hello");
  CHECK(h.version == 1);
  CHECK(h.kind == ProxyHeader::Kind::kTcp4);
  CHECK(h.source.ToString() == "192.0.2.1:56324");
  CHECK(h.destination.ToString() == "198.51.100.2:443");
  CHECK(h.length == 45);
  CHECK(Whole("PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\nxpra-hello").rest == "xpra-hello");
}

TEST_CASE("v1 TCP6") {
  ProxyHeader h = Ok("PROXY TCP6 2001:db8::1 2001:db8::2 0 65535\r\n");
  CHECK(h.kind == ProxyHeader::Kind::kTcp6);
  CHECK(h.source.ToString() == "[2001:db8::1]:0");
  CHECK(h.destination.ToString() == "[2001:db8::2]:65535");
}

TEST_CASE("v1 UNKNOWN: no addresses, the rest of the line ignored") {
  CHECK(Ok("PROXY UNKNOWN\r\n").kind == ProxyHeader::Kind::kUnknown);
  ProxyHeader h = Ok("PROXY UNKNOWN ffff:f::1 ffff:f::2 1 2\r\n");
  CHECK(h.kind == ProxyHeader::Kind::kUnknown);
  CHECK(!h.has_addresses());
}

TEST_CASE("v1 at the 107-byte limit is accepted") {
  std::string line = "PROXY UNKNOWN ";
  line += std::string(107 - line.size() - 2, 'x') + "\r\n";
  REQUIRE(line.size() == 107);
  CHECK(Ok(line).length == 107);
}

TEST_CASE("v1 incomplete: need more, at every prefix") {
  std::string full = "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n";
  for (size_t n = 1; n < full.size(); ++n) {
    auto r = ParseProxyHeader(full.substr(0, n));
    REQUIRE(r.ok());
    CHECK(!r->has_value());
  }
}

TEST_CASE("v1 malformed: wrong signature") { Bad("PROXZ TCP4 1.2.3.4 1.2.3.4 1 1\r\n"); }
TEST_CASE("v1 malformed: no space after PROXY") { Bad("PROXYTCP4 1.2.3.4 1.2.3.4 1 1\r\n"); }
TEST_CASE("v1 malformed: over 107 bytes without CRLF") {
  CHECK(Bad("PROXY UNKNOWN " + std::string(200, 'x')).find("107") != std::string::npos);
}
TEST_CASE("v1 malformed: CRLF one byte past the limit") {
  std::string line = "PROXY UNKNOWN ";
  line += std::string(108 - line.size() - 2, 'x') + "\r\n";
  REQUIRE(line.size() == 108);
  Bad(line);
}
TEST_CASE("v1 malformed: bare LF") { Bad("PROXY TCP4 1.2.3.4 1.2.3.4 1 1\n"); }
TEST_CASE("v1 malformed: CR without LF") { Bad("PROXY TCP4 1.2.3.4 1.2.3.4 1 1\rX"); }
TEST_CASE("v1 malformed: a control byte in the line") { Bad(std::string("PROXY TCP4 1.2.3.4\t1.2.3.4 1 1\r\n")); }
TEST_CASE("v1 malformed: a NUL in the line") { Bad(std::string("PROXY TCP4 1.2.3.4\0 1.2.3.4 1 1\r\n", 33)); }
TEST_CASE("v1 malformed: unknown protocol") { Bad("PROXY UDP4 1.2.3.4 1.2.3.4 1 1\r\n"); }
TEST_CASE("v1 malformed: lower-case protocol") { Bad("PROXY tcp4 1.2.3.4 1.2.3.4 1 1\r\n"); }
TEST_CASE("v1 malformed: empty line") { Bad("PROXY \r\n"); }
TEST_CASE("v1 malformed: too few fields") { Bad("PROXY TCP4 1.2.3.4 1.2.3.4 1\r\n"); }
TEST_CASE("v1 malformed: too many fields") { Bad("PROXY TCP4 1.2.3.4 1.2.3.4 1 1 1\r\n"); }
TEST_CASE("v1 malformed: double space") { Bad("PROXY TCP4 1.2.3.4  1.2.3.4 1 1\r\n"); }
TEST_CASE("v1 malformed: trailing space") { Bad("PROXY TCP4 1.2.3.4 1.2.3.4 1 1 \r\n"); }
TEST_CASE("v1 malformed: bad IPv4 source") { Bad("PROXY TCP4 1.2.3.256 1.2.3.4 1 1\r\n"); }
TEST_CASE("v1 malformed: bad IPv4 destination") { Bad("PROXY TCP4 1.2.3.4 1.2.3 1 1\r\n"); }
TEST_CASE("v1 malformed: IPv6 address under TCP4") { Bad("PROXY TCP4 ::1 ::1 1 1\r\n"); }
TEST_CASE("v1 malformed: IPv4-mapped text under TCP4") { Bad("PROXY TCP4 ::ffff:1.2.3.4 1.2.3.4 1 1\r\n"); }
TEST_CASE("v1 malformed: IPv4 address under TCP6") { Bad("PROXY TCP6 1.2.3.4 ::1 1 1\r\n"); }
TEST_CASE("v1 malformed: port over 65535") { Bad("PROXY TCP4 1.2.3.4 1.2.3.4 65536 1\r\n"); }
TEST_CASE("v1 malformed: port with a leading zero") { Bad("PROXY TCP4 1.2.3.4 1.2.3.4 080 1\r\n"); }
TEST_CASE("v1 malformed: negative port") { Bad("PROXY TCP4 1.2.3.4 1.2.3.4 -1 1\r\n"); }
TEST_CASE("v1 malformed: non-numeric port") { Bad("PROXY TCP4 1.2.3.4 1.2.3.4 1 http\r\n"); }
TEST_CASE("v1 malformed: empty port") { Bad("PROXY TCP4 1.2.3.4 1.2.3.4 1 \r\n"); }

// --- v2 ---

TEST_CASE("v2 PROXY TCP4 with a TLV; the stream's bytes follow") {
  std::string body = V4Block(std::string("\xc0\x00\x02\x01", 4), "\xc6\x33\x64\x02", 56324, 443) + std::string("\x02\x00\x04host", 7);
  std::string in = V2(0x21, 0x11, body) + "xpra";
  ProxyHeader h = Ok(in);
  CHECK(h.version == 2);
  CHECK(h.kind == ProxyHeader::Kind::kTcp4);
  CHECK(h.length == 16 + body.size());
  CHECK(h.source.ToString() == "192.0.2.1:56324");
  CHECK(h.destination.ToString() == "198.51.100.2:443");
  REQUIRE(h.tlvs.size() == 1);
  CHECK(h.tlvs[0].type == 2);
  CHECK(h.tlvs[0].value == "host");
  CHECK(Whole(in).rest == "xpra");
  CHECK(Bytewise(in).rest == "xpra");
}

TEST_CASE("v2 PROXY TCP6") {
  std::string src(16, '\0'), dst(16, '\0');
  src[0] = '\x20'; src[1] = '\x01'; src[2] = '\x0d'; src[3] = '\xb8'; src[15] = 1;
  dst[15] = 1;
  ProxyHeader h = Ok(V2(0x21, 0x21, src + dst + Be16(5000) + Be16(14501)));
  CHECK(h.kind == ProxyHeader::Kind::kTcp6);
  CHECK(h.source.ToString() == "[2001:db8::1]:5000");
  CHECK(h.destination.ToString() == "[::1]:14501");
}

TEST_CASE("v2 LOCAL: no addresses, its body skipped") {
  ProxyHeader h = Ok(V2(0x20, 0x00, ""));
  CHECK(h.kind == ProxyHeader::Kind::kLocal);
  CHECK(!h.has_addresses());
  ProxyHeader h2 = Ok(V2(0x20, 0x11, V4Block("\1\2\3\4", "\1\2\3\4", 1, 1)) + "x");
  CHECK(h2.kind == ProxyHeader::Kind::kLocal);
  CHECK(h2.length == 28);
}

TEST_CASE("v2 PROXY over AF_UNSPEC: no addresses") {
  CHECK(Ok(V2(0x21, 0x00, "abc")).kind == ProxyHeader::Kind::kUnknown);
}

TEST_CASE("v2 incomplete: need more, at every prefix") {
  std::string full = V2(0x21, 0x11, V4Block("\1\2\3\4", "\5\6\7\10", 1, 2));
  for (size_t n = 1; n < full.size(); ++n) {
    auto r = ParseProxyHeader(full.substr(0, n));
    REQUIRE(r.ok());
    CHECK(!r->has_value());
  }
}

TEST_CASE("v2 malformed: bad signature") { Bad(std::string("\r\n\r\n\0\r\nQUIX\n", 12) + std::string(8, '\0')); }
TEST_CASE("v2 malformed: version 1 in the version nibble") { Bad(V2(0x11, 0x11, V4Block("1234", "1234", 1, 1))); }
TEST_CASE("v2 malformed: version 3 in the version nibble") { Bad(V2(0x31, 0x11, V4Block("1234", "1234", 1, 1))); }
TEST_CASE("v2 malformed: unknown command") { Bad(V2(0x22, 0x11, V4Block("1234", "1234", 1, 1))); }
TEST_CASE("v2 malformed: unknown family") { Bad(V2(0x21, 0x41, V4Block("1234", "1234", 1, 1))); }
TEST_CASE("v2 malformed: unknown transport") { Bad(V2(0x21, 0x13, V4Block("1234", "1234", 1, 1))); }
TEST_CASE("v2 malformed: length too short for AF_INET") { Bad(V2(0x21, 0x11, std::string(11, 'x'))); }
TEST_CASE("v2 malformed: length too short for AF_INET6") { Bad(V2(0x21, 0x21, std::string(35, 'x'))); }
TEST_CASE("v2 malformed: TLV header cut short") { Bad(V2(0x21, 0x11, V4Block("1234", "1234", 1, 1) + std::string("\x02\x00", 2))); }
TEST_CASE("v2 malformed: TLV longer than the header") {
  Bad(V2(0x21, 0x11, V4Block("1234", "1234", 1, 1) + std::string("\x02\x00\x05" "abc", 6)));
}
TEST_CASE("v2 over the body limit: refused from the length field, before the body") {
  ProxyLimits small;
  small.max_v2_body = 64;
  std::string header = kSig + "\x21\x11" + Be16(65);
  CHECK(Bad(header, ErrorCode::kTooLarge, small).find("over the limit") != std::string::npos);
  CHECK(Ok(V2(0x21, 0x11, V4Block("1234", "1234", 1, 1) + std::string("\x01\x00\x31", 3) + std::string(49, 'a')),
           small).length == 16 + 64);
  CHECK(Bad(kSig + "\x21\x11" + Be16(65535), ErrorCode::kTooLarge).find("65535") != std::string::npos);
}
TEST_CASE("v2 unsupported: unix-socket client") {
  Bad(V2(0x21, 0x31, std::string(216, '\0')), ErrorCode::kUnsupported);
}
TEST_CASE("v2 unsupported: datagram client") {
  Bad(V2(0x21, 0x12, V4Block("1234", "1234", 1, 1)), ErrorCode::kUnsupported);
}

// --- which versions a listener accepts ---

TEST_CASE("not a PROXY header at all: refused on the first byte") {
  CHECK(Bad(std::string("\x10\x00\x00\x00", 4)).find("v1 or v2") != std::string::npos);
  Bad("GET / HTTP/1.1\r\n");
}
TEST_CASE("a v1-only listener refuses v2 and the other way round") {
  ProxyLimits v1;
  v1.accept = Versions::kV1;
  ProxyLimits v2;
  v2.accept = Versions::kV2;
  CHECK(Bad(V2(0x20, 0x00, ""), ErrorCode::kMalformed, v1).find("a v1 header") != std::string::npos);
  CHECK(Bad("PROXY UNKNOWN\r\n", ErrorCode::kMalformed, v2).find("a v2 header") != std::string::npos);
  CHECK(Ok("PROXY UNKNOWN\r\n", v1).version == 1);
  CHECK(Ok(V2(0x20, 0x00, ""), v2).version == 2);
}

TEST_CASE("reader: a failure is final and keeps no bytes") {
  ProxyHeaderReader r;
  CHECK(r.Feed("XYZ") == ProxyHeaderReader::State::kFailed);
  CHECK(r.Feed("PROXY UNKNOWN\r\n") == ProxyHeaderReader::State::kFailed);
  CHECK(r.error().code == ErrorCode::kMalformed);
}

}  // namespace
}  // namespace xr::proxy
