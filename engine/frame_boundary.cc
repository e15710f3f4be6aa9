#include "engine/frame_boundary.h"

#include "codec/bencode.h"
#include "codec/compression.h"
#include "codec/packet.h"
#include "codec/rencode.h"

namespace xr::engine {

size_t FrameBoundary::Advance(std::string_view data, bool stop_at_boundary) {
  if (failed()) return 0;
  const uint64_t start = t_.offset();
  size_t consumed = 0;
  while (consumed < data.size()) {
    if (stop_at_boundary && consumed > 0 && t_.at_boundary()) break;
    auto step = t_.Feed(data.substr(consumed));
    if (!step.ok()) {
      // Clean only if no byte of the bad header went out with an earlier Feed.
      clean_ = t_.frame_start() >= start;
      return clean_ ? static_cast<size_t>(t_.frame_start() - start) : 0;
    }
    consumed += step->consumed;
    if (step->event == FrameTracker::Event::kHeader) {
      const FrameHeader& h = t_.header();
      last_payload_ = t_.payload_remaining();
      if (h.index == 0) {
        ++packets_;
        last_flags_ = h.flags;
        last_level_ = h.level;
      }
    }
  }
  return consumed;
}

void SmallFrameCapture::Feed(std::string_view data, std::vector<RawFrame>* out) {
  while (!data.empty() && !t_.failed()) {
    bool payload = t_.in_payload();
    auto step = t_.Feed(data);
    if (!step.ok()) break;
    if (payload && capturing_) frame_.payload.append(data.substr(0, step->consumed));
    if (step->event == FrameTracker::Event::kHeader) {
      const FrameHeader& h = t_.header();
      capturing_ = h.index == 0 && !h.encrypted() && t_.payload_remaining() <= max_payload_;
      if (capturing_) frame_.header = h;
    } else if (step->event == FrameTracker::Event::kFrameEnd && capturing_) {
      out->push_back(std::move(frame_));
      frame_ = RawFrame{};
      capturing_ = false;
    }
    data.remove_prefix(step->consumed);
  }
}

const char* EncoderName(uint8_t flags) {
  auto e = EncodingForFlags(flags);
  return e.ok() ? EncodingName(*e) : "yaml";
}

const char* LevelCompressorName(uint8_t level) { return CompressorName(CompressorForLevel(level)); }

std::optional<Value> DecodeFrame(const RawFrame& f, size_t max_out, const DecodeLimits& limits) {
  std::string plain;
  std::string_view payload = f.payload;
  if ((f.header.level & 0x0f) != 0) {
    auto d = Decompress(f.header.level, payload, max_out);
    if (!d.ok()) return std::nullopt;
    plain = std::move(*d);
    payload = plain;
  }
  auto enc = EncodingForFlags(f.header.flags);
  if (!enc.ok()) return std::nullopt;
  auto v = DecodePayload(*enc, payload, limits);
  if (!v.ok() || !v->is_list() || v->as_list().empty() || !v->as_list()[0].is_string()) return std::nullopt;
  return std::move(*v);
}


}  // namespace xr::engine
