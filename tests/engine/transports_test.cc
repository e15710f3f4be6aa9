#include "engine/transports.h"

#include <doctest/doctest.h>

#include <memory>
#include <string>

#include "tests/engine/tls_test_util.h"

namespace xr::engine {
namespace {

using namespace std::string_literals;
using tls_test::Client;
using tls_test::ClientOptions;

const uint8_t kMask[4] = {9, 8, 7, 6};

std::string Masked(ws::Opcode op, std::string_view payload) {
  std::string out;
  ws::AppendMaskedFrame(op, payload, kMask, &out);
  return out;
}

struct Certs {
  tls_test::TempDir dir;
  tls::CertKeyPair pair = tls_test::WritePair(dir, "relay", "relay.test", {"relay.test"});
  std::shared_ptr<const tls::ContextSet> Set() {
    tls::TlsOptions o;
    o.certs = {pair};
    auto set = tls::ContextSet::Build(o);
    REQUIRE(set.ok());
    return *set;
  }
  ClientOptions Verified() {
    ClientOptions c;
    c.sni = "relay.test";
    c.verify_ca = pair.cert_file;
    return c;
  }
};

std::unique_ptr<TlsTransport> NewTls(std::shared_ptr<const tls::ContextSet> set) {
  auto s = tls::TlsSession::Accept(std::move(set));
  REQUIRE(s.ok());
  return std::make_unique<TlsTransport>(std::move(*s));
}

// Drives the handshake the way the connection does: Decode what the client sent, send
// TakeOwnOutput() back. Returns the application bytes that came out on the way.
std::string Handshake(Client& client, Transport& t) {
  std::string app;
  for (int round = 0; round < 20 && !client.done(); ++round) {
    client.Step();
    std::string scratch;
    auto d = t.Decode(client.TakeOutput(), &scratch);
    REQUIRE(d.ok());
    app.append(*d);
    client.Give(t.TakeOwnOutput());
  }
  client.Step();
  REQUIRE(client.done());
  return app;
}

TEST_CASE("transports: TLS leg: handshake through TakeOwnOutput, data both ways") {
  Certs c;
  auto t = NewTls(c.Set());
  CHECK(std::string(t->name()) == "tls");
  CHECK_FALSE(t->plain());
  Client client(c.Verified());
  CHECK(Handshake(client, *t).empty());
  CHECK(t->session().handshake_done());
  client.Write("P\x01" "hello");
  std::string scratch;
  auto d = t->Decode(client.TakeOutput(), &scratch);
  REQUIRE(d.ok());
  CHECK(*d == "P\x01" "hello");
  std::string bytes = "reply";
  REQUIRE(t->Encode(&bytes).ok());
  CHECK(bytes != "reply");  // records now
  client.Give(t->TakeOwnOutput());  // TLS 1.3 tickets, if not yet taken
  client.Give(bytes);
  client.Step();
  CHECK(client.plain == "reply");
}

TEST_CASE("transports: TLS leg: a bad record fails Decode and leaves an alert to send") {
  Certs c;
  auto t = NewTls(c.Set());
  std::string scratch;
  auto d = t->Decode("\x16\x03\x01\x00\x05garbage"s, &scratch);
  REQUIRE_FALSE(d.ok());
  const std::string alert = t->TakeOwnOutput();
  REQUIRE_FALSE(alert.empty());
  CHECK(static_cast<uint8_t>(alert[0]) == 0x15);
}

TEST_CASE("transports: WebSocket leg: frames in, xpra bytes out, pongs and frames out") {
  WebSocketTransport t;
  CHECK(std::string(t.name()) == "ws");
  CHECK_FALSE(t.plain());
  std::string scratch;
  auto d = t.Decode(Masked(ws::Opcode::kBinary, "P\x01" "ab") + Masked(ws::Opcode::kPing, "hb"), &scratch);
  REQUIRE(d.ok());
  CHECK(*d == "P\x01" "ab");
  std::string pong;
  ws::AppendPong("hb", &pong);
  CHECK(t.TakeOwnOutput() == pong);
  std::string bytes = "xyz";
  REQUIRE(t.Encode(&bytes).ok());
  CHECK(bytes == "\x82\x03xyz");
}

TEST_CASE("transports: WebSocket leg: a violation fails Decode and leaves close 1002 to send") {
  WebSocketTransport t;
  std::string scratch;
  REQUIRE_FALSE(t.Decode("\xc2\x81" "abcdx"s, &scratch).ok());
  const std::string close = t.TakeOwnOutput();
  REQUIRE(close.size() >= 4);
  CHECK(close.substr(0, 1) == "\x88");
  CHECK(close.substr(2, 2) == "\x03\xea");  // 1002
}

TEST_CASE("transports: wss stack: TLS outside, WebSocket inside, the inner pong encrypted") {
  Certs c;
  StackedTransport t(NewTls(c.Set()), std::make_unique<WebSocketTransport>(), "wss");
  CHECK(std::string(t.name()) == "wss");
  CHECK_FALSE(t.plain());
  Client client(c.Verified());
  Handshake(client, t);
  client.Write(Masked(ws::Opcode::kBinary, "P\x01" "hello") + Masked(ws::Opcode::kPing, "hb"));
  std::string scratch;
  auto d = t.Decode(client.TakeOutput(), &scratch);
  REQUIRE(d.ok());
  CHECK(*d == "P\x01" "hello");
  client.Give(t.TakeOwnOutput());  // tickets and the pong, both TLS records
  client.Step();
  std::string pong;
  ws::AppendPong("hb", &pong);
  CHECK(client.plain == pong);
  client.plain.clear();
  std::string bytes = "srv";
  REQUIRE(t.Encode(&bytes).ok());
  client.Give(bytes);
  client.Step();
  CHECK(client.plain == "\x82\x03srv");
}

TEST_CASE("transports: EncodeFrom: the same wire bytes as Encode, from a view left untouched") {
  const std::string big(70000, 'x');  // several TLS records, a 64-bit WebSocket length
  SUBCASE("plain: a copy") {
    PlainTransport t;
    std::string out;
    REQUIRE(t.EncodeFrom(big, &out).ok());
    CHECK(out == big);
  }
  SUBCASE("WebSocket: one binary frame, as Encode makes it") {
    WebSocketTransport t;
    std::string out;
    REQUIRE(t.EncodeFrom("xyz", &out).ok());
    CHECK(out == "\x82\x03xyz");
    std::string copy = big;
    REQUIRE(t.Encode(&copy).ok());
    out.clear();
    REQUIRE(t.EncodeFrom(big, &out).ok());
    CHECK(out == copy);
  }
  SUBCASE("TLS: records the client decrypts to the bytes, large and small") {
    Certs c;
    auto t = NewTls(c.Set());
    Client client(c.Verified());
    Handshake(client, *t);
    client.Give(t->TakeOwnOutput());
    const std::string input = big + "tail";
    std::string out;
    REQUIRE(t->EncodeFrom(input, &out).ok());
    CHECK(input == big + "tail");
    CHECK(out.size() > input.size());
    CHECK(out.find(std::string(64, 'x')) == std::string::npos);  // ciphertext, not the plaintext
    CHECK(t->session().pending_ciphertext() == 0);   // everything moved out
    std::string small;
    REQUIRE(t->EncodeFrom("end", &small).ok());
    client.Give(out + small);
    client.Step();
    CHECK(client.plain == input + "end");
  }
  SUBCASE("wss: a binary frame inside TLS records") {
    Certs c;
    StackedTransport t(NewTls(c.Set()), std::make_unique<WebSocketTransport>(), "wss");
    Client client(c.Verified());
    Handshake(client, t);
    client.Give(t.TakeOwnOutput());
    client.Step();
    client.plain.clear();
    std::string out;
    REQUIRE(t.EncodeFrom("srv", &out).ok());
    client.Give(out);
    client.Step();
    CHECK(client.plain == "\x82\x03srv");
  }
}

TEST_CASE("transports: wss stack: a WebSocket violation leaves an encrypted close to send") {
  Certs c;
  StackedTransport t(NewTls(c.Set()), std::make_unique<WebSocketTransport>(), "wss");
  Client client(c.Verified());
  Handshake(client, t);
  client.Write("\xc2\x81" "abcdx"s);
  std::string scratch;
  REQUIRE_FALSE(t.Decode(client.TakeOutput(), &scratch).ok());
  client.Give(t.TakeOwnOutput());
  client.Step();
  REQUIRE(client.plain.size() >= 4);
  CHECK(client.plain.substr(0, 1) == "\x88");
  CHECK(client.plain.substr(2, 2) == "\x03\xea");
}

}  // namespace
}  // namespace xr::engine
