// Fuzzes the receive path: bytes -> FrameReader -> PacketDecoder. Every packet that decodes
// must re-encode (same encoding, also compressed) and decode again to the same value.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "codec/frame_reader.h"
#include "codec/packet.h"
#include "codec/value.h"

namespace {

// Text and Bytes are one type on the wire (bencode's u-strings re-encode as plain strings).
xr::Value Norm(const xr::Value& v) {
  switch (v.kind()) {
    case xr::Value::Kind::kText: return xr::Value::bytes(v.as_string());
    case xr::Value::Kind::kList: {
      xr::List out;
      for (const auto& e : v.as_list()) out.push_back(Norm(e));
      return xr::Value(std::move(out));
    }
    case xr::Value::Kind::kDict: {
      xr::Dict out;
      for (const auto& [k, e] : v.as_dict()) out.emplace_back(Norm(k), Norm(e));
      return xr::Value(std::move(out));
    }
    default: return v;
  }
}

void CheckRoundTrip(const xr::Value& packet, xr::Encoding encoding) {
  for (xr::Compressor c : {xr::Compressor::kNone, xr::Compressor::kLz4}) {
    std::string wire;
    xr::EncodeOptions opts{encoding, c, c == xr::Compressor::kNone ? 0 : 1};
    if (!xr::EncodePacket(packet, opts, nullptr, &wire).ok()) std::abort();
    xr::FrameReader reader;
    reader.Feed(wire);
    auto f = reader.Next();
    if (!f.ok() || !f->has_value() || reader.buffered() != 0) std::abort();
    xr::PacketDecoder decoder;
    auto p = decoder.Push(std::move(**f));
    if (!p.ok() || !p->has_value()) std::abort();
    if (!(Norm(**p) == Norm(packet))) std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  xr::FrameLimits limits;
  limits.max_payload = 1u << 20;
  xr::FrameReader reader(limits);
  xr::PacketDecoder decoder(limits);
  reader.Feed(std::string_view(reinterpret_cast<const char*>(data), size));
  while (true) {
    auto f = reader.Next();
    if (!f.ok() || !f->has_value()) return 0;
    auto p = decoder.Push(std::move(**f));
    if (!p.ok()) return 0;
    if (!p->has_value()) continue;
    const xr::Value& packet = **p;
    if (!packet.is_list() || packet.as_list().empty() || !packet.as_list()[0].is_string()) std::abort();
    CheckRoundTrip(packet, decoder.last_encoding());
  }
}
