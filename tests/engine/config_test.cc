#include "engine/config.h"

#include <doctest/doctest.h>

#include <vector>

using namespace xr;
using namespace xr::engine;

namespace {
Expected<RelayConfig> Parse(std::vector<std::string> args) {
  args.insert(args.begin(), "xpra-relay");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  return ParseCommandLine(static_cast<int>(argv.size()), argv.data());
}
}  // namespace

TEST_CASE("tcp bind with per-bind auth") {
  auto b = ParseTcpBind("127.0.0.1:14501,auth=sqlite,filename=/x.db");
  REQUIRE(b.ok());
  CHECK(b->host == "127.0.0.1");
  CHECK(b->port == 14501);
  CHECK(b->auth == "sqlite,filename=/x.db");
}

TEST_CASE("bind errors are readable") {
  CHECK(ParseTcpBind("nohostport").error().message.find("HOST:PORT") != std::string::npos);
  CHECK(ParseTcpBind("1.2.3.4:99999").error().message.find("invalid port") != std::string::npos);
  CHECK(ParseTcpBind("1.2.3.4:1,filename=x").error().message.find("auth=") != std::string::npos);
}

TEST_CASE("ipv6 and wildcard hosts") {
  CHECK(ParseTcpBind("[::1]:1").value().host == "::1");
  CHECK(ParseTcpBind(":1").value().host == "0.0.0.0");
}

TEST_CASE("MODULE:opt=value is normalised") {
  CHECK(NormaliseAuthSpec("sqlite:filename=/x") == "sqlite,filename=/x");
  CHECK(NormaliseAuthSpec("sqlite,filename=/a:b") == "sqlite,filename=/a:b");
  CHECK(NormaliseAuthSpec("none") == "none");
}

TEST_CASE("full command line") {
  auto c = Parse({"20", "--bind-tcp=127.0.0.1:14501", "--tcp-auth=sqlite:filename=/db", "--socket-dir=/tmp/s",
                  "--threads=2", "--login-timeout=5", "--bind=/tmp/relay.sock", "--auth=none"});
  REQUIRE(c.ok());
  CHECK(c->display == ":20");
  CHECK(c->binds.size() == 2);
  CHECK(c->tcp_auth == "sqlite,filename=/db");
  CHECK(c->threads == 2);
  CHECK(c->login_timeout == 5);
  CHECK(c->socket_dirs == std::vector<std::string>{"/tmp/s"});
}

TEST_CASE("refuses to start without auth or listeners, or AES without a key") {
  CHECK(Parse({}).error().message.find("nothing to listen on") != std::string::npos);
  CHECK(Parse({"--bind-tcp=127.0.0.1:1"}).error().message.find("--tcp-auth") != std::string::npos);
  CHECK(Parse({"--bind-tcp=127.0.0.1:1", "--tcp-auth=none", "--tcp-encryption=AES"}).error().message.find("keyfile") !=
        std::string::npos);
  CHECK(!Parse({"--bind-tcp=127.0.0.1:1", "--tcp-auth=none", "--threads=-1"}).ok());
  CHECK(!Parse({"--bogus"}).ok());
}

TEST_CASE("a display after repeatable options stays the display") {
  auto c = Parse({"--bind-tcp=127.0.0.1:1", "--tcp-auth=none", "--socket-dir=/tmp/d", ":78"});
  REQUIRE(c.ok());
  CHECK(c->display == ":78");
  CHECK(c->binds.size() == 1);
  CHECK(c->socket_dirs == std::vector<std::string>{"/tmp/d"});
  auto d = Parse({"--tcp-auth=none", "--socket-dir=/tmp/d", "--bind-tcp=127.0.0.1:0", ":47999"});
  REQUIRE(d.ok());
  CHECK(d->display == ":47999");
  CHECK(d->binds.size() == 1);  // not a second listener on port 47999
}

TEST_CASE("receive buffer ring size: a power of two within bounds") {
  auto c = Parse({"--bind-tcp=127.0.0.1:1", "--tcp-auth=none", "--recv-buffers=1024", "--recv-buffer-size=16384"});
  REQUIRE(c.ok());
  CHECK(c->recv_buffers == 1024);
  CHECK(c->recv_buffer_size == 16384);
  auto odd = Parse({"--bind-tcp=127.0.0.1:1", "--tcp-auth=none", "--recv-buffers=300"});
  REQUIRE(!odd.ok());
  CHECK(odd.error().message.find("not a power of two") != std::string::npos);
  CHECK(!Parse({"--bind-tcp=127.0.0.1:1", "--tcp-auth=none", "--recv-buffers=65536"}).ok());
  CHECK(!Parse({"--bind-tcp=127.0.0.1:1", "--tcp-auth=none", "--recv-buffer-size=100"}).ok());
}

TEST_CASE("server packet size: default, value, bounds") {
  auto d = Parse({"--bind-tcp=127.0.0.1:1", "--tcp-auth=none"});
  REQUIRE(d.ok());
  CHECK(d->max_server_packet_size == uint64_t{256} << 20);  // xpra's absolute packet limit
  CHECK(d->max_packet_size == uint64_t{16} << 20);
  auto c = Parse({"--bind-tcp=127.0.0.1:1", "--tcp-auth=none", "--max-server-packet-size=65536"});
  REQUIRE(c.ok());
  CHECK(c->max_server_packet_size == 65536);
  CHECK(!Parse({"--bind-tcp=127.0.0.1:1", "--tcp-auth=none", "--max-server-packet-size=100"}).ok());
  CHECK(!Parse({"--bind-tcp=127.0.0.1:1", "--tcp-auth=none", "--max-server-packet-size=268435457"}).ok());
}

TEST_CASE("idle timeout: default, fractions, 0 = off, bounds") {
  auto d = Parse({"--bind-tcp=127.0.0.1:1", "--tcp-auth=none"});
  REQUIRE(d.ok());
  CHECK(d->idle_timeout == 90);  // xpra's own proxy ping timeout
  auto c = Parse({"--bind-tcp=127.0.0.1:1", "--tcp-auth=none", "--idle-timeout=2.5"});
  REQUIRE(c.ok());
  CHECK(c->idle_timeout == 2.5);
  auto off = Parse({"--bind-tcp=127.0.0.1:1", "--tcp-auth=none", "--idle-timeout=0"});
  REQUIRE(off.ok());
  CHECK(off->idle_timeout == 0);
  CHECK(!Parse({"--bind-tcp=127.0.0.1:1", "--tcp-auth=none", "--idle-timeout=-1"}).ok());
  CHECK(!Parse({"--bind-tcp=127.0.0.1:1", "--tcp-auth=none", "--idle-timeout=86401"}).ok());
}
