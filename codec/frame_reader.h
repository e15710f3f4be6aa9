#pragma once
// FrameReader: splits a byte stream into xpra frames (header + wire payload), whatever the
// read boundaries. Checks the magic byte as soon as it arrives and the size limit as soon as
// the header is complete, before any payload is buffered.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "base/status.h"
#include "codec/header.h"

namespace xr {

struct FrameLimits {
  size_t max_payload = 16u << 20;  // largest wire payload (and decompressed size) accepted
  size_t max_pending_chunks = 3;   // index>0 frames held for the next main packet
};

// Absolute cap on max_payload (xpra's abs_max_packet_size).
constexpr size_t kHardMaxPayload = 256u << 20;

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

  // Next complete frame, nullopt if more bytes are needed, Error on bad magic / size over limit /
  // an empty unencrypted payload. Errors are sticky: every later call returns the same error.
  Expected<std::optional<RawFrame>> Next();

  // As Next(), without copying the payload out: the view points into the reader's buffer and
  // stays valid until the next Feed(), Next() or TakeBuffered() (further NextView() calls keep
  // it valid). For a consumer that transforms each payload at once (the relay encrypts it
  // straight into the client's send buffer).
  Expected<std::optional<FrameView>> NextView();

  // Bytes fed but not yet returned as frames (including a parsed header of the frame in progress).
  size_t buffered() const;

  // Removes and returns every byte fed but not yet returned as a frame, exactly as received
  // (a parsed header of the frame in progress is re-encoded in front). Used when a relay hands
  // the rest of a stream over to passthrough. The reader is empty afterwards.
  std::string TakeBuffered();

  // Changes the payload limit (capped at kHardMaxPayload) for frames whose header is not yet parsed,
  // e.g. after a server hello announces a large desktop.
  void set_max_payload(size_t max_payload);

  // The payload limit in force.
  size_t max_payload() const { return max_payload_; }

 private:
  size_t max_payload_;
  std::string buf_;
  size_t pos_ = 0;                     // start of unconsumed bytes in buf_
  std::optional<FrameHeader> header_;  // parsed header of the frame in progress
  std::optional<Error> error_;
};

}  // namespace xr
