#include "engine/frame_boundary.h"

#include "codec/bencode.h"
#include "codec/compression.h"
#include "codec/rencode.h"

namespace xr::engine {

const char* EncoderName(uint8_t flags) {
  if (flags & flags::kYaml) return "yaml";
  return (flags & flags::kRencode) ? "rencode" : "bencode";
}

const char* LevelCompressorName(uint8_t level) { return CompressorName(CompressorForLevel(level)); }

std::optional<Value> DecodeFrame(const RawFrame& f) {
  std::string plain;
  std::string_view payload = f.payload;
  if ((f.header.level & 0x0f) != 0) {
    auto d = Decompress(f.header.level, payload, kHardMaxPayload);
    if (!d.ok()) return std::nullopt;
    plain = std::move(*d);
    payload = plain;
  }
  if (f.header.flags & flags::kYaml) return std::nullopt;
  auto v = (f.header.flags & flags::kRencode) ? rencode::Decode(payload) : bencode::Decode(payload);
  if (!v.ok() || !v->is_list() || v->as_list().empty() || !v->as_list()[0].is_string()) return std::nullopt;
  return std::move(*v);
}


}  // namespace xr::engine
