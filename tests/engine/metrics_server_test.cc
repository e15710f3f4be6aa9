// The Prometheus endpoint (engine/metrics_server.h) over real loopback sockets, and the
// relay's metric set (engine/relay_metrics.h) as it renders.
#include "engine/metrics_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "base/fd.h"
#include "engine/relay_metrics.h"

using namespace xr;
using namespace xr::engine;

namespace {

UniqueFd Connect(uint16_t port) {
  UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  return fd;
}

// Everything the server sends until it closes (or `timeout_ms` passes).
std::string ReadAll(int fd, int timeout_ms = 5000) {
  std::string out;
  auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < end) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 50) <= 0) continue;
    char buf[4096];
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

std::string Ask(uint16_t port, const std::string& request) {
  UniqueFd fd = Connect(port);
  REQUIRE(send(fd.get(), request.data(), request.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(request.size()));
  return ReadAll(fd.get());
}

}  // namespace

TEST_CASE("metrics answer: GET /metrics is the text format, other paths 404, other methods 405") {
  auto render = [] { return std::string("up 1\n"); };
  std::string ok = MetricsAnswer("GET", "/metrics", render);
  CHECK(ok.starts_with("HTTP/1.1 200 OK\r\n"));
  CHECK(ok.find("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n") != std::string::npos);
  CHECK(ok.find("Content-Length: 5\r\n") != std::string::npos);
  CHECK(ok.ends_with("\r\n\r\nup 1\n"));
  CHECK(MetricsAnswer("GET", "/metrics?name[]=x", render).ends_with("up 1\n"));
  std::string head = MetricsAnswer("HEAD", "/metrics", render);
  CHECK(head.find("Content-Length: 5\r\n") != std::string::npos);
  CHECK(head.ends_with("\r\n\r\n"));
  CHECK(MetricsAnswer("GET", "/", render).starts_with("HTTP/1.1 404 "));
  CHECK(MetricsAnswer("GET", "/metricsx", render).starts_with("HTTP/1.1 404 "));
  CHECK(MetricsAnswer("POST", "/metrics", render).starts_with("HTTP/1.1 405 "));
}

TEST_CASE("metrics server: serves scrapes over loopback, 404 elsewhere, a bad request its status") {
  std::atomic<int> renders{0};
  auto server = MetricsServer::Start(MetricsServerOptions{}, [&] {
    ++renders;
    return std::string("xpra_relay_test 42\n");
  });
  REQUIRE(server.ok());
  uint16_t port = (*server)->port();
  REQUIRE(port != 0);
  std::string a = Ask(port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK(a.starts_with("HTTP/1.1 200 OK\r\n"));
  CHECK(a.ends_with("\r\n\r\nxpra_relay_test 42\n"));
  // Byte by byte, as a slow scraper would.
  UniqueFd fd = Connect(port);
  for (char c : std::string("GET /metrics HTTP/1.0\r\n\r\n")) REQUIRE(send(fd.get(), &c, 1, MSG_NOSIGNAL) == 1);
  CHECK(ReadAll(fd.get()).ends_with("xpra_relay_test 42\n"));
  CHECK(Ask(port, "GET /other HTTP/1.1\r\nHost: x\r\n\r\n").starts_with("HTTP/1.1 404 "));
  CHECK(Ask(port, "BREW /metrics HTTP/1.1\r\nHost: x\r\n\r\n").starts_with("HTTP/1.1 405 "));
  CHECK(Ask(port, "not http at all\r\n\r\n").starts_with("HTTP/1.1 400 "));
  CHECK(renders.load() == 2);  // only the two real scrapes rendered
}

TEST_CASE("metrics server: a request over the size bound gets 431, nothing is rendered") {
  MetricsServerOptions o;
  o.max_request_bytes = 1024;
  std::atomic<int> renders{0};
  auto server = MetricsServer::Start(o, [&] {
    ++renders;
    return std::string("x 1\n");
  });
  REQUIRE(server.ok());
  std::string big = "GET /metrics HTTP/1.1\r\nX-Fill: " + std::string(4000, 'a') + "\r\n\r\n";
  std::string a = Ask((*server)->port(), big);
  CHECK(a.starts_with("HTTP/1.1 431 "));
  CHECK(renders.load() == 0);
}

TEST_CASE("metrics server: a scraper that never finishes its request is dropped after the timeout") {
  MetricsServerOptions o;
  o.timeout_ms = 300;
  auto server = MetricsServer::Start(o, [] { return std::string("x 1\n"); });
  REQUIRE(server.ok());
  UniqueFd fd = Connect((*server)->port());
  std::string part = "GET /metr";
  REQUIRE(send(fd.get(), part.data(), part.size(), MSG_NOSIGNAL) > 0);
  auto t0 = std::chrono::steady_clock::now();
  std::string got = ReadAll(fd.get(), 5000);
  auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
  CHECK(got.empty());  // closed without an answer
  CHECK(waited >= 250);
  CHECK(waited < 3000);
}

TEST_CASE("metrics server: more scrapers at once than the bound get 503; the others are still served") {
  MetricsServerOptions o;
  o.max_clients = 2;
  auto server = MetricsServer::Start(o, [] { return std::string("x 1\n"); });
  REQUIRE(server.ok());
  uint16_t port = (*server)->port();
  UniqueFd idle1 = Connect(port);
  UniqueFd idle2 = Connect(port);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // both accepted and held
  CHECK(Ask(port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").starts_with("HTTP/1.1 503 "));
  std::string req = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
  REQUIRE(send(idle1.get(), req.data(), req.size(), MSG_NOSIGNAL) > 0);
  CHECK(ReadAll(idle1.get()).ends_with("x 1\n"));
}

TEST_CASE("metrics server: an address that cannot be bound is a readable error") {
  auto first = MetricsServer::Start(MetricsServerOptions{}, [] { return std::string(); });
  REQUIRE(first.ok());
  MetricsServerOptions o;
  o.port = (*first)->port();
  auto second = MetricsServer::Start(o, [] { return std::string(); });
  REQUIRE_FALSE(second.ok());
  CHECK(second.error().message.find("--bind-metrics") != std::string::npos);
}

TEST_CASE("relay metrics: the families of issue 19, updated through the resolved children") {
  RelayMetricsSet& m = RelayMetricsSet::Get();
  m.SetBackend("io_uring");
  m.SetBuildInfo("9.9.9");
  m.Login(true, "authenticated");
  m.Login(false, "authentication");
  m.Login(false, "authentication");
  m.connections(ConnState::kRelaying, ConnTransport::kWss)->Add(3);
  m.bytes(ByteDir::kToClient, BytePath::kSplice)->Inc(1000);
  m.bytes(ByteDir::kToServer, BytePathOf("ws"))->Inc(7);
  m.LoginSeconds(ConnTransport::kTcp, 0.02);
  m.ServerHandshakeSeconds(0.003);
  std::string text = m.Render();
  auto has = [&](const std::string& line) {
    bool found = text.find(line + "\n") != std::string::npos;
    if (!found) MESSAGE("missing: " << line);
    return found;
  };
  CHECK(has("xpra_relay_logins_total{result=\"ok\",reason=\"authenticated\"} 1"));
  CHECK(has("xpra_relay_logins_total{result=\"failed\",reason=\"authentication\"} 2"));
  CHECK(has("xpra_relay_connections{state=\"relaying\",transport=\"wss\"} 3"));
  CHECK(has("xpra_relay_bytes_total{direction=\"to_client\",path=\"splice\"} 1000"));
  CHECK(has("xpra_relay_bytes_total{direction=\"to_server\",path=\"ws\"} 7"));
  CHECK(text.find("path=\"splice\"} 1000") != std::string::npos);
  CHECK(text.find("direction=\"to_server\",path=\"splice\"") == std::string::npos);
  CHECK(has("xpra_relay_login_seconds_bucket{transport=\"tcp\",le=\"0.025\"} 1"));
  CHECK(has("xpra_relay_login_seconds_bucket{transport=\"tcp\",le=\"0.01\"} 0"));
  CHECK(has("xpra_relay_server_handshake_seconds_count 1"));
  CHECK(has("xpra_relay_backend{backend=\"io_uring\"} 1"));
  CHECK(has("xpra_relay_build_info{version=\"9.9.9\"} 1"));
  CHECK(has("xpra_relay_backoff_addresses 0"));
  CHECK(has("# TYPE xpra_relay_prelogin_memory_bytes gauge"));
  CHECK(ConnTransportOf("wss") == ConnTransport::kWss);
  CHECK(ConnTransportOf("nonsense") == ConnTransport::kTcp);
  CHECK(BytePathOf("ssl") == BytePath::kTls);
  CHECK(BytePathOf("tcp") == BytePath::kCopy);
}
