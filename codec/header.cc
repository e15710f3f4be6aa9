#include "codec/header.h"

#include <string>
#include <utility>

namespace xr {

Compressor CompressorForLevel(uint8_t level) {
  if (level == 0) return Compressor::kNone;
  if (level & level_flags::kLz4) return Compressor::kLz4;
  if (level & level_flags::kLzo) return Compressor::kLzo;
  if (level & level_flags::kBrotli) return Compressor::kBrotli;
  return Compressor::kZlib;
}

Status CheckFlags(uint8_t f) {
  static constexpr char kHex[] = "0123456789abcdef";
  if ((f & ~flags::kKnownMask) == 0) return Status::Ok();
  std::string msg = "invalid header flags 0x";
  msg += kHex[f >> 4];
  msg += kHex[f & 0xf];
  msg += ": unknown flag bits";
  return MakeError(ErrorCode::kMalformed, std::move(msg));
}

const char* CompressorName(Compressor c) {
  switch (c) {
    case Compressor::kNone: return "none";
    case Compressor::kZlib: return "zlib";
    case Compressor::kLz4: return "lz4";
    case Compressor::kLzo: return "lzo";
    case Compressor::kBrotli: return "brotli";
  }
  return "unknown";
}

std::string SerializeFrame(const FrameHeader& h, std::string_view payload) {
  std::string out(kHeaderSize, '\0');
  EncodeHeader(h, out.data());
  out.append(payload);
  return out;
}

size_t FrameHeader::wire_payload_size() const { return wire_payload_size(kCipherPaddingBlock); }

size_t FrameHeader::wire_payload_size(size_t cipher_block) const {
  size_t n = payload_size;
  if (!encrypted() || cipher_block == 0) return n;
  return n + (cipher_block - n % cipher_block);
}

void EncodeHeader(const FrameHeader& h, char out[kHeaderSize]) {
  out[0] = kHeaderMagic;
  out[1] = static_cast<char>(h.flags);
  out[2] = static_cast<char>(h.level);
  out[3] = static_cast<char>(h.index);
  out[4] = static_cast<char>((h.payload_size >> 24) & 0xff);
  out[5] = static_cast<char>((h.payload_size >> 16) & 0xff);
  out[6] = static_cast<char>((h.payload_size >> 8) & 0xff);
  out[7] = static_cast<char>(h.payload_size & 0xff);
}

Expected<FrameHeader> DecodeHeader(std::string_view bytes) {
  auto u = [&](size_t i) { return static_cast<uint8_t>(bytes[i]); };
  // The magic byte is checked first so a stream of garbage fails on its first byte.
  if (!bytes.empty() && bytes[0] != kHeaderMagic) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string msg = "invalid packet header byte 0x";
    msg += kHex[u(0) >> 4];
    msg += kHex[u(0) & 0xf];
    msg += ", expected 'P'";
    return MakeError(ErrorCode::kMalformed, std::move(msg));
  }
  if (bytes.size() < kHeaderSize) {
    return MakeError(ErrorCode::kTruncated, "frame header needs 8 bytes, got " + std::to_string(bytes.size()));
  }
  FrameHeader h;
  h.flags = u(1);
  h.level = u(2);
  h.index = u(3);
  h.payload_size = (uint32_t{u(4)} << 24) | (uint32_t{u(5)} << 16) | (uint32_t{u(6)} << 8) | uint32_t{u(7)};
  return h;
}

}  // namespace xr
