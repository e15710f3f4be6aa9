#pragma once
// FrameTracker: the one walker of xpra's 8-byte header framing (codec/header.h,
// docs/protocol-notes.md "Packet limits in xpra 3.1") and the one place its limits are
// decided, for every reader of the framing: FrameReader and PacketDecoder here; the relay's
// passthrough, splice and inspection paths (engine/frame_boundary.h: FrameBoundary,
// SmallFrameCapture), which need exactly what it offers: boundaries, the header of each frame
// as it passes, the payload bytes or a way to skip them, and where a bad frame began.
//
// It walks a byte stream incrementally, whatever the read boundaries, holding at most the 8
// header bytes: it never needs to see a payload. A caller that moves payload it does not read
// (splice) asks payload_remaining() and reports what moved with Skip(n).
//
// The rules, one per case, the same on every path (login, AES relaying, passthrough, splice),
// each checked as soon as the header byte(s) that decide it arrive, so nothing of a refused
// frame is buffered or forwarded. The frame that fails is refused whole; the frames before it
// are good. Errors are sticky.
//   1. Magic: a first header byte other than 'P' -> kMalformed, on that byte (a stream of
//      garbage, e.g. an HTTP request, fails on its first byte, not after 8).
//   2. Size: a wire payload (padding included when encrypted) over max_payload -> kTooLarge
//      "frame of N bytes exceeds the M byte limit". max_payload is per leg and per tracker
//      (the relay's --max-packet-size / --max-server-packet-size), capped at kHardMaxPayload,
//      xpra's abs_max_packet_size. xpra checks its lower max_packet_size only 1 s later, so a
//      hello can raise it first; here the caller raises it with set_max_payload(), which holds
//      from the next header on.
//   3. Empty: a wire payload of 0 bytes -> kMalformed "frame with an empty payload", for main
//      packets and chunks alike, in every mode. xpra 3.1 refuses it too (net/protocol.py:895
//      `assert payload_size>0`), so a peer that sends one has a broken stream whichever xpra
//      reads it: letting it through in passthrough (as the relay did) only moved the failure to
//      the far end. An encrypted frame is never empty (1..32 padding bytes), a real xpra never
//      sends an empty chunk (it splits off large values only).
//   4. Chunks (index > 0) wait at the receiver for their main packet (index 0), which clears
//      them (protocol.py:993-1002, :1031). An index seen again before its main packet ->
//      kMalformed "duplicate chunk at index N" (xpra: "duplicate raw packet"), on every path
//      (the AES path passed it on for the far end's xpra to refuse, after the relay had
//      re-encrypted it). More than max_pending_chunks pending -> kTooLarge "more than N chunks
//      before their main packet (too many pending chunks)" (xpra refuses a 4th: 3 at most).
//      Decided at the chunk's header, before its payload (xpra decides after reading it).
//   5. Flags: bits xpra does not define (0x20, 0x40, 0x80) -> kMalformed "invalid header flags
//      0x..: unknown flag bits" (codec/header.h CheckFlags), on every frame, before its payload.
//   The checks run in that order: magic, flags, size, empty, duplicate, count.
//
// Using it: call Feed() with the bytes not consumed yet until it has consumed them all. Each
// call stops right after an event, so the bytes one call consumes are either all header bytes
// (a call that starts at_boundary() or in_header()) or all payload bytes (one that starts
// in_payload()):
//   FrameTracker t(limits);
//   while (!data.empty()) {
//     bool payload = t.in_payload();
//     auto step = t.Feed(data);
//     if (!step.ok()) { ... the bad frame began at stream offset t.frame_start() ... }
//     if (payload) { ... data.substr(0, step->consumed) is payload of t.header()'s frame ... }
//     if (step->event == FrameTracker::Event::kHeader) { ... t.header() passed the limits ... }
//     if (step->event == FrameTracker::Event::kFrameEnd) { ... at a frame boundary ... }
//     data.remove_prefix(step->consumed);
//   }
// Stream offsets (offset(), frame_start()) count every byte consumed or skipped since the
// tracker was made, so a caller that forwards bytes knows, on an error, how many of the bytes
// it holds precede the bad frame (frame_start() - the offset where they begin), and whether
// any byte of the bad header already went out (frame_start() is before them).

#include <bitset>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "base/status.h"
#include "codec/header.h"

namespace xr {

// Absolute cap on a wire payload (xpra's abs_max_packet_size).
constexpr size_t kHardMaxPayload = 256u << 20;

struct FrameLimits {
  size_t max_payload = 16u << 20;  // largest wire payload (and decompressed size) accepted
  size_t max_pending_chunks = 3;   // index>0 frames held for the next main packet
};

class FrameTracker {
 public:
  enum class Event : uint8_t {
    kNone,      // the bytes consumed completed neither a header nor a frame
    kHeader,    // a header completed and passed the limits: header(), payload_remaining()
    kFrameEnd,  // the current frame's last payload byte was consumed: at_boundary()
  };
  struct Step {
    size_t consumed = 0;  // bytes of the input consumed (all header or all payload bytes)
    Event event = Event::kNone;
  };

  // limits.max_payload is capped at kHardMaxPayload.
  explicit FrameTracker(FrameLimits limits = {});

  // Consumes a prefix of `data`, stopping right after the first event (or at its end). An
  // empty `data` consumes nothing. On a header that breaks the rules above: the Error, which
  // every later call returns too; frame_start() is where the bad header began.
  Expected<Step> Feed(std::string_view data);

  // Accounts for `n` payload bytes of the current frame that moved without being seen;
  // n <= payload_remaining() (more is a caller bug: it is clamped). kFrameEnd when they end
  // the frame, else kNone (also after an error, when nothing is counted).
  Event Skip(size_t n);

  // Accounts for one whole frame given by its header, for a caller that receives frames
  // already split (PacketDecoder::Push): the same checks as a header walked by Feed(). Only at
  // a boundary (kInternal otherwise). Errors are sticky as with Feed().
  Status AcceptFrame(const FrameHeader& h);

  // Nothing of a frame consumed since the last frame ended (false after an error).
  bool at_boundary() const { return !error_ && have_ == 0 && remaining_ == 0; }
  // Some, not all, bytes of a header consumed.
  bool in_header() const { return !error_ && have_ != 0; }
  // A header passed and payload bytes of its frame remain.
  bool in_payload() const { return !error_ && remaining_ != 0; }
  // Payload bytes of the current frame not consumed yet (0 at a boundary, inside a header or
  // after an error).
  size_t payload_remaining() const { return error_ ? 0 : remaining_; }
  // The header of the current frame, or of the last one when at a boundary (all zero before
  // the first).
  const FrameHeader& header() const { return header_; }

  // Stream bytes consumed or skipped so far.
  uint64_t offset() const { return offset_; }
  // Stream offset of the current frame's first header byte (of the bad one after an error).
  uint64_t frame_start() const { return frame_start_; }

  bool failed() const { return error_.has_value(); }
  // The error; only when failed().
  const Error& error() const { return *error_; }

  // Chunks waiting for their main packet.
  size_t pending_chunks() const { return chunks_.count(); }

  // The payload limit in force; set_max_payload() changes it (capped at kHardMaxPayload) for
  // every header not yet complete.
  size_t max_payload() const { return limits_.max_payload; }
  void set_max_payload(size_t max_payload);
  const FrameLimits& limits() const { return limits_; }

  // The padding block of encrypted frames (FrameHeader::wire_payload_size): 32 for xpra 3.1's
  // AES (the default), 16 for 6.x CBC, 0 for 6.x CTR. Holds from the next header not yet complete.
  void set_cipher_block(size_t block) { cipher_block_ = block; }
  size_t cipher_block() const { return cipher_block_; }

 private:
  // Applies the rules to a complete header; on success it becomes the current frame.
  Status Admit(const FrameHeader& h);
  Error Fail(Error e);

  FrameLimits limits_;
  FrameHeader header_{};
  char hbuf_[kHeaderSize] = {};
  size_t have_ = 0;       // header bytes held (0..7)
  size_t remaining_ = 0;  // payload bytes of the current frame not consumed
  uint64_t offset_ = 0;
  uint64_t frame_start_ = 0;
  std::bitset<256> chunks_;  // chunk indices pending since the last main packet
  size_t cipher_block_ = kCipherPaddingBlock;
  std::optional<Error> error_;
};

}  // namespace xr
