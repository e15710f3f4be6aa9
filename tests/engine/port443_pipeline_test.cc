// The port 443 building blocks composed in memory, as a leg will use them: sniff the first
// bytes, TLS (a plain OpenSSL client), sniff again inside TLS, parse the HTTP head, then either
// the WebSocket handshake and frames carrying xpra bytes, or a static file.
#include <doctest/doctest.h>

#include <string>

#include "codec/http_request.h"
#include "codec/websocket.h"
#include "engine/http_static.h"
#include "engine/sniff.h"
#include "engine/tls.h"
#include "tests/engine/tls_test_util.h"

namespace xr {
namespace {

using tls_test::Client;
using tls_test::ClientOptions;
using tls_test::Pump;

struct Server {
  tls_test::TempDir dir;
  tls::CertKeyPair pair = tls_test::WritePair(dir, "relay", "relay.test", {"relay.test"});
  std::shared_ptr<const tls::ContextSet> contexts;
  Server() {
    tls::TlsOptions o;
    o.certs = {pair};
    auto set = tls::ContextSet::Build(o);
    REQUIRE(set.ok());
    contexts = *set;
  }
};

TEST_CASE("port 443 in memory: wss carries xpra bytes both ways") {
  Server server;
  ClientOptions co;
  co.sni = "relay.test";
  co.verify_ca = server.pair.cert_file;
  co.alpn = {"http/1.1"};
  Client client(co);

  // 1. The first bytes on the port are a TLS record.
  client.Step();
  const std::string hello = client.TakeOutput();
  REQUIRE(Sniff(hello) == SniffKind::kTls);
  CHECK(ClientHelloOffersHttp11(hello));
  auto session = tls::TlsSession::Accept(server.contexts);
  REQUIRE(session.ok());
  std::string plain;
  REQUIRE(session->Receive(hello, &plain).ok());
  std::string out;
  session->TakeCiphertext(&out);
  client.Give(out);
  REQUIRE(Pump(client, *session, &plain).ok());
  REQUIRE(session->handshake_done());
  CHECK(session->alpn() == "http/1.1");

  // 2. Inside TLS: an HTTP upgrade request.
  const uint8_t mask[4] = {1, 2, 3, 4};
  std::string frames;
  ws::AppendMaskedFrame(ws::Opcode::kBinary, std::string("P\x01\x00\x00\x00\x00\x00\x05", 8) + "hello", mask, &frames);
  client.Write(
      "GET / HTTP/1.1\r\nHost: relay.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
      "Sec-WebSocket-Protocol: binary\r\n\r\n" +
      frames);  // the first frame right behind the head, in the same read
  REQUIRE(Pump(client, *session, &plain).ok());
  REQUIRE(Sniff(plain) == SniffKind::kHttp);
  http::RequestParser parser;
  size_t used = 0;
  REQUIRE(parser.Feed(plain, &used) == http::ParseStatus::kDone);
  REQUIRE(parser.request().WantsWebSocket());
  ws::HandshakeResult hs = ws::AcceptHandshake(parser.request());
  REQUIRE(hs.status == 101);
  REQUIRE(session->Send(hs.response).ok());

  // 3. WebSocket: the bytes after the head are frames; xpra bytes come out.
  ws::ServerStream stream;
  std::string xpra;
  REQUIRE(stream.Decode(std::string_view(plain).substr(used), &xpra).ok());
  CHECK(xpra == std::string("P\x01\x00\x00\x00\x00\x00\x05", 8) + "hello");
  CHECK(Sniff(xpra) == SniffKind::kXpra);

  // 4. The session's answer goes back in a binary frame inside TLS.
  std::string wire;
  const std::string answer = std::string("P\x01\x00\x00\x00\x00\x00\x02", 8) + "ok";
  stream.Encode(answer, &wire);
  CHECK(wire == "\x82\x0a" + answer);
  REQUIRE(session->Send(wire).ok());
  REQUIRE(Pump(client, *session, &plain).ok());
  const std::string& got = client.plain;
  REQUIRE(got.rfind(hs.response, 0) == 0);
  CHECK(got.substr(hs.response.size()) == wire);
}

TEST_CASE("port 443 in memory: https GET of xpra's HTML5 client") {
  Server server;
  ClientOptions co;
  co.sni = "relay.test";
  co.verify_ca = server.pair.cert_file;
  Client client(co);
  auto session = tls::TlsSession::Accept(server.contexts);
  REQUIRE(session.ok());
  std::string plain;
  REQUIRE(Pump(client, *session, &plain).ok());
  client.Write("GET /connect.html HTTP/1.1\r\nHost: relay.test\r\nAccept-Encoding: gzip, br\r\n\r\n");
  REQUIRE(Pump(client, *session, &plain).ok());
  http::RequestParser parser;
  size_t used = 0;
  REQUIRE(parser.Feed(plain, &used) == http::ParseStatus::kDone);
  CHECK_FALSE(parser.request().WantsWebSocket());
  auto site = http::StaticSite::Open(http::StaticOptions{});
  REQUIRE(site.ok());
  http::StaticResponse r = site->Serve(parser.request(), 0);
  REQUIRE(r.status == 200);
  REQUIRE(r.file.valid());
  std::string body(r.size, '\0');
  REQUIRE(::pread(r.file.get(), body.data(), body.size(), 0) == static_cast<ssize_t>(body.size()));
  REQUIRE(session->Send(r.head + body).ok());
  REQUIRE(Pump(client, *session, &plain).ok());
  CHECK(client.plain.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
  CHECK(client.plain.find("<html") != std::string::npos);
}

}  // namespace
}  // namespace xr
