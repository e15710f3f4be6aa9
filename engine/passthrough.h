#pragma once
// Passthrough: the relay path for two plain legs once the session handed them over. Bytes are
// copied (or spliced) across unread except for their frame headers: each stream's boundaries
// are followed from the first byte the relay wrote, so the relay can still insert a packet of
// its own (a `disconnect`) at a boundary, hold each leg to its limits, and count packets.

#include <memory>
#include <string>
#include <string_view>

#include "codec/frame_reader.h"
#include "engine/frame_boundary.h"
#include "engine/leg.h"

namespace xr::engine {

class Passthrough {
 public:
  // Limits of the stream from the client, and of the stream from the server.
  Passthrough(FrameLimits client_limits, FrameLimits server_limits)
      : toward_{FrameBoundary(server_limits), FrameBoundary(client_limits)} {}

  // The session handed the legs over: bytes now bypass it.
  void Start() { started_ = true; }
  bool started() const { return started_; }

  // The follower of the stream going to leg `to` (toward(kClientLeg): the server's stream).
  FrameBoundary& toward(Dir to) { return toward_[to]; }
  const FrameBoundary& toward(Dir to) const { return toward_[to]; }
  // Whether the relay may insert a packet of its own into the stream toward `to` now.
  bool CanInsert(Dir to) const { return !started_ || toward_[to].at_boundary(); }

  // How many bytes the next server receive may read: after a frame of at least `splice_min`
  // payload bytes the next is likely large too, so only the end of this one and `peek` bytes
  // of the next, so the rest of the next can be spliced; 0 (a whole buffer) otherwise.
  size_t ServerRecvLimit(size_t splice_min, size_t peek) const {
    const FrameBoundary& f = toward_[kClientLeg];
    return splice_min != 0 && f.last_payload() >= splice_min ? f.payload_remaining() + peek : 0;
  }

  // A stop waits for the server->client stream to reach a frame boundary: why, for the
  // disconnect packet then.
  void HoldStop(std::string_view reason, std::string_view detail) {
    stop_ = std::make_unique<HeldStop>(HeldStop{std::string(reason), std::string(detail)});
  }
  const std::string& stop_reason() const { return stop_ ? stop_->reason : Empty(); }
  const std::string& stop_detail() const { return stop_ ? stop_->detail : Empty(); }

 private:
  FrameBoundary toward_[2];
  struct HeldStop {
    std::string reason, detail;
  };
  static const std::string& Empty() {
    static const std::string empty;
    return empty;
  }
  bool started_ = false;
  std::unique_ptr<HeldStop> stop_;  // only while a stop is held (an idle connection holds none)
};

}  // namespace xr::engine
