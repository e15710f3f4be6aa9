#include "engine/control.h"

#include <fcntl.h>

#include <cstring>

#include "engine/log.h"
#include "engine/stats.h"
#include "engine/takeover.h"
#include "engine/version.h"

namespace xr::engine {
namespace {

constexpr int64_t kRequestTimeoutMs = 10000;  // to send a request
constexpr int64_t kExitTimeoutMs = 5000;      // to go away after the reply (as xpra)
constexpr size_t kMaxControlPacket = 1 << 20;
constexpr int64_t kTakeoverTimeoutMs = 60000;  // for the new relay to start and say READY

}  // namespace

ControlSession::ControlSession(uint64_t id, std::shared_ptr<ControlTarget> target, SessionIo* io)
    : id_(id),
      target_(std::move(target)),
      io_(io),
      reader_(FrameLimits{kMaxControlPacket, 3}),
      decoder_(FrameLimits{kMaxControlPacket, 3}, DecodeLimits{}) {}

void ControlSession::Start() { io_->SetDeadline(kRequestTimeoutMs); }

void ControlSession::Send(const Value& packet) {
  std::string wire;
  EncodeOptions opts;
  opts.encoding = encoding_;
  if (Status s = EncodePacket(packet, opts, nullptr, &wire); s.ok()) {
    io_->SendToClient(std::move(wire));
  } else {
    XR_ERROR("control", "ctl={} cannot encode reply: {}", id_, s.error().message);
  }
}

void ControlSession::Disconnect(std::string_view why, std::string_view detail, std::string_view log_detail) {
  if (closed_) return;
  closed_ = true;
  List p{Value("disconnect"), Value(why)};
  if (!detail.empty()) p.emplace_back(detail);
  Send(Value(std::move(p)));
  XR_DEBUG("control", "ctl={} {} disconnect: {} {}", id_, target_->name(), why, log_detail);
  io_->Close(why);
}

void ControlSession::OnClientData(std::string_view bytes) {
  if (closed_) return;
  if (!any_data_ && !bytes.empty() && bytes.front() == takeover::kRequest[0]) takeover_ = Takeover::kRequest;
  any_data_ = any_data_ || !bytes.empty();
  if (takeover_ != Takeover::kNone) return OnTakeoverData(bytes);
  reader_.Feed(bytes);
  while (!closed_) {
    auto f = reader_.Next();
    if (!f.ok()) {
      Disconnect(reason::kProtocolError, f.error().message);
      return;
    }
    if (!f->has_value()) return;
    if ((**f).header.encrypted()) {
      Disconnect(reason::kProtocolError, "control sockets are not encrypted");
      return;
    }
    auto p = decoder_.Push(std::move(**f));
    if (!p.ok()) {
      Disconnect(reason::kProtocolError, p.error().message);
      return;
    }
    if (p->has_value()) {
      encoding_ = decoder_.last_encoding();
      HandlePacket(**p);
    }
  }
}

void ControlSession::HandlePacket(const Value& packet) {
  const List& items = packet.as_list();
  std::string_view type = items[0].as_string();
  if (type != "hello" || items.size() < 2 || !items[1].is_dict()) {
    if (type == "disconnect") {
      closed_ = true;
      io_->Close("client disconnect");
      return;
    }
    Disconnect("control command error", "this socket only handles 'info', 'version' and 'stop' requests");
    return;
  }
  if (replied_) return;
  Caps caps(items[1]);
  if (caps.get_bool("challenge")) {
    Disconnect(reason::kAuthenticationError, "this socket does not use authentication");
    return;
  }
  std::string request = caps.get_string("request");
  auto is_req = [&](std::string_view mode) {
    return request == mode || caps.get_bool(std::string(mode) + "_request");
  };
  Counters().control_requests++;
  if (is_req("info")) {
    XR_INFO("control", "{}: info request", target_->name());
    Send(Value(List{Value("hello"), target_->Info()}));
    replied_ = true;
    io_->SetDeadline(kExitTimeoutMs);
    return;
  }
  if (is_req("version")) {
    Value v{Dict{}};
    v.set("version", kRelayVersion);
    Send(Value(List{Value("hello"), std::move(v)}));
    replied_ = true;
    io_->SetDeadline(kExitTimeoutMs);
    return;
  }
  if (is_req("stop")) {
    XR_INFO("control", "{}: stop request", target_->name());
    bool stopped = target_->Stop();
    Disconnect(stopped ? reason::kDone : "control command error",
               stopped ? "stopped " + target_->name() : target_->name() + " is already gone");
    return;
  }
  Disconnect("control command error", "this socket only handles 'info', 'version' and 'stop' requests");
}

void ControlSession::OnTakeoverData(std::string_view bytes) {
  const std::string_view want = takeover_ == Takeover::kRequest ? takeover::kRequest : takeover::kReady;
  takeover_buf_.append(bytes);
  size_t common = std::min(takeover_buf_.size(), want.size());
  bool matches = std::string_view(takeover_buf_).substr(0, common) == want.substr(0, common);
  if (matches && takeover_buf_.size() < want.size()) return;  // more to come
  if (!matches || takeover_buf_.size() > want.size()) {
    XR_WARN("control", "ctl={} {}: malformed takeover exchange; closed", id_, target_->name());
    if (takeover_ == Takeover::kAwaitingReady) target_->TakeoverDone(id_, false);
    closed_ = true;
    io_->Close("malformed takeover exchange");
    return;
  }
  takeover_buf_.clear();
  if (takeover_ == Takeover::kAwaitingReady) {
    target_->TakeoverDone(id_, true);
    closed_ = true;
    io_->Close("takeover confirmed");
    return;
  }
  Counters().control_requests++;
  UniqueFd conn(io_->client_fd() >= 0 ? fcntl(io_->client_fd(), F_DUPFD_CLOEXEC, 0) : -1);
  if (!conn.valid() || !target_->Takeover(id_, std::move(conn))) {
    // The refusal as a takeover record: the new relay prints it.
    std::string record(takeover::kRecordSize, '\0');
    std::string text = "X " + target_->name() + " cannot be taken over (ask the relay's own control socket)\n";
    std::memcpy(record.data(), text.data(), std::min(text.size(), record.size() - 1));
    io_->SendToClient(std::move(record));
    closed_ = true;
    io_->Close("takeover refused");
    return;
  }
  takeover_ = Takeover::kAwaitingReady;
  io_->SetDeadline(kTakeoverTimeoutMs);
}

void ControlSession::OnClientClosed(std::string_view why) {
  if (closed_) return;
  if (takeover_ == Takeover::kAwaitingReady) target_->TakeoverDone(id_, false);
  closed_ = true;
  io_->Close(why);
}

void ControlSession::OnTimeout() {
  if (takeover_ != Takeover::kNone) {
    // Never an xpra packet here: the new relay may still be reading socket records.
    if (takeover_ == Takeover::kAwaitingReady) target_->TakeoverDone(id_, false);
    closed_ = true;
    io_->Close("takeover timeout");
    return;
  }
  if (replied_) {
    Disconnect("client exit timeout", "request answered");
  } else {
    Disconnect(reason::kLoginTimeout, "no request received");
  }
}

}  // namespace xr::engine
