#pragma once
// Leg: one side of a relayed connection (the client's socket or the session server's), with
// its transport, its send queue and its byte counts. Legs live in an array indexed by
// direction (liburing's proxy example: cd[2]); a connection never writes "client_ or server_".

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/fd.h"
#include "engine/transport.h"

namespace xr::engine {

// Which leg: the client's, or the session server's.
enum Dir : uint8_t { kClientLeg = 0, kServerLeg = 1 };
constexpr Dir Other(Dir d) { return d == kClientLeg ? kServerLeg : kClientLeg; }
// "client" / "server", for logs.
constexpr const char* SideName(Dir d) { return d == kClientLeg ? "client" : "server"; }

// FIFO of byte strings. Unlike std::deque it allocates nothing while empty, so an idle
// connection's two queues cost only their own few bytes.
class SendQueue {
 public:
  bool empty() const { return head_ == items_.size(); }
  std::string& front() { return items_[head_]; }
  const std::string& front() const { return items_[head_]; }
  void push_back(std::string s) { items_.push_back(std::move(s)); }
  void pop_front() {
    std::string().swap(items_[head_]);
    if (++head_ == items_.size()) clear();
  }
  void clear() {
    std::vector<std::string>().swap(items_);
    head_ = 0;
  }

 private:
  std::vector<std::string> items_;
  size_t head_ = 0;
};

class Leg {
 public:
  // A leg's own receive buffer, used only for the one receive after the ring ran dry.
  static constexpr size_t kPrivateRecvBytes = size_t{16} * 1024;

  // The leg's state, one flag word.
  enum Flag : uint8_t {
    kRecvInFlight = 1 << 0,  // operations in flight on the socket
    kSendInFlight = 1 << 1,
    kPollInFlight = 1 << 2,  // splice path: waiting for readiness
    kPaused = 1 << 3,        // receive not re-armed because the other leg is backed up
    kEof = 1 << 4,           // the peer ended its stream (or the socket failed)
    kFailed = 1 << 5,        // the socket failed: nothing more is sent on it
    kOwnBacklog = 1 << 6,    // receive paused: the transport's own answers (pongs) are not read
    kHotEmpty = 1 << 7,      // this receive uses the main ring, not the hot buffers (they ran out)
  };
  bool has(Flag f) const { return (flags_ & f) != 0; }
  void set(Flag f) { flags_ = static_cast<uint8_t>(flags_ | f); }
  void clear(Flag f) { flags_ = static_cast<uint8_t>(flags_ & ~f); }

  UniqueFd fd;
  std::unique_ptr<Transport> transport = std::make_unique<PlainTransport>();
  uint64_t bytes_in = 0;       // bytes received (or spliced) from the socket
  uint64_t bytes_out = 0;      // bytes sent (or spliced) to the socket
  size_t recv_limit = 0;       // bytes the next receive may read (0: a whole provided buffer)

  // Whether a receive may be armed now.
  bool readable() const { return fd.valid() && !has(kRecvInFlight) && !has(kEof) && !has(kFailed); }

  // Appends `bytes` (already encoded by the transport) to the send queue. Nothing when the
  // leg failed or `bytes` is empty; false then.
  bool Enqueue(std::string bytes);
  // The unsent part of the oldest queued string (empty when nothing is queued).
  std::string_view pending() const;
  // Accounts for `n` bytes of pending() sent (a short send leaves the rest pending).
  void Sent(size_t n);
  // The socket failed: drops everything queued.
  void Fail();
  // Bytes queued and not yet sent.
  size_t queued() const { return out_bytes_; }
  bool queue_empty() const { return outq_.empty(); }

  // After -ENOBUFS (every ring buffer taken, typically by saturating streams) the next
  // receive uses a buffer of the leg's own, so a leg never waits for the ring to drain:
  // handshakes and quiet legs make progress while others stream. Freed right after.
  void UsePrivateBuffer() { private_buf_ = std::make_unique_for_overwrite<char[]>(kPrivateRecvBytes); }
  char* private_buffer() const { return private_buf_.get(); }
  // Moves the private buffer out (the completed receive's data lives in it until consumed).
  std::unique_ptr<char[]> TakePrivateBuffer() { return std::move(private_buf_); }

 private:
  uint8_t flags_ = 0;
  SendQueue outq_;
  size_t out_off_ = 0;    // bytes of outq_.front() already sent
  size_t out_bytes_ = 0;  // bytes queued, not yet sent
  std::unique_ptr<char[]> private_buf_;
};

}  // namespace xr::engine
