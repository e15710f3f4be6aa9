// Fuzzes the bridge's Translator: bytes -> FrameReader -> Translator, in both directions
// (byte 0 picks 3.1 -> 6.x or 6.x -> 3.1 and the written compressor). Every frame the
// translator writes must be a frame the other generation reads: a header that parses, the
// written encoder bit only on main frames, and a main payload that decompresses and decodes
// with the written encoder to a list starting with a string. The hello translations run on
// every decoded dict and must give dicts.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "codec/bridge.h"
#include "codec/compression.h"
#include "codec/frame_reader.h"

namespace {

using xr::bridge::Generation;

void CheckOutput(const xr::bridge::WireFormat& to, const xr::FrameHeader& h, std::string_view payload) {
  if (h.payload_size != payload.size() || h.encrypted()) std::abort();
  if (h.index > 0) {
    if ((h.flags & xr::flags::kEncoderMask) != 0) std::abort();
    return;
  }
  if ((h.flags & xr::flags::kEncoderMask) != xr::EncodingFlag(to.encoding)) std::abort();
  auto data = xr::Decompress(h.level, payload, size_t{64} << 20);
  if (!data.ok()) std::abort();
  auto v = xr::DecodePayload(to.encoding, *data, xr::DecodeLimits{});
  if (!v.ok() || !v->is_list() || v->as_list().empty() || !v->as_list()[0].is_string()) std::abort();
  if (v->as_list().size() > 1 && v->as_list()[1].is_dict()) {
    xr::Value six = xr::bridge::HelloTo6(v->as_list()[1]);
    xr::Value three = xr::bridge::HelloTo3(v->as_list()[1]);
    if (!six.is_dict() || !three.is_dict()) std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t mode = data[0];
  const Generation from = (mode & 1) != 0 ? Generation::k6 : Generation::k3;
  xr::bridge::WireFormat to;
  if (from == Generation::k3) {
    to = {xr::Encoding::kRencodePlus, (mode & 2) != 0 ? xr::Compressor::kLz4 : xr::Compressor::kNone};
  } else {
    to = {(mode & 4) != 0 ? xr::Encoding::kBencode : xr::Encoding::kRencode,
          (mode & 2) != 0 ? xr::Compressor::kZlib : xr::Compressor::kNone};
  }
  xr::FrameLimits limits;
  limits.max_payload = 1u << 20;
  xr::FrameReader reader(limits);
  xr::bridge::Translator t(from, to, limits.max_payload, xr::DecodeLimits{});
  reader.Feed(std::string_view(reinterpret_cast<const char*>(data + 1), size - 1));
  auto sink = [&](const xr::FrameHeader& h, std::string_view payload) {
    CheckOutput(to, h, payload);
    return xr::Status::Ok();
  };
  while (true) {
    auto f = reader.Next();
    if (!f.ok() || !f->has_value()) return 0;
    std::string dropped;
    if (!t.Translate((**f).header, (**f).payload, sink, &dropped).ok()) return 0;
  }
}
