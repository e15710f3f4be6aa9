#include "engine/config.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <algorithm>
#include <cctype>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>

#include "base/ip.h"

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
    // proxy-protocol=v1|v2 may stand anywhere among the options; the rest is auth=...
    std::string rest;
    for (size_t start = comma + 1; start <= text.size();) {
      size_t end = std::min(text.find(',', start), text.size());
      std::string item = text.substr(start, end - start);
      if (item.starts_with("proxy-protocol=")) {
        std::string v = item.substr(15);
        if (v != "v1" && v != "v2") {
          return MakeError(ErrorCode::kMalformed, "bind option '" + text + "': proxy-protocol must be v1 or v2");
        }
        b.proxy_protocol = v == "v1" ? 1 : 2;
      } else {
        rest += (rest.empty() ? "" : ",") + item;
      }
      start = end + 1;
    }
    if (!rest.empty() && !rest.starts_with("auth=")) {
      return MakeError(ErrorCode::kMalformed, "bind option '" + text +
                                                  "': expected auth=MODULE[,opt=value...] or proxy-protocol=v1|v2 "
                                                  "after the address");
    }
    if (!rest.empty()) b.auth = NormaliseAuthSpec(rest.substr(5));
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

namespace {

// What the options write into: the config, plus the raw values checked after parsing.
struct RawOptions {
  RelayConfig c;
  std::vector<std::string> tcp_binds, unix_binds, ssl_binds, ws_binds, wss_binds;
};

constexpr const char* kAppDescription =
      "xpra-relay: many xpra 3.1 sessions behind one port.\n"
      "Clients authenticate to the relay; it picks their session, connects to it and relays.\n"
      "Example: xpra-relay :20 --bind-tcp=0.0.0.0:14501 --tcp-auth=sqlite,filename=/var/lib/xpra-relay/users.db\n"
      "Cluster (--cluster): xpra-relay cluster list|info ID|stop ID|migrate (xpra-relay cluster --help)";

// --system-wide and starting sessions on demand (issue 15; docs/architecture.md "System-wide mode").
void AddSystemWideOptions(CLI::App& app, RawOptions& r) {
  app.add_option("--system-wide", r.c.system_wide,
                 "yes: sessions are the authenticated user's own: found by uid (from the auth module, else the "
                 "local account of the user name) in that user's socket dirs, owned by and served as that uid");
  app.add_option("--proxy-start-sessions", r.c.proxy_start_sessions,
                 "With --system-wide: start a session for a user who has none or whose client asks for one "
                 "(xpra start tcp://USER@RELAY/ --start=xterm)");
  app.add_option("--start-session-command", r.c.start_session_command,
                 "The launcher run to start a user's session (no shell; %u user, %U uid, %g gid, %h home, "
                 "%a xpra's arguments). Default: systemd-run --uid=%U ... xpra %a --daemon=no where systemd "
                 "is PID 1, else runuser -u %u -- xpra %a --daemon=no (both need root)")
      ->type_name("CMD");
  app.add_option("--start-session-timeout", r.c.start_session_timeout,
                 "Seconds a started session has to show its socket (then its launcher is killed)")
      ->check(CLI::Range(1.0, 600.0));
  app.add_option("--max-sessions-per-user", r.c.max_sessions_per_user,
                 "A user with this many live sessions gets no new one started")
      ->check(CLI::Range(uint64_t{1}, uint64_t{1000}));
  app.add_option("--max-concurrent-starts", r.c.max_concurrent_starts,
                 "Session starts in progress at once, relay-wide (each holds an auth thread while it waits)")
      ->check(CLI::Range(uint64_t{1}, uint64_t{64}));
  app.add_option("--start-session-min-uid", r.c.start_session_min_uid,
                 "Users below this uid never get a session started (root never does)")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 31));
}

// The cluster (issue 16; deploy/cluster/README.md).
void AddClusterOptions(CLI::App& app, RawOptions& r) {
  app.add_option("--cluster", r.c.cluster,
                 "Register this node and its relayed connections in this PostgreSQL database, with the other "
                 "nodes of the cluster (xpra_relay cluster list|info|stop works from any of them); the schema "
                 "is created or updated at start")
      ->type_name("postgresql://USER:PASS@HOST:PORT/DB");
  app.add_option("--cluster-node", r.c.cluster_node,
                 "This node's name in the cluster (letters, digits, . _ : @ -; default HOSTNAME:PORT of the first "
                 "tcp bind)")
      ->type_name("NAME");
  app.add_option("--cluster-heartbeat", r.c.cluster_heartbeat,
                 "Seconds between heartbeats (the node's row, its connections and their byte counts refreshed)")
      ->check(CLI::Range(0.2, 300.0));
  app.add_option("--cluster-ttl", r.c.cluster_ttl,
                 "Seconds without a heartbeat after which a node counts as dead: its rows are ignored and "
                 "deleted by the live nodes (longer than --cluster-heartbeat)")
      ->check(CLI::Range(1.0, 3600.0));
}

Status CheckCluster(const RelayConfig& c) {
  if (c.cluster.empty()) return Status::Ok();
  if (!c.cluster.starts_with("postgresql://") && !c.cluster.starts_with("postgres://")) {
    return MakeError(ErrorCode::kMalformed, "--cluster: expected a postgresql:// URI");
  }
  if (c.cluster_ttl <= c.cluster_heartbeat) {
    return MakeError(ErrorCode::kMalformed, fmt::format("--cluster-ttl={} must be longer than --cluster-heartbeat={}",
                                                        c.cluster_ttl, c.cluster_heartbeat));
  }
  return Status::Ok();
}

// Declares every option on `app`, writing into `r`.
void DefineOptions(CLI::App& app, RawOptions& r) {
  app.get_formatter()->column_width(44);
  app.add_option("--config", r.c.config_file,
                 std::string("Read options from FILE in xpra's 'key = value' syntax (every option is a key, without "
                             "'--'; repeat a key for several binds; # comments); default: ") +
                     kDefaultConfigFile + " when present ('none': no file). The command line wins over the file")
      ->type_name("FILE");
  app.add_option("display", r.c.display, "The relay's own display name (e.g. :20), for its control socket");
  app.add_option("--bind-tcp", r.tcp_binds,
                 "Listen on HOST:PORT; repeatable. Per-bind auth: HOST:PORT,auth=MODULE,opt=value,...")
      ->type_name("HOST:PORT[,auth=..]")
      ->allow_extra_args(false);  // one value per occurrence: a trailing :DISPLAY stays the display
  app.add_option("--tcp-auth", r.c.tcp_auth,
                 "Default auth for tcp binds: allow, none, reject|fail, password,value=X, env[,name=VAR], "
                 "file,filename=F, multifile,filename=F, sqlite,filename=DB[,password_query=..,sessions_query=..], "
                 "pam|sys[,service=xpra], ldap|ldap3,host=H[,port=..,tls=..], exec,command=PATH, peercred[,uid=..], postgresql,uri=postgresql://... "
                 "(MODULE:opt=value also accepted)")
      ->type_name("MODULE[,opt=value]");
  app.add_option("--bind-ssl", r.ssl_binds, "Listen for TLS on HOST:PORT (no sniff); repeatable, auth= as --bind-tcp")
      ->type_name("HOST:PORT[,auth=...]");
  app.add_option("--bind-ws", r.ws_binds, "Listen for WebSocket on HOST:PORT; repeatable, auth= as --bind-tcp")
      ->type_name("HOST:PORT[,auth=...]");
  app.add_option("--bind-wss", r.wss_binds, "Listen for WebSocket over TLS on HOST:PORT; repeatable, auth= as --bind-tcp")
      ->type_name("HOST:PORT[,auth=...]");
  app.add_option("--ssl-auth", r.c.ssl_auth, "Default auth for ssl binds (else --tcp-auth)")->type_name("MODULE[,opt=value]");
  app.add_option("--ws-auth", r.c.ws_auth, "Default auth for ws binds (else --tcp-auth)")->type_name("MODULE[,opt=value]");
  app.add_option("--wss-auth", r.c.wss_auth, "Default auth for wss binds (else --tcp-auth)")->type_name("MODULE[,opt=value]");
  app.add_option("--ssl", r.c.ssl, "TLS on tcp binds: on, off, auto (on when a certificate is given)")
      ->check(CLI::IsMember({"on", "off", "auto", "yes", "no", "true", "false"}));
  app.add_option("--ssl-cert", r.c.ssl_certs,
                 "PEM certificate (and key, unless --ssl-key); repeatable for SNI, or a directory of pairs")
      ->type_name("FILE|DIR");
  app.add_option("--ssl-key", r.c.ssl_keys, "PEM key of the --ssl-cert in the same position")->type_name("FILE");
  app.add_option("--ssl-ca-certs", r.c.ssl_ca_certs, "CA certificates for client certificates")->type_name("FILE|DIR");
  app.add_option("--ssl-client-verify-mode", r.c.ssl_client_verify_mode, "none, optional or required")
      ->check(CLI::IsMember({"none", "optional", "required"}));
  app.add_option("--ssl-protocols", r.c.ssl_protocols, "TLS versions (default TLSv1.2,TLSv1.3)");
  app.add_option("--ssl-ciphers", r.c.ssl_ciphers, "OpenSSL cipher list (default: forward-secret AEAD)");
  app.add_option("--html", r.c.html, "xpra's HTML5 client: on, off, auto or its DIR (auto: /usr/share/xpra/www when present)");
  app.add_option("--peek-timeout", r.c.peek_timeout, "Seconds a new connection has to send decisive first bytes")
      ->check(CLI::Range(0.1, 60.0));
  app.add_option("--ssl-handshake-timeout", r.c.ssl_handshake_timeout, "Seconds for a TLS handshake")
      ->check(CLI::Range(0.1, 300.0));
  app.add_option("--ssl-max-handshake-bytes", r.c.ssl_max_handshake_bytes, "Bytes a client may send during its TLS handshake")
      ->check(CLI::Range(uint64_t{4096}, uint64_t{1} << 20));
  app.add_option("--ssl-max-handshake-rate-per-address", r.c.ssl_max_handshake_rate_per_address,
                 "TLS handshakes one source address (IPv6: /64) may start per second; 0: no limit")
      ->check(CLI::Range(0.0, 1e6));
  app.add_option("--ssl-handshake-burst-per-address", r.c.ssl_handshake_burst_per_address,
                 "TLS handshakes one source address may start at once before the rate applies")
      ->check(CLI::Range(1u, 1000000u));
  app.add_option("--http-timeout", r.c.http_timeout, "Seconds for an HTTP request head")->check(CLI::Range(0.1, 300.0));
  app.add_option("--http-max-header-bytes", r.c.http_max_header_bytes, "Bytes of an HTTP request's header lines")
      ->check(CLI::Range(uint64_t{1024}, uint64_t{1} << 20));
  app.add_option("--websocket-max-frame", r.c.websocket_max_frame, "Bytes of one WebSocket frame's payload")
      ->check(CLI::Range(uint64_t{1024}, uint64_t{256} << 20));
  app.add_option("--bind", r.unix_binds, "Listen on a unix socket PATH; repeatable")
      ->type_name("PATH")
      ->allow_extra_args(false);
  app.add_option("--auth", r.c.unix_auth, "Auth for unix binds (same syntax as --tcp-auth)")->type_name("MODULE[,opt=value]");
  app.add_option("--socket-dir,--socket-dirs", r.c.socket_dirs,
                 "Where local sessions' sockets are found (HOSTNAME-N) and control sockets go; repeatable "
                 "(default, as xpra: /run/user/$UID/xpra, /run/xpra, ~/.xpra)")
      ->type_name("DIR")
      ->allow_extra_args(false);
  app.add_option("--tcp-encryption", r.c.tcp_encryption, "AES: require AES-CBC on client legs of tcp binds")
      ->check(CLI::IsMember({"", "AES"}));
  app.add_option("--tcp-encryption-keyfile", r.c.tcp_encryption_keyfile, "File holding the AES key")->type_name("FILE");
  app.add_option("--threads", r.c.threads, "Reactor threads (default: one per core)")->check(CLI::Range(0, 256));
  app.add_option("--auth-threads", r.c.auth_threads, "Threads for blocking auth work (SQLite, files)")->check(CLI::Range(1, 64));
  app.add_option("-d,--debug", r.c.debug, "Debug log categories: conn,auth,net,engine or all")->type_name("CATEGORIES");
  app.add_option("--log-file", r.c.log_file, "Log to FILE instead of stderr (re-opened on SIGHUP)")->type_name("FILE");
  app.add_option("--login-timeout", r.c.login_timeout, "Seconds a client has to complete its login")->check(CLI::Range(0.1, 3600.0));
  app.add_option("--server-timeout", r.c.server_timeout, "Seconds to connect to a session and get its hello")->check(CLI::Range(0.1, 3600.0));
  app.add_option("--max-packet-size", r.c.max_packet_size,
                 "Largest packet accepted from a client, during login and while relaying, bytes (default 16 MiB, "
                 "max 256 MiB)")
      ->check(CLI::Range(uint64_t{1024}, uint64_t{256} << 20));
  app.add_option("--max-server-packet-size", r.c.max_server_packet_size,
                 "Largest packet accepted from a session's server, bytes (default and max 256 MiB, xpra's "
                 "absolute limit; xpra's own proxy allows 16 x the server's max desktop width x height)")
      ->check(CLI::Range(uint64_t{1024}, uint64_t{256} << 20));
  app.add_option("--idle-timeout", r.c.idle_timeout,
                 "Seconds a relayed connection's client or server may send the relay nothing, or leave what "
                 "it sends them unread, before the connection is ended and both ends are told why; 0 = never "
                 "(default 90, xpra's own ping timeout: xpra clients and servers ping every 5 s)")
      ->check(CLI::Range(0.0, 86400.0));
  app.add_option("--max-connections", r.c.max_connections, "Connections accepted at once, per reactor thread")
      ->check(CLI::Range(uint64_t{1}, uint64_t{1000000}));
  app.add_option("--max-logins", r.c.max_logins, "Logins in progress at once, relay-wide (more are turned away)")
      ->check(CLI::Range(uint64_t{1}, uint64_t{100000}));
  app.add_option("--max-connections-per-address", r.c.max_per_address,
                 "Connections from one source address at once (0 = no cap)");
  app.add_option("--max-logins-per-address", r.c.max_logins_per_address,
                 "Logins in progress at once from one source (an IPv4 address, an IPv6 /64); more get "
                 "'too many logins from your address' (default 16, well below --max-logins; 0 = no cap)");
  app.add_option("--max-login-packet-size", r.c.max_login_packet_size,
                 "Largest frame a client may send before it has logged in, on the wire and decoded, bytes; "
                 "also bounds each frame a session's server sends before its hello (default 1 MiB; a real "
                 "xpra 3.1.3 hello is 23 KB compressed, 67 KB decoded)")
      ->check(CLI::Range(uint64_t{4096}, uint64_t{256} << 20));
  app.add_option("--max-login-elements", r.c.max_login_elements,
                 "Values one decoded packet may hold before login (default 100,000; a real hello has ~6,000)")
      ->check(CLI::Range(uint64_t{1000}, uint64_t{1} << 20));
  app.add_option("--max-login-memory", r.c.max_login_memory,
                 "Bytes all connections that have not logged in yet may make the relay hold together "
                 "(buffered frames, decoded hellos); a connection that would go over is closed with "
                 "'server error' (default 256 MiB)")
      ->check(CLI::Range(uint64_t{1} << 20, uint64_t{1} << 40));
  app.add_option("--max-kdf-iterations", r.c.max_kdf_iterations,
                 "PBKDF2 iterations per second the relay spends on AES keys for clients that have not "
                 "logged in, relay-wide (default 200,000: 100 logins/s at xpra's 1,000; over it: "
                 "'server error: the relay is too busy to set up encryption now')")
      ->check(CLI::Range(uint64_t{10000}, uint64_t{100000000}));
  app.add_option("--login-failures", r.c.login_failures,
                 "Failed logins allowed per source address and per user before a doubling back-off "
                 "(1 s, 2 s, ... up to 5 min) refuses further attempts");
  app.add_option("--splice", r.c.splice_min,
                 "Move the payload of server->client packets at least this large (bytes) with splice(2), "
                 "without copying through the relay, when neither leg is encrypted (0 = always copy)")
      ->type_name("BYTES");
  app.add_option("--recv-buffers", r.c.recv_buffers,
                 "Shared receive buffers per reactor thread (a power of two, 1-32768); a receive that finds "
                 "them all in use reads into a 16 KiB buffer of its connection's own instead")
      ->check(CLI::Range(uint64_t{1}, uint64_t{32768}));
  app.add_option("--recv-buffer-size", r.c.recv_buffer_size, "Bytes in each shared receive buffer (4 KiB-1 MiB)")
      ->check(CLI::Range(uint64_t{4096}, uint64_t{1} << 20));
  app.add_option("--proxy-sockets", r.c.proxy_sockets,
                 "A :proxy-N control socket per relayed connection (turn off for very large deployments; "
                 "the relay's own :DISPLAY socket still lists and stops instances)");
  app.add_option("--socket-group", r.c.socket_group, "Let this group use the control sockets too (mode 0660)")
      ->type_name("GROUP");
  app.add_option("--io", r.c.io,
                 "I/O backend: auto (io_uring when it works here, else epoll: e.g. under a container's "
                 "default seccomp profile), uring (fail when io_uring cannot run), epoll")
      ->check(CLI::IsMember({"auto", "uring", "epoll"}))
      ->type_name("auto|uring|epoll");
  app.add_option("--bind-metrics", r.c.bind_metrics,
                 "Serve Prometheus metrics (GET /metrics, plain HTTP) on HOST:PORT; keep it on a private address")
      ->type_name("HOST:PORT");
  app.add_option("--proxy-protocol-from", r.c.proxy_protocol_from,
                 "Proxies allowed to send a PROXY protocol header on binds with proxy-protocol=v1|v2 "
                 "(e.g. --bind-tcp=0.0.0.0:14501,proxy-protocol=v2); others are refused")
      ->type_name("CIDR,...");
  app.add_option("--log-format", r.c.log_format,
                 "text: one line per event; json: one JSON object per line (time, level, category, message, "
                 "conn for a connection's lines), for container stdout")
      ->check(CLI::IsMember({"text", "json"}));
  AddSystemWideOptions(app, r);
  AddClusterOptions(app, r);
  app.add_option("--takeover", r.c.takeover,
                 "Start by taking the listening sockets of the relay running with this control socket (its "
                 ":DISPLAY socket): it stops accepting once this one accepts, and drains its sessions")
      ->type_name("SOCKET");
  app.add_option("--drain-timeout", r.c.drain_timeout,
                 "After handing the sockets to a new relay (--takeover), seconds to keep relaying the sessions "
                 "still up before telling them 'server shutdown' (default 0: until they end)")
      ->check(CLI::Range(0.0, 365.0 * 86400));
}

// --bind-metrics and the PROXY protocol options (issue 19).
Status CheckOperations(const RelayConfig& c) {
  if (!c.bind_metrics.empty()) {
    auto b = ParseTcpBind(c.bind_metrics);
    if (!b.ok() || !b->auth.empty() || b->proxy_protocol != 0) {
      return MakeError(ErrorCode::kMalformed, "--bind-metrics=" + c.bind_metrics + ": expected HOST:PORT");
    }
  }
  auto from = CidrList::Parse(c.proxy_protocol_from);
  if (!from.ok()) return MakeError(ErrorCode::kMalformed, "--proxy-protocol-from: " + from.error().message);
  for (const auto& b : c.binds) {
    if (b.proxy_protocol != 0 && from->empty()) {
      return MakeError(ErrorCode::kMalformed, fmt::format("bind {}:{} has proxy-protocol=v{}: give "
                                                          "--proxy-protocol-from=CIDR,... (the proxies allowed to send it)",
                                                          b.host, b.port, b.proxy_protocol));
    }
  }
  return Status::Ok();
}

// The checks and defaults that need every option at once.
// --proxy-start-sessions needs --system-wide, and a start must leave auth threads for logins.
Status CheckSystemWide(const RelayConfig& c) {
  if (!c.proxy_start_sessions) return Status::Ok();
  if (!c.system_wide) {
    return MakeError(ErrorCode::kMalformed, "--proxy-start-sessions needs --system-wide (sessions are started per user)");
  }
  if (c.max_concurrent_starts >= static_cast<uint64_t>(c.auth_threads)) {
    return MakeError(ErrorCode::kMalformed,
                     fmt::format("--max-concurrent-starts={} must be below --auth-threads={}: each start holds an "
                                 "auth thread while it waits, and logins need one too",
                                 c.max_concurrent_starts, c.auth_threads));
  }
  return Status::Ok();
}

Expected<RelayConfig> Finish(RawOptions& r) {
  RelayConfig& c = r.c;
  if (!c.display.empty() && c.display.front() != ':') c.display = ":" + c.display;
  if ((c.recv_buffers & (c.recv_buffers - 1)) != 0) {
    return MakeError(ErrorCode::kMalformed,
                     fmt::format("--recv-buffers={} is not a power of two (the kernel's buffer ring needs one)",
                                 c.recv_buffers));
  }
  if (c.socket_dirs.empty()) c.socket_dirs = {"/run/user/$UID/xpra", "/run/xpra", "~/.xpra"};  // xpra's defaults
  for (const auto& t : r.tcp_binds) {
    auto b = ParseTcpBind(t);
    if (!b.ok()) return b.error();
    c.binds.push_back(*b);
  }
  for (auto [list, entry] : {std::pair{&r.ssl_binds, BindOption::Entry::kSsl}, {&r.ws_binds, BindOption::Entry::kWs},
                              {&r.wss_binds, BindOption::Entry::kWss}}) {
    for (const auto& t : *list) {
      auto b = ParseTcpBind(t);
      if (!b.ok()) return b.error();
      b->entry = entry;
      if (b->auth.empty()) {
        const std::string& d = entry == BindOption::Entry::kSsl ? c.ssl_auth : entry == BindOption::Entry::kWs ? c.ws_auth : c.wss_auth;
        b->auth = NormaliseAuthSpec(d);
      }
      c.binds.push_back(*b);
    }
  }
  if (c.ssl == "yes" || c.ssl == "true") c.ssl = "on";
  if (c.ssl == "no" || c.ssl == "false") c.ssl = "off";
  if (!c.ssl_keys.empty() && c.ssl_keys.size() != c.ssl_certs.size()) {
    return MakeError(ErrorCode::kMalformed, fmt::format("{} --ssl-key for {} --ssl-cert: give one key per certificate (or none)",
                                                        c.ssl_keys.size(), c.ssl_certs.size()));
  }
  bool wants_tls = c.ssl == "on";
  for (const auto& b : c.binds) wants_tls |= b.entry == BindOption::Entry::kSsl || b.entry == BindOption::Entry::kWss;
  if (wants_tls && c.ssl_certs.empty()) {
    return MakeError(ErrorCode::kMalformed, "TLS (--ssl=on, --bind-ssl or --bind-wss) needs --ssl-cert=FILE");
  }
  for (const auto& p : r.unix_binds) {
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
  if (Status st = CheckOperations(c); !st.ok()) return st.error();
  if (c.tcp_encryption == "AES" && c.tcp_encryption_keyfile.empty()) {
    return MakeError(ErrorCode::kMalformed, "--tcp-encryption=AES needs --tcp-encryption-keyfile=FILE");
  }
  if (Status s = CheckSystemWide(c); !s.ok()) return s.error();
  if (Status s = CheckCluster(c); !s.ok()) return s.error();
  return c;
}

Error ParseFailure(const CLI::ParseError& e) { return MakeError(ErrorCode::kMalformed, e.what()); }

// CLI11 parses a vector given in reverse order.
void ParseArgs(CLI::App& app, std::vector<std::string> args) {
  std::reverse(args.begin(), args.end());
  app.parse(args);
}

bool FileExists(const std::string& path) {
  std::error_code ec;
  return std::filesystem::exists(path, ec);
}

}  // namespace

Expected<std::vector<ConfigEntry>> ReadConfigText(std::string_view text, const std::string& name) {
  constexpr size_t kMaxConfigBytes = 1u << 20;
  if (text.size() > kMaxConfigBytes) return MakeError(ErrorCode::kTooLarge, name + ": over 1 MiB, not a config file?");
  std::vector<ConfigEntry> entries;
  std::string pending;  // a line continued with a trailing backslash
  int pending_line = 0;
  int line_no = 0;
  auto trim = [](std::string_view v) {
    while (!v.empty() && std::isspace(static_cast<unsigned char>(v.front()))) v.remove_prefix(1);
    while (!v.empty() && std::isspace(static_cast<unsigned char>(v.back()))) v.remove_suffix(1);
    return v;
  };
  auto finish = [&](const std::string& logical, int at) -> Status {
    size_t eq = logical.find('=');
    if (eq == std::string::npos) {
      return MakeError(ErrorCode::kMalformed, fmt::format("{}:{}: expected 'key = value'", name, at));
    }
    std::string_view key = trim(std::string_view(logical).substr(0, eq));
    if (key.empty()) return MakeError(ErrorCode::kMalformed, fmt::format("{}:{}: no key before '='", name, at));
    entries.push_back(ConfigEntry{std::string(key), std::string(trim(std::string_view(logical).substr(eq + 1))), at});
    return Status::Ok();
  };
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view raw = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    ++line_no;
    std::string_view line = trim(raw);
    if (line.empty() || line.front() == '#' || line.front() == '!') continue;  // as xpra: before joining
    if (pending.empty()) pending_line = line_no;
    if (line.back() == '\\') {
      pending += std::string(line.substr(0, line.size() - 1)) + " ";
      continue;
    }
    pending += line;
    if (Status s = finish(pending, pending_line); !s.ok()) return s.error();
    pending.clear();
  }
  if (!pending.empty()) {
    if (Status s = finish(pending, pending_line); !s.ok()) return s.error();
  }
  return entries;
}

Expected<std::vector<ConfigEntry>> ReadConfigFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return MakeError(ErrorCode::kIo, "cannot read the config file " + path);
  std::string text;
  char buf[65536];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    text.append(buf, static_cast<size_t>(in.gcount()));
    if (text.size() > (1u << 20)) break;
  }
  if (in.bad()) return MakeError(ErrorCode::kIo, "cannot read the config file " + path);
  return ReadConfigText(text, path);
}

Expected<RelayConfig> ParseConfiguration(const std::vector<std::string>& args, const std::string& default_config) {
  // 1. The command line alone: its errors, --help, --config, and which keys it sets.
  RawOptions cli;
  CLI::App cli_app{kAppDescription, "xpra-relay"};
  DefineOptions(cli_app, cli);
  try {
    ParseArgs(cli_app, args);
  } catch (const CLI::CallForHelp&) {
    return MakeError(ErrorCode::kOk, cli_app.help());
  } catch (const CLI::ParseError& e) {
    return ParseFailure(e);
  }
  std::string file = cli.c.config_file;
  if (file == "none") {
    file.clear();  // --config=none: no file, not even the default
  } else if (file.empty() && FileExists(default_config)) {
    file = default_config;
  }

  // 2. The file: each line checked on its own, so an error names its line.
  std::vector<std::string> merged;
  std::string file_display;
  std::map<std::string, int> first_line;  // key -> line, for keys that take one value
  if (!file.empty()) {
    auto entries = ReadConfigFile(file);
    if (!entries.ok()) return entries.error();
    for (const auto& e : *entries) {
      std::string where = fmt::format("{}:{}: ", file, e.line);
      if (e.key == "config") return MakeError(ErrorCode::kMalformed, where + "config files do not nest ('config' key)");
      if (e.key == "help") return MakeError(ErrorCode::kMalformed, where + "'help' is not a config key");
      const CLI::Option* opt = cli_app.get_option_no_throw(e.key == "display" ? "display" : "--" + e.key);
      if (opt == nullptr || e.key.starts_with("-")) {
        return MakeError(ErrorCode::kMalformed, where + "unknown option '" + e.key + "' (see xpra-relay --help)");
      }
      if (opt->count() > 0) continue;  // the command line wins
      if (opt->get_expected_max() <= 1) {
        auto [it, fresh] = first_line.emplace(opt->get_name(), e.line);
        if (!fresh) {
          return MakeError(ErrorCode::kMalformed,
                           where + fmt::format("'{}' given again (first on line {}); only bind keys and "
                                               "socket-dir repeat", e.key, it->second));
        }
      }
      if (e.key == "display") {
        file_display = e.value;
        continue;
      }
      std::string arg = "--" + e.key + "=" + e.value;
      RawOptions one;
      CLI::App one_app{kAppDescription, "xpra-relay"};
      DefineOptions(one_app, one);
      try {
        ParseArgs(one_app, {arg});
      } catch (const CLI::ParseError& err) {
        return MakeError(ErrorCode::kMalformed, where + err.what());
      }
      merged.push_back(std::move(arg));
    }
  }

  // 3. File lines first, then the command line, parsed together.
  merged.insert(merged.end(), args.begin(), args.end());
  RawOptions all;
  CLI::App app{kAppDescription, "xpra-relay"};
  DefineOptions(app, all);
  try {
    ParseArgs(app, merged);
  } catch (const CLI::ParseError& e) {
    return ParseFailure(e);
  }
  if (all.c.display.empty()) all.c.display = file_display;
  all.c.config_file = file;
  return Finish(all);
}

namespace {

// A bind as the command line spells it, without its auth spec.
std::string BindText(const BindOption& b) {
  if (b.kind == BindOption::Kind::kUnix) return b.path;
  std::string host = b.host.find(':') != std::string::npos ? "[" + b.host + "]" : b.host;
  std::string prefix = b.entry == BindOption::Entry::kTcp ? "" : std::string(BindEntryName(b.entry)) + "://";
  return prefix + host + ":" + std::to_string(b.port);
}

}  // namespace

const char* BindEntryName(BindOption::Entry e) {
  switch (e) {
    case BindOption::Entry::kTcp: return "tcp";
    case BindOption::Entry::kSsl: return "ssl";
    case BindOption::Entry::kWs: return "ws";
    case BindOption::Entry::kWss: return "wss";
  }
  return "?";
}

std::vector<std::string> ConfigChanges(const RelayConfig& a, const RelayConfig& b) {
  std::vector<std::string> out;
  auto value = [&](const char* key, const auto& x, const auto& y) {
    if (x != y) out.push_back(fmt::format("{}: {} -> {}", key, x, y));
  };
  auto secret = [&](const char* key, const std::string& x, const std::string& y) {
    if (x != y) out.push_back(std::string(key) + " changed");
  };
  auto text = [](const std::string& s) { return s.empty() ? std::string("(none)") : s; };
  value("display", text(a.display), text(b.display));
  for (auto kind : {BindOption::Kind::kTcp, BindOption::Kind::kUnix}) {
    const char* key = kind == BindOption::Kind::kTcp ? "bind-tcp" : "bind";
    auto find = [&](const RelayConfig& c, const BindOption& want) -> const BindOption* {
      for (const auto& x : c.binds) {
        if (x.kind == kind && BindText(x) == BindText(want)) return &x;
      }
      return nullptr;
    };
    for (const auto& x : b.binds) {
      if (x.kind != kind) continue;
      const BindOption* old = find(a, x);
      if (old == nullptr) out.push_back(fmt::format("{} added {}", key, BindText(x)));
      else if (old->auth != x.auth) out.push_back(fmt::format("{} {}: auth changed", key, BindText(x)));
    }
    for (const auto& x : a.binds) {
      if (x.kind == kind && find(b, x) == nullptr) out.push_back(fmt::format("{} removed {}", key, BindText(x)));
    }
  }
  secret("tcp-auth", a.tcp_auth, b.tcp_auth);
  secret("ssl-auth", a.ssl_auth, b.ssl_auth);
  secret("ws-auth", a.ws_auth, b.ws_auth);
  secret("wss-auth", a.wss_auth, b.wss_auth);
  value("ssl", a.ssl, b.ssl);
  if (a.ssl_certs != b.ssl_certs || a.ssl_keys != b.ssl_keys) out.push_back("ssl-cert/ssl-key changed");
  value("html", a.html, b.html);
  secret("auth", a.unix_auth, b.unix_auth);
  if (a.socket_dirs != b.socket_dirs) {
    out.push_back(fmt::format("socket-dir: {} -> {}", fmt::join(a.socket_dirs, ","), fmt::join(b.socket_dirs, ",")));
  }
  value("tcp-encryption", text(a.tcp_encryption), text(b.tcp_encryption));
  secret("tcp-encryption-keyfile", a.tcp_encryption_keyfile, b.tcp_encryption_keyfile);
  value("threads", a.threads, b.threads);
  value("auth-threads", a.auth_threads, b.auth_threads);
  value("debug", text(a.debug), text(b.debug));
  value("log-file", text(a.log_file), text(b.log_file));
  value("log-format", a.log_format, b.log_format);
  value("io", a.io, b.io);
  value("login-timeout", a.login_timeout, b.login_timeout);
  value("server-timeout", a.server_timeout, b.server_timeout);
  value("max-packet-size", a.max_packet_size, b.max_packet_size);
  value("max-server-packet-size", a.max_server_packet_size, b.max_server_packet_size);
  value("idle-timeout", a.idle_timeout, b.idle_timeout);
  value("max-connections", a.max_connections, b.max_connections);
  value("max-logins", a.max_logins, b.max_logins);
  value("max-connections-per-address", a.max_per_address, b.max_per_address);
  value("login-failures", a.login_failures, b.login_failures);
  value("max-logins-per-address", a.max_logins_per_address, b.max_logins_per_address);
  value("max-login-packet-size", a.max_login_packet_size, b.max_login_packet_size);
  value("max-login-elements", a.max_login_elements, b.max_login_elements);
  value("max-login-memory", a.max_login_memory, b.max_login_memory);
  value("max-kdf-iterations", a.max_kdf_iterations, b.max_kdf_iterations);
  value("splice", a.splice_min, b.splice_min);
  value("recv-buffers", a.recv_buffers, b.recv_buffers);
  value("recv-buffer-size", a.recv_buffer_size, b.recv_buffer_size);
  value("proxy-sockets", a.proxy_sockets, b.proxy_sockets);
  value("socket-group", text(a.socket_group), text(b.socket_group));
  // Issue 19: the metrics endpoint and the PROXY protocol.
  value("bind-metrics", text(a.bind_metrics), text(b.bind_metrics));
  value("proxy-protocol-from", text(a.proxy_protocol_from), text(b.proxy_protocol_from));
  auto version = [](int v) { return v == 0 ? std::string("off") : "v" + std::to_string(v); };
  for (const auto& x : b.binds) {
    for (const auto& y : a.binds) {
      if (x.kind == y.kind && BindText(x) == BindText(y) && x.proxy_protocol != y.proxy_protocol) {
        out.push_back(fmt::format("bind {}: proxy-protocol {} -> {}", BindText(x), version(y.proxy_protocol),
                                  version(x.proxy_protocol)));
      }
    }
  }
  value("peek-timeout", a.peek_timeout, b.peek_timeout);
  value("ssl-handshake-timeout", a.ssl_handshake_timeout, b.ssl_handshake_timeout);
  value("ssl-max-handshake-bytes", a.ssl_max_handshake_bytes, b.ssl_max_handshake_bytes);
  value("http-timeout", a.http_timeout, b.http_timeout);
  value("http-max-header-bytes", a.http_max_header_bytes, b.http_max_header_bytes);
  value("websocket-max-frame", a.websocket_max_frame, b.websocket_max_frame);
  value("ssl-ca-certs", text(a.ssl_ca_certs), text(b.ssl_ca_certs));
  value("ssl-client-verify-mode", text(a.ssl_client_verify_mode), text(b.ssl_client_verify_mode));
  value("ssl-protocols", a.ssl_protocols, b.ssl_protocols);
  value("ssl-ciphers", text(a.ssl_ciphers), text(b.ssl_ciphers));
  value("drain-timeout", a.drain_timeout, b.drain_timeout);
  value("system-wide", a.system_wide, b.system_wide);
  value("proxy-start-sessions", a.proxy_start_sessions, b.proxy_start_sessions);
  value("start-session-command", text(a.start_session_command), text(b.start_session_command));
  value("start-session-timeout", a.start_session_timeout, b.start_session_timeout);
  value("max-sessions-per-user", a.max_sessions_per_user, b.max_sessions_per_user);
  value("max-concurrent-starts", a.max_concurrent_starts, b.max_concurrent_starts);
  value("start-session-min-uid", a.start_session_min_uid, b.start_session_min_uid);
  if (a.cluster != b.cluster) out.push_back("cluster: changed (the URI is not shown)");
  value("cluster-node", text(a.cluster_node), text(b.cluster_node));
  value("cluster-heartbeat", a.cluster_heartbeat, b.cluster_heartbeat);
  value("cluster-ttl", a.cluster_ttl, b.cluster_ttl);
  return out;
}

Expected<RelayConfig> ParseCommandLine(int argc, char** argv) {
  std::vector<std::string> args(argv + (argc > 0 ? 1 : 0), argv + argc);
  auto c = ParseConfiguration(args);
  if (!c.ok() && c.error().code == ErrorCode::kOk) {
    std::cout << c.error().message;
    return MakeError(ErrorCode::kOk, "");
  }
  return c;
}

}  // namespace xr::engine
