#pragma once
// MetricsServer: `GET /metrics` over plain HTTP for Prometheus (--bind-metrics=HOST:PORT).
//
// One dedicated thread with its own poll() loop, apart from the reactors: scrapes are rare
// (one a second or less), rendering reads only relaxed atomics, and a slow or hostile scraper
// can then never delay a relayed byte. Every connection answers one request and closes.
// Bounded: the request head (size, and time from accept to the last byte of the answer) and
// the connections served at once (more are answered 503 and closed at once). Any other path is
// 404, any other method 405; no peer bytes are ever logged.

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "base/fd.h"
#include "base/status.h"

namespace xr::engine {

struct MetricsServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 0;               // 0: any free port (port() says which)
  size_t max_request_bytes = 8192;  // the whole request head -> 431 past it
  int64_t timeout_ms = 5000;       // accept -> answer sent; then the connection is dropped
  size_t max_clients = 8;          // served at once; more -> 503
};

class MetricsServer {
 public:
  using RenderFn = std::function<std::string()>;  // the exposition text (called on the server's thread)

  // Binds and starts the thread; a readable error when the address cannot be bound.
  static Expected<std::unique_ptr<MetricsServer>> Start(MetricsServerOptions options, RenderFn render);
  // Stops the thread (open scrapes are dropped).
  ~MetricsServer();

  uint16_t port() const { return port_; }

 private:
  MetricsServer(MetricsServerOptions options, RenderFn render) : options_(std::move(options)), render_(std::move(render)) {}
  void Run();

  MetricsServerOptions options_;
  RenderFn render_;
  UniqueFd listen_;
  UniqueFd wake_;  // eventfd: the destructor's stop request
  uint16_t port_ = 0;
  std::thread thread_;
};

// The answer to one request head (exposed for tests): 200 with the text for GET /metrics (and
// GET /metrics?query), a head only for HEAD, 404 for other paths, 405 for other methods.
std::string MetricsAnswer(std::string_view method, std::string_view target, const std::function<std::string()>& render);

}  // namespace xr::engine
