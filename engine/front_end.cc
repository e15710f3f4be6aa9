#include "engine/front_end.h"

#include <unistd.h>

#include <cstdio>
#include <ctime>

#include "codec/http_response.h"

namespace xr::engine {

const char* EntryName(FrontEndConfig::Entry e) {
  switch (e) {
    case FrontEndConfig::Entry::kTcp: return "tcp";
    case FrontEndConfig::Entry::kSsl: return "ssl";
    case FrontEndConfig::Entry::kWs: return "ws";
    case FrontEndConfig::Entry::kWss: return "wss";
  }
  return "?";
}

FrontEnd::FrontEnd(std::shared_ptr<const FrontEndConfig> config, int64_t now_ms, std::string source)
    : config_(std::move(config)), parser_(config_->http), source_(std::move(source)) {
  deadline_ms_ = now_ms + config_->sniff.timeout_ms;
  if (config_->entry == FrontEndConfig::Entry::kWs) {
    phase_ = Phase::kHttpHead;
    deadline_ms_ = now_ms + config_->http.head_timeout_ms;
  }
}

FrontEnd::~FrontEnd() = default;

const char* FrontEnd::phase() const {
  switch (phase_) {
    case Phase::kSniff: return "first bytes";
    case Phase::kTlsHandshake: return "TLS handshake";
    case Phase::kHttpHead: return "HTTP request head";
    case Phase::kKeepAlive: return "HTTP keep-alive";
    case Phase::kDone: return "done";
  }
  return "?";
}

const char* FrontEnd::transport_name() const {
  if (ws_) return tls_ ? "wss" : "ws";
  return tls_ ? "ssl" : "tcp";
}

std::unique_ptr<Transport> FrontEnd::TakeTransport() {
  if (tls_ && ws_) return std::make_unique<StackedTransport>(std::move(tls_), std::move(ws_), "wss");
  if (tls_) return std::move(tls_);
  if (ws_) return std::move(ws_);
  return std::make_unique<PlainTransport>();
}

void FrontEnd::TakeTlsOutput(std::vector<std::string>* sends) {
  if (!tls_) return;
  if (std::string own = tls_->TakeOwnOutput(); !own.empty()) sends->push_back(std::move(own));
}

void FrontEnd::Send(std::string bytes, std::vector<std::string>* sends) {
  if (tls_) {
    if (Status st = tls_->Encode(&bytes); !st.ok()) return;  // the TLS error ends the connection next
  }
  answered_ += bytes.size();
  if (!bytes.empty()) sends->push_back(std::move(bytes));
}

FrontEnd::Result FrontEnd::Feed(std::string_view wire, int64_t now_ms, std::vector<std::string>* sends,
                                std::string* xpra) {
  if (phase_ == Phase::kDone) return Close(why_.empty() ? "front end done" : why_);
  answered_ = 0;
  held_ = false;
  if (tls_ && !wire.empty()) {
    std::string plain;
    auto decoded = tls_->Decode(wire, &plain);
    TakeTlsOutput(sends);  // handshake records, tickets, an alert on failure
    if (!decoded.ok()) return Close("TLS: " + decoded.error().message);
    if (phase_ == Phase::kTlsHandshake && tls_->session().handshake_done()) {
      phase_ = config_->entry == FrontEndConfig::Entry::kWss ? Phase::kHttpHead : Phase::kSniff;
      deadline_ms_ = now_ms + (phase_ == Phase::kHttpHead ? config_->http.head_timeout_ms : config_->sniff.timeout_ms);
    }
    buf_.append(*decoded);
  } else if (!tls_) {
    buf_.append(wire);
  }
  return Step(now_ms, sends, xpra);
}

FrontEnd::Result FrontEnd::StartTls(int64_t now_ms, std::vector<std::string>* sends, std::string* xpra) {
  if (!config_->tls) return Close("a TLS client on a port with no certificate (give --ssl-cert)");
  if (config_->tls_rate && !source_.empty() && !config_->tls_rate->Take(source_, now_ms)) {
    char rate[32];
    std::snprintf(rate, sizeof rate, "%g", config_->tls_rate->per_second());
    return Close(std::string("TLS handshakes from this address over ") + rate +
                 " per second (--ssl-max-handshake-rate-per-address)");
  }
  auto session = tls::TlsSession::Accept(config_->tls->current(), config_->tls_limits);
  if (!session.ok()) return Close("TLS: " + session.error().message);
  tls_ = std::make_unique<TlsTransport>(std::move(*session));
  phase_ = Phase::kTlsHandshake;
  deadline_ms_ = now_ms + config_->tls_limits.handshake_timeout_ms;
  std::string first;
  first.swap(buf_);
  if (first.empty()) return Result::kMore;
  return Feed(first, now_ms, sends, xpra);
}

FrontEnd::Result FrontEnd::Step(int64_t now_ms, std::vector<std::string>* sends, std::string* xpra) {
  while (true) {
    switch (phase_) {
      case Phase::kTlsHandshake:
        return Result::kMore;
      case Phase::kSniff: {
        if (config_->entry == FrontEndConfig::Entry::kSsl && !tls_) return StartTls(now_ms, sends, xpra);
        if (config_->entry == FrontEndConfig::Entry::kWss && !tls_) return StartTls(now_ms, sends, xpra);
        if (buf_.empty()) return Result::kMore;
        SniffKind kind = Sniff(buf_, config_->sniff);
        switch (kind) {
          case SniffKind::kNeedMore: return Result::kMore;
          case SniffKind::kXpra:
            phase_ = Phase::kDone;
            xpra->swap(buf_);
            buf_.clear();
            return Result::kXpra;
          case SniffKind::kTls:
            if (tls_) return Close("TLS inside TLS");
            return StartTls(now_ms, sends, xpra);
          case SniffKind::kHttp:
            phase_ = Phase::kHttpHead;
            deadline_ms_ = now_ms + config_->http.head_timeout_ms;
            continue;
          case SniffKind::kUnknown: return Close("not a client the relay serves: " + SniffDescribe(buf_));
        }
        return Close("sniff failed");
      }
      case Phase::kHttpHead:
      case Phase::kKeepAlive: {
        if (buf_.empty()) return Result::kMore;
        if (answered_ >= config_->answer_budget) {
          held_ = true;
          return Result::kMore;
        }
        if (phase_ == Phase::kKeepAlive) {
          phase_ = Phase::kHttpHead;
          deadline_ms_ = now_ms + config_->http.head_timeout_ms;
        }
        size_t used = 0;
        http::ParseStatus st = parser_.Feed(buf_, &used);
        buf_.erase(0, used);
        if (st == http::ParseStatus::kError) {
          Send(http::SimpleResponse(parser_.error_status()), sends);
          return Close("HTTP " + std::to_string(parser_.error_status()) + ": " + parser_.error_reason());
        }
        if (st != http::ParseStatus::kDone) return Result::kMore;
        Result r = OnRequest(now_ms, sends, xpra);
        if (r != Result::kMore) return r;
        continue;
      }
      case Phase::kDone: return Close(why_);
    }
  }
}

FrontEnd::Result FrontEnd::OnRequest(int64_t now_ms, std::vector<std::string>* sends, std::string* xpra) {
  const http::Request& req = parser_.request();
  if (req.WantsWebSocket()) {
    ws::HandshakeResult hs = ws::AcceptHandshake(req, config_->ws_handshake);
    Send(std::move(hs.response), sends);  // the 101 on its own (xpra's client drops bytes read with it)
    if (hs.status != 101) return Close("WebSocket handshake refused (" + std::to_string(hs.status) + "): " + hs.reason);
    ws_ = std::make_unique<WebSocketTransport>(config_->ws);
    phase_ = Phase::kDone;
    if (!buf_.empty()) {
      std::string app;
      auto decoded = ws_->Decode(buf_, &app);
      buf_.clear();
      if (std::string own = ws_->TakeOwnOutput(); !own.empty()) Send(std::move(own), sends);
      if (!decoded.ok()) return Close("WebSocket: " + decoded.error().message);
      xpra->assign(*decoded);
    }
    return Result::kXpra;
  }
  ++requests_;
  http::StaticResponse resp;
  if (config_->site) {
    resp = config_->site->Serve(req, time(nullptr));
  } else {
    resp.status = 404;
    resp.head = http::SimpleResponse(404);
  }
  std::string out = std::move(resp.head);
  if (resp.file.valid()) {
    if (resp.size > config_->max_static_file) {
      out = http::SimpleResponse(404);
      resp.keep_alive = false;
    } else {
      size_t head = out.size();
      out.resize(head + resp.size);
      ssize_t n = ::pread(resp.file.get(), out.data() + head, resp.size, 0);
      if (n != static_cast<ssize_t>(resp.size)) return Close("reading a static file failed");
    }
  }
  Send(std::move(out), sends);
  std::string what = "HTTP " + std::to_string(resp.status) + (resp.path.empty() ? "" : " /" + resp.path);
  if (!resp.keep_alive || requests_ >= config_->http.max_requests_per_connection) return Close(what);
  parser_.Reset();
  phase_ = Phase::kKeepAlive;
  deadline_ms_ = now_ms + config_->http.keepalive_idle_ms;
  return Result::kMore;
}

}  // namespace xr::engine
