#include "engine/hello.h"

#include <doctest/doctest.h>

using namespace xr;
using namespace xr::engine;

namespace {
Value ClientCaps() {
  Value c{Dict{}};
  c.set("version", "3.1.3");
  c.set("cipher", "AES");
  c.set("cipher.iv", "0123456789abcdef");
  c.set("challenge", true);
  c.set("challenge_response", "abc");
  c.set("digest", List{Value("hmac")});
  c.set("salt-digest", List{Value("xor")});
  c.set("aliases", Dict{});
  c.set("lz4", true);
  c.set("compression_level", 1);
  c.set("username", "foo");
  return c;
}
const ProxyIdentity kId{"9.9", "relayhost"};
}  // namespace

TEST_CASE("server hello: secrets and negotiation keys stripped, proxy keys added") {
  Value h = MakeServerHello(ClientCaps(), {}, kId);
  Caps c(h);
  CHECK_FALSE(c.has("cipher"));
  CHECK_FALSE(c.has("cipher.iv"));
  CHECK_FALSE(c.has("challenge"));
  CHECK_FALSE(c.has("challenge_response"));
  CHECK_FALSE(c.has("aliases"));
  CHECK(c.get_bool("proxy"));
  CHECK(c.get_string("proxy.version") == "9.9");
  CHECK(c.get_string("proxy.hostname") == "relayhost");
  CHECK(c.get_string("username") == "foo");
  CHECK(c.get_bool("lz4"));
  CHECK(c.get_strings("digest").front() == "hmac+sha512");
}

TEST_CASE("server hello: whitelisted session options override, others dropped") {
  Value h = MakeServerHello(ClientCaps(), {{"compression_level", "5"}, {"lz4", "no"}, {"rencode", "yes"},
                                           {"password", "x"}, {"evil", "1"}, {"zlib", "maybe"}},
                            kId);
  Caps c(h);
  CHECK(c.get_int("compression_level") == 5);
  CHECK_FALSE(c.get_bool("lz4", true));
  CHECK(c.get_bool("rencode"));
  CHECK_FALSE(c.has("password"));
  CHECK_FALSE(c.has("evil"));
  CHECK_FALSE(c.has("zlib"));  // unparsable value dropped
}

TEST_CASE("client hello: aliases stripped, cipher caps added") {
  Value s{Dict{}};
  s.set("version", "3.1.3");
  s.set("aliases", Dict{{Value("draw"), Value(1)}});
  s.set("aliases.extra", 1);
  Value cipher{Dict{}};
  cipher.set("cipher", "AES");
  cipher.set("cipher.iv", "fedcba9876543210");
  Value h = MakeClientHello(s, kId, &cipher);
  Caps c(h);
  CHECK_FALSE(c.has("aliases"));
  CHECK_FALSE(c.has("aliases.extra"));
  CHECK(c.get_string("cipher.iv") == "fedcba9876543210");
  CHECK(c.get_bool("proxy"));
  CHECK(c.get_string("version") == "3.1.3");
  CHECK_FALSE(Caps(MakeClientHello(s, kId, nullptr)).has("cipher"));
}

TEST_CASE("session password") {
  CHECK(SessionPassword({{"a", "b"}, {"password", "pw"}}) == "pw");
  CHECK(SessionPassword({}).empty());
}

TEST_CASE("hello requests: harmless ones pass as `request`, the others are refused") {
  Value c = ClientCaps();
  auto none = HelloRequest(c);
  REQUIRE(none.ok());
  CHECK(none->empty());
  for (const char* ok : {"info", "id", "screenshot", "connect_test", "detach"}) {
    Value r = ClientCaps();
    r.set("request", ok);
    auto got = HelloRequest(r);
    REQUIRE(got.ok());
    CHECK(*got == ok);
    CHECK(Caps(MakeServerHello(r, {}, kId)).get_string("request") == ok);
  }
  for (const char* bad : {"stop", "exit", "print", "event", "whatever"}) {
    Value r = ClientCaps();
    r.set("request", bad);
    auto got = HelloRequest(r);
    REQUIRE_FALSE(got.ok());
    CHECK(got.error().message.find(std::string("'") + bad + "'") != std::string::npos);
    Value f = ClientCaps();
    f.set(std::string(bad) + "_request", true);  // the older flag spelling
    CHECK_FALSE(HelloRequest(f).ok());
  }
  Value cmd = ClientCaps();
  cmd.set("command_request", List{Value("start"), Value("xterm")});
  CHECK_FALSE(HelloRequest(cmd).ok());
  // The flags never reach the server, whatever their value.
  Value off = ClientCaps();
  off.set("stop_request", false);
  CHECK_FALSE(Caps(MakeServerHello(off, {}, kId)).has("stop_request"));
}

TEST_CASE("server hello: the relay never offers xor to a server") {
  Value h = MakeServerHello(ClientCaps(), {}, kId);
  for (const std::string& d : Caps(h).get_strings("digest")) CHECK(d != "xor");
}

TEST_CASE("server hello of a 6.x client: 'encryption' dict stripped, ssl-upgrade dropped from packet-types") {
  Value c{Dict{}};
  c.set("version", "6.5");
  c.set("encryption", Dict{{Value("cipher"), Value("AES")}, {Value("iv"), Value::bytes("0123456789abcdef")}});
  c.set("packet-types", List{Value("hello"), Value("ssl-upgrade"), Value("challenge")});
  c.set("lz4", Dict{{Value(""), Value(true)}});
  c.set("rencodeplus", Dict{{Value(""), Value(true)}});
  Value h = MakeServerHello(c, {{"rencodeplus", "yes"}}, kId);
  Caps caps(h);
  CHECK_FALSE(caps.has("encryption"));
  CHECK_FALSE(caps.has("encryption.cipher"));
  CHECK(caps.get_strings("packet-types") == std::vector<std::string>{"hello", "challenge"});
  CHECK(caps.get_bool("lz4"));          // compression caps stay: frames pass as they are
  CHECK(caps.get_bool("rencodeplus"));  // the whitelisted session option, as 6.x's proxy allows
  CHECK(caps.get_bool("proxy"));
  CHECK(caps.get_string("proxy.hostname") == "relayhost");
}

TEST_CASE("requested display: 3.1's display string, or 6.x's session.display") {
  Value c31{Dict{}};
  c31.set("display", ":100");
  CHECK(RequestedDisplay(c31) == ":100");
  // 6.5.3 with tcp://.../1550: "display" is its own display caps dict, the target is session.display.
  Value c6{Dict{}};
  c6.set("display", Dict{{Value("show-desktop"), Value(true)}});
  c6.set("session", Dict{{Value("display"), Value("1550")}});
  CHECK(RequestedDisplay(c6) == ":1550");
  Value c6named{Dict{}};
  c6named.set("session", Dict{{Value("display"), Value(":7")}});
  CHECK(RequestedDisplay(c6named) == ":7");
  Value none{Dict{}};
  none.set("display", Dict{});
  CHECK(RequestedDisplay(none).empty());
}
