#pragma once
// FrameReader: splits a byte stream into xpra frames (header + wire payload), whatever the
// read boundaries. Its FrameTracker applies the framing rules (codec/frame_tracker.h: magic on
// the first byte, size, empty payload, chunk index and count) as soon as the header bytes that
// decide them arrive, before any payload is buffered.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "base/status.h"
#include "codec/frame_tracker.h"
#include "codec/header.h"

namespace xr {

struct RawFrame {
  FrameHeader header;
  std::string payload;  // wire bytes (ciphertext incl. padding when encrypted)
};

// A frame whose payload still lies in the FrameReader's buffer.
struct FrameView {
  FrameHeader header;
  std::string_view payload;  // wire bytes; valid until the reader's next Feed, Next or TakeBuffered
};

class FrameReader {
 public:
  // limits.max_payload is capped at kHardMaxPayload.
  explicit FrameReader(FrameLimits limits = {});

  // Appends received bytes.
  void Feed(std::string_view bytes);

  // Next complete frame, nullopt if more bytes are needed, Error on a frame that breaks the
  // framing rules (bad magic, size over the limit, empty payload, duplicate chunk index, too
  // many pending chunks). Errors are sticky: every later call returns the same error.
  Expected<std::optional<RawFrame>> Next();

  // As Next(), without copying the payload out: the view points into the reader's buffer and
  // stays valid until the next Feed(), Next() or TakeBuffered() (further NextView() calls keep
  // it valid). For a consumer that transforms each payload at once (the relay encrypts it
  // straight into the client's send buffer).
  Expected<std::optional<FrameView>> NextView();

  // Bytes fed but not yet returned as frames (including a parsed header of the frame in progress).
  size_t buffered() const;

  // Removes and returns every byte fed but not yet returned as a frame, exactly as received
  // (they start at a frame boundary). Used when a relay hands the rest of a stream over to
  // passthrough. The reader is empty afterwards, at that boundary.
  std::string TakeBuffered();

  // The framing state at the first byte of buffered() (the chunks pending there, the limits):
  // after TakeBuffered(), what a consumer of those bytes continues tracking from, so the chunk
  // rules hold across the handover.
  const FrameTracker& tracker() const { return at_pos_; }

  // Changes the payload limit (capped at kHardMaxPayload) for frames whose header is not yet parsed,
  // e.g. after a server hello announces a large desktop.
  void set_max_payload(size_t max_payload);

  // The payload limit in force.
  size_t max_payload() const { return tracker_.max_payload(); }

  // The padding block of encrypted frames from the next header on (FrameTracker::set_cipher_block).
  void set_cipher_block(size_t block);

 private:
  FrameTracker tracker_;  // has walked buf_ up to scan_
  FrameTracker at_pos_;   // tracker_ as it was at pos_ (a frame boundary)
  std::string buf_;
  size_t pos_ = 0;   // start of the first frame not yet returned
  size_t scan_ = 0;  // bytes of buf_ walked by tracker_ (pos_ <= scan_)
};

}  // namespace xr
