#pragma once
// The relay's readers of a plain 8-byte-framed stream while it copies bytes across, both on
// codec/frame_tracker.h (the one walker of the framing and its rules): a frame boundary
// follower that also holds the stream to its leg's limits, a collector of small frames (to
// notice the packets the relay acts on), and a decoder for such a frame.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "codec/decode_limits.h"
#include "codec/frame_reader.h"
#include "codec/frame_tracker.h"
#include "codec/header.h"
#include "codec/value.h"

namespace xr::engine {

// Follows frame boundaries of a plain byte stream, so a packet can be inserted safely, counts
// packets and notes the encoder/compressor in use. It holds the stream to its leg's limits
// with FrameTracker's rules: a header that breaks them makes it failed(); nothing from that
// header on may be forwarded.
class FrameBoundary {
 public:
  explicit FrameBoundary(FrameLimits limits = {kHardMaxPayload, 3}) : t_(limits) {}
  // Consumes `data`. When it fails, good_bytes() of `data` (those before the bad header) may
  // still be forwarded.
  void Feed(std::string_view data) { good_ = Advance(data, false); }
  // Consumes `data` up to the next frame boundary (all of it if none is reached); returns
  // how many bytes were consumed (at most up to a bad header).
  size_t FeedToBoundary(std::string_view data) { return good_ = Advance(data, true); }
  // Whether the bytes forwarded so far end on a frame boundary (after a failure: whether no
  // byte of the bad header went out with an earlier Feed).
  bool at_boundary() const { return failed() ? clean_ : t_.at_boundary(); }
  bool failed() const { return t_.failed(); }
  const std::string& error() const { return t_.error().message; }
  size_t good_bytes() const { return good_; }
  size_t max_payload() const { return t_.max_payload(); }
  // Payload bytes of the current frame not seen yet (0 at a boundary or inside a header).
  size_t payload_remaining() const { return t_.payload_remaining(); }
  // Accounts for `n` payload bytes that moved without being seen (n <= payload_remaining()).
  void Skip(size_t n) { t_.Skip(n); }
  uint64_t packets() const { return packets_; }
  // The padding block of encrypted frames in this stream (FrameTracker::set_cipher_block).
  void set_cipher_block(size_t block) { t_.set_cipher_block(block); }
  // Payload size of the last frame whose header was read.
  size_t last_payload() const { return last_payload_; }
  uint8_t last_flags() const { return last_flags_; }
  uint8_t last_level() const { return last_level_; }

 private:
  size_t Advance(std::string_view data, bool stop_at_boundary);

  FrameTracker t_;
  size_t good_ = 0;
  bool clean_ = false;
  uint64_t packets_ = 0;
  size_t last_payload_ = 0;
  uint8_t last_flags_ = 0;
  uint8_t last_level_ = 0;
};

// Collects complete frames of a plain byte stream whose payload is at most `max_payload`
// (larger ones are skipped), for inspection. Stops at the first frame that breaks the
// framing rules (the stream's FrameBoundary ends the connection then).
class SmallFrameCapture {
 public:
  explicit SmallFrameCapture(size_t max_payload) : max_payload_(max_payload) {}
  // Consumes `data`; complete small frames are appended to *out.
  void Feed(std::string_view data, std::vector<RawFrame>* out);

 private:
  size_t max_payload_;
  // Chunk indices are one byte: at most 255 can be pending, so only the framing itself and
  // repeated chunks stop the capture (the stream's own limits are its FrameBoundary's).
  FrameTracker t_{FrameLimits{kHardMaxPayload, 255}};
  bool capturing_ = false;
  RawFrame frame_;
};

// Decodes a main (index 0) plain frame into its packet, inflating it to at most `max_out`
// bytes and decoding within `limits`; nullopt when it cannot.
std::optional<Value> DecodeFrame(const RawFrame& f, size_t max_out, const DecodeLimits& limits = {});

// The encoder a header's flags name ("rencode", "bencode", "yaml"), and the compressor its level names.
const char* EncoderName(uint8_t flags);
const char* LevelCompressorName(uint8_t level);

}  // namespace xr::engine
