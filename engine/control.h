#pragma once
// Control endpoints: the unix sockets `xpra list/info/version/stop` talk to.
//
// Each relayed connection N has a virtual `:proxy-N` endpoint (socket HOSTNAME-proxy-N in the
// socket dir), and the relay has its own `:DISPLAY` endpoint. Both speak the xpra protocol:
// a hello carrying info_request / version_request / stop_request, answered like xpra proxy's
// control socket (proxy_instance_process.py): a hello with the info or version, then a
// disconnect a few seconds later; stop ends the instance (or the relay).

#include <functional>
#include <memory>
#include <string>

#include "codec/frame_reader.h"
#include "codec/packet.h"
#include "codec/value.h"
#include "base/fd.h"
#include "engine/session.h"

namespace xr::engine {

// What a control socket controls: one instance, or the whole relay.
class ControlTarget {
 public:
  virtual ~ControlTarget() = default;
  // The info dict for `xpra info` (nested; the client flattens it for printing).
  virtual Value Info() = 0;
  // Ends what this endpoint controls; false when it is already gone.
  virtual bool Stop() = 0;
  // For logs: ":proxy-7" or ":20".
  virtual std::string name() const = 0;
  // A new relay asks control client `ctl` for the listening sockets (engine/takeover.h);
  // `conn` duplicates that client's socket for the thread that sends them. False: this
  // endpoint cannot be taken over (only the relay's own can).
  virtual bool Takeover(uint64_t ctl, UniqueFd conn) {
    (void)ctl;
    (void)conn;
    return false;
  }
  // Control client `ctl` confirmed the takeover (READY), or went away before it did.
  virtual void TakeoverDone(uint64_t ctl, bool confirmed) {
    (void)ctl;
    (void)confirmed;
  }
};

class ControlSession final : public ClientHandler {
 public:
  ControlSession(uint64_t id, std::shared_ptr<ControlTarget> target, SessionIo* io);

  void Start() override;
  void OnClientData(std::string_view bytes) override;
  void OnClientClosed(std::string_view why) override;
  void OnTimeout() override;
  void Disconnect(std::string_view reason, std::string_view detail, std::string_view log_detail = {}) override;

 private:
  void HandlePacket(const Value& packet);
  // The takeover exchange (engine/takeover.h) instead of xpra packets.
  void OnTakeoverData(std::string_view bytes);
  void Send(const Value& packet);

  uint64_t id_;
  std::shared_ptr<ControlTarget> target_;
  SessionIo* io_;
  FrameReader reader_;
  PacketDecoder decoder_;
  Encoding encoding_ = Encoding::kRencode;
  bool replied_ = false;
  bool closed_ = false;
  bool any_data_ = false;
  enum class Takeover : uint8_t { kNone, kRequest, kAwaitingReady } takeover_ = Takeover::kNone;
  std::string takeover_buf_;  // bounded: the request and READY lines only
};

}  // namespace xr::engine
