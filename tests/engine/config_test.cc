#include "engine/config.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <stdlib.h>

using namespace xr;
using namespace xr::engine;

namespace {
// Never the machine's own /etc/xpra-relay/xpra-relay.conf.
const std::string kNoDefault = "/nonexistent/xpra-relay.conf";

Expected<RelayConfig> Parse(std::vector<std::string> args) { return ParseConfiguration(args, kNoDefault); }
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

TEST_CASE("ssl, ws and wss binds: --ssl-auth, --ws-auth, --wss-auth, else --tcp-auth; auth= on the bind wins") {
  auto c = Parse({"--ssl-cert=/x/cert.pem", "--tcp-auth=none", "--bind-tcp=127.0.0.1:1", "--bind-ssl=127.0.0.1:2",
                  "--bind-ws=127.0.0.1:3", "--bind-wss=127.0.0.1:4", "--bind-wss=127.0.0.1:5,auth=allow",
                  "--ssl-auth=password:value=x", "--wss-auth=reject"});
  REQUIRE(c.ok());
  REQUIRE(c->binds.size() == 5);
  using E = BindOption::Entry;
  CHECK((c->binds[0].entry == E::kTcp && c->binds[0].auth.empty()));  // --tcp-auth at start-up
  CHECK((c->binds[1].entry == E::kSsl && c->binds[1].port == 2 && c->binds[1].auth == "password,value=x"));
  CHECK((c->binds[2].entry == E::kWs && c->binds[2].auth.empty()));  // no --ws-auth: --tcp-auth
  CHECK((c->binds[3].entry == E::kWss && c->binds[3].auth == "reject"));
  CHECK((c->binds[4].entry == E::kWss && c->binds[4].auth == "allow"));
  // TLS binds without a certificate: refused with the option to give.
  CHECK(Parse({"--tcp-auth=none", "--bind-wss=127.0.0.1:4"}).error().message.find("--ssl-cert") != std::string::npos);
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

// --- config file ---

namespace {

struct TempConfig {
  std::string dir, path;
  explicit TempConfig(const std::string& text) {
    char tmpl[] = "/tmp/xr-config-test-XXXXXX";
    REQUIRE(mkdtemp(tmpl) != nullptr);
    dir = tmpl;
    path = dir + "/xpra-relay.conf";
    std::ofstream(path) << text;
  }
  ~TempConfig() {
    std::filesystem::remove_all(dir);
  }
};

Expected<RelayConfig> WithFile(const TempConfig& f, std::vector<std::string> args = {}) {
  args.insert(args.begin(), "--config=" + f.path);
  return ParseConfiguration(args, kNoDefault);
}

}  // namespace

TEST_CASE("config text: xpra's syntax, comments, repeats, continuation, line numbers") {
  auto e = ReadConfigText("# comment\n\n  ! also a comment\nbind-tcp = 0.0.0.0:1\nbind-tcp=0.0.0.0:2\n"
                          "tcp-auth = sqlite,filename=/a=b \\\n  ,password_query=x\n  threads =   2  \n",
                          "f.conf");
  REQUIRE(e.ok());
  REQUIRE(e->size() == 4);
  CHECK((*e)[0].key == "bind-tcp");
  CHECK((*e)[0].value == "0.0.0.0:1");
  CHECK((*e)[0].line == 4);
  CHECK((*e)[1].value == "0.0.0.0:2");
  CHECK((*e)[2].key == "tcp-auth");
  CHECK((*e)[2].value == "sqlite,filename=/a=b  ,password_query=x");
  CHECK((*e)[2].line == 6);
  CHECK((*e)[3].key == "threads");
  CHECK((*e)[3].value == "2");
  CHECK((*e)[3].line == 8);
}

TEST_CASE("config text: a line without '=' or without a key names the file and line") {
  CHECK(ReadConfigText("threads = 1\nbind-tcp 0.0.0.0:1\n", "/etc/x.conf").error().message ==
        "/etc/x.conf:2: expected 'key = value'");
  CHECK(ReadConfigText("\n\n = 3\n", "f").error().message == "f:3: no key before '='");
  CHECK(ReadConfigText(std::string(2u << 20, '#'), "big").error().code == ErrorCode::kTooLarge);
  auto empty = ReadConfigText("debug =\n", "f");
  REQUIRE(empty.ok());
  CHECK((*empty)[0].value.empty());
}

TEST_CASE("config file: every option as a key, repeatable binds, display") {
  TempConfig f(
      "# relay\n"
      "display = :31\n"
      "bind-tcp = 127.0.0.1:14501\n"
      "bind-tcp = 127.0.0.1:14502,auth=none\n"
      "bind = /tmp/xr-relay.sock\n"
      "tcp-auth = sqlite:filename=/var/lib/xpra-relay/users.db\n"
      "auth = allow\n"
      "socket-dir = /tmp/s1\n"
      "socket-dir = /tmp/s2\n"
      "threads = 3\n"
      "login-timeout = 7.5\n"
      "max-connections-per-address = 9\n"
      "proxy-sockets = no\n"
      "log-format = json\n"
      "debug = conn,auth\n");
  auto c = WithFile(f);
  REQUIRE(c.ok());
  CHECK(c->display == ":31");
  REQUIRE(c->binds.size() == 3);
  CHECK(c->binds[0].port == 14501);
  CHECK(c->binds[1].auth == "none");
  CHECK(c->binds[2].path == "/tmp/xr-relay.sock");
  CHECK(c->tcp_auth == "sqlite,filename=/var/lib/xpra-relay/users.db");
  CHECK(c->unix_auth == "allow");
  CHECK(c->socket_dirs == std::vector<std::string>{"/tmp/s1", "/tmp/s2"});
  CHECK(c->threads == 3);
  CHECK(c->login_timeout == 7.5);
  CHECK(c->max_per_address == 9);
  CHECK(!c->proxy_sockets);
  CHECK(c->log_format == "json");
  CHECK(c->debug == "conn,auth");
  CHECK(c->config_file == f.path);
}

TEST_CASE("config file: the command line wins, for repeatable keys as a whole") {
  TempConfig f("bind-tcp = 127.0.0.1:1\nbind-tcp = 127.0.0.1:2\ntcp-auth = none\nthreads = 3\ndisplay = :5\n");
  auto c = WithFile(f, {"--threads=1", "--bind-tcp=127.0.0.1:9", ":6"});
  REQUIRE(c.ok());
  CHECK(c->threads == 1);
  REQUIRE(c->binds.size() == 1);
  CHECK(c->binds[0].port == 9);
  CHECK(c->display == ":6");
  CHECK(c->tcp_auth == "none");  // not on the command line: from the file
}

TEST_CASE("config file: errors name the file and the line") {
  {
    TempConfig f("tcp-auth = none\n\nbogus-option = 1\n");
    CHECK(WithFile(f).error().message == f.path + ":3: unknown option 'bogus-option' (see xpra-relay --help)");
  }
  {
    TempConfig f("# x\nthreads = lots\n");
    auto e = WithFile(f);
    REQUIRE(!e.ok());
    CHECK(e.error().message.starts_with(f.path + ":2: "));
    CHECK(e.error().message.find("threads") != std::string::npos);
  }
  {
    TempConfig f("threads = 999\n");
    CHECK(WithFile(f).error().message.starts_with(f.path + ":1: "));
  }
  {
    TempConfig f("log-format = yaml\n");
    CHECK(WithFile(f).error().message.starts_with(f.path + ":1: "));
  }
  {
    TempConfig f("threads = 1\n\nthreads = 2\n");
    CHECK(WithFile(f).error().message.find(f.path + ":3: 'threads' given again (first on line 1)") == 0);
  }
  {
    TempConfig f("config = /etc/other.conf\n");
    CHECK(WithFile(f).error().message.find(":1: config files do not nest") != std::string::npos);
  }
  {
    TempConfig f("--threads = 2\n");
    CHECK(WithFile(f).error().message.find(":1: unknown option") != std::string::npos);
  }
  {
    TempConfig f("bind-tcp = nohostport\ntcp-auth = none\n");
    CHECK(WithFile(f).error().message.find("HOST:PORT") != std::string::npos);  // checked after the merge
  }
}

TEST_CASE("config file: --config must exist; the default is read only when present") {
  auto missing = ParseConfiguration({"--config=/nonexistent/x.conf"}, kNoDefault);
  REQUIRE(!missing.ok());
  CHECK(missing.error().message == "cannot read the config file /nonexistent/x.conf");
  // No file at the default path: the command line alone.
  auto none = ParseConfiguration({"--bind-tcp=127.0.0.1:1", "--tcp-auth=none"}, kNoDefault);
  REQUIRE(none.ok());
  CHECK(none->config_file.empty());
  // A file at the default path is read without --config.
  TempConfig f("bind-tcp = 127.0.0.1:4\ntcp-auth = none\n");
  auto dflt = ParseConfiguration({}, f.path);
  REQUIRE(dflt.ok());
  CHECK(dflt->binds.at(0).port == 4);
  CHECK(dflt->config_file == f.path);
  // --config=none: not even the default.
  auto off = ParseConfiguration({"--config=none", "--bind-tcp=127.0.0.1:5", "--tcp-auth=none"}, f.path);
  REQUIRE(off.ok());
  CHECK(off->config_file.empty());
  CHECK(off->binds.at(0).port == 5);
  CHECK(off->binds.size() == 1);
}

TEST_CASE("config: parsing is repeatable and has no side effects (what a reload validates)") {
  TempConfig f("bind-tcp = 127.0.0.1:4\ntcp-auth = none\nmax-logins = 50\n");
  auto a = WithFile(f);
  auto b = WithFile(f);
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  CHECK(a->max_logins == 50);
  CHECK(b->max_logins == 50);
  std::ofstream(f.path) << "bind-tcp = 127.0.0.1:4\ntcp-auth = none\nmax-logins = 0\n";  // invalid now
  auto bad = WithFile(f);
  REQUIRE(!bad.ok());
  CHECK(bad.error().message.starts_with(f.path + ":3: "));
}

TEST_CASE("config: --help comes back as text, not printed") {
  auto h = ParseConfiguration({"--help"}, kNoDefault);
  REQUIRE(!h.ok());
  CHECK(h.error().code == ErrorCode::kOk);
  CHECK(h.error().message.find("--config") != std::string::npos);
  CHECK(h.error().message.find("--log-format") != std::string::npos);
}

TEST_CASE("config: the sample deploy/xpra-relay.conf parses") {
  auto c = ParseConfiguration({"--config=deploy/xpra-relay.conf"}, kNoDefault);
  if (!c.ok()) FAIL(c.error().message);
  CHECK(!c->binds.empty());
}

TEST_CASE("config changes: what a reload would log, secrets named not shown") {
  TempConfig f("bind-tcp = 127.0.0.1:1\nbind-tcp = 127.0.0.1:2\ntcp-auth = password,value=old-secret\nthreads = 2\n");
  auto a = WithFile(f);
  REQUIRE(a.ok());
  CHECK(ConfigChanges(*a, *a).empty());
  auto b = WithFile(f, {"--bind-tcp=127.0.0.1:2,auth=none", "--bind-tcp=[::1]:3", "--tcp-auth=password,value=new-secret",
                        "--threads=4", "--max-logins=10", "--log-format=json", "--bind=/tmp/r.sock", "--auth=none"});
  REQUIRE(b.ok());
  auto changes = ConfigChanges(*a, *b);
  std::vector<std::string> want = {"bind-tcp 127.0.0.1:2: auth changed",
                                   "bind-tcp added [::1]:3",
                                   "bind-tcp removed 127.0.0.1:1",
                                   "bind added /tmp/r.sock",
                                   "tcp-auth changed",
                                   "auth changed",
                                   "threads: 2 -> 4",
                                   "log-format: text -> json",
                                   "max-logins: 200 -> 10"};
  CHECK(changes == want);
  for (const auto& c : changes) {
    CHECK(c.find("secret") == std::string::npos);
  }
}

TEST_CASE("issue 19: proxy-protocol=v1|v2 per bind, anywhere among its options") {
  auto a = ParseTcpBind("127.0.0.1:14501,proxy-protocol=v2");
  REQUIRE(a.ok());
  CHECK(a->proxy_protocol == 2);
  CHECK(a->auth.empty());
  auto b = ParseTcpBind("127.0.0.1:14501,proxy-protocol=v1,auth=sqlite,filename=/x.db");
  REQUIRE(b.ok());
  CHECK(b->proxy_protocol == 1);
  CHECK(b->auth == "sqlite,filename=/x.db");
  auto c = ParseTcpBind("127.0.0.1:14501,auth=sqlite,filename=/x.db,proxy-protocol=v2");
  REQUIRE(c.ok());
  CHECK(c->proxy_protocol == 2);
  CHECK(c->auth == "sqlite,filename=/x.db");
  CHECK(ParseTcpBind("127.0.0.1:1").value().proxy_protocol == 0);
  auto bad = ParseTcpBind("127.0.0.1:1,proxy-protocol=v3");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().message.find("v1 or v2") != std::string::npos);
  CHECK_FALSE(ParseTcpBind("127.0.0.1:1,proxy=v2").ok());
}

TEST_CASE("issue 19: a proxy-protocol bind needs --proxy-protocol-from; bad ranges and metrics binds are refused") {
  auto missing = Parse({"--bind-tcp=127.0.0.1:1,proxy-protocol=v2", "--tcp-auth=none"});
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().message.find("--proxy-protocol-from") != std::string::npos);
  auto ok = Parse({"--bind-ssl=127.0.0.1:1,proxy-protocol=v1", "--ssl-cert=/c.pem", "--tcp-auth=none",
                   "--proxy-protocol-from=10.0.0.0/8,::1", "--bind-metrics=127.0.0.1:9100"});
  REQUIRE(ok.ok());
  CHECK(ok->binds[0].proxy_protocol == 1);
  CHECK(ok->proxy_protocol_from == "10.0.0.0/8,::1");
  CHECK(ok->bind_metrics == "127.0.0.1:9100");
  auto range = Parse({"--bind-tcp=127.0.0.1:1", "--tcp-auth=none", "--proxy-protocol-from=10.1.2.3/8"});
  REQUIRE_FALSE(range.ok());
  CHECK(range.error().message.find("--proxy-protocol-from") != std::string::npos);
  auto metrics = Parse({"--bind-tcp=127.0.0.1:1", "--tcp-auth=none", "--bind-metrics=nonsense"});
  REQUIRE_FALSE(metrics.ok());
  CHECK(metrics.error().message.find("--bind-metrics") != std::string::npos);
}

TEST_CASE("issue 19: ConfigChanges names metrics and PROXY protocol changes") {
  auto a = Parse({"--bind-tcp=127.0.0.1:1", "--tcp-auth=none"});
  auto b = Parse({"--bind-tcp=127.0.0.1:1,proxy-protocol=v2", "--tcp-auth=none", "--proxy-protocol-from=10.0.0.1",
                  "--bind-metrics=127.0.0.1:9150"});
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  auto changes = ConfigChanges(*a, *b);
  auto has = [&](const std::string& item) { return std::find(changes.begin(), changes.end(), item) != changes.end(); };
  CHECK(has("bind-metrics: (none) -> 127.0.0.1:9150"));
  CHECK(has("proxy-protocol-from: (none) -> 10.0.0.1"));
  CHECK(has("bind 127.0.0.1:1: proxy-protocol off -> v2"));
  CHECK(ConfigChanges(*b, *b).empty());
}

TEST_CASE("system-wide mode: off by default; starting sessions needs it and leaves auth threads free") {
  auto d = Parse({"--bind-tcp=127.0.0.1:1", "--tcp-auth=none"});
  REQUIRE(d.ok());
  CHECK(!d->system_wide);
  CHECK(!d->proxy_start_sessions);
  CHECK(d->max_sessions_per_user == 4);
  CHECK(d->max_concurrent_starts == 2);
  auto c = Parse({"--bind-tcp=127.0.0.1:1", "--tcp-auth=none", "--system-wide=yes", "--proxy-start-sessions=yes",
                  "--start-session-command=runuser -u %u -- xpra %a", "--start-session-timeout=5",
                  "--max-sessions-per-user=2", "--start-session-min-uid=500"});
  REQUIRE(c.ok());
  CHECK(c->system_wide);
  CHECK(c->start_session_command == "runuser -u %u -- xpra %a");
  CHECK(c->start_session_timeout == 5);
  CHECK(c->max_sessions_per_user == 2);
  CHECK(c->start_session_min_uid == 500);
  auto no_sw = Parse({"--bind-tcp=127.0.0.1:1", "--tcp-auth=none", "--proxy-start-sessions=yes"});
  REQUIRE(!no_sw.ok());
  CHECK(no_sw.error().message.find("needs --system-wide") != std::string::npos);
  auto busy = Parse({"--bind-tcp=127.0.0.1:1", "--tcp-auth=none", "--system-wide=yes", "--proxy-start-sessions=yes",
                     "--auth-threads=2", "--max-concurrent-starts=2"});
  REQUIRE(!busy.ok());
  CHECK(busy.error().message.find("must be below --auth-threads=2") != std::string::npos);
  CHECK(!Parse({"--bind-tcp=127.0.0.1:1", "--tcp-auth=none", "--start-session-timeout=0"}).ok());
}
