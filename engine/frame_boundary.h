#pragma once
// The relay's readers of a plain 8-byte-framed stream while it copies bytes across: a frame
// boundary follower that also holds the stream to its leg's limits, a collector of small
// frames (to notice the packets the relay acts on), and a decoder for such a frame.

#include <bitset>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "codec/frame_reader.h"
#include "codec/header.h"
#include "codec/value.h"

namespace xr::engine {

// Follows frame boundaries of a plain byte stream, so a packet can be inserted safely, counts
// packets and notes the encoder/compressor in use. It also holds the stream to its leg's
// limits, as xpra's own protocol does: a header that is not one, a packet larger than
// max_payload, more than max_pending_chunks chunks (index > 0) before their main packet, or a
// chunk index repeated, makes it failed(); nothing from that header on may be forwarded.
class FrameBoundary {
 public:
  explicit FrameBoundary(FrameLimits limits = {kHardMaxPayload, 3}) : limits_(limits) {}
  // Consumes `data`. When it fails, good_bytes() of `data` (those before the bad header) may
  // still be forwarded.
  void Feed(std::string_view data) { good_ = Advance(data, false); }
  // Consumes `data` up to the next frame boundary (all of it if none is reached); returns
  // how many bytes were consumed (at most up to a bad header).
  size_t FeedToBoundary(std::string_view data) { return good_ = Advance(data, true); }
  // Whether the bytes forwarded so far end on a frame boundary.
  bool at_boundary() const { return failed() ? clean_ : have_ == 0 && remaining_ == 0; }
  bool failed() const { return !error_.empty(); }
  const std::string& error() const { return error_; }
  size_t good_bytes() const { return good_; }
  size_t max_payload() const { return limits_.max_payload; }
  // Payload bytes of the current frame not seen yet (0 at a boundary or inside a header).
  size_t payload_remaining() const { return failed() || have_ != 0 ? 0 : remaining_; }
  // Accounts for `n` payload bytes that moved without being seen (n <= payload_remaining()).
  void Skip(size_t n) { remaining_ -= std::min(n, remaining_); }
  uint64_t packets() const { return packets_; }
  // Payload size of the last frame whose header was read.
  size_t last_payload() const { return last_payload_; }
  uint8_t last_flags() const { return last_flags_; }
  uint8_t last_level() const { return last_level_; }

 private:
  size_t Advance(std::string_view data, bool stop_at_boundary) {
    if (failed()) return 0;
    size_t consumed = 0;
    while (consumed < data.size()) {
      if (stop_at_boundary && consumed > 0 && at_boundary()) break;
      std::string_view rest = data.substr(consumed);
      if (remaining_ > 0) {
        size_t n = std::min<size_t>(remaining_, rest.size());
        remaining_ -= n;
        consumed += n;
        continue;
      }
      bool header_starts_here = have_ == 0;
      size_t header_at = consumed;
      size_t n = std::min(kHeaderSize - have_, rest.size());
      std::memcpy(header_ + have_, rest.data(), n);
      have_ += n;
      consumed += n;
      if (have_ < kHeaderSize) break;
      have_ = 0;
      auto h = DecodeHeader(std::string_view(header_, kHeaderSize));
      error_ = h.ok() ? Check(*h) : h.error().message;
      if (failed()) {
        // Clean only if no byte of the bad header went out with an earlier Feed.
        clean_ = header_starts_here;
        return header_starts_here ? header_at : 0;
      }
      remaining_ = h->wire_payload_size();
      last_payload_ = remaining_;
      if (h->index == 0) {
        ++packets_;
        last_flags_ = h->flags;
        last_level_ = h->level;
      }
    }
    return consumed;
  }

  // Why header `h` breaks the limits ("" if it does not), in the words of the codec's
  // FrameReader and PacketDecoder; notes a chunk.
  std::string Check(const FrameHeader& h) {
    if (h.wire_payload_size() > limits_.max_payload) {
      return "frame of " + std::to_string(h.wire_payload_size()) + " bytes exceeds the " +
             std::to_string(limits_.max_payload) + " byte limit";
    }
    if (h.index == 0) {
      chunks_.reset();
      return {};
    }
    if (chunks_.test(h.index)) return "chunk " + std::to_string(h.index) + " twice before its main packet";
    chunks_.set(h.index);
    if (chunks_.count() > limits_.max_pending_chunks) {
      return "more than " + std::to_string(limits_.max_pending_chunks) + " chunks before their main packet";
    }
    return {};
  }

  FrameLimits limits_;
  char header_[kHeaderSize];
  size_t have_ = 0;
  size_t remaining_ = 0;
  size_t last_payload_ = 0;
  std::bitset<256> chunks_;  // chunk indices seen since the last main packet
  std::string error_;
  size_t good_ = 0;
  bool clean_ = false;
  uint64_t packets_ = 0;
  uint8_t last_flags_ = 0;
  uint8_t last_level_ = 0;
};

// Collects complete frames of a plain byte stream whose payload is at most `max_payload`
// (larger ones are skipped), for inspection.
class SmallFrameCapture {
 public:
  explicit SmallFrameCapture(size_t max_payload) : max_payload_(max_payload) {}
  // Consumes `data`; complete small frames are appended to *out.
  void Feed(std::string_view data, std::vector<RawFrame>* out) {
    while (!data.empty() && !broken_) {
      if (remaining_ > 0) {
        size_t n = std::min<size_t>(remaining_, data.size());
        if (capturing_) frame_.payload.append(data.substr(0, n));
        remaining_ -= n;
        data.remove_prefix(n);
        if (remaining_ == 0 && capturing_) {
          out->push_back(std::move(frame_));
          frame_ = RawFrame{};
          capturing_ = false;
        }
        continue;
      }
      size_t n = std::min(kHeaderSize - have_, data.size());
      std::memcpy(header_ + have_, data.data(), n);
      have_ += n;
      data.remove_prefix(n);
      if (have_ < kHeaderSize) break;
      have_ = 0;
      auto h = DecodeHeader(std::string_view(header_, kHeaderSize));
      if (!h.ok()) {
        broken_ = true;
        break;
      }
      remaining_ = h->wire_payload_size();
      capturing_ = h->index == 0 && !h->encrypted() && remaining_ <= max_payload_ && remaining_ > 0;
      if (capturing_) frame_.header = *h;
    }
  }

 private:
  size_t max_payload_;
  char header_[kHeaderSize];
  size_t have_ = 0;
  size_t remaining_ = 0;
  bool capturing_ = false;
  bool broken_ = false;
  RawFrame frame_;
};

// Decodes a main (index 0) plain frame into its packet; nullopt when it cannot.
std::optional<Value> DecodeFrame(const RawFrame& f);

// The encoder a header's flags name ("rencode", "bencode", "yaml"), and the compressor its level names.
const char* EncoderName(uint8_t flags);
const char* LevelCompressorName(uint8_t level);

}  // namespace xr::engine
