#include "codec/frame_reader.h"

#include <algorithm>
#include <utility>

namespace xr {

FrameReader::FrameReader(FrameLimits limits) : max_payload_(std::min(limits.max_payload, kHardMaxPayload)) {}

void FrameReader::Feed(std::string_view bytes) {
  if (error_) return;
  // Drop consumed bytes before growing, so the buffer holds at most one frame plus one read.
  if (pos_ > 0 && (pos_ == buf_.size() || pos_ >= buf_.size() / 2)) {
    buf_.erase(0, pos_);
    pos_ = 0;
  }
  buf_.append(bytes);
}

std::string FrameReader::TakeBuffered() {
  std::string out;
  if (header_) {
    out.resize(kHeaderSize);
    EncodeHeader(*header_, out.data());
    header_.reset();
  }
  out.append(buf_, pos_, std::string::npos);
  std::string().swap(buf_);  // give the memory back: a passthrough connection keeps none
  pos_ = 0;
  return out;
}

size_t FrameReader::buffered() const { return buf_.size() - pos_ + (header_ ? kHeaderSize : 0); }

void FrameReader::set_max_payload(size_t max_payload) { max_payload_ = std::min(max_payload, kHardMaxPayload); }

Expected<std::optional<RawFrame>> FrameReader::Next() {
  auto view = NextView();
  if (!view.ok()) return view.error();
  if (!view->has_value()) return std::optional<RawFrame>();
  RawFrame frame{(**view).header, std::string((**view).payload)};
  if (pos_ == buf_.size()) {
    buf_.clear();
    pos_ = 0;
  }
  return std::optional<RawFrame>(std::move(frame));
}

Expected<std::optional<FrameView>> FrameReader::NextView() {
  if (error_) return *error_;
  std::string_view avail(buf_.data() + pos_, buf_.size() - pos_);
  if (!header_) {
    if (avail.empty()) return std::optional<FrameView>();
    auto h = DecodeHeader(avail);
    if (!h.ok()) {
      if (h.error().code == ErrorCode::kTruncated) return std::optional<FrameView>();
      error_ = h.error();
      return *error_;
    }
    size_t wire = h->wire_payload_size();
    if (wire > max_payload_) {
      error_ = MakeError(ErrorCode::kTooLarge, "frame of " + std::to_string(wire) + " bytes exceeds the " +
                                                   std::to_string(max_payload_) + " byte limit");
      return *error_;
    }
    if (wire == 0) {
      error_ = MakeError(ErrorCode::kMalformed, "frame with an empty payload");
      return *error_;
    }
    header_ = *h;
    pos_ += kHeaderSize;
    avail.remove_prefix(kHeaderSize);
  }
  size_t wire = header_->wire_payload_size();
  if (avail.size() < wire) return std::optional<FrameView>();
  FrameView frame{*header_, avail.substr(0, wire)};
  pos_ += wire;
  header_.reset();
  // The buffer is not cleared here (the view points into it): Feed() drops consumed bytes.
  return std::optional<FrameView>(frame);
}

}  // namespace xr
