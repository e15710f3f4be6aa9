#include "engine/config.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <charconv>
#include <iostream>

namespace xr::engine {

std::string NormaliseAuthSpec(const std::string& spec) {
  size_t colon = spec.find(':');
  size_t comma = spec.find(',');
  if (colon != std::string::npos && (comma == std::string::npos || colon < comma)) {
    return spec.substr(0, colon) + "," + spec.substr(colon + 1);
  }
  return spec;
}

Expected<BindOption> ParseTcpBind(const std::string& text) {
  BindOption b;
  std::string addr = text;
  size_t comma = text.find(',');
  if (comma != std::string::npos) {
    addr = text.substr(0, comma);
    std::string rest = text.substr(comma + 1);
    if (!rest.starts_with("auth=")) {
      return MakeError(ErrorCode::kMalformed, "bind option '" + text + "': expected auth=MODULE[,opt=value...] after the address");
    }
    b.auth = NormaliseAuthSpec(rest.substr(5));
  }
  size_t colon = addr.rfind(':');
  if (colon == std::string::npos) return MakeError(ErrorCode::kMalformed, "bind address '" + addr + "' must be HOST:PORT");
  b.host = addr.substr(0, colon);
  if (b.host.size() >= 2 && b.host.front() == '[' && b.host.back() == ']') b.host = b.host.substr(1, b.host.size() - 2);
  if (b.host.empty() || b.host == "*") b.host = "0.0.0.0";
  std::string port = addr.substr(colon + 1);
  unsigned v = 0;
  auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), v);
  if (ec != std::errc() || p != port.data() + port.size() || v > 65535) {
    return MakeError(ErrorCode::kMalformed, "bind address '" + addr + "': invalid port '" + port + "'");
  }
  b.port = static_cast<uint16_t>(v);
  return b;
}

Expected<RelayConfig> ParseCommandLine(int argc, char** argv) {
  RelayConfig c;
  CLI::App app{
      "xpra-relay: many xpra 3.1 sessions behind one port.\n"
      "Clients authenticate to the relay; it picks their session, connects to it and relays.\n"
      "Example: xpra-relay :20 --bind-tcp=0.0.0.0:14501 --tcp-auth=sqlite,filename=/var/lib/xpra-relay/users.db",
      "xpra-relay"};
  app.get_formatter()->column_width(44);
  std::vector<std::string> tcp_binds, unix_binds;
  app.add_option("display", c.display, "The relay's own display name (e.g. :20), for its control socket");
  app.add_option("--bind-tcp", tcp_binds,
                 "Listen on HOST:PORT; repeatable. Per-bind auth: HOST:PORT,auth=MODULE,opt=value,...")
      ->type_name("HOST:PORT[,auth=..]")
      ->allow_extra_args(false);  // one value per occurrence: a trailing :DISPLAY stays the display
  app.add_option("--tcp-auth", c.tcp_auth,
                 "Default auth for tcp binds: allow, none, reject|fail, password,value=X, env[,name=VAR], "
                 "file,filename=F, multifile,filename=F, sqlite,filename=DB[,password_query=..,sessions_query=..] "
                 "(MODULE:opt=value also accepted)")
      ->type_name("MODULE[,opt=value]");
  app.add_option("--bind", unix_binds, "Listen on a unix socket PATH; repeatable")
      ->type_name("PATH")
      ->allow_extra_args(false);
  app.add_option("--auth", c.unix_auth, "Auth for unix binds (same syntax as --tcp-auth)")->type_name("MODULE[,opt=value]");
  app.add_option("--socket-dir,--socket-dirs", c.socket_dirs,
                 "Where local sessions' sockets are found (HOSTNAME-N) and control sockets go; repeatable "
                 "(default, as xpra: /run/user/$UID/xpra, /run/xpra, ~/.xpra)")
      ->type_name("DIR")
      ->allow_extra_args(false);
  app.add_option("--tcp-encryption", c.tcp_encryption, "AES: require AES-CBC on client legs of tcp binds")
      ->check(CLI::IsMember({"", "AES"}));
  app.add_option("--tcp-encryption-keyfile", c.tcp_encryption_keyfile, "File holding the AES key")->type_name("FILE");
  app.add_option("--threads", c.threads, "Reactor threads (default: one per core)")->check(CLI::Range(0, 256));
  app.add_option("--auth-threads", c.auth_threads, "Threads for blocking auth work (SQLite, files)")->check(CLI::Range(1, 64));
  app.add_option("-d,--debug", c.debug, "Debug log categories: conn,auth,net,engine or all")->type_name("CATEGORIES");
  app.add_option("--log-file", c.log_file, "Log to FILE instead of stderr (re-opened on SIGHUP)")->type_name("FILE");
  app.add_option("--login-timeout", c.login_timeout, "Seconds a client has to complete its login")->check(CLI::Range(0.1, 3600.0));
  app.add_option("--server-timeout", c.server_timeout, "Seconds to connect to a session and get its hello")->check(CLI::Range(0.1, 3600.0));
  app.add_option("--max-packet-size", c.max_packet_size,
                 "Largest packet accepted from a client, during login and while relaying, bytes (default 16 MiB, "
                 "max 256 MiB)")
      ->check(CLI::Range(uint64_t{1024}, uint64_t{256} << 20));
  app.add_option("--max-server-packet-size", c.max_server_packet_size,
                 "Largest packet accepted from a session's server, bytes (default and max 256 MiB, xpra's "
                 "absolute limit; xpra's own proxy allows 16 x the server's max desktop width x height)")
      ->check(CLI::Range(uint64_t{1024}, uint64_t{256} << 20));
  app.add_option("--idle-timeout", c.idle_timeout,
                 "Seconds a relayed connection's client or server may send the relay nothing, or leave what "
                 "it sends them unread, before the connection is ended and both ends are told why; 0 = never "
                 "(default 90, xpra's own ping timeout: xpra clients and servers ping every 5 s)")
      ->check(CLI::Range(0.0, 86400.0));
  app.add_option("--max-connections", c.max_connections, "Connections accepted at once, per reactor thread")
      ->check(CLI::Range(uint64_t{1}, uint64_t{1000000}));
  app.add_option("--max-logins", c.max_logins, "Logins in progress at once, relay-wide (more are turned away)")
      ->check(CLI::Range(uint64_t{1}, uint64_t{100000}));
  app.add_option("--max-connections-per-address", c.max_per_address,
                 "Connections from one source address at once (0 = no cap)");
  app.add_option("--login-failures", c.login_failures,
                 "Failed logins allowed per source address and per user before a doubling back-off "
                 "(1 s, 2 s, ... up to 5 min) refuses further attempts");
  app.add_option("--splice", c.splice_min,
                 "Move the payload of server->client packets at least this large (bytes) with splice(2), "
                 "without copying through the relay, when neither leg is encrypted (0 = always copy)")
      ->type_name("BYTES");
  app.add_option("--recv-buffers", c.recv_buffers,
                 "Shared receive buffers per reactor thread (a power of two, 1-32768); a receive that finds "
                 "them all in use reads into a 16 KiB buffer of its connection's own instead")
      ->check(CLI::Range(uint64_t{1}, uint64_t{32768}));
  app.add_option("--recv-buffer-size", c.recv_buffer_size, "Bytes in each shared receive buffer (4 KiB-1 MiB)")
      ->check(CLI::Range(uint64_t{4096}, uint64_t{1} << 20));
  app.add_option("--proxy-sockets", c.proxy_sockets,
                 "A :proxy-N control socket per relayed connection (turn off for very large deployments; "
                 "the relay's own :DISPLAY socket still lists and stops instances)");
  app.add_option("--socket-group", c.socket_group, "Let this group use the control sockets too (mode 0660)")
      ->type_name("GROUP");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    std::cout << app.help();
    return MakeError(ErrorCode::kOk, "");
  } catch (const CLI::ParseError& e) {
    return MakeError(ErrorCode::kMalformed, e.what());
  }
  if (!c.display.empty() && c.display.front() != ':') c.display = ":" + c.display;
  if ((c.recv_buffers & (c.recv_buffers - 1)) != 0) {
    return MakeError(ErrorCode::kMalformed,
                     fmt::format("--recv-buffers={} is not a power of two (the kernel's buffer ring needs one)",
                                 c.recv_buffers));
  }
  if (c.socket_dirs.empty()) c.socket_dirs = {"/run/user/$UID/xpra", "/run/xpra", "~/.xpra"};  // xpra's defaults
  for (const auto& t : tcp_binds) {
    auto b = ParseTcpBind(t);
    if (!b.ok()) return b.error();
    c.binds.push_back(*b);
  }
  for (const auto& p : unix_binds) {
    BindOption b;
    b.kind = BindOption::Kind::kUnix;
    b.path = p;
    c.binds.push_back(b);
  }
  c.tcp_auth = NormaliseAuthSpec(c.tcp_auth);
  c.unix_auth = NormaliseAuthSpec(c.unix_auth);
  if (c.binds.empty()) return MakeError(ErrorCode::kMalformed, "nothing to listen on: give --bind-tcp=HOST:PORT or --bind=PATH");
  for (const auto& b : c.binds) {
    const std::string& auth = !b.auth.empty() ? b.auth : (b.kind == BindOption::Kind::kTcp ? c.tcp_auth : c.unix_auth);
    if (auth.empty()) {
      return MakeError(ErrorCode::kMalformed,
                       b.kind == BindOption::Kind::kTcp
                           ? "no authentication for tcp bind " + b.host + ":" + std::to_string(b.port) +
                                 ": give --tcp-auth=MODULE (e.g. sqlite,filename=users.db; 'none' to allow everyone)"
                           : "no authentication for unix bind " + b.path + ": give --auth=MODULE");
    }
  }
  if (c.tcp_encryption == "AES" && c.tcp_encryption_keyfile.empty()) {
    return MakeError(ErrorCode::kMalformed, "--tcp-encryption=AES needs --tcp-encryption-keyfile=FILE");
  }
  return c;
}

}  // namespace xr::engine
