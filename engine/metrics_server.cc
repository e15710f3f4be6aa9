#include "engine/metrics_server.h"

#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>
#include <netinet/in.h>

#include <cerrno>
#include <vector>

#include <fmt/format.h>

#include "codec/http_request.h"
#include "codec/http_response.h"
#include "engine/limits.h"
#include "engine/listen.h"
#include "engine/log.h"
#include "engine/metrics.h"

namespace xr::engine {
namespace {

struct Client {
  UniqueFd fd;
  http::RequestParser parser;
  size_t received = 0;
  std::string out;  // the answer; empty while the request is being read
  size_t sent = 0;
  int64_t deadline_ms = 0;
};

// Non-blocking send of what is left; false when the connection is done (all sent or failed).
bool SendSome(Client& c) {
  while (c.sent < c.out.size()) {
    ssize_t n = ::send(c.fd.get(), c.out.data() + c.sent, c.out.size() - c.sent, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    if (n <= 0) return false;
    c.sent += static_cast<size_t>(n);
  }
  return false;
}

}  // namespace

std::string MetricsAnswer(std::string_view method, std::string_view target, const std::function<std::string()>& render) {
  std::string_view path = target.substr(0, target.find('?'));
  if (path != "/metrics") return http::SimpleResponse(404);
  if (method != "GET" && method != "HEAD") return http::SimpleResponse(405, "Allow: GET, HEAD\r\n");
  std::string body = render();
  std::string out = fmt::format("HTTP/1.1 200 OK\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                                metrics::Registry::kContentType, body.size());
  if (method == "GET") out += body;
  return out;
}

Expected<std::unique_ptr<MetricsServer>> MetricsServer::Start(MetricsServerOptions options, RenderFn render) {
  std::unique_ptr<MetricsServer> s(new MetricsServer(std::move(options), std::move(render)));
  auto fd = OpenTcpListener(s->options_.host, s->options_.port, /*reuseport=*/false, /*check_free=*/false);
  if (!fd.ok()) return MakeError(fd.error().code, "--bind-metrics: " + fd.error().message);
  s->listen_ = std::move(*fd);
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  getsockname(s->listen_.get(), reinterpret_cast<sockaddr*>(&ss), &len);
  s->port_ = ss.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port)
                                      : ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  s->wake_.reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!s->wake_.valid()) return MakeError(ErrorCode::kIo, "--bind-metrics: eventfd: " + log::ErrnoText(errno));
  MetricsServer* raw = s.get();
  s->thread_ = std::thread([raw] {
    pthread_setname_np(pthread_self(), "xr-metrics");
    raw->Run();
  });
  return s;
}

MetricsServer::~MetricsServer() {
  if (thread_.joinable()) {
    uint64_t one = 1;
    ssize_t n = write(wake_.get(), &one, sizeof one);
    (void)n;
    thread_.join();
  }
}

void MetricsServer::Run() {
  std::vector<std::unique_ptr<Client>> clients;
  http::RequestLimits limits;
  limits.max_request_line = options_.max_request_bytes;
  limits.max_header_bytes = options_.max_request_bytes;
  limits.max_header_count = 32;
  while (true) {
    std::vector<pollfd> fds;
    fds.push_back({wake_.get(), POLLIN, 0});
    fds.push_back({listen_.get(), POLLIN, 0});
    int64_t now = NowMs();
    int64_t next = -1;
    for (const auto& c : clients) {
      fds.push_back({c->fd.get(), static_cast<short>(c->out.empty() ? POLLIN : POLLOUT), 0});
      int64_t left = std::max<int64_t>(0, c->deadline_ms - now);
      next = next < 0 ? left : std::min(next, left);
    }
    int rc = poll(fds.data(), fds.size(), static_cast<int>(next));
    if (rc < 0 && errno != EINTR) {
      XR_ERROR("metrics", "metrics server: poll: {}; no more scrapes", log::ErrnoText(errno));
      return;
    }
    if (fds[0].revents != 0) return;  // stop requested
    now = NowMs();
    std::vector<std::unique_ptr<Client>> keep;
    for (size_t i = 0; i < clients.size(); ++i) {
      Client& c = *clients[i];
      short ev = fds[i + 2].revents;
      bool open = true;
      if (now >= c.deadline_ms) {
        XR_DEBUG("metrics", "metrics scrape dropped: no complete request and answer within {} ms", options_.timeout_ms);
        open = false;
      } else if (ev != 0 && c.out.empty()) {
        char buf[4096];
        ssize_t n = ::recv(c.fd.get(), buf, sizeof buf, MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
          open = false;
        } else if (n > 0) {
          c.received += static_cast<size_t>(n);
          size_t used = 0;
          http::ParseStatus st = c.parser.Feed(std::string_view(buf, static_cast<size_t>(n)), &used);
          if (c.received > options_.max_request_bytes + 4 && st == http::ParseStatus::kNeedMore) {
            c.out = http::SimpleResponse(431);
          } else if (st == http::ParseStatus::kError) {
            c.out = http::SimpleResponse(c.parser.error_status());
          } else if (st == http::ParseStatus::kDone) {
            c.out = MetricsAnswer(c.parser.request().method, c.parser.request().target, render_);
          }
          if (!c.out.empty()) open = SendSome(c);
        }
      } else if (ev != 0) {
        open = SendSome(c);
      }
      if (open) keep.push_back(std::move(clients[i]));
    }
    clients.swap(keep);
    if (fds[1].revents != 0) {
      while (true) {
        UniqueFd fd(accept4(listen_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
        if (!fd.valid()) break;
        if (clients.size() >= options_.max_clients) {
          XR_DEBUG("metrics", "metrics scrape refused: {} already being served", clients.size());
          std::string busy = http::SimpleResponse(503);
          ssize_t n = ::send(fd.get(), busy.data(), busy.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
          (void)n;
          continue;
        }
        auto c = std::make_unique<Client>(Client{std::move(fd), http::RequestParser(limits), 0, {}, 0, now + options_.timeout_ms});
        clients.push_back(std::move(c));
      }
    }
  }
}

}  // namespace xr::engine
