// FrontEnd: an accepted client's first bytes decide what it is (xpra, TLS, HTTP, WebSocket),
// driven in memory the way Connection drives it (socket bytes in, sends out).
#include "engine/front_end.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "codec/websocket.h"
#include "engine/http_static.h"
#include "tests/engine/tls_test_util.h"

namespace xr::engine {
namespace {

using tls_test::Client;
using tls_test::ClientOptions;

const std::string kXpraBytes = std::string("P\x01\x00\x00\x00\x00\x00\x05", 8) + "hello";

const std::string kUpgrade =
    "GET / HTTP/1.1\r\nHost: relay.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    "Sec-WebSocket-Protocol: binary\r\n\r\n";

// One Feed of `wire` at time 0, with what it produced.
struct Fed {
  FrontEnd::Result result;
  std::vector<std::string> sends;
  std::string xpra;
};
Fed FeedOnce(FrontEnd& fe, std::string_view wire) {
  Fed f;
  f.result = fe.Feed(wire, 0, &f.sends, &f.xpra);
  return f;
}

std::string Join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += s;
  return out;
}

struct Certs {
  tls_test::TempDir dir;
  tls::CertKeyPair pair = tls_test::WritePair(dir, "relay", "relay.test", {"relay.test"});
  std::shared_ptr<tls::ContextHolder> holder;
  Certs() {
    tls::TlsOptions o;
    o.certs = {pair};
    auto h = tls::ContextHolder::Create(o);
    REQUIRE(h.ok());
    holder = std::shared_ptr<tls::ContextHolder>(std::move(*h));
  }
};

std::shared_ptr<FrontEndConfig> Config(FrontEndConfig::Entry entry, std::shared_ptr<tls::ContextHolder> tls = nullptr) {
  auto c = std::make_shared<FrontEndConfig>();
  c->entry = entry;
  c->tls = std::move(tls);
  return c;
}

// Runs the client's output through the front end until neither side has anything to say.
FrontEnd::Result Drive(Client& client, FrontEnd& fe, std::string* xpra, std::vector<std::string>* all_sends = nullptr) {
  FrontEnd::Result r = FrontEnd::Result::kMore;
  for (int i = 0; i < 20; ++i) {
    client.Step();
    std::string out = client.TakeOutput();
    if (out.empty()) break;
    std::vector<std::string> sends;
    r = fe.Feed(out, 0, &sends, xpra);
    if (all_sends) all_sends->insert(all_sends->end(), sends.begin(), sends.end());
    client.Give(Join(sends));
    if (r != FrontEnd::Result::kMore) break;
  }
  client.Step();
  return r;
}

TEST_CASE("front end: xpra bytes pass straight through, whole and byte by byte") {
  for (bool split : {false, true}) {
    FrontEnd fe(Config(FrontEndConfig::Entry::kTcp), 0);
    std::vector<std::string> sends;
    std::string xpra;
    FrontEnd::Result r = FrontEnd::Result::kMore;
    if (split) {
      for (char ch : kXpraBytes) {
        r = fe.Feed(std::string_view(&ch, 1), 0, &sends, &xpra);
        if (r != FrontEnd::Result::kMore) break;
      }
    } else {
      r = fe.Feed(kXpraBytes, 0, &sends, &xpra);
    }
    REQUIRE(r == FrontEnd::Result::kXpra);
    CHECK(sends.empty());
    CHECK(kXpraBytes.starts_with(xpra));
    CHECK(!xpra.empty());
    auto t = fe.TakeTransport();
    CHECK(t->plain());
    CHECK(std::string(fe.transport_name()) == "tcp");
  }
}

TEST_CASE("front end: TLS on a sniffing port, then xpra inside; the deadline moves to the handshake's") {
  Certs certs;
  FrontEnd fe(Config(FrontEndConfig::Entry::kTcp, certs.holder), 1000);
  CHECK(fe.deadline() == 1000 + SniffLimits{}.timeout_ms);
  ClientOptions co;
  co.sni = "relay.test";
  co.verify_ca = certs.pair.cert_file;
  Client client(co);
  client.Step();
  std::string hello = client.TakeOutput();
  std::vector<std::string> sends;
  std::string xpra;
  REQUIRE(fe.Feed(hello, 1000, &sends, &xpra) == FrontEnd::Result::kMore);
  CHECK(fe.deadline() == 1000 + tls::TlsLimits{}.handshake_timeout_ms);
  CHECK(std::string(fe.phase()) == "TLS handshake");
  client.Give(Join(sends));
  REQUIRE(Drive(client, fe, &xpra) == FrontEnd::Result::kMore);  // the handshake ends; no xpra yet
  REQUIRE(client.done());
  CHECK(std::string(fe.phase()) == "first bytes");  // sniffing again, inside TLS
  client.Write(kXpraBytes);
  REQUIRE(Drive(client, fe, &xpra) == FrontEnd::Result::kXpra);
  CHECK(xpra == kXpraBytes);
  CHECK(fe.encrypted());
  CHECK(std::string(fe.transport_name()) == "ssl");
  REQUIRE(fe.tls_session() != nullptr);
  CHECK(fe.tls_session()->server_name() == "relay.test");
  auto t = fe.TakeTransport();
  CHECK_FALSE(t->plain());
  CHECK(std::string(t->name()) == "tls");
}

TEST_CASE("front end: TLS handshakes over the per-source rate are closed before OpenSSL sees them") {
  Certs certs;
  auto config = Config(FrontEndConfig::Entry::kTcp, certs.holder);
  config->tls_rate = std::make_shared<HandshakeRate>(1.0, 2);
  std::string hello;
  {
    Client client(ClientOptions{});
    client.Step();
    hello = client.TakeOutput();
  }
  for (int i = 0; i < 2; ++i) {
    FrontEnd fe(config, 0, "192.0.2.7");
    CHECK(FeedOnce(fe, hello).result == FrontEnd::Result::kMore);  // handshaking
    CHECK(std::string(fe.phase()) == "TLS handshake");
  }
  FrontEnd third(config, 0, "192.0.2.7");
  Fed f = FeedOnce(third, hello);
  CHECK(f.result == FrontEnd::Result::kClose);
  CHECK(f.sends.empty());  // no TLS work, no answer
  CHECK(third.why().find("--ssl-max-handshake-rate-per-address") != std::string::npos);
  FrontEnd other(config, 0, "192.0.2.8");  // another source is not affected
  CHECK(FeedOnce(other, hello).result == FrontEnd::Result::kMore);
  FrontEnd later(config, 1000, "192.0.2.7");  // one more after a second at 1/s
  Fed g;
  g.result = later.Feed(hello, 1000, &g.sends, &g.xpra);
  CHECK(g.result == FrontEnd::Result::kMore);
}

TEST_CASE("front end: TLS without a certificate is closed") {
  FrontEnd fe(Config(FrontEndConfig::Entry::kSsl), 0);
  CHECK(FeedOnce(fe, "\x16\x03\x01").result == FrontEnd::Result::kClose);
  CHECK(fe.why().find("no certificate") != std::string::npos);
}

TEST_CASE("front end: a WebSocket upgrade sends the 101 alone; the frame after the head carries xpra") {
  FrontEnd fe(Config(FrontEndConfig::Entry::kTcp), 0);
  const uint8_t mask[4] = {9, 8, 7, 6};
  std::string frame;
  ws::AppendMaskedFrame(ws::Opcode::kBinary, kXpraBytes, mask, &frame);
  Fed f = FeedOnce(fe, kUpgrade + frame);
  REQUIRE(f.result == FrontEnd::Result::kXpra);
  REQUIRE(f.sends.size() == 1);
  CHECK(f.sends[0].starts_with("HTTP/1.1 101 "));
  CHECK(f.sends[0].ends_with("\r\n\r\n"));
  CHECK(f.xpra == kXpraBytes);
  CHECK(std::string(fe.transport_name()) == "ws");
  auto t = fe.TakeTransport();
  std::string out = "x";
  REQUIRE(t->Encode(&out).ok());
  CHECK(out == "\x82\x01x");
}

TEST_CASE("front end: an oversized WebSocket frame after the upgrade is closed with 1009") {
  auto cfg = Config(FrontEndConfig::Entry::kWs);
  cfg->ws.decoder.max_frame_payload = 1024;
  FrontEnd fe(cfg, 0);
  std::string big = "\x82\x7f" + std::string("\x00\x00\x00\x00\x40\x00\x00\x00", 8);
  Fed f = FeedOnce(fe, kUpgrade + big);
  REQUIRE(f.result == FrontEnd::Result::kClose);
  REQUIRE(f.sends.size() == 2);  // the 101, then the close frame
  REQUIRE(f.sends[1].size() >= 4);
  CHECK(f.sends[1][0] == '\x88');
  CHECK(f.sends[1].substr(2, 2) == std::string("\x03\xf1", 2));  // close 1009
  CHECK(fe.why().starts_with("WebSocket: "));
}

TEST_CASE("front end: an HTTP header flood gets a 431 and the connection ends") {
  FrontEnd fe(Config(FrontEndConfig::Entry::kWs), 0);
  std::string flood = "GET / HTTP/1.1\r\nHost: x\r\n";
  for (int i = 0; i < 200; ++i) flood += "X-" + std::to_string(i) + ": aaaaaaaaaa\r\n";
  Fed f = FeedOnce(fe, flood);
  REQUIRE(f.result == FrontEnd::Result::kClose);
  REQUIRE(f.sends.size() == 1);
  CHECK(f.sends[0].starts_with("HTTP/1.1 431 "));
  CHECK(fe.why().starts_with("HTTP 431"));
}

TEST_CASE("front end: plain GET on a ws bind (no web site) is a bodyless 404 and the connection ends") {
  FrontEnd fe(Config(FrontEndConfig::Entry::kWs), 0);
  Fed f = FeedOnce(fe, "GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n");
  REQUIRE(f.sends.size() == 1);
  CHECK(f.sends[0].starts_with("HTTP/1.1 404 "));
  CHECK(f.result == FrontEnd::Result::kClose);
  CHECK(f.xpra.empty());
}

TEST_CASE("front end: bytes no client of the relay sends are closed with a readable reason") {
  FrontEnd fe(Config(FrontEndConfig::Entry::kTcp), 0);
  Fed f = FeedOnce(fe, "SSH-2.0-OpenSSH\r\n");
  REQUIRE(f.result == FrontEnd::Result::kClose);
  CHECK(fe.why().find("SSH") != std::string::npos);
  CHECK(f.sends.empty());
}

TEST_CASE("front end: garbage after a TLS record header ends with the TLS error") {
  Certs certs;
  FrontEnd fe(Config(FrontEndConfig::Entry::kTcp, certs.holder), 0);
  REQUIRE(FeedOnce(fe, std::string("\x16\x03\x01\x00\x10", 5) + std::string(16, '\xff')).result ==
          FrontEnd::Result::kClose);
  CHECK(fe.why().starts_with("TLS: "));
}

TEST_CASE("front end: pipelined requests wait for the client to read the answers (answer budget)") {
  auto site = http::StaticSite::Open(http::StaticOptions{});
  REQUIRE(site.ok());  // xpra's HTML5 client (a test package)
  auto cfg = Config(FrontEndConfig::Entry::kTcp);
  cfg->site = std::make_shared<const http::StaticSite>(std::move(*site));
  cfg->answer_budget = 1;  // every answer fills it
  FrontEnd fe(cfg, 0);
  const std::string get = "GET /connect.html HTTP/1.1\r\nHost: x\r\n\r\n";
  Fed first = FeedOnce(fe, get + get + get);
  REQUIRE(first.result == FrontEnd::Result::kMore);
  REQUIRE(first.sends.size() == 1);
  CHECK(first.sends[0].starts_with("HTTP/1.1 200 "));
  CHECK(fe.has_pending());
  Fed second = FeedOnce(fe, "");
  REQUIRE(second.sends.size() == 1);
  CHECK(fe.has_pending());
  Fed third = FeedOnce(fe, "");
  REQUIRE(third.sends.size() == 1);
  CHECK(third.sends[0].starts_with("HTTP/1.1 200 "));
  CHECK_FALSE(fe.has_pending());
  CHECK(third.result == FrontEnd::Result::kMore);  // keep-alive: the next request may come
  CHECK(std::string(fe.phase()) == "HTTP keep-alive");
}

}  // namespace
}  // namespace xr::engine
