#include "codec/frame_reader.h"

#include <algorithm>
#include <utility>

namespace xr {

FrameReader::FrameReader(FrameLimits limits) : tracker_(limits), at_pos_(tracker_) {}

void FrameReader::Feed(std::string_view bytes) {
  if (tracker_.failed()) return;
  // Drop consumed bytes before growing, so the buffer holds at most one frame plus one read.
  if (pos_ > 0 && (pos_ == buf_.size() || pos_ >= buf_.size() / 2)) {
    buf_.erase(0, pos_);
    scan_ -= pos_;
    pos_ = 0;
  }
  buf_.append(bytes);
}

std::string FrameReader::TakeBuffered() {
  std::string out(buf_, pos_, std::string::npos);
  std::string().swap(buf_);  // give the memory back: a passthrough connection keeps none
  pos_ = 0;
  scan_ = 0;
  tracker_ = at_pos_;  // back to the boundary the returned bytes start at
  return out;
}

size_t FrameReader::buffered() const { return buf_.size() - pos_; }

void FrameReader::set_max_payload(size_t max_payload) {
  tracker_.set_max_payload(max_payload);
  at_pos_.set_max_payload(max_payload);
}

void FrameReader::set_cipher_block(size_t block) {
  tracker_.set_cipher_block(block);
  at_pos_.set_cipher_block(block);
}

Expected<std::optional<RawFrame>> FrameReader::Next() {
  auto view = NextView();
  if (!view.ok()) return view.error();
  if (!view->has_value()) return std::optional<RawFrame>();
  RawFrame frame{(**view).header, std::string((**view).payload)};
  if (pos_ == buf_.size()) {
    buf_.clear();
    pos_ = 0;
    scan_ = 0;
  }
  return std::optional<RawFrame>(std::move(frame));
}

Expected<std::optional<FrameView>> FrameReader::NextView() {
  if (tracker_.failed()) return tracker_.error();
  // The header: walked as its bytes arrive, so the rules apply before the payload is here.
  while (!tracker_.in_payload()) {
    if (scan_ == buf_.size()) return std::optional<FrameView>();
    auto step = tracker_.Feed(std::string_view(buf_).substr(scan_));
    if (!step.ok()) return step.error();
    scan_ += step->consumed;
  }
  // The payload: skipped over in one go once all of it is buffered.
  const size_t wire = tracker_.payload_remaining();
  if (buf_.size() - scan_ < wire) return std::optional<FrameView>();
  tracker_.Skip(wire);
  FrameView frame{tracker_.header(), std::string_view(buf_).substr(scan_, wire)};
  scan_ += wire;
  pos_ = scan_;
  at_pos_ = tracker_;
  // The buffer is not cleared here (the view points into it): Feed() drops consumed bytes.
  return std::optional<FrameView>(frame);
}

}  // namespace xr
