#pragma once
// In-band info: when a client asks its server for `xpra info` over the relayed stream
// (info-request), the server's info-response gets a "proxy" subtree on its way back, as
// xpra's own proxy does. Client->server packets are small (input, acks, pings): the small ones
// are decoded to notice the request. While a response is awaited, server->client frames pass
// whole through a frame reader so the response can be rewritten; afterwards the stream is
// plain passthrough again.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "codec/frame_reader.h"
#include "codec/value.h"
#include "engine/frame_boundary.h"

namespace xr::engine {

class InbandInfo {
 public:
  // Where the server->client bytes go, and what the rewrite needs (the connection).
  class Sink {
   public:
    virtual ~Sink() = default;
    // The server->client stream's boundary follower (fed by Forward, read here).
    virtual FrameBoundary& to_client_frames() = 0;
    // Queues bytes already fed to to_client_frames() for the client.
    virtual void QueueToClient(std::string bytes) = 0;
    // Feeds bytes to to_client_frames() and queues them (a broken stream ends the connection).
    virtual void ForwardToClient(std::string bytes) = 0;
    // The bytes from the server broke to_client_frames()' limits: `data` ends the connection.
    virtual void BadServerFrame(std::string_view data) = 0;
    // Whether the connection is closing (then nothing more is forwarded).
    virtual bool closing() const = 0;
    // The "proxy" subtree added to the info-response.
    virtual Value ProxyInfo() const = 0;
  };

  // Client->server bytes (at `now_ms`): notices an info-request among the small packets. It
  // decodes no more than one needs: uncompressed frames that cannot start with that packet
  // type are skipped, others are inflated to at most kWatchMaxPacket bytes and decoded within
  // kWatchDecodeLimits, within kWatchBytesPerSecond per connection (over it a frame passes
  // unexamined). A client cannot make the relay inflate or decode more (it used the 256 MiB
  // hard cap).
  void WatchClient(std::string_view data, int64_t now_ms);
  // Whether an info-response is awaited (server->client bytes must go through Forward).
  bool expecting() const { return expecting_; }
  // Server->client bytes while expecting(): forwards them through `sink`, the info-response
  // rewritten; once it passed (or the stream cannot be read), forwards the rest unchanged.
  void Forward(std::string_view data, Sink& sink, uint64_t conn);

 private:
  static constexpr size_t kWatchMaxPacket = 64 * 1024;
  static constexpr int64_t kWatchBytesPerSecond = 1 << 20;
  static constexpr DecodeLimits kWatchDecodeLimits{16, 4096, kWatchMaxPacket};
  static bool MayBeInfoRequest(const RawFrame& f);
  SmallFrameCapture client_capture_{kWatchMaxPacket};
  int64_t watch_tokens_ = kWatchBytesPerSecond;
  int64_t watch_refill_ms_ = -1;
  bool expecting_ = false;
  int frames_ = 0;              // server frames forwarded while expecting
  int chunks_before_main_ = 0;  // chunk frames of the packet being read
  std::unique_ptr<FrameReader> reader_;
};

}  // namespace xr::engine
