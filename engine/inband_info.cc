#include "engine/inband_info.h"

#include <algorithm>

#include "codec/compression.h"
#include "codec/packet.h"
#include "engine/log.h"

namespace xr::engine {

bool InbandInfo::MayBeInfoRequest(const RawFrame& f) {
  if ((f.header.level & 0x0f) != 0) return true;
  return std::string_view(f.payload).substr(0, 24).find("info-request") != std::string_view::npos;
}

void InbandInfo::WatchClient(std::string_view data, int64_t now_ms) {
  std::vector<RawFrame> frames;
  client_capture_.Feed(data, &frames);
  for (const auto& f : frames) {
    if (!MayBeInfoRequest(f)) continue;
    if (watch_refill_ms_ >= 0 && now_ms > watch_refill_ms_) {
      watch_tokens_ = std::min<int64_t>(kWatchBytesPerSecond,
                                        watch_tokens_ + (now_ms - watch_refill_ms_) * kWatchBytesPerSecond / 1000);
    }
    watch_refill_ms_ = now_ms;
    const int64_t cost = static_cast<int64_t>((f.header.level & 0x0f) != 0 ? kWatchMaxPacket : f.payload.size());
    if (watch_tokens_ < cost) continue;  // over budget: passed on unexamined
    watch_tokens_ -= cost;
    auto p = DecodeFrame(f, kWatchMaxPacket, kWatchDecodeLimits);
    if (p && p->as_list()[0].as_string() == "info-request") {
      expecting_ = true;
      frames_ = 0;
    }
  }
}

void InbandInfo::Forward(std::string_view data, Sink& sink, uint64_t conn) {
  FrameBoundary& to_client = sink.to_client_frames();
  if (!reader_) {
    if (!to_client.at_boundary()) {
      size_t n = to_client.FeedToBoundary(data);
      if (to_client.failed()) return sink.BadServerFrame(data);
      sink.QueueToClient(std::string(data.substr(0, n)));
      data.remove_prefix(n);
      if (!to_client.at_boundary()) return;
    }
    reader_ = std::make_unique<FrameReader>(FrameLimits{to_client.max_payload(), 3});
    chunks_before_main_ = 0;
  }
  reader_->Feed(data);
  while (expecting_ && !sink.closing()) {
    auto f = reader_->Next();
    if (!f.ok() || !f->has_value()) {
      if (!f.ok()) expecting_ = false;  // not ours to judge: pass the bytes on unchanged
      break;
    }
    RawFrame frame = std::move(**f);
    if (frame.header.index != 0) {
      ++chunks_before_main_;
      sink.ForwardToClient(SerializeFrame(frame.header, frame.payload));
      continue;
    }
    std::string out;
    auto packet = chunks_before_main_ == 0 ? DecodeFrame(frame, to_client.max_payload()) : std::nullopt;
    chunks_before_main_ = 0;
    if (packet && packet->as_list()[0].as_string() == "info-response" && packet->as_list().size() > 1 &&
        packet->as_list()[1].is_dict()) {
      packet->as_list()[1].set("proxy", sink.ProxyInfo());
      EncodeOptions opts;
      const auto enc = EncodingForFlags(frame.header.flags);
      opts.encoding = enc.ok() ? *enc : Encoding::kBencode;
      if ((frame.header.level & 0x0f) != 0) {
        opts.compressor = CompressorForLevel(frame.header.level);
        opts.level = frame.header.level & 0x0f;
      }
      if (!EncodePacket(*packet, opts, nullptr, &out).ok()) out.clear();
      expecting_ = false;
      XR_DEBUG("conn", "conn={} info-response augmented with proxy info", conn);
    }
    sink.ForwardToClient(out.empty() ? SerializeFrame(frame.header, frame.payload) : std::move(out));
    if (++frames_ > 10000) expecting_ = false;  // the server never answered
  }
  if (!expecting_ && !sink.closing()) {
    std::string rest = reader_->TakeBuffered();
    reader_.reset();
    if (!rest.empty()) sink.ForwardToClient(std::move(rest));
  }
}

}  // namespace xr::engine
