#include "codec/frame_tracker.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <utility>

namespace xr {

FrameTracker::FrameTracker(FrameLimits limits) : limits_(limits) {
  limits_.max_payload = std::min(limits_.max_payload, kHardMaxPayload);
}

void FrameTracker::set_max_payload(size_t max_payload) { limits_.max_payload = std::min(max_payload, kHardMaxPayload); }

Error FrameTracker::Fail(Error e) {
  error_ = e;
  return e;
}

Status FrameTracker::Admit(const FrameHeader& h) {
  if (Status s = CheckFlags(h.flags); !s.ok()) return Fail(s.error());
  const size_t wire = h.wire_payload_size(cipher_block_);
  if (wire > limits_.max_payload) {
    return Fail(MakeError(ErrorCode::kTooLarge, "frame of " + std::to_string(wire) + " bytes exceeds the " +
                                                    std::to_string(limits_.max_payload) + " byte limit"));
  }
  if (wire == 0) return Fail(MakeError(ErrorCode::kMalformed, "frame with an empty payload"));
  if (h.index == 0) {
    chunks_.reset();
  } else {
    if (chunks_.test(h.index)) {
      return Fail(MakeError(ErrorCode::kMalformed, "duplicate chunk at index " + std::to_string(h.index)));
    }
    if (chunks_.count() >= limits_.max_pending_chunks) {
      return Fail(MakeError(ErrorCode::kTooLarge, "more than " + std::to_string(limits_.max_pending_chunks) +
                                                      " chunks before their main packet (too many pending chunks)"));
    }
    chunks_.set(h.index);
  }
  header_ = h;
  return Status::Ok();
}

Expected<FrameTracker::Step> FrameTracker::Feed(std::string_view data) {
  if (error_) return *error_;
  Step step;
  if (data.empty()) return step;
  if (remaining_ > 0) {
    step.consumed = std::min(remaining_, data.size());
    remaining_ -= step.consumed;
    offset_ += step.consumed;
    if (remaining_ == 0) step.event = Event::kFrameEnd;
    return step;
  }
  if (have_ == 0) {
    frame_start_ = offset_;
    // The magic byte alone decides rule 1.
    if (data[0] != kHeaderMagic) {
      auto h = DecodeHeader(data.substr(0, 1));
      return Fail(h.ok() ? MakeError(ErrorCode::kInternal, "bad magic not detected") : h.take_error());
    }
  }
  step.consumed = std::min(kHeaderSize - have_, data.size());
  std::memcpy(hbuf_ + have_, data.data(), step.consumed);
  have_ += step.consumed;
  offset_ += step.consumed;
  if (have_ < kHeaderSize) return step;
  have_ = 0;
  auto h = DecodeHeader(std::string_view(hbuf_, kHeaderSize));
  if (!h.ok()) return Fail(h.take_error());
  if (Status s = Admit(*h); !s.ok()) return s.error();
  remaining_ = h->wire_payload_size(cipher_block_);
  step.event = Event::kHeader;
  return step;
}

FrameTracker::Event FrameTracker::Skip(size_t n) {
  if (error_ || remaining_ == 0 || n == 0) return Event::kNone;
  n = std::min(n, remaining_);
  remaining_ -= n;
  offset_ += n;
  return remaining_ == 0 ? Event::kFrameEnd : Event::kNone;
}

Status FrameTracker::AcceptFrame(const FrameHeader& h) {
  if (error_) return *error_;
  if (!at_boundary()) return Fail(MakeError(ErrorCode::kInternal, "a whole frame given inside another"));
  frame_start_ = offset_;
  if (Status s = Admit(h); !s.ok()) return s;
  offset_ += kHeaderSize + h.wire_payload_size(cipher_block_);
  return Status::Ok();
}

}  // namespace xr
